"""The plain-language facts every human report states about a finding and its capture: when it
happened, which side broke the connection, what each program was told. Shared by the table,
Markdown and HTML reporters so they say the same thing."""

from __future__ import annotations

from collections.abc import Sequence

from tcpdiag.aggregate import Aggregate, counted, sees_summary
from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import AppView, Finding
from tcpdiag.hangs import HangSummary
from tcpdiag.ladder import Ladder, Step
from tcpdiag.reporters import units
from tcpdiag.reporters.digest import SCANNER_TARGETS_KEPT, Digest, FindingGroup, top
from tcpdiag.reporters.selection import RunInfo, Selection
from tcpdiag.scans import FloodSummary, ScanSummary

IMPACT_WORDS = {
    "error_seen": "an application saw an error",
    "none": "no application was told anything",
    "unknown": "the capture cannot tell",
}


def header_facts(report: CaptureReport, selection: Selection) -> list[tuple[str, str]]:
    """(label, value) rows of a capture's header; values are plain text (escape to render)."""
    filters = selection.describe()
    return [
        ("time span", units.span(report.first_time, report.last_time, selection.localtime)),
        ("packets", f"{report.packets:,}"),
        ("connections", units.plural(report.flows, "TCP connection")),
        ("filters", " ".join(filters) if filters else "none"),
    ]


def run_line(run: RunInfo) -> str:
    return f"tcpdiag {run.version}"


def counts_line(d: Digest) -> str:
    """`3 findings: 1 refused, 1 peer_reset, 1 broken_pipe` (most frequent first)."""
    shown = units.plural(d.shown, "finding")
    if d.shown != d.total:
        shown += f" selected of {d.total:,}"
    if not d.shown:
        return shown
    return shown + ": " + ", ".join(f"{n:,} {c}" for c, n in top(d.by_category, 100))


IMPACT_COUNTS = {
    "error_seen": "an application saw an error",
    "none": "no application was told",
    "unknown": "cannot tell",
}


def impact_line(d: Digest) -> str:
    parts = [f"{IMPACT_COUNTS.get(i, i)}: {n:,}" for i, n in top(d.by_impact, 10)]
    return "; ".join(parts) if parts else "nothing to report"


def top_endpoint_lines(d: Digest) -> list[tuple[str, str]]:
    """(question, answer) pairs: which server refuses most, which client scans, which host
    aborts; answers are plain text."""

    def listing(pairs: list[tuple[str, int]], unit: str, kept: int = 0) -> str:
        counts = [
            f"{who} ({n:,}+ {unit}s)" if kept and n >= kept else f"{who} ({units.plural(n, unit)})"
            for who, n in pairs
        ]
        return ", ".join(counts) or "none"

    return [
        ("servers refusing most", listing(top(d.refusing_servers), "refusal")),
        ("clients scanning", listing(top(d.scanners), "target", SCANNER_TARGETS_KEPT)),
        ("hosts aborting connections", listing(top(d.aborting_hosts), "reset")),
    ]


def sees_sentence(role: str, endpoint: str, view: AppView) -> str:
    if view.errno:
        text = f'{view.errno} "{view.linux}"' if view.linux else view.errno
        return f"the {role}'s program ({endpoint}) got {text}" + (
            f" ({view.when})" if view.when else ""
        )
    if view.label:
        return f"the {role}'s program ({endpoint}) got {view.label}" + (
            f" ({view.when})" if view.when else ""
        )
    # (A side without an errno saw nothing, whatever the finding's impact: where that is
    # unknown, it is the other side's errno that may not have shown.)
    return f"the {role}'s program ({endpoint}) saw nothing"


def side_of(step: Step, finding: Finding) -> str:
    if step.from_client is None:
        return "a third party (an ICMP error about this connection)"
    if step.from_client:
        return f"the client {finding.client}"
    return f"the server {finding.server}"


def who_broke_it(finding: Finding, ladder: Ladder | None) -> str:
    """Which side ended the connection, and with which packet, in words."""
    step = None
    if ladder is not None:
        step = next((s for s in ladder.steps if s.frame == ladder.decisive), None)
    if step is None:
        sender = finding.facts.get("sender")
        if sender in ("client", "server"):
            return f"the {sender} {finding.client if sender == 'client' else finding.server}"
        return "see the evidence"
    side, packet = side_of(step, finding), f"frame {step.frame}, {step.flags}"
    if step.from_client is None:
        return f"an ICMP error about this connection ({packet})"
    if "RST" in step.flags:
        verdict = finding.facts.get("rst_verdict")
        if verdict not in (None, "accepted"):
            return f"nobody: the RST from {side} ({packet}) was not accepted ({verdict})"
        if finding.category == "injected_reset":
            return (
                f"a middlebox: the RST ({packet}) claims to come from {side} but does not "
                "look like its other packets"
            )
        aborter = finding.facts.get("aborter")
        if aborter in ("client", "server") and aborter != finding.facts.get("sender"):
            # (The RST answers the other side's abort: an MPTCP stack's MP_FASTCLOSE.)
            ender = finding.client if aborter == "client" else finding.server
            return f"the {aborter} {ender} ended it; the RST from {side} ({packet}) answered"
        return f"{side} reset it ({packet})"
    if "FIN" in step.flags:
        return f"{side} closed it ({packet})"
    return f"nobody reset it: {side} sent {packet} and got no answer, so it timed out"


def group_title(group: FindingGroup) -> str:
    if group.aggregate is not None:
        return f"{group.aggregate.id} {group.aggregate.category}: {group.aggregate.headline()}"
    lead = group.lead
    if group.count == 1:
        return f"{lead.id} {lead.category}: {lead.title}"
    return f"{lead.id} and {group.count - 1:,} more: {lead.category}, {group.subject}"


def group_when(group: FindingGroup, selection: Selection) -> str:
    first = units.clock(group.first_time, selection.localtime)
    if group.aggregate is not None:
        last = units.clock(group.last_time, selection.localtime)
        span = units.duration(group.aggregate.duration)
        return (
            f"{units.plural(group.count, 'finding')} from {first} to {last} ({span}, "
            f"{rate_text(group.aggregate.rate)})"
        )
    if group.count == 1:
        return first
    last = units.clock(group.last_time, selection.localtime)
    return f"{units.plural(group.count, 'finding')} from {first} to {last}"


def evidence_lines(finding: Finding, ladder: Ladder | None) -> list[str]:
    """`+9 µs  frame 12: RST from server ...`: evidence times relative to the connection's first
    packet (the ladder's, else the one the finding records, else the first evidence item's)."""
    if not finding.evidence:
        return []
    if ladder is not None:
        start = ladder.first_time
    elif finding.conn_first_time is not None:
        start = finding.conn_first_time
    else:
        start = min(e.time for e in finding.evidence)
    return [
        f"{units.offset(e.time - start)}  frame {e.frame}: {e.what}" for e in finding.evidence[:12]
    ] + ([f"... {len(finding.evidence) - 12:,} more frames"] if len(finding.evidence) > 12 else [])


def step_label(step: Step) -> str:
    """`SYN,ACK seq=0 ack=1 len=0 ttl=64`"""
    parts = [step.flags]
    if step.seq is not None:
        parts.append(f"seq={step.seq}")
    if step.ack is not None:
        parts.append(f"ack={step.ack}")
    parts.append(f"len={step.length}")
    parts.append(f"ttl={step.ttl}")
    return " ".join(parts)


def text_ladder(ladder: Ladder) -> list[str]:
    """A two-lane ladder in plain text, for viewers without Mermaid and for terminals."""
    width = 44
    lines = [
        f"{'frame':>7}  {'time':>10}  client {ladder.client:<{width - 7}}server {ladder.server}"
    ]
    for item in ladder.condensed():
        if isinstance(item, int):
            lines.append(f"{'':>7}  {'':>10}  ... {units.plural(item, 'packet')} not shown ...")
            continue
        label = step_label(item)
        if item.from_client is None:
            arrow = f"~~ {label} ~~> both"
        elif item.from_client:
            arrow = f"-- {label} " + "-" * max(width - len(label) - 6, 2) + ">"
        else:
            arrow = "<" + "-" * max(width - len(label) - 6, 2) + f" {label} --"
        mark = "  << verdict" if item.frame == ladder.decisive else ""
        when = units.offset(item.time - ladder.first_time)
        lines.append(f"{item.frame:>7}  {when:>10}  {arrow}{mark}")
    return lines


def mermaid_ladder(ladder: Ladder) -> list[str]:
    """A Mermaid sequenceDiagram of the ladder. Its text is made only of numbers, flag names and
    decoded addresses (never free text from the capture), and has no `;` or `#`, which
    Mermaid would read as syntax."""
    lines = [
        "sequenceDiagram",
        f"    participant C as client {ladder.client}",
        f"    participant S as server {ladder.server}",
    ]
    for item in ladder.condensed():
        if isinstance(item, int):
            lines.append(f"    Note over C,S: {units.plural(item, 'packet')} not shown")
            continue
        when = units.offset(item.time - ladder.first_time)
        text = f"frame {item.frame} at {when}: {step_label(item)}"
        if item.frame == ladder.decisive:
            text += " (verdict)"
        if item.from_client is None:
            lines.append(f"    Note over C,S: {text}")
        else:
            src, dst = ("C", "S") if item.from_client else ("S", "C")
            arrow = "-x" if "RST" in item.flags else "->>"
            lines.append(f"    {src}{arrow}{dst}: {text}")
    return lines


# Scan and flood summaries shown in a report (the JSON lists them all): enough to name the
# worst without letting a capture full of scanners push the report past a ticket's limit.
SUMMARIES_SHOWN = 5


def summary_lines(report: CaptureReport) -> list[tuple[str, str]]:
    """("scan" | "flood" | "hang", sentence) for the largest scans and floods and the first
    hangs, and how many more."""
    out: list[tuple[str, str]] = []
    summed: tuple[tuple[str, Sequence[ScanSummary | FloodSummary | HangSummary]], ...] = (
        ("scan", report.scans),
        ("flood", report.floods),
        ("hang", report.hangs),
    )
    for label, items in summed:
        out.extend((label, item.text()) for item in items[:SUMMARIES_SHOWN])
        if len(items) > SUMMARIES_SHOWN:
            more = len(items) - SUMMARIES_SHOWN
            out.append((label, f"{units.plural(more, f'more {label}')} (-f json lists them)"))
    return out


def nothing_found_line(report: CaptureReport) -> str:
    """The report of a capture without findings to show: scans and SYN floods are summed up
    above it, and a reader must not take "nothing abnormal" for "no flood"."""
    summed = [
        f"the {name}{'s' if len(items) > 1 else ''}"
        for name, items in (("scan", report.scans), ("SYN flood", report.floods))
        if items
    ]
    found = "No abnormal TCP connection found"
    if summed:
        found += f" apart from {' and '.join(summed)} above"
    if report.hangs:
        # (A hang is no failure yet, and "nothing abnormal" must not hide it either.)
        found += (
            "; the hang above has not failed yet"
            if len(report.hangs) == 1
            else "; the hangs above have not failed yet"
        )
    return found + "."


def rate_text(rate: float) -> str:
    """`100,000/s`, `12/s`, `0.25/s`."""
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"


def aggregated_line(d: Digest) -> str:
    """How many findings the aggregated findings stand for ("" when none)."""
    if not d.aggregates:
        return ""
    shown = d.aggregates[:SUMMARIES_SHOWN]
    listing = "; ".join(f"{a.id} {a.category} of {a.subject}, {a.count:,}" for a in shown)
    if len(d.aggregates) > len(shown):
        listing += f"; {units.plural(len(d.aggregates) - len(shown), 'more')}"
    return (
        f"{units.plural(d.aggregated, 'finding')} in "
        f"{units.plural(len(d.aggregates), 'aggregated finding')} (groups of more than "
        f"{d.plan.threshold:,}, --aggregate-over; -f jsonl lists every finding): {listing}"
    )


def _peers(pairs: list[tuple[str, int]]) -> str:
    if len(pairs) > 1 and all(n == 1 for _, n in pairs):
        return "one finding each, e.g. " + ", ".join(who for who, _ in pairs)
    return ", ".join(f"{who} ({n:,})" for who, n in pairs)


def _who(values: list[tuple[str, int]], distinct: str, unit: str) -> str:
    """An aggregate's sources or targets in a cell: the only one, or how many."""
    return values[0][0] if len(values) == 1 and not distinct.endswith("+") else f"{distinct} {unit}"


def aggregate_ends(a: Aggregate) -> tuple[str, str]:
    """The client and server cells of an aggregated finding's table row: the key the members
    share on its side (the scanner, the flooded endpoint), the sources or targets otherwise;
    a key of either side (a resetting host, an ICMP source) named with its role."""
    sources = _who(a.sources.top(2), a.sources.text(), "hosts")
    targets = _who(a.targets.top(2), a.targets.text(), "endpoints")
    if a.kind.side == "client":
        return a.subject, targets
    if a.kind.side == "server":
        return sources, a.subject
    return sources, f"{a.kind.role} {a.subject}"


def aggregate_facts(aggregate: Aggregate) -> list[tuple[str, str]]:
    """(label, plain text) rows that detail an aggregated finding in every human report."""
    a = aggregate
    first = ", ".join(
        f"{f.id} ({f.client} to {f.server}, frames {', '.join(map(str, f.frames[:4]))})"
        for f in a.first
    )
    sources = f"{counted(a.sources.text(), 'client host')}: {_peers(a.sources.top())}"
    targets = f"{counted(a.targets.text(), 'server endpoint')}: {_peers(a.targets.top())}"
    return [
        ("members", a.members_text()),
        ("sources", sources),
        ("targets", targets),
        ("client programs saw", sees_summary(a.client_sees)),
        ("server programs saw", sees_summary(a.server_sees)),
        (
            "impact",
            "; ".join(f"{IMPACT_COUNTS.get(i, i)}: {n:,}" for i, n in top(a.impacts, 10)),
        ),
        ("first members", first),
    ]
