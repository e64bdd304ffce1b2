"""The JSON report: one document for all captures; key names are a stable interface."""

from __future__ import annotations

from collections.abc import Iterable

from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters.base import JsonReporter, render


def json_reporter() -> JsonReporter:
    return JsonReporter(
        "findings",
        lambda r: r.to_dict(findings=False),
        lambda r: (f.to_dict() for f in r.findings),
    )


def render_json(reports: Iterable[CaptureReport]) -> str:
    return render(json_reporter(), reports)
