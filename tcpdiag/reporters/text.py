"""The terminal report: one table of findings per capture, then a short explanation of each."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from tabulate import tabulate

from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters.base import SectionReporter, render
from tcpdiag.reporters.common import HEADERS, frames_text, safe, safe_line, sees_line, sees_text

WIDTH = 100


def text_reporter() -> SectionReporter:
    return SectionReporter(_capture)


def render_text(reports: Iterable[CaptureReport]) -> str:
    return render(text_reporter(), reports)


def _wrap(text: str, indent: str = "   ") -> str:
    return textwrap.fill(
        safe(text), width=WIDTH, initial_indent=indent, subsequent_indent=indent + "  "
    )


def _capture(report: CaptureReport) -> str:
    lines = [f"== {safe_line(report.path)}"]
    if report.error:
        lines.append(f"error: {safe_line(report.error)}")
        return "\n".join(lines) + "\n"
    lines.append(
        f"{report.packets} packets, {report.flows} TCP connection{'s' * (report.flows != 1)}, "
        f"{len(report.findings)} finding{'s' if len(report.findings) != 1 else ''}"
        + (
            " (capture cut short: findings cover the part before the damage)"
            if report.truncated
            else ""
        )
    )
    for warning in report.warnings:
        lines.append(f"warning: {safe_line(warning)}")
    for scan in report.scans:
        lines.append(f"scan: {safe_line(scan.text())}")
    if not report.findings:
        lines.append("No abnormal TCP connection found.")
        return "\n".join(lines) + "\n"
    rows = [
        [
            f.id,
            f.category,
            f.client + ("" if f.initiator_known else " ?"),
            f.server,
            frames_text(f),
            sees_text(f.client_sees),
            sees_text(f.server_sees),
            f"{f.confidence:.2f}",
        ]
        for f in report.findings
    ]
    lines.append(safe(tabulate(rows, headers=HEADERS, tablefmt="simple")))
    if any(not f.initiator_known for f in report.findings):
        lines.append("? = the capture missed the handshake; client and server roles are a guess")
    for f in report.findings:
        lines.append("")
        lines.append(safe(f"{f.id} {f.category} [{f.rule}]: {f.title}"))
        lines.append(_wrap(f.explanation))
        lines.append(_wrap(sees_line("client", f.client_sees)))
        lines.append(_wrap(sees_line("server", f.server_sees)))
        if f.cause is not None:
            lines.append(_wrap(f"most likely ({f.cause.confidence:.2f}): {f.cause.text}"))
        for alt in f.alternatives:
            lines.append(_wrap(f"or ({alt.confidence:.2f}): {alt.text}"))
        if f.next_step:
            lines.append(_wrap(f"next: {f.next_step}"))
        evidence = "; ".join(f"frame {e.frame}: {e.what}" for e in f.evidence[:8])
        lines.append(_wrap(f"evidence: {evidence}"))
    return "\n".join(lines) + "\n"
