"""The Markdown report, for pasting into an incident ticket."""

from __future__ import annotations

from collections.abc import Iterable

from tabulate import tabulate

from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters.common import HEADERS, frames_text, safe, sees_line, sees_text


def _md(text: str) -> str:
    """Plain text that Markdown renders as written (no accidental HTML, tables or emphasis)."""
    escaped = safe(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    return escaped.replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def render_markdown(reports: Iterable[CaptureReport]) -> str:
    out: list[str] = []
    for report in reports:
        out.append(f"## {_md(report.path)}\n")
        if report.error:
            out.append(f"**error:** {_md(report.error)}\n")
            continue
        out.append(
            f"{report.packets} packets, {report.flows} TCP connections, "
            f"{len(report.findings)} findings.\n"
        )
        out.extend(f"> warning: {_md(w)}\n" for w in report.warnings)
        if not report.findings:
            out.append("No abnormal TCP connection found.\n")
            continue
        rows = [
            [f.id, _md(f.category), _md(f.client), _md(f.server), frames_text(f),
             sees_text(f.client_sees), sees_text(f.server_sees), f"{f.confidence:.2f}"]
            for f in report.findings
        ]  # fmt: skip
        out.append(tabulate(rows, headers=HEADERS, tablefmt="github") + "\n")
        for f in report.findings:
            out.append(f"### {f.id} {_md(f.category)}: {_md(f.title)}\n")
            out.append(_md(f.explanation) + "\n")
            out.append(f"- {_md(sees_line('client', f.client_sees))}")
            out.append(f"- {_md(sees_line('server', f.server_sees))}")
            if f.cause is not None:
                out.append(f"- most likely ({f.cause.confidence:.2f}): {_md(f.cause.text)}")
            out.extend(f"- or ({a.confidence:.2f}): {_md(a.text)}" for a in f.alternatives)
            if f.next_step:
                out.append(f"- **next step:** {_md(f.next_step)}")
            out.append(
                "- evidence: " + "; ".join(f"frame {e.frame}: {_md(e.what)}" for e in f.evidence)
            )
            out.append("")
    return "\n".join(out).rstrip() + "\n"
