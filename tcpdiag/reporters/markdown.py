"""The Markdown report, for pasting into an incident ticket."""

from __future__ import annotations

from collections.abc import Iterable

from tabulate import tabulate

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import Finding
from tcpdiag.reporters.base import SectionReporter, render
from tcpdiag.reporters.common import HEADERS, frames_text, markdown_text, sees_line, sees_text


def markdown_reporter() -> SectionReporter:
    return SectionReporter(_capture)


def render_markdown(reports: Iterable[CaptureReport]) -> str:
    return render(markdown_reporter(), reports)


def _capture(report: CaptureReport) -> str:
    out = [f"## {markdown_text(report.path)}\n"]
    if report.error:
        out.append(f"**error:** {markdown_text(report.error)}\n")
        return "\n".join(out)
    out.append(
        f"{report.packets} packets, {report.flows} TCP connections, "
        f"{len(report.findings)} findings.\n"
    )
    out.extend(f"> warning: {markdown_text(w)}\n" for w in report.warnings)
    out.extend(f"> scan: {markdown_text(scan.text())}\n" for scan in report.scans)
    if not report.findings:
        out.append("No abnormal TCP connection found.\n")
        return "\n".join(out)
    rows = [
        [
            f.id,
            *(markdown_text(text) for text in (f.category, f.client, f.server)),
            frames_text(f),
            sees_text(f.client_sees),
            sees_text(f.server_sees),
            f"{f.confidence:.2f}",
        ]
        for f in report.findings
    ]
    out.append(tabulate(rows, headers=HEADERS, tablefmt="github") + "\n")
    for finding in report.findings:
        out.extend(_finding(finding))
    return "\n".join(out)


def _finding(f: Finding) -> list[str]:
    out = [
        f"### {f.id} {markdown_text(f.category)}: {markdown_text(f.title)}\n",
        markdown_text(f.explanation) + "\n",
        f"- {markdown_text(sees_line('client', f.client_sees))}",
        f"- {markdown_text(sees_line('server', f.server_sees))}",
    ]
    if f.cause is not None:
        out.append(f"- most likely ({f.cause.confidence:.2f}): {markdown_text(f.cause.text)}")
    out.extend(f"- or ({a.confidence:.2f}): {markdown_text(a.text)}" for a in f.alternatives)
    if f.next_step:
        out.append(f"- **next step:** {markdown_text(f.next_step)}")
    evidence = "; ".join(f"frame {e.frame}: {markdown_text(e.what)}" for e in f.evidence)
    out.extend([f"- evidence: {evidence}", ""])
    return out
