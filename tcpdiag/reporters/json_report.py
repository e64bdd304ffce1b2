"""The JSON report: one document for all captures; key names are a stable interface."""

from __future__ import annotations

import json
from collections.abc import Iterable

from tcpdiag import __version__
from tcpdiag.analyze import CaptureReport


def render_json(reports: Iterable[CaptureReport]) -> str:
    document = {
        "tool": "tcpdiag",
        "version": __version__,
        "captures": [r.to_dict() for r in reports],
    }
    # ensure_ascii keeps the document valid and printable whatever bytes a capture held.
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"
