"""Outputs for programs besides the JSON document: JSON Lines and CSV.

JSON Lines: one self-contained object per line, each naming its `type` (`capture`, `finding`,
`flow`), the capture's path, the tool version and the schema version, so lines can be
filtered, split or streamed into a log store one at a time.
"""

from __future__ import annotations

import csv
from typing import TextIO

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import Finding
from tcpdiag.flows import UnansweredRun
from tcpdiag.reporters.common import csv_cell, sees_text
from tcpdiag.reporters.flows import flow_dict, unanswered_flow_dicts
from tcpdiag.reporters.json_report import finding_dict, json_line, line_head
from tcpdiag.reporters.jsontext import json_text
from tcpdiag.reporters.selection import Selection


class JsonLinesReporter:
    """A `capture` line per capture (its summary), then a line per finding (analyze) or per
    connection (flows)."""

    def __init__(self, selection: Selection | None = None, flows: bool = False) -> None:
        self.selection = selection or Selection()
        self.flows = flows

    def start(self, out: TextIO) -> None:
        pass

    def write(self, report: CaptureReport, out: TextIO) -> None:
        summary = {**report.to_dict(findings=False), "filters": self.selection.describe()}
        out.write(json_line("capture", report.path, summary))
        if self.flows:
            head = line_head("flow", report.path)
            for item in report.connections.listing():
                if isinstance(item, UnansweredRun):
                    dicts = unanswered_flow_dicts(item, head)
                    out.write("".join(f"{json_text(record)}\n" for record in dicts))
                else:
                    out.write(json_text(flow_dict(item, head)) + "\n")
            return
        head = line_head("finding", report.path)
        for finding in report.findings:
            if self.selection.accepts(finding):
                out.write(json_text(finding_dict(finding, head)) + "\n")

    def finish(self, out: TextIO) -> None:
        pass


CSV_COLUMNS = (
    "capture", "id", "time", "category", "rule", "impact", "client_ip", "client_port",
    "server_ip", "server_port", "client_sees", "server_sees", "confidence", "frames", "title",
    "cause", "conn_id", "community_id", "wireshark_filter",
)  # fmt: skip


def _csv_row(path: str, finding: Finding) -> list[object]:
    data = finding_dict(finding)
    return [
        path, finding.id, data["time"], finding.category, finding.rule, finding.impact,
        data["client_ip"], data["client_port"], data["server_ip"], data["server_port"],
        sees_text(finding.client_sees),
        sees_text(finding.server_sees), f"{finding.confidence:.2f}",
        " ".join(str(n) for n in finding.frames), finding.title,
        finding.cause.text if finding.cause else "", finding.conn_id, finding.community_id,
        data["wireshark_filter"],
    ]  # fmt: skip


class FindingsCsvReporter:
    """One CSV table for all captures: a header row, then a row per finding. Cells that a
    spreadsheet would take for a formula are neutralised (`common.csv_cell`)."""

    def __init__(self, selection: Selection | None = None) -> None:
        self.selection = selection or Selection()

    def start(self, out: TextIO) -> None:
        csv.writer(out, lineterminator="\n").writerow(CSV_COLUMNS)

    def write(self, report: CaptureReport, out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        for finding in report.findings:
            if self.selection.accepts(finding):
                writer.writerow([csv_cell(v) for v in _csv_row(report.path, finding)])

    def finish(self, out: TextIO) -> None:
        pass
