"""`tcpdiag flows`: every connection as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from tabulate import tabulate

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord
from tcpdiag.reporters.base import JsonReporter, SectionReporter, render
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


def _section(report: CaptureReport, markdown: bool) -> str:
    path = markdown_text(report.path) if markdown else safe_line(report.path)
    out = [f"{'## ' if markdown else '== '}{path}"]
    if report.error:
        out.append(f"error: {safe_line(report.error)}")
        return "\n".join(out)
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
    return "\n".join(out)


def flows_table_reporter(markdown: bool = False) -> SectionReporter:
    return SectionReporter(lambda report: _section(report, markdown))


def flows_json_reporter() -> JsonReporter:
    return JsonReporter(
        "connections",
        lambda r: {
            "path": r.path,
            "packets": r.packets,
            "flows": r.flows,
            "truncated": r.truncated,
            "evicted": r.evicted,
            "warnings": list(r.warnings),
            "error": r.error,
        },
        lambda r: (c.to_dict() for c in r.connections),
    )


class FlowsCsvReporter:
    """One CSV table for all captures: a header row, then a row per connection."""

    def start(self, out: TextIO) -> None:
        csv.writer(out, lineterminator="\n").writerow(["capture", *COLUMNS, "initiator_known"])

    def write(self, report: CaptureReport, out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        for flow in report.connections:
            writer.writerow(
                [safe_line(report.path), *_row(flow, mark_guess=False), flow.initiator_known]
            )

    def finish(self, out: TextIO) -> None:
        pass


def render_flows_json(reports: Iterable[CaptureReport]) -> str:
    return render(flows_json_reporter(), reports)


def render_flows_csv(reports: Iterable[CaptureReport]) -> str:
    return render(FlowsCsvReporter(), reports)
