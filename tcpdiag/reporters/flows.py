"""`tcpdiag flows`: every connection as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from tabulate import tabulate

from tcpdiag import __version__
from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord
from tcpdiag.reporters.common import markdown_text, safe_line

COLUMNS = (
    "first", "duration", "client", "server", "c_pkts", "c_bytes", "s_pkts", "s_bytes",
    "client_state", "server_state", "conn_state", "history", "community_id", "findings",
)  # fmt: skip


def _row(flow: FlowRecord, mark_guess: bool = True) -> list[object]:
    return [
        iso_time(flow.first_time),
        f"{flow.duration:.6f}",
        flow.client + ("" if flow.initiator_known or not mark_guess else " ?"),
        flow.server,
        flow.client_packets,
        flow.client_bytes,
        flow.server_packets,
        flow.server_bytes,
        flow.client_state,
        flow.server_state,
        flow.conn_state,
        flow.history,
        flow.community_id,
        ",".join(flow.findings) or "-",
    ]


def render_flows_table(reports: Iterable[CaptureReport], markdown: bool = False) -> str:
    out: list[str] = []
    for report in reports:
        path = markdown_text(report.path) if markdown else safe_line(report.path)
        out.append(f"{'## ' if markdown else '== '}{path}")
        if report.error:
            out.append(f"error: {safe_line(report.error)}")
            continue
        rows = [_row(f) for f in report.connections]
        out.append(
            tabulate(
                rows,
                headers=COLUMNS,
                tablefmt="github" if markdown else "simple",
                disable_numparse=True,
            )
            if rows
            else "No TCP connection."
        )
        if any(not f.initiator_known for f in report.connections):
            out.append("? = the capture missed the handshake; client and server roles are a guess")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_flows_json(reports: Iterable[CaptureReport]) -> str:
    document = {
        "tool": "tcpdiag",
        "version": __version__,
        "captures": [
            {
                "path": r.path,
                "packets": r.packets,
                "flows": r.flows,
                "truncated": r.truncated,
                "warnings": list(r.warnings),
                "error": r.error,
                "connections": [c.to_dict() for c in r.connections],
            }
            for r in reports
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


def render_flows_csv(reports: Iterable[CaptureReport]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["capture", *COLUMNS, "initiator_known"])
    for report in reports:
        for flow in report.connections:
            writer.writerow(
                [safe_line(report.path), *_row(flow, mark_guess=False), flow.initiator_known]
            )
    return buffer.getvalue()
