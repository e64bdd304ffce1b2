"""The terminal report: per capture a header and summary, a table of the finding groups, then a
short explanation of each group (bounded by --limit)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, Aggregate, sees_cell
from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters import story, units
from tcpdiag.reporters.base import SectionReporter, render
from tcpdiag.reporters.common import (
    safe,
    safe_line,
    sees_line,
    sees_text,
    tabulate,
    wireshark_filter,
)
from tcpdiag.reporters.digest import Digest, FindingGroup, digest
from tcpdiag.reporters.selection import Selection

WIDTH = 100
TABLE_ROWS = 60


class TextReporter(SectionReporter):
    """The table report: each capture a section of its own."""

    def __init__(
        self, selection: Selection | None = None, aggregate_over: int = DEFAULT_AGGREGATE_OVER
    ) -> None:
        self.selection = selection or Selection()
        self.aggregate_over = aggregate_over
        super().__init__(lambda report: capture_text(report, self.selection, aggregate_over))


def text_reporter(
    selection: Selection | None = None, aggregate_over: int = DEFAULT_AGGREGATE_OVER
) -> TextReporter:
    return TextReporter(selection, aggregate_over)


def render_text(
    reports: Iterable[CaptureReport],
    selection: Selection | None = None,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> str:
    return render(TextReporter(selection, aggregate_over), reports)


def _wrap(text: str, indent: str = "   ") -> str:
    return textwrap.fill(
        safe(text), width=WIDTH, initial_indent=indent, subsequent_indent=indent + "  "
    )


def capture_text(
    report: CaptureReport, selection: Selection, aggregate_over: int = DEFAULT_AGGREGATE_OVER
) -> str:
    lines = [f"== {safe_line(report.path)}"]
    if report.error:
        lines.append(f"error: {safe_line(report.error)}")
        return "\n".join(lines) + "\n"
    d = digest(report, selection, aggregate_over)
    lines.append(
        f"{units.plural(report.packets, 'packet')}, {units.plural(report.flows, 'TCP connection')}"
        f", {story.counts_line(d)}"
        + (
            " (capture cut short: findings cover the part before the damage)"
            if report.truncated
            else ""
        )
    )
    for label, value in (
        story.header_facts(report, selection)[:1] + story.header_facts(report, selection)[3:]
    ):
        lines.append(safe_line(f"{label}: {value}"))
    for warning in report.warnings:
        lines.append(f"warning: {safe_line(warning)}")
    for label, summary in story.summary_lines(report):
        lines.append(f"{label}: {safe_line(summary)}")
    if not report.filter_matched:
        lines.append("The filters match no connection in this capture.")
    if not d.shown:
        lines.append(safe_line(story.nothing_found_line(report)))
        return "\n".join(lines) + "\n"
    lines.append(safe_line(f"impact: {story.impact_line(d)}"))
    if d.aggregates:
        lines.append(_wrap(f"aggregated: {story.aggregated_line(d)}", indent=""))
    for question, answer in story.top_endpoint_lines(d):
        lines.append(_wrap(f"{question}: {answer}", indent=""))
    lines.append("")
    lines.append(safe(_table(d)))
    if any(not g.lead.initiator_known for g in d.groups[:TABLE_ROWS]):
        lines.append("? = the capture missed the handshake; client and server roles are a guess")
    for group in d.detailed:
        lines.append("")
        lines.extend(_group(group, selection))
    if d.undetailed:
        lines.append("")
        lines.append(
            f"{units.plural(d.undetailed, 'more group')} not detailed (--limit {selection.limit});"
            + f" -f {'jsonl' if d.aggregates else 'json'} lists every finding."
        )
    return "\n".join(lines) + "\n"


def _table(d: Digest) -> str:
    rows = [
        _aggregate_row(g.aggregate, d)
        if g.aggregate is not None
        else [
            g.lead.id,
            units.clock(g.first_time, d.selection.localtime),
            g.category,
            g.lead.client + ("" if g.lead.initiator_known else " ?"),
            g.lead.server if g.count == 1 else g.subject,
            g.count,
            sees_text(g.lead.client_sees),
            sees_text(g.lead.server_sees),
            f"{g.lead.confidence:.2f}",
        ]
        for g in d.groups[:TABLE_ROWS]
    ]
    headers = ["id", "time", "category", "client", "server", "count", "client sees",
               "server sees", "conf"]  # fmt: skip
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    more = len(d.groups) - TABLE_ROWS
    return table + (f"\n... and {units.plural(more, 'more group')}" if more > 0 else "")


def _aggregate_row(a: Aggregate, d: Digest) -> list[object]:
    client, server = story.aggregate_ends(a)
    return [
        a.id,
        units.clock(a.first_time, d.selection.localtime),
        a.category,
        client,
        server,
        a.count,
        sees_cell(a.client_sees),
        sees_cell(a.server_sees),
        f"{a.confidence:.2f}",
    ]


def _aggregate(group: FindingGroup, a: Aggregate, selection: Selection) -> list[str]:
    f = group.lead
    lines = [safe(story.group_title(group))]
    lines.append(_wrap(f"when: {story.group_when(group, selection)}"))
    lines.append(_wrap(a.meaning()))
    lines.extend(_wrap(f"{label}: {value}") for label, value in story.aggregate_facts(a))
    lines.append(_wrap(f"the first, {f.id} {f.category}: {f.explanation}"))
    if f.next_step:
        lines.append(_wrap(f"next: {f.next_step}"))
    lines.append(_wrap(f"wireshark: {a.wireshark_filter()}"))
    lines.append(_wrap(f"the first members' frames: {a.wireshark_frames()}"))
    lines.append(_wrap(f'each member: -f jsonl, the lines with "aggregate": "{a.id}"'))
    return lines


def _group(group: FindingGroup, selection: Selection) -> list[str]:
    if group.aggregate is not None:
        return _aggregate(group, group.aggregate, selection)
    f = group.lead
    lines = [safe(f"{story.group_title(group)} [{f.rule}]")]
    lines.append(_wrap(f"when: {story.group_when(group, selection)}"))
    if f.tunnel:
        lines.append(_wrap(f"tunnel: {f.tunnel}"))
    if f.facts.get("sender") in ("client", "server"):
        lines.append(_wrap(f"deciding packet from: {story.who_broke_it(f, None)}"))
    lines.append(_wrap(f.explanation))
    lines.append(_wrap(sees_line("client", f.client_sees)))
    lines.append(_wrap(sees_line("server", f.server_sees)))
    if f.cause is not None:
        lines.append(_wrap(f"most likely ({f.cause.confidence:.2f}): {f.cause.text}"))
    for alt in f.alternatives:
        lines.append(_wrap(f"or ({alt.confidence:.2f}): {alt.text}"))
    if f.next_step:
        lines.append(_wrap(f"next: {f.next_step}"))
    evidence = "; ".join(story.evidence_lines(f, None)[:8])
    lines.append(_wrap(f"evidence (times from the connection's first packet): {evidence}"))
    lines.append(_wrap(f"wireshark: {wireshark_filter(f)}"))
    if group.count > 1:
        others = ", ".join(s.id for s in group.samples[1:])
        lines.append(_wrap(f"also: {others} and {group.count - len(group.samples):,} more"))
    return lines
