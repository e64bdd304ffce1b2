"""Floods become one finding, not a million: a port scan, a SYN flood, a reset storm or an ICMP
storm is reported as one *aggregated finding* (`A1`, `A2`, ...) with counts, rate, time span,
top sources and targets and what the applications saw, instead of one finding per connection.

Which findings make a group is data (`KINDS`): a kind names the categories it takes, the key
its findings share (the scanner's address, the flooded server endpoint, the host that sent the
RSTs, the ICMP errors' source) and how many distinct peers the key needs. A group of more than
`threshold` findings (`tcpdiag analyze --aggregate-over N`, default `DEFAULT_AGGREGATE_OVER`; 0:
never) is aggregated; smaller groups keep their individual findings. A finding folds into the
first kind, in `KINDS` order, whose group it belongs to is aggregated.

Memory is bounded by the number of groups, never by the number of findings: a first pass over
the findings (the report's spool, which can be iterated again) counts each group in a bounded
tally (`Planner`); the output pass then folds each member into its group's `Aggregate`, which
keeps counts, a bounded set of peers and the first few members. Where two kinds take the same
categories (scans and floods), the later kind is counted again without the findings the earlier
one took (one more pass, only when both have groups over the threshold).

Groups and ids are decided over every finding of the capture, before --category, --impact,
--min-confidence or --since/--until, so `A1` is the same group in every report of a capture;
those filters then decide which members an aggregate counts and shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tcpdiag.findings import EncodedFinding, Finding, FindingFacts, iso_time
from tcpdiag.spool import digests_of

# A group of more than this many findings is aggregated (by default). The samples and the
# real-world corpus have at most 9 findings per capture; bench/make_capture.py's realistic mix
# (300,000 packets) has at most 67 about one group (a router's ICMP errors) and 36 from each
# nmap scanner: those stay individual findings.
DEFAULT_AGGREGATE_OVER = 100
# Groups followed at once per kind; when full, the less frequent half is forgotten (their
# counts start again if they come back, which can only keep a group individual).
MAX_TALLIES = 1 << 12
# Distinct sources and targets counted per aggregate (beyond: "at least").
MAX_DISTINCT = 1 << 12
FIRST_MEMBERS = 5  # member ids (and their frames) an aggregate lists
TOP = 5  # top sources and targets listed
MIN_SCAN_TARGETS = 10  # like tcpdiag.scans.MIN_TARGETS: a scanner probed this many targets


def host_of(endpoint: str) -> str:
    """`10.0.0.1:80` -> `10.0.0.1`; `[::1]:80` -> `::1`."""
    host = endpoint.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _client_host(finding: FindingFacts) -> str | None:
    return host_of(finding.client)


def _server_endpoint(finding: FindingFacts) -> str | None:
    return finding.server


def _rst_sender(finding: FindingFacts) -> str | None:
    sender = finding.facts.get("sender")
    if sender == "server":
        return host_of(finding.server)
    if sender == "client":
        return host_of(finding.client)
    return None


def _icmp_source(finding: FindingFacts) -> str | None:
    source = finding.facts.get("icmp_source")
    return str(source) if source else None


def _ip(address: str) -> str:
    return "ipv6" if ":" in address else "ip"


def _scan_filter(subject: str) -> str:
    return f"{_ip(subject)}.addr=={subject} && (tcp.flags.syn==1 || tcp.flags.reset==1)"


def _flood_filter(subject: str) -> str:
    host, port = host_of(subject), subject.rsplit(":", 1)[1]
    return (
        f"{_ip(host)}.addr=={host} && tcp.port=={port} && (tcp.flags.syn==1 || tcp.flags.reset==1)"
    )


def _reset_filter(subject: str) -> str:
    return f"{_ip(subject)}.src=={subject} && tcp.flags.reset==1"


def _close_filter(subject: str) -> str:
    host, port = host_of(subject), subject.rsplit(":", 1)[1]
    return f"{_ip(host)}.src=={host} && tcp.srcport=={port} && tcp.flags.fin==1"


def _icmp_filter(subject: str) -> str:
    return f"{_ip(subject)}.src=={subject} && {'icmpv6' if ':' in subject else 'icmp'}"


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of aggregated finding: which findings it takes and what they share."""

    category: str  # the aggregated finding's category
    members: frozenset[str]  # the categories of the findings it takes
    key: Callable[[FindingFacts], str | None]  # what they share (None: not this kind)
    role: str  # what the key is, in words: "scanner", "target", ...
    side: str  # which end of the members' connections the key is: client, server, or "" (either)
    min_peers: int  # distinct targets (port_scan) the key needs besides the count
    headline: str  # {count} {subject} {sources} {targets} {members}
    meaning: str  # what it is, in one or two sentences ({subject})
    wireshark: Callable[[str], str]  # a display filter for the whole group, from its key


KINDS: tuple[Kind, ...] = (
    Kind(
        "port_scan",
        frozenset({"refused", "half_open_scan"}),
        _client_host,
        "scanner",
        "client",
        MIN_SCAN_TARGETS,
        "{count} probes from {subject} to {targets} ({members})",
        "{subject} probed many server endpoints with connections that carried no data: a port "
        "scan. Each probe is a finding of its own (refused: a closed port; half_open_scan: an "
        "open port whose handshake the scanner never completed); no application was waiting "
        "on them unless the source is a real client retrying.",
        _scan_filter,
    ),
    Kind(
        "syn_flood",
        frozenset({"refused", "half_open_scan"}),
        _server_endpoint,
        "target",
        "server",
        1,
        "{count} connection attempts to {subject} from {sources} ({members})",
        "Many connection attempts to {subject} ended before a connection existed (refused, or "
        "left half-open): a SYN flood, or clients retrying against a port nothing listens on.",
        _flood_filter,
    ),
    Kind(
        "reset_storm",
        frozenset(
            {
                "peer_reset",
                "local_abort",
                "fin_wait_reset",
                "broken_pipe",
                "ignored_reset",
                "injected_reset",
            }
        ),
        _rst_sender,
        "resetting host",
        "",
        1,
        "{count} connections reset by {subject} ({members})",
        "One host sent the RSTs of all these connections: a program, host or middlebox "
        "resetting connections en masse (a crash or restart, a killed process, a load balancer "
        "or firewall dropping its table, or injected resets).",
        _reset_filter,
    ),
    Kind(
        "close_storm",
        frozenset({"premature_close"}),
        _server_endpoint,
        "closing server",
        "server",
        1,
        "{count} connections closed on waiting clients by {subject} ({members})",
        "{subject} closed all these connections (FIN, no RST) while its clients waited for an "
        "answer: a server dropping requests en masse (a crash or restart with requests in "
        "flight, a rule that closes without a response, keep-alive timeouts racing a pool).",
        _close_filter,
    ),
    Kind(
        "icmp_storm",
        frozenset({"icmp_error"}),
        _icmp_source,
        "ICMP source",
        "",
        1,
        "ICMP errors from {subject} about {count} connections ({members})",
        "One address sent ICMP errors about all these connections: a router or host reporting "
        "a destination or path it cannot reach, or a lowered path MTU.",
        _icmp_filter,
    ),
)
AGGREGATE_CATEGORIES = tuple(kind.category for kind in KINDS)
# Per finding category, the kinds (with their index) that take it, in KINDS order.
_KINDS_OF: dict[str, tuple[tuple[int, Kind], ...]] = {
    category: tuple((n, k) for n, k in enumerate(KINDS) if category in k.members)
    for category in {c for kind in KINDS for c in kind.members}
}


# -- the first pass: which groups pass the threshold -----------------------------------------


@dataclass(slots=True)
class _Tally:
    first: int  # the index, in report order, of the first finding seen in the group
    count: int = 0
    peers: set[str] = field(default_factory=set)  # distinct, up to the kind's min_peers


GroupKey = tuple[int, str]  # (index in KINDS, the shared key)


class Planner:
    """Counts each finding's groups (the first pass); `plan()` decides which are aggregated."""

    def __init__(self, threshold: int) -> None:
        self.threshold = max(threshold, 0)
        self._tallies: list[dict[str, _Tally]] = [{} for _ in KINDS]
        self._seen = 0

    def observe(self, finding: FindingFacts) -> None:
        index = self._seen
        self._seen += 1
        if not self.threshold:
            return
        for number, kind in _KINDS_OF.get(finding.category, ()):
            key = kind.key(finding)
            if key is None:
                continue
            tallies = self._tallies[number]
            tally = tallies.get(key)
            if tally is None:
                tally = _new_tally(tallies, key, index)
            tally.count += 1
            if len(tally.peers) < kind.min_peers:
                tally.peers.add(finding.server)

    def plan(self, findings: Iterable[FindingFacts]) -> Plan:
        """The groups over the threshold. `findings` (the same, in the same order) is read
        again only when a kind must be counted without what an earlier kind took."""
        chosen: dict[GroupKey, int] = {}  # -> first index
        for number, kind in enumerate(KINDS):
            tallies = self._tallies[number]
            over = {k: t for k, t in tallies.items() if self._passes(t, kind)}
            earlier = {k for k in chosen if KINDS[k[0]].members & kind.members}
            if over and earlier:
                over = self._recount(number, set(over), Plan(self.threshold, chosen), findings)
            for key, tally in over.items():
                chosen[(number, key)] = tally.first
        return Plan(self.threshold, chosen)

    def _passes(self, tally: _Tally, kind: Kind) -> bool:
        return tally.count > self.threshold and len(tally.peers) >= kind.min_peers

    def _recount(
        self, number: int, keys: set[str], earlier: Plan, findings: Iterable[FindingFacts]
    ) -> dict[str, _Tally]:
        kind, tallies = KINDS[number], dict[str, _Tally]()
        for index, finding in enumerate(findings):
            if finding.category not in kind.members:
                continue
            key = kind.key(finding)
            if key in keys and earlier.key_of(finding) is None:
                tally = tallies.get(key)
                if tally is None:
                    tally = tallies[key] = _Tally(index)
                tally.count += 1
        return {k: t for k, t in tallies.items() if t.count > self.threshold}


def _new_tally(tallies: dict[str, _Tally], key: str, index: int) -> _Tally:
    if len(tallies) >= MAX_TALLIES:
        # Forget the less frequent half: a group that comes back is counted from there.
        keep = sorted(tallies.items(), key=lambda item: -item[1].count)[: MAX_TALLIES // 2]
        tallies.clear()
        tallies.update(keep)
    tally = tallies[key] = _Tally(index)
    return tally


@dataclass(slots=True)
class Plan:
    """Which groups are aggregated, with their ids (A1, A2, ... by their first finding)."""

    threshold: int
    chosen: dict[GroupKey, int] = field(default_factory=dict)  # -> first finding's index
    ids: dict[GroupKey, str] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()  # those any aggregated group takes

    def __post_init__(self) -> None:
        ordered = sorted(self.chosen, key=lambda k: (self.chosen[k], k[0]))
        self.ids = {key: f"A{number}" for number, key in enumerate(ordered, 1)}
        taken: set[str] = set()
        for number, _ in self.chosen:
            taken |= KINDS[number].members
        self.categories = frozenset(taken)

    def __bool__(self) -> bool:
        return bool(self.chosen)

    def key_of(self, finding: FindingFacts) -> GroupKey | None:
        """The aggregated group this finding folds into, if any."""
        if finding.category not in self.categories:
            return None
        for number, kind in _KINDS_OF[finding.category]:
            key = kind.key(finding)
            if key is not None and (number, key) in self.chosen:
                return (number, key)
        return None

    def new_aggregate(self, group: GroupKey) -> Aggregate:
        number, key = group
        return Aggregate(self.ids[group], KINDS[number], key)


def plan_aggregates(findings: Iterable[FindingFacts], threshold: int, total: int) -> Plan:
    """The first pass on its own (JSON, JSON Lines). `total`: how many findings there are;
    with no more than the threshold no group can pass it, and nothing is read."""
    planner = Planner(threshold if total > threshold else 0)
    if planner.threshold:
        for finding in findings:
            planner.observe(finding)
    return planner.plan(findings)


# -- the output pass: an aggregated finding ---------------------------------------------------


@dataclass(slots=True)
class _Distinct:
    """Occurrences per value, for the first MAX_DISTINCT distinct values."""

    counts: Counter[str] = field(default_factory=Counter)
    overflow: bool = False  # some value came after the bound and was not counted

    def add(self, value: str) -> None:
        if value in self.counts or len(self.counts) < MAX_DISTINCT:
            self.counts[value] += 1
        else:
            self.overflow = True

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def text(self) -> str:
        return f"{self.distinct:,}" + ("+" if self.overflow else "")

    def top(self, count: int = TOP) -> list[tuple[str, int]]:
        """The most frequent, the first seen first among equals."""
        return self.counts.most_common(count)


def counted(count: str, word: str) -> str:
    """`1 source host`, `12 source hosts`, `4,096+ server endpoints`."""
    return f"{count} {word}" + ("" if count == "1" else "s")


@dataclass(slots=True)
class Aggregate:
    """One aggregated finding: its members' counts, span, peers and first few members."""

    id: str  # "A1", "A2", ...
    kind: Kind
    subject: str  # the key the members share (an address, or an endpoint for a flood)
    count: int = 0  # members (those the report's selection keeps)
    members: Counter[str] = field(default_factory=Counter)  # per member category
    impacts: Counter[str] = field(default_factory=Counter)
    client_sees: Counter[str] = field(default_factory=Counter)
    server_sees: Counter[str] = field(default_factory=Counter)
    sources: _Distinct = field(default_factory=_Distinct)  # client hosts
    targets: _Distinct = field(default_factory=_Distinct)  # server endpoints
    first_time: float = float("inf")
    last_time: float = float("-inf")
    confidence_sum: float = 0.0
    # the first members, in report order
    first: list[Finding | EncodedFinding] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.kind.category

    def add(self, finding: Finding | EncodedFinding) -> None:
        self.count += 1
        self.members[finding.category] += 1
        impact = finding.impact
        self.impacts[impact] += 1
        client, server = finding.client_sees, finding.server_sees
        self.client_sees[client.errno or client.label or "nothing"] += 1
        self.server_sees[server.errno or server.label or "nothing"] += 1
        self.sources.add(host_of(finding.client))
        self.targets.add(finding.server)
        time = finding.time
        if time < self.first_time:
            self.first_time = time
        if time > self.last_time:
            self.last_time = time
        self.confidence_sum += finding.confidence
        if len(self.first) < FIRST_MEMBERS:
            self.first.append(finding)

    @property
    def duration(self) -> float:
        return max(self.last_time - self.first_time, 0.0) if self.count else 0.0

    @property
    def rate(self) -> float:
        """Members per second over the group's span (its count when they share one instant)."""
        return self.count / self.duration if self.duration > 0 else float(self.count)

    @property
    def confidence(self) -> float:
        return self.confidence_sum / self.count if self.count else 0.0

    def members_text(self) -> str:
        return ", ".join(f"{n:,} {c}" for c, n in _ranked(self.members))

    def headline(self) -> str:
        return self.kind.headline.format(
            count=f"{self.count:,}",
            subject=self.subject,
            sources=counted(self.sources.text(), "source host"),
            targets=counted(self.targets.text(), "server endpoint"),
            members=self.members_text(),
        )

    def meaning(self) -> str:
        return self.kind.meaning.format(subject=self.subject)

    def wireshark_filter(self) -> str:
        return self.kind.wireshark(self.subject)

    def first_frames(self) -> list[int]:
        return [frame for f in self.first for frame in f.frames]

    def wireshark_frames(self) -> str:
        return "frame.number in {" + " ".join(str(n) for n in self.first_frames()) + "}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "title": self.headline(),
            "subject": self.subject,
            "subject_role": self.kind.role,
            "count": self.count,
            "members": dict(_ranked(self.members)),
            "impacts": dict(_ranked(self.impacts)),
            "first_time": iso_time(self.first_time),
            "last_time": iso_time(self.last_time),
            "first_epoch": self.first_time,
            "last_epoch": self.last_time,
            "duration": round(self.duration, 6),
            "rate": round(self.rate, 3),
            "sources": self.sources.distinct,
            "targets": self.targets.distinct,
            "distinct_capped": self.sources.overflow or self.targets.overflow,
            "top_sources": [{"host": h, "count": n} for h, n in self.sources.top()],
            "top_targets": [{"endpoint": e, "count": n} for e, n in self.targets.top()],
            "client_sees": dict(_ranked(self.client_sees)),
            "server_sees": dict(_ranked(self.server_sees)),
            "confidence": round(self.confidence, 3),
            "explanation": self.meaning(),
            "first_members": [f.id for f in self.first],
            "first_frames": self.first_frames(),
            "wireshark_filter": self.wireshark_filter(),
            "wireshark_frames": self.wireshark_frames(),
        }


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def sees_summary(counter: Counter[str], limit: int = 4) -> str:
    """`nothing (60,000)`, or `ECONNRESET (120), nothing (3)`: what one side's programs saw."""
    ranked = _ranked(counter)
    text = ", ".join(f"{value} ({n:,})" for value, n in ranked[:limit])
    return text + (f", {len(ranked) - limit} more" if len(ranked) > limit else "")


def sees_cell(counter: Counter[str]) -> str:
    """A table cell: the most frequent, marked `+` when the members differ."""
    ranked = _ranked(counter)
    if not ranked:
        return "nothing"
    return ranked[0][0] + ("+" if len(ranked) > 1 else "")


_Member = TypeVar("_Member", Finding, EncodedFinding)  # a finding as it is read: its object or JSON


def fold(
    findings: Iterable[_Member], plan: Plan, accepts: Callable[[_Member], bool]
) -> tuple[Iterator[_Member], list[Aggregate]]:
    """The output pass for formats that list findings: the findings `accepts` keeps that no
    aggregate takes (an iterator, in report order), and the aggregates, complete once the
    iterator is exhausted (in id order; those with no member kept are left out)."""
    groups: dict[GroupKey, Aggregate] = {}
    done: list[Aggregate] = []

    def kept() -> Iterator[_Member]:
        for finding in findings:
            if not accepts(finding):
                continue
            group = plan.key_of(finding) if plan else None
            if group is None:
                yield finding
                continue
            aggregate = groups.get(group)
            if aggregate is None:
                aggregate = groups[group] = plan.new_aggregate(group)
            aggregate.add(finding)
        done.extend(sorted(groups.values(), key=lambda a: int(a.id[1:])))

    return kept(), done


def aggregates_of(findings: Iterable[Finding], threshold: int, total: int) -> list[Aggregate]:
    """Every aggregated finding of a capture's findings (`total` of them), complete, in id
    order: as the reports would show them with --aggregate-over `threshold` and no
    selection (for `tcpdiag show CAPTURE A1`)."""
    plan = plan_aggregates(digests_of(findings), threshold, total)
    if not plan:
        return []
    kept, aggregates = fold(findings, plan, lambda finding: True)
    for _ in kept:
        pass
    return aggregates
