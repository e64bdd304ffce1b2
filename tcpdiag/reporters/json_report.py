"""The JSON report: one document for all captures; key names are a stable interface.

`schema_version` names the version of `tcpdiag/schema/report.schema.json` the output follows
(`tcpdiag schema` prints it); it changes only when a key is renamed or removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

import orjson

from tcpdiag import __version__
from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, Aggregate, GroupKey, fold, plan_aggregates
from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import EncodedFinding, Finding, digest_facts
from tcpdiag.ladder import split_endpoint
from tcpdiag.reporters.base import JsonDocumentReporter, render
from tcpdiag.reporters.common import endpoints_filter, wireshark_frames
from tcpdiag.reporters.jsontext import json_text
from tcpdiag.reporters.selection import Selection
from tcpdiag.spool import FindingSpool, digests_of

SCHEMA_VERSION = "1.0"


def finding_dict(finding: Finding, head: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A finding as JSON: `Finding.to_dict` (after `head`'s keys) plus what programs join or
    filter on."""
    client_ip, client_port = split_endpoint(finding.client)
    server_ip, server_port = split_endpoint(finding.server)
    record = finding.to_dict(head)  # (added to, not copied: every finding of a report is made so)
    record["client_ip"], record["client_port"] = client_ip, client_port
    record["server_ip"], record["server_port"] = server_ip, server_port
    record["wireshark_filter"] = endpoints_filter(client_ip, client_port, server_ip, server_port)
    record["wireshark_frames"] = wireshark_frames(finding)
    return record


# Where a finding's JSON (finding_dict, its id left empty) is cut in two: an unescaped quote
# in JSON text only delimits a string, so this is the members "id" and "facts" of one object,
# and only the finding itself has both (a cause has an "id", followed by its "text").
_ID_MEMBER = ',"id":"","facts":'


def encode_finding(finding: Finding) -> EncodedFinding:
    """The finding as the JSON reports write it (finding_dict), for a spool to keep
    (FindingSpool's `encode`); its id is filled in when the report is written."""
    record = finding_dict(finding)
    record["id"] = ""  # (in its place; EncodedFinding.json writes the id it has then)
    text = json_text(record)
    cut = text.find(_ID_MEMBER)
    assert cut > 0, "finding_dict puts facts right after id"
    return EncodedFinding(
        finding.category,
        finding.client,
        finding.server,
        finding.time,
        finding.impact,
        finding.confidence,
        finding.frames,
        digest_facts(finding.facts),
        finding.client_sees,
        finding.server_sees,
        text[1:cut],
        text[cut + len(',"id":""') : -1],
        finding.id,
    )


def encoded_findings(findings: Iterable[Finding] | FindingSpool) -> Iterator[EncodedFinding]:
    """The findings in report order as the JSON reports write them: as a spool that encodes
    kept them, or encoded now."""
    if isinstance(findings, FindingSpool):
        return findings.encoded(encode_finding)
    return map(encode_finding, findings)


def _dump(value: Any, indent: int) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=True)
    return text.replace("\n", "\n" + " " * indent)


class FindingsJsonReporter(JsonDocumentReporter):
    """The analyze JSON document. A scan, flood or storm of more than `aggregate_over` findings
    is one aggregated finding in the capture's `aggregates` (tcpdiag.aggregate), written after
    `findings`, which then lists only the findings no aggregate took; `aggregated_findings`
    counts those taken. JSON Lines (`AggregatingJsonLinesReporter`) keeps every finding."""

    def __init__(self, selection: Selection, aggregate_over: int = DEFAULT_AGGREGATE_OVER):
        super().__init__(schema_version=SCHEMA_VERSION, filters=selection.describe())
        self.selection, self.aggregate_over = selection, aggregate_over

    def write(self, report: CaptureReport, out: TextIO) -> None:
        out.write(("" if self._first else ",") + "\n    {")
        self._first = False
        plan = plan_aggregates(
            digests_of(report.findings), self.aggregate_over, len(report.findings)
        )
        fields = {**report.to_dict(findings=False), "aggregate_over": self.aggregate_over}
        for key, value in fields.items():
            out.write(f"\n      {json.dumps(key)}: {_dump(value, 6)},")
        out.write('\n      "findings": [')
        # One item per line (as JsonReporter.write).
        kept, aggregates = fold(encoded_findings(report.findings), plan, self.selection.accepts)
        for number, finding in enumerate(kept):
            out.write(("," if number else "") + "\n        " + finding.json())
        out.write("\n      ],")
        out.write(f'\n      "aggregated_findings": {sum(a.count for a in aggregates)},')
        out.write('\n      "aggregates": [')
        for number, aggregate in enumerate(aggregates):
            item = json_text(aggregate.to_dict())
            out.write(("," if number else "") + "\n        " + item)
        out.write("\n      ]\n    }")


def json_reporter(
    selection: Selection | None = None, aggregate_over: int = DEFAULT_AGGREGATE_OVER
) -> JsonDocumentReporter:
    return FindingsJsonReporter(selection or Selection(), aggregate_over)


def render_json(
    reports: Iterable[CaptureReport],
    selection: Selection | None = None,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> str:
    return render(json_reporter(selection, aggregate_over), reports)


def json_line(kind: str, path: str, body: dict[str, Any]) -> str:
    """One JSON Lines record: its type, the tool, the versions and the capture, then `body`."""
    return json_text({**line_head(kind, path), **body}) + "\n"


def line_head(kind: str, path: str) -> dict[str, Any]:
    """The keys a JSON Lines record starts with (json_line): its type, the tool, the versions
    and the capture."""
    return {"type": kind, "tool": "tcpdiag", "version": __version__,
            "schema_version": SCHEMA_VERSION, "capture": path}  # fmt: skip


class AggregatingJsonLinesReporter:
    """`tcpdiag analyze -f jsonl` (tcpdiag.reporters.machine.JsonLinesReporter's lines, and
    more): a `capture` line, then every finding keeps its `finding` line, a finding an
    aggregated finding took saying which (`"aggregate": "A1"`), then a line per aggregated
    finding (`"type": "aggregate"`)."""

    def __init__(
        self, selection: Selection | None = None, aggregate_over: int = DEFAULT_AGGREGATE_OVER
    ) -> None:
        self.selection = selection or Selection()
        self.aggregate_over = aggregate_over

    def start(self, out: TextIO) -> None:
        pass

    def finish(self, out: TextIO) -> None:
        pass

    def write(self, report: CaptureReport, out: TextIO) -> None:
        plan = plan_aggregates(
            digests_of(report.findings), self.aggregate_over, len(report.findings)
        )
        summary = {
            **report.to_dict(findings=False),
            "filters": self.selection.describe(),
            "aggregate_over": self.aggregate_over,
        }
        out.write(json_line("capture", report.path, summary))
        groups: dict[GroupKey, Aggregate] = {}
        head = line_head("finding", report.path)
        written = orjson.dumps(head)
        # The members that start each line, as json_text would write them with the finding:
        # orjson's text when the whole is ASCII. A capture named in other characters (rare)
        # has each line written again by json_text, for the same text as ever.
        members = written[1:-1].decode() + "," if written.isascii() else None
        for finding in encoded_findings(report.findings):
            if not self.selection.accepts(finding):
                continue
            group = plan.key_of(finding) if plan else None
            tail = ""
            if group is not None:
                aggregate = groups.get(group)
                if aggregate is None:
                    aggregate = groups[group] = plan.new_aggregate(group)
                aggregate.add(finding)
                tail = f',"aggregate":"{aggregate.id}"'
            if members is not None:
                out.write(finding.json(members, tail) + "\n")
            else:
                out.write(json_text({**head, **json.loads(finding.json("", tail))}) + "\n")
        for aggregate in sorted(groups.values(), key=lambda a: int(a.id[1:])):
            out.write(json_line("aggregate", report.path, aggregate.to_dict()))
