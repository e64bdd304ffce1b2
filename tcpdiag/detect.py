"""The rule engine: each event of a retired connection against the rules, into findings.

For each event the highest-priority rule whose conditions hold decides its category (one that
`overrides` only where a lower-priority rule holds too: see rules.Rule.overrides). Several
events of one connection that land in the same category (two injected RSTs, every ICMP error of a
stalled flow) make one finding whose evidence lists them all.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tcpdiag.events import FlowEvent
from tcpdiag.findings import AppView, Cause, Finding
from tcpdiag.rules import CauseSpec, Rule, RuleSet, SeesSpec, all_hold, event_values, render
from tcpdiag.tracker import TrackedConnection

NOTHING_SEEN = "nothing: no call on this side fails because of this"
APP_VIEWS_KEPT = 1024  # distinct views of what a program saw, kept for reuse
DECISIONS_KEPT = 4096  # distinct decisions kept for reuse (see RuleEngine._deciding)


class RuleEngine:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._by_event: dict[str, list[Rule]] = {}
        self._views: dict[tuple[str | None, str, str, str, str | None], AppView] = {}
        # Each rule's causes, most confident first (a stable sort: ties keep the rules' order),
        # so that those that hold are in that order without a sort per finding.
        self._causes: dict[str, tuple[CauseSpec, ...]] = {}
        for rule in ruleset.rules:  # already sorted by priority, highest first
            self._by_event.setdefault(rule.event, []).append(rule)
            self._causes[rule.id] = tuple(sorted(rule.causes, key=lambda c: -c.confidence))
        # Per event kind, the facts that decide everything but the wording of its findings:
        # which rule matches, which of its causes hold, which errno each side sees. Events of
        # a kind whose deciding facts give the same key (_DecidingFacts) get the same
        # _Decision, made once: a capture's thousands of refused connections differ only in
        # what the texts name.
        self._deciding = {kind: _DecidingFacts.of(rules) for kind, rules in self._by_event.items()}
        self._decisions: dict[tuple[str, tuple[Any, ...]], _Decision] = {}

    def match(self, event: FlowEvent, facts: dict[str, Any] | None = None) -> Rule | None:
        """The highest-priority rule that decides this event (`facts`: its facts, if the caller
        has them already)."""
        return self._decision(event.KIND, event.facts() if facts is None else facts).rule

    def findings(self, connections: Iterable[TrackedConnection]) -> Iterator[Finding]:
        for conn in connections:
            yield from self.findings_for(conn)

    def findings_for(self, conn: TrackedConnection) -> list[Finding]:
        by_category: dict[str, Finding] = {}
        for event in conn.events:
            # (Gathering an event's facts is a good part of a finding's cost: once per event.)
            facts = event.facts()
            decision = self._decision(event.KIND, facts)
            rule = decision.rule
            if rule is None:
                continue
            existing = by_category.get(rule.category)
            if existing is None:
                by_category[rule.category] = self._finding(
                    decision, event, facts, conn.community_id
                )
            else:
                _merge_evidence(existing, event)
        if len(by_category) < 2:
            return list(by_category.values())
        return sorted(by_category.values(), key=lambda f: (f.time, f.frames[:1]))

    def _decision(self, kind: str, facts: dict[str, Any]) -> _Decision:
        """What the rules decide for an event of this kind with these facts (see _deciding)."""
        deciding = self._deciding.get(kind)
        if deciding is None:
            return _NO_RULE
        try:
            key = (kind, deciding.key(facts))
            decision = self._decisions.get(key)
        except (KeyError, TypeError):  # a fact missing, or a value that cannot be a key
            return self._decide(kind, facts)
        if decision is None:
            if len(self._decisions) >= DECISIONS_KEPT:
                self._decisions.clear()  # (numeric facts can make every event's values new)
            decision = self._decisions[key] = self._decide(kind, facts)
        return decision

    def _decide(self, kind: str, facts: dict[str, Any]) -> _Decision:
        rules = self._by_event.get(kind, [])
        rule = next((r for r in rules if r.matches(facts)), None)
        if rule is None:
            return _NO_RULE
        if rule.overrides and not any(
            not other.overrides and other.matches(facts) for other in rules[rules.index(rule) + 1 :]
        ):
            return _NO_RULE  # (nothing it could re-read: see Rule.overrides)
        causes = tuple(c for c in self._causes[rule.id] if all_hold(c.conditions, facts))
        sees = []
        for role, spec in rule.sees.items():
            errno = spec.errno_for(facts)
            windows = spec.windows if errno is not None else None
            sees.append((role, errno, spec.label, _when(spec, errno), windows))
        return _Decision(rule, causes, tuple(sees))

    def _finding(
        self, decision: _Decision, event: FlowEvent, facts: dict[str, Any], community_id: str
    ) -> Finding:
        rule = decision.rule
        assert rule is not None
        values = event_values(event, facts)
        causes = [Cause(c.id, render(c.text, values), c.confidence) for c in decision.causes]
        client_os, server_os = event.client_os, event.server_os
        client_sees = server_sees = None
        for role, errno, label, when_template, windows in decision.sees:
            when = (
                render(when_template, values) if when_template else ("" if errno else NOTHING_SEEN)
            )
            if event.role_of(role) == "client":
                client_sees = self._app_view(errno, when, client_os, label, windows)
            else:
                server_sees = self._app_view(errno, when, server_os, label, windows)
        if client_sees is None:
            client_sees = self._app_view(None, NOTHING_SEEN, client_os)
        if server_sees is None:
            server_sees = self._app_view(None, NOTHING_SEEN, server_os)
        impact = rule.impact or ("error_seen" if client_sees.errno or server_sees.errno else "none")
        evidence = list(event.evidence)
        if len(evidence) > 1:
            evidence.sort(key=lambda e: e.frame)
        ref = event.connection
        # (Positional: keywords to a 26-field __init__ cost a good part of a finding.)
        return Finding(
            rule.category,
            rule.id,
            render(rule.title, values),
            ref.client,
            ref.server,
            ref.initiator_known,
            [e.frame for e in evidence],
            event.time,
            evidence,
            event.client_state,
            event.server_state,
            client_sees,
            server_sees,
            render(rule.explanation, values),
            causes[0] if causes else None,
            causes[0].confidence if causes else rule.confidence,
            causes[1:],
            render(rule.next_step, values),
            list(rule.references),
            ref.conn_id,
            community_id,
            "",
            facts,
            impact,
            ref.first_time,
            ref.tunnel,
        )

    def _app_view(
        self, errno: str | None, when: str, os: str, label: str = "", windows: str | None = None
    ) -> AppView:
        """What a side's program saw. The same few views recur across a capture's findings
        (and a flood's thousands): one shared object each (AppView is frozen), built once.
        `windows`: the errno whose Winsock error a Windows program gets instead (SeesSpec)."""
        key = (errno, when, os, label, windows)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= APP_VIEWS_KEPT:
                self._views.clear()
            text = self.ruleset.errnos.get(errno) if errno else None
            winsock = self.ruleset.errnos.get(windows) if windows else text
            view = self._views[key] = AppView(
                errno=errno,
                linux=text.linux if text else "",
                windows=winsock.windows if winsock else "",
                when=when,
                os=os,
                label=label,
            )
        return view


def _when(spec: SeesSpec, errno: str | None) -> str:
    """When a side sees its errno; nothing to say (NOTHING_SEEN is said) where a `sees` map
    gave it none: the `when` of a side with an errno does not apply."""
    return spec.when if errno or spec.errno_by is None else ""


@dataclass(frozen=True, slots=True)
class _Decision:
    """What the rules decide for one event: the rule that matches (None: no finding), its
    causes that hold (most confident first), and per role of the event, the errno its program
    sees and the template of when."""

    rule: Rule | None
    causes: tuple[CauseSpec, ...] = ()
    # (role, errno, label, when, the errno whose Winsock error a Windows program gets)
    sees: tuple[tuple[str, str | None, str, str, str | None], ...] = ()


_NO_RULE = _Decision(None)


_OTHER = object()  # a value equal to none of the values the conditions on a fact name


@dataclass(frozen=True, slots=True)
class _DecidingFacts:
    """How the facts that decide an event of one kind make a key: a fact whose conditions
    only name values (a state, a verdict, a role; or that selects an errno) by its value; a
    number that conditions bound or compare (bytes sent, an age, a TTL difference) by which
    of the named values it is and which side of each bound it is on, so that events whose
    numbers differ but fall alike share the decision."""

    exact: Callable[[dict[str, Any]], tuple[Any, ...]]
    # (fact, the values conditions name, minimums, maximums) of each number
    numbers: tuple[tuple[str, frozenset[Any], tuple[Any, ...], tuple[Any, ...]], ...]

    @staticmethod
    def of(rules: list[Rule]) -> _DecidingFacts:
        conditions = [c for rule in rules for c in rule.conditions] + [
            c for rule in rules for cause in rule.causes for c in cause.conditions
        ]
        errno_by = {s.errno_by for rule in rules for s in rule.sees.values() if s.errno_by}
        named: dict[str, set[Any]] = {}
        minimums: dict[str, set[Any]] = {}
        maximums: dict[str, set[Any]] = {}
        for c in conditions:
            named.setdefault(c.fact, set()).update(c.equals, c.excluded)
            if c.minimum is not None:
                minimums.setdefault(c.fact, set()).add(c.minimum)
            if c.maximum is not None:
                maximums.setdefault(c.fact, set()).add(c.maximum)

        def is_number(fact: str) -> bool:
            values = named[fact]
            if fact in errno_by or not (values or fact in minimums or fact in maximums):
                return False  # (an errno is looked up by the value's text: 1 is not True)
            return all(type(v) in (int, float) for v in values)

        numbers = sorted(f for f in named if is_number(f))
        exact = sorted((set(named) - set(numbers)) | errno_by)
        return _DecidingFacts(
            _values_getter(exact),
            tuple(
                (
                    fact,
                    frozenset(named[fact]),
                    tuple(sorted(minimums.get(fact, ()))),
                    tuple(sorted(maximums.get(fact, ()))),
                )
                for fact in numbers
            ),
        )

    def key(self, facts: dict[str, Any]) -> tuple[Any, ...]:
        """KeyError if a fact is missing, TypeError if a value cannot be part of a key. (One
        flat tuple, the same length for every event of the kind: None satisfies no bound.)"""
        key: list[Any] = [self.exact(facts)]
        append = key.append
        for fact, named, minimums, maximums in self.numbers:
            value = facts[fact]
            append(value if value in named else _OTHER)
            if value is None:
                key.extend([False] * (len(minimums) + len(maximums)))
                continue
            for bound in minimums:
                append(value >= bound)
            for bound in maximums:
                append(value <= bound)
        return tuple(key)


def _values_getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function giving the values of these facts as a tuple (KeyError if one is missing)."""
    if not names:
        return lambda facts: ()
    if len(names) == 1:
        (name,) = names
        return lambda facts: (facts[name],)
    return operator.itemgetter(*names)


def _merge_evidence(finding: Finding, event: FlowEvent) -> None:
    known = {e.frame for e in finding.evidence}
    for e in event.evidence:
        if e.frame not in known:
            finding.evidence.append(e)
            known.add(e.frame)
    finding.evidence.sort(key=lambda e: e.frame)
    finding.frames = [e.frame for e in finding.evidence]
