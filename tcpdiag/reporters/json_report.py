"""The JSON report: one document for all captures; key names are a stable interface.

`schema_version` names the version of `tcpdiag/schema/report.schema.json` the output follows
(`tcpdiag schema` prints it); it changes only when a key is renamed or removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import Finding
from tcpdiag.ladder import split_endpoint
from tcpdiag.reporters.base import JsonReporter, render
from tcpdiag.reporters.common import wireshark_filter, wireshark_frames
from tcpdiag.reporters.selection import Selection

SCHEMA_VERSION = "1.0"


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as JSON: `Finding.to_dict` plus what programs join or filter on."""
    client_ip, client_port = split_endpoint(finding.client)
    server_ip, server_port = split_endpoint(finding.server)
    return {
        **finding.to_dict(),
        "client_ip": client_ip,
        "client_port": client_port,
        "server_ip": server_ip,
        "server_port": server_port,
        "wireshark_filter": wireshark_filter(finding),
        "wireshark_frames": wireshark_frames(finding),
    }


def json_reporter(selection: Selection | None = None) -> JsonReporter:
    chosen = selection or Selection()
    return JsonReporter(
        "findings",
        lambda r: r.to_dict(findings=False),
        lambda r: (finding_dict(f) for f in r.findings if chosen.accepts(f)),
        schema_version=SCHEMA_VERSION,
        filters=chosen.describe(),
    )


def render_json(reports: Iterable[CaptureReport], selection: Selection | None = None) -> str:
    return render(json_reporter(selection), reports)
