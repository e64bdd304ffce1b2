"""How reporters are driven: one capture at a time, written as soon as it is analysed.

Only one capture's findings are held at once, and a JSON document is written piece by piece
rather than built whole in memory, so a batch of captures costs the memory of its largest.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TextIO

from tcpdiag import __version__
from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters.jsontext import json_text


class Reporter(Protocol):
    def start(self, out: TextIO) -> None: ...

    def write(self, report: CaptureReport, out: TextIO) -> None: ...

    def finish(self, out: TextIO) -> None: ...


def render(reporter: Reporter, reports: Iterable[CaptureReport]) -> str:
    """The whole output as one string (tests, and callers that want it in memory)."""
    out = io.StringIO()
    reporter.start(out)
    for report in reports:
        reporter.write(report, out)
    reporter.finish(out)
    return out.getvalue()


class SectionReporter:
    """Formats in which each capture is a section of its own (table, Markdown)."""

    def __init__(self, section: Callable[[CaptureReport], str]) -> None:
        self._section = section
        self._first = True

    def start(self, out: TextIO) -> None:
        self._first = True

    def write(self, report: CaptureReport, out: TextIO) -> None:
        if not self._first:
            out.write("\n")
        self._first = False
        out.write(self._section(report).rstrip("\n") + "\n")

    def finish(self, out: TextIO) -> None:
        pass


def _dump(value: Any, indent: int) -> str:
    # ensure_ascii keeps the document valid and printable whatever bytes a capture held.
    text = json.dumps(value, indent=2, ensure_ascii=True)
    return text.replace("\n", "\n" + " " * indent)


class JsonDocumentReporter:
    """One JSON document, `{"tool", "version", "captures": [...]}`, streamed a capture at a
    time: the document's start and end; `write` writes each capture's object."""

    def __init__(self, schema_version: str | None = None, filters: list[str] | None = None):
        self._schema_version = schema_version
        self._filters = filters
        self._first = True

    def start(self, out: TextIO) -> None:
        self._first = True
        out.write(f'{{\n  "tool": "tcpdiag",\n  "version": {json.dumps(__version__)},\n')
        if self._schema_version is not None:
            out.write(f'  "schema_version": {json.dumps(self._schema_version)},\n')
        if self._filters is not None:
            out.write(f'  "filters": {json.dumps(self._filters, ensure_ascii=True)},\n')
        out.write('  "captures": [')

    def write(self, report: CaptureReport, out: TextIO) -> None:
        raise NotImplementedError

    def finish(self, out: TextIO) -> None:
        out.write("\n  ]\n}\n")


class JsonReporter(JsonDocumentReporter):
    """A JSON document (JsonDocumentReporter) whose capture objects are each capture's summary
    fields, then its list (findings or connections) one item per line."""

    def __init__(
        self,
        list_key: str,
        fields: Callable[[CaptureReport], dict[str, Any]],
        items: Callable[[CaptureReport], Iterable[dict[str, Any]]],
        schema_version: str | None = None,
        filters: list[str] | None = None,
    ) -> None:
        super().__init__(schema_version, filters)
        self._list_key, self._fields, self._items = list_key, fields, items

    def write(self, report: CaptureReport, out: TextIO) -> None:
        out.write(("" if self._first else ",") + "\n    {")
        self._first = False
        for key, value in self._fields(report).items():
            out.write(f"\n      {json.dumps(key)}: {_dump(value, 6)},")
        out.write(f"\n      {json.dumps(self._list_key)}: [")
        # One item per line: readable, greppable, and written fast (an indented dump is the
        # json module's pure Python and took longer than analysing the capture).
        for number, item in enumerate(self._items(report)):
            out.write(("," if number else "") + "\n        " + json_text(item))
        out.write("\n      ]\n    }")
