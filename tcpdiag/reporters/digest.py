"""A capture's findings condensed for people: counts, top endpoints, and groups of alike findings.

Built in two streaming passes over the findings (the spool can be iterated again), holding per
group only a count, a time range and a few sample findings, so a capture with a million findings
digests in bounded memory and its report stays short.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, Aggregate, GroupKey, Plan, Planner
from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import Finding
from tcpdiag.reporters.selection import Selection
from tcpdiag.spool import digests_of

SAMPLES_PER_GROUP = 3
TOP_ENDPOINTS = 5
# A client address that met refusals or half-open probes on this many distinct server endpoints
# is treated as a scanner: its findings form one group per category instead of one per port.
SCANNER_MIN_TARGETS = 3
# Distinct targets counted per scanning client, at most (enough to rank; bounds memory on a huge
# scan): a count that reaches it is reported as "at least" (see story.top_endpoint_lines).
SCANNER_TARGETS_KEPT = 10_000
SCAN_CATEGORIES = frozenset({"refused", "half_open_scan"})
# Categories whose RST sender broke a working connection ("which host aborts").
ABORT_CATEGORIES = frozenset({"peer_reset", "local_abort", "fin_wait_reset"})


def host_of(endpoint: str) -> str:
    """`10.0.0.1:80` -> `10.0.0.1`; `[::1]:80` -> `::1`."""
    host = endpoint.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


@dataclass(slots=True)
class FindingGroup:
    """Findings of one category and rule about one server endpoint, or from one scanner."""

    category: str
    rule: str
    subject: str  # "server 10.0.0.1:80", "scanner 10.0.0.9"
    count: int = 0
    first_time: float = 0.0
    last_time: float = 0.0
    samples: list[Finding] = field(default_factory=list)  # the first few, in report order
    impacts: Counter[str] = field(default_factory=Counter)
    # An aggregated finding (a scan, a flood, a storm: tcpdiag.aggregate) stands for the group.
    aggregate: Aggregate | None = None

    @property
    def lead(self) -> Finding:
        """The first finding: its explanation stands for the group's."""
        return self.samples[0]

    @property
    def id(self) -> str:
        """The group's id in reports: the aggregated finding's (A1), else its first finding's."""
        return self.aggregate.id if self.aggregate is not None else self.lead.id

    @property
    def anchor(self) -> str:
        """A Markdown/HTML anchor name made only of the id (capture text never goes in)."""
        return "g-" + self.id.lower()

    def add(self, finding: Finding) -> None:
        if not self.count:
            self.first_time = finding.time
        self.count += 1
        self.first_time = min(self.first_time, finding.time)
        self.last_time = max(self.last_time, finding.time)
        self.impacts[finding.impact] += 1
        if len(self.samples) < SAMPLES_PER_GROUP:
            self.samples.append(finding)


@dataclass(slots=True)
class Digest:
    report: CaptureReport
    selection: Selection
    total: int = 0  # findings in the capture (before --category/--impact/--min-confidence)
    shown: int = 0  # findings the selection keeps
    by_category: Counter[str] = field(default_factory=Counter)
    by_impact: Counter[str] = field(default_factory=Counter)
    refusing_servers: Counter[str] = field(default_factory=Counter)  # refusals per server
    scanners: dict[str, int] = field(default_factory=dict)  # client host -> targets probed
    aborting_hosts: Counter[str] = field(default_factory=Counter)  # RSTs that broke connections
    # Most important first: groups in which an application saw an error, then the larger ones,
    # then the earlier ones; the detailed sections (--limit) are the first of these.
    groups: list[FindingGroup] = field(default_factory=list)
    # Which groups are aggregated (--aggregate-over), and their aggregated findings (id order)
    # with the findings they took among those shown.
    plan: Plan = field(default_factory=lambda: Plan(0))
    aggregates: list[Aggregate] = field(default_factory=list)

    @property
    def aggregated(self) -> int:
        """Shown findings folded into aggregated findings."""
        return sum(a.count for a in self.aggregates)

    @property
    def detailed(self) -> list[FindingGroup]:
        return self.groups[: self.selection.limit]

    @property
    def undetailed(self) -> int:
        return max(len(self.groups) - self.selection.limit, 0)


def digest(
    report: CaptureReport, selection: Selection, aggregate_over: int = DEFAULT_AGGREGATE_OVER
) -> Digest:
    """Counts, top endpoints and groups; groups of more than `aggregate_over` findings of a
    scan, flood or storm become one aggregated finding (0: never)."""
    result = Digest(report, selection)
    targets: dict[str, set[str]] = {}
    planner = Planner(aggregate_over if len(report.findings) > aggregate_over else 0)
    for finding in digests_of(report.findings):  # (counting needs only the digests)
        result.total += 1
        planner.observe(finding)
        if not selection.accepts(finding):
            continue
        result.shown += 1
        result.by_category[finding.category] += 1
        result.by_impact[finding.impact] += 1
        if finding.category == "refused":
            result.refusing_servers[finding.server] += 1
        if finding.category in SCAN_CATEGORIES:
            probed = targets.setdefault(host_of(finding.client), set())
            if len(probed) < SCANNER_TARGETS_KEPT:
                probed.add(finding.server)
        if finding.category in ABORT_CATEGORIES:
            aborter = finding.facts.get("aborter")
            endpoint = finding.server if aborter == "server" else finding.client
            if aborter in ("client", "server"):
                result.aborting_hosts[host_of(endpoint)] += 1
    result.scanners = {
        host: len(probed) for host, probed in targets.items() if len(probed) >= SCANNER_MIN_TARGETS
    }
    result.plan = plan = planner.plan(digests_of(report.findings))
    groups: dict[tuple[str, str, str], FindingGroup] = {}
    folded: dict[GroupKey, FindingGroup] = {}
    for finding in report.findings:
        if not selection.accepts(finding):
            continue
        aggregated = plan.key_of(finding) if plan else None
        if aggregated is not None:
            group = folded.get(aggregated)
            if group is None:
                aggregate = plan.new_aggregate(aggregated)
                group = folded[aggregated] = FindingGroup(
                    aggregate.category, "*", f"{aggregate.kind.role} {aggregate.subject}",
                    aggregate=aggregate,
                )  # fmt: skip
            group.add(finding)
            assert group.aggregate is not None
            group.aggregate.add(finding)
            continue
        client_host = host_of(finding.client)
        if finding.category in SCAN_CATEGORIES and client_host in result.scanners:
            key = (finding.category, "*", f"scanner {client_host}")
        else:
            key = (finding.category, finding.rule, f"server {finding.server}")
        group = groups.get(key)
        if group is None:
            group = groups[key] = FindingGroup(finding.category, finding.rule, key[2])
        group.add(finding)
    result.aggregates = [g.aggregate for g in folded.values() if g.aggregate is not None]
    result.aggregates.sort(key=lambda a: int(a.id[1:]))
    result.groups = sorted(
        [*groups.values(), *folded.values()],
        key=lambda g: (g.impacts["error_seen"] == 0, -g.count, g.first_time, g.lead.id),
    )
    return result


def top(
    counter: Counter[str] | dict[str, int], count: int = TOP_ENDPOINTS
) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:count]
