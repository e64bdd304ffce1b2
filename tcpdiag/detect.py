"""The rule engine: each event of a retired connection against the rules, into findings.

For each event the highest-priority rule whose conditions hold decides its category. Several
events of one connection that land in the same category (two injected RSTs, every ICMP error of a
stalled flow) make one finding whose evidence lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tcpdiag.events import FlowEvent
from tcpdiag.findings import AppView, Cause, EvidenceItem, Finding
from tcpdiag.rules import CauseSpec, Rule, RuleSet, all_hold, event_values, render
from tcpdiag.tracker import TrackedConnection

NOTHING_SEEN = "nothing: no call on this side fails because of this"
APP_VIEWS_KEPT = 1024  # distinct views of what a program saw, kept for reuse


class RuleEngine:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._by_event: dict[str, list[Rule]] = {}
        self._views: dict[tuple[str | None, str, str], AppView] = {}
        # Each rule's causes, most confident first (a stable sort: ties keep the rules' order),
        # so that those that hold are in that order without a sort per finding.
        self._causes: dict[str, tuple[CauseSpec, ...]] = {}
        for rule in ruleset.rules:  # already sorted by priority, highest first
            self._by_event.setdefault(rule.event, []).append(rule)
            self._causes[rule.id] = tuple(sorted(rule.causes, key=lambda c: -c.confidence))

    def match(self, event: FlowEvent, facts: dict[str, Any] | None = None) -> Rule | None:
        """The highest-priority rule that decides this event (`facts`: its facts, if the caller
        has them already)."""
        if facts is None:
            facts = event.facts()
        for rule in self._by_event.get(event.KIND, ()):
            if rule.matches(facts):
                return rule
        return None

    def findings(self, connections: Iterable[TrackedConnection]) -> Iterator[Finding]:
        for conn in connections:
            yield from self.findings_for(conn)

    def findings_for(self, conn: TrackedConnection) -> list[Finding]:
        by_category: dict[str, Finding] = {}
        for event in conn.events:
            # (Gathering an event's facts is a good part of a finding's cost: once per event.)
            facts = event.facts()
            rule = self.match(event, facts)
            if rule is None:
                continue
            existing = by_category.get(rule.category)
            if existing is None:
                by_category[rule.category] = self._finding(rule, event, facts, conn.community_id)
            else:
                _merge_evidence(existing, event)
        if len(by_category) < 2:
            return list(by_category.values())
        return sorted(by_category.values(), key=lambda f: (f.time, f.frames[:1]))

    def _finding(
        self, rule: Rule, event: FlowEvent, facts: dict[str, Any], community_id: str
    ) -> Finding:
        values = event_values(event, facts)
        causes = [
            Cause(c.id, render(c.text, values), c.confidence)
            for c in self._causes[rule.id]
            if all_hold(c.conditions, facts)
        ]
        client_os, server_os = event.client_os, event.server_os
        client_sees = server_sees = None
        for role, spec in rule.sees.items():
            errno = spec.errno_for(facts)
            when = render(spec.when, values) if spec.when else ("" if errno else NOTHING_SEEN)
            if event.role_of(role) == "client":
                client_sees = self._app_view(errno, when, client_os)
            else:
                server_sees = self._app_view(errno, when, server_os)
        if client_sees is None:
            client_sees = self._app_view(None, NOTHING_SEEN, client_os)
        if server_sees is None:
            server_sees = self._app_view(None, NOTHING_SEEN, server_os)
        impact = rule.impact or ("error_seen" if client_sees.errno or server_sees.errno else "none")
        evidence = [EvidenceItem(e.frame, e.time, e.what) for e in event.evidence]
        if len(evidence) > 1:
            evidence.sort(key=lambda e: e.frame)
        ref = event.connection
        return Finding(
            category=rule.category,
            rule=rule.id,
            title=render(rule.title, values),
            client=ref.client,
            server=ref.server,
            initiator_known=ref.initiator_known,
            frames=[e.frame for e in evidence],
            time=event.time,
            evidence=evidence,
            client_state=event.client_state,
            server_state=event.server_state,
            client_sees=client_sees,
            server_sees=server_sees,
            explanation=render(rule.explanation, values),
            cause=causes[0] if causes else None,
            confidence=causes[0].confidence if causes else rule.confidence,
            alternatives=causes[1:],
            next_step=render(rule.next_step, values),
            references=list(rule.references),
            conn_id=ref.conn_id,
            community_id=community_id,
            facts=facts,
            impact=impact,
            conn_first_time=ref.first_time,
            tunnel=ref.tunnel,
        )

    def _app_view(self, errno: str | None, when: str, os: str) -> AppView:
        """What a side's program saw. The same few views recur across a capture's findings
        (and a flood's thousands): one shared object each (AppView is frozen), built once."""
        key = (errno, when, os)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= APP_VIEWS_KEPT:
                self._views.clear()
            text = self.ruleset.errnos.get(errno) if errno else None
            view = self._views[key] = AppView(
                errno=errno,
                linux=text.linux if text else "",
                windows=text.windows if text else "",
                when=when,
                os=os,
            )
        return view


def _merge_evidence(finding: Finding, event: FlowEvent) -> None:
    known = {e.frame for e in finding.evidence}
    for e in event.evidence:
        if e.frame not in known:
            finding.evidence.append(EvidenceItem(e.frame, e.time, e.what))
            known.add(e.frame)
    finding.evidence.sort(key=lambda e: e.frame)
    finding.frames = [e.frame for e in finding.evidence]
