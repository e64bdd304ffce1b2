"""The Markdown report, for pasting into an incident ticket (GitHub, GitLab, Jira markdown).

Summary first, then one section per group of alike findings, bounded by --limit and by a
character budget so a large capture's report stays pasteable. Text from the capture is escaped
(`common.markdown_text`) or shown in code spans; tcpdiag's own commands are code spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TextIO

from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, sees_cell
from tcpdiag.analyze import CaptureReport
from tcpdiag.ladder import Ladder, collect_ladders
from tcpdiag.reporters import story, units
from tcpdiag.reporters.base import render
from tcpdiag.reporters.common import (
    code_span,
    markdown_text,
    prose,
    safe_line,
    sees_text,
    table_cell,
    tabulate,
    wireshark_filter,
    wireshark_frames,
)
from tcpdiag.reporters.digest import Digest, FindingGroup, digest
from tcpdiag.reporters.selection import DocumentReporter, RunInfo, Selection

# Characters one capture's section may take; group sections beyond it are only counted. With the
# summary's bounded tables this keeps a report under 30,000 characters.
BUDGET = 26_000
GROUP_TABLE_ROWS = 40


class MarkdownReporter(DocumentReporter):
    def start(self, out: TextIO) -> None:
        out.write(f"# tcpdiag report\n\ntcpdiag {markdown_text(self.run.version)}, run as:\n\n")
        out.write(_code_block(self.run.command_line) + "\n")

    def write(self, report: CaptureReport, out: TextIO) -> None:
        section = capture_section(report, self.selection, self.run, self.aggregate_over)
        out.write("\n" + section.rstrip("\n") + "\n")

    def finish(self, out: TextIO) -> None:
        pass


def markdown_reporter(
    selection: Selection | None = None,
    run: RunInfo | None = None,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> MarkdownReporter:
    return MarkdownReporter(selection, run, aggregate_over)


def render_markdown(
    reports: Iterable[CaptureReport],
    selection: Selection | None = None,
    run: RunInfo | None = None,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> str:
    return render(MarkdownReporter(selection, run, aggregate_over), reports)


def _code_block(text: str) -> str:
    """One line of text as a fenced code block, with a fence longer than any run of backticks
    in it (so a file name cannot close the block early)."""
    text = safe_line(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}\n"


def capture_section(
    report: CaptureReport,
    selection: Selection,
    run: RunInfo,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> str:
    heading = f"Capture {report.path}"
    if report.first_time is not None:
        start = units.clock(report.first_time, selection.localtime)
        heading += f", {units.duration(report.duration)} from {start}"
    out = [f"## {markdown_text(heading)}\n"]
    if report.error:
        out.append(f"**error:** {markdown_text(report.error)}\n")
        return "\n".join(out)
    d = digest(report, selection, aggregate_over)
    out.append(_header(report, d))
    out.extend(f"> warning: {markdown_text(w)}\n" for w in report.warnings)
    out.extend(f"> {label}: {markdown_text(line)}\n" for label, line in story.summary_lines(report))
    if not report.filter_matched:
        out.append("> The filters match no connection in this capture.\n")
    if not d.shown:
        out.append(markdown_text(story.nothing_found_line(report)) + "\n")
        return "\n".join(out)
    out.append(_summary(d))
    # The sections that fit the budget decide which table rows link to a section.
    used = sum(len(part) for part in out) + len(_group_table(d, d.detailed))
    ladders = collect_ladders(report.path, (g.lead for g in d.detailed))
    sections: list[str] = []
    for group in d.detailed:
        section = _group_section(group, ladders.get(group.lead.id), selection)
        if used + len(section) > BUDGET:
            break
        sections.append(section)
        used += len(section)
    out.append(_group_table(d, d.detailed[: len(sections)]))
    out.extend(sections)
    left = len(d.groups) - len(sections)
    if left:
        full = ["tcpdiag", "analyze", "-f", "jsonl" if d.aggregates else "json", report.path]
        listed = (
            "The table above lists them"
            if len(d.groups) <= GROUP_TABLE_ROWS
            else f"The table above lists the first {GROUP_TABLE_ROWS} groups"
        )
        out.append(
            f"**{units.plural(left, 'more group')} of findings not detailed here** (--limit "
            f"{selection.limit} and the length of a ticket). {listed}; the full report, every "
            f"finding with its evidence, is the JSON one: {code_span(' '.join(full))}\n"
        )
    return "\n".join(out)


def _header(report: CaptureReport, d: Digest) -> str:
    rows = [[label, table_cell(markdown_text(value))] for label, value in story.header_facts(
        report, d.selection)]  # fmt: skip
    rows.append(["findings", markdown_text(story.counts_line(d))])
    return tabulate(rows, headers=["capture", ""], tablefmt="github") + "\n"


def _summary(d: Digest) -> str:
    out = ["### Summary\n"]
    by_category = [
        [markdown_text(category), f"{count:,}"] for category, count in d.by_category.most_common()
    ]
    out.append(tabulate(by_category, headers=["category", "findings"], tablefmt="github") + "\n")
    out.append(f"- **Impact:** {markdown_text(story.impact_line(d))}")
    if d.aggregates:
        out.append(f"- **Aggregated:** {markdown_text(story.aggregated_line(d))}")
    for question, answer in story.top_endpoint_lines(d):
        out.append(f"- **{question}:** {markdown_text(answer)}")
    return "\n".join(out) + "\n"


def _group_table(d: Digest, linked: list[FindingGroup]) -> str:
    """The groups (the first GROUP_TABLE_ROWS), those with a section below linked to it."""
    rows = []
    for group in d.groups[:GROUP_TABLE_ROWS]:
        lead, a = group.lead, group.aggregate
        rows.append(
            [
                f"[{group.id}](#{group.anchor})" if group in linked else group.id,
                markdown_text(group.category),
                table_cell(markdown_text(group.subject)),
                f"{group.count:,}",
                units.clock(group.first_time, d.selection.localtime),
                sees_cell(a.client_sees) if a else sees_text(lead.client_sees),
                sees_cell(a.server_sees) if a else sees_text(lead.server_sees),
            ]
        )
    headers = ["first id", "category", "about", "findings", "first at", "client saw", "server saw"]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    more = len(d.groups) - GROUP_TABLE_ROWS
    tail = (
        f"\n\n... and {units.plural(more, 'more group')} (see the JSON report)" if more > 0 else ""
    )
    return f"### Findings, grouped\n\n{table}{tail}\n"


def _aggregate_section(group: FindingGroup, ladder: Ladder | None, selection: Selection) -> str:
    a, f = group.aggregate, group.lead
    assert a is not None
    out = [f'<a id="{group.anchor}"></a>\n', f"### {markdown_text(story.group_title(group))}\n"]
    out.append(f"- **When:** {markdown_text(story.group_when(group, selection))}")
    for label, value in story.aggregate_facts(a):
        out.append(f"- **{label.capitalize()}:** {markdown_text(value)}")
    out.append("")
    out.append(prose(a.meaning()) + "\n")
    first = f"{markdown_text(f.id)} {markdown_text(f.category)}"
    out.append(f"The first, {first}: {prose(f.explanation)}\n")
    if f.next_step:
        out.append(f"- **Next step:** {prose(f.next_step)}")
    out.append(
        f"- Wireshark: {code_span(a.wireshark_filter())}, the first members: "
        f"{code_span(a.wireshark_frames())}"
    )
    out.append("- Each member: the `-f jsonl` lines with " + code_span(f'"aggregate": "{a.id}"'))
    out.append("")
    if ladder is not None:
        out.append(f"The first member's packets ({markdown_text(f.id)}):\n")
        out.append("```text\n" + "\n".join(story.text_ladder(ladder)) + "\n```\n")
    return "\n".join(out) + "\n"


def _group_section(group: FindingGroup, ladder: Ladder | None, selection: Selection) -> str:
    if group.aggregate is not None:
        return _aggregate_section(group, ladder, selection)
    f = group.lead
    out = [f'<a id="{group.anchor}"></a>\n', f"### {markdown_text(story.group_title(group))}\n"]
    out.append(f"- **When:** {markdown_text(story.group_when(group, selection))}")
    if group.lead.tunnel:
        out.append(f"- **Tunnel:** {markdown_text(group.lead.tunnel)}")
    out.append(f"- **Who broke it:** {markdown_text(story.who_broke_it(f, ladder))}")
    out.append(
        "- **Client:** " + markdown_text(story.sees_sentence("client", f.client, f.client_sees))
    )
    out.append(
        "- **Server:** " + markdown_text(story.sees_sentence("server", f.server, f.server_sees))
    )
    out.append(f"- **Impact:** {markdown_text(story.IMPACT_WORDS.get(f.impact, f.impact))}")
    if group.count > 1:
        others = ", ".join(f"{s.id} ({s.client} to {s.server})" for s in group.samples[1:])
        out.append(f"- **Also:** {markdown_text(others)}")
    out.append("")
    out.append(prose(f.explanation) + "\n")
    if f.cause is not None:
        out.append(f"- most likely ({f.cause.confidence:.2f}): {prose(f.cause.text)}")
    out.extend(f"- or ({a.confidence:.2f}): {prose(a.text)}" for a in f.alternatives)
    if f.next_step:
        out.append(f"- **Next step:** {prose(f.next_step)}")
    out.append(f"- Wireshark: {code_span(wireshark_filter(f))} or {code_span(wireshark_frames(f))}")
    out.append("")
    out.append("Evidence (times from the connection's first packet):\n")
    out.extend(f"- {markdown_text(line)}" for line in story.evidence_lines(f, ladder))
    out.append("")
    if ladder is not None:
        out.append("```mermaid\n" + "\n".join(story.mermaid_ladder(ladder)) + "\n```\n")
        out.append("```text\n" + "\n".join(story.text_ladder(ladder)) + "\n```\n")
    return "\n".join(out) + "\n"
