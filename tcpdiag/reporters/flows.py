"""`tcpdiag flows`: every connection as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import TextIO

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord, UnansweredRun
from tcpdiag.ladder import split_endpoint
from tcpdiag.reporters import units
from tcpdiag.reporters.base import JsonReporter, SectionReporter, render
from tcpdiag.reporters.common import (
    FORMULA_START,
    csv_cell,
    markdown_text,
    safe_line,
    tabulate,
)
from tcpdiag.reporters.json_report import SCHEMA_VERSION
from tcpdiag.reporters.selection import Selection

COLUMNS = (
    "first", "duration", "client", "server", "c_pkts", "c_bytes", "s_pkts", "s_bytes",
    "client_state", "server_state", "conn_state", "history", "community_id", "findings",
)  # fmt: skip


def _row(flow: FlowRecord, mark_guess: bool = True, human: bool = True) -> list[object]:
    return [
        iso_time(flow.first_time),
        units.duration(flow.duration) if human else f"{flow.duration:.6f}",
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
        ",".join(flow.findings) or "none",
    ]


def _section(report: CaptureReport, markdown: bool, filters: list[str]) -> Iterator[str]:
    """The capture's section, a piece at a time (without its final newline)."""
    path = markdown_text(report.path) if markdown else safe_line(report.path)
    yield f"{'## ' if markdown else '== '}{path}"
    if report.error:
        yield f"\nerror: {safe_line(report.error)}"
        return
    escape = markdown_text if markdown else safe_line
    span = units.span(report.first_time, report.last_time)
    yield "\n" + escape(f"{units.plural(len(report.connections), 'connection')} listed; {span}")
    yield ("\n" if markdown else "") + "\n"
    yield escape(f"filters: {' '.join(filters) or 'none'}") + ("\n" if markdown else "")
    if not report.connections:
        yield "\nNo TCP connection."
        return
    guessed = yield from _table(report.connections, "github" if markdown else "simple")
    if guessed:
        yield "\n? = the capture missed the handshake; client and server roles are a guess"


TABLE_ROWS = 1000  # rows formatted at once: the table is written a piece at a time


def _table(flows: Iterable[FlowRecord], tablefmt: str) -> Generator[str, None, bool]:
    """The table of every flow, as tabulate would format it whole, in pieces of TABLE_ROWS
    rows, reading the flows twice (once for the widths); whether any client is a guess.

    Each piece is a table of its rows plus, first, a row of the widest cell of every column,
    so its columns are as wide as the whole table's; that row is then left out (as are the
    header lines after the first piece). The cells are ASCII (addresses, states, numbers,
    ids), so the widest is the longest."""
    widest = ["" for _ in COLUMNS]
    guessed = False
    for flow in flows:
        for column, cell in enumerate(map(str, _row(flow))):
            if len(cell) > len(widest[column]):
                widest[column] = cell
        guessed = guessed or not flow.initiator_known
    rows: list[list[object]] = []
    first = True
    for flow in flows:
        rows.append(_row(flow))
        if len(rows) == TABLE_ROWS:
            yield _table_piece(widest, rows, tablefmt, first)
            rows, first = [], False
    if rows:
        yield _table_piece(widest, rows, tablefmt, first)
    return guessed


def _table_piece(widest: list[str], rows: list[list[object]], tablefmt: str, first: bool) -> str:
    plain = _plain_piece(widest, rows, tablefmt, first)
    if plain is not None:
        return plain
    text = tabulate([widest, *rows], headers=COLUMNS, tablefmt=tablefmt, disable_numparse=True)
    header, separator, _widest, body = text.split("\n", 3)
    return f"\n{header}\n{separator}\n{body}" if first else f"\n{body}"


_HEADER_PADDING = 2  # tabulate's MIN_PADDING: a column is this much wider than its header


def _plain_piece(
    widest: list[str], rows: list[list[object]], tablefmt: str, first: bool
) -> str | None:
    """What _table_piece's call of tabulate makes of these rows, made without it, if every
    cell is plain (_plain_cells); otherwise None. tabulate took most of a listing's time, a
    few times what the rest of `tcpdiag flows` took: it infers each column's type, measures
    every cell and pads it, all of which a table of plain text cells, left-aligned, does not
    need. tests/test_flows.py compares both ways."""
    if tablefmt not in ("simple", "github") or not _plain_cells(widest):
        return None
    widths = [
        max(len(cell), len(header) + _HEADER_PADDING)
        for cell, header in zip(widest, COLUMNS, strict=True)
    ]
    if tablefmt == "simple":
        line = "  ".join(f"{{:<{width}}}" for width in widths)
        separator = "  ".join("-" * width for width in widths)
    else:
        line = "| " + " | ".join(f"{{:<{width}}}" for width in widths) + " |"
        separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    lines = [line.format(*COLUMNS).rstrip(), separator] if first else []
    for row in rows:
        cells = list(map(str, row))
        if not _plain_cells(cells):
            return None
        lines.append(line.format(*cells).rstrip())  # (tabulate strips each line's end)
    return "\n" + "\n".join(lines)


def _plain_cells(cells: list[str]) -> bool:
    """Whether tabulate would take these cells as they are, each as wide as its length:
    printable, ASCII (but µ, one column wide as well), no whitespace at either end (it
    strips that). (A cell holding "| " or " |" is not taken for plain either.)"""
    text = "|".join(cells)
    return (
        text.isprintable()
        and (text.isascii() or text.replace("µ", "").isascii())
        and "| " not in text
        and " |" not in text
        and text[:1] != " "
        and text[-1:] != " "
    )


class FlowsTableReporter(SectionReporter):
    """The flows table (or Markdown), each capture a section, written a piece at a time: the
    connections are read from their spool, never held all at once."""

    def __init__(self, markdown: bool, filters: list[str]) -> None:
        super().__init__(lambda report: "".join(_section(report, markdown, filters)))
        self._markdown, self._filters = markdown, filters

    def write(self, report: CaptureReport, out: TextIO) -> None:
        if not self._first:
            out.write("\n")
        self._first = False
        for piece in _section(report, self._markdown, self._filters):
            out.write(piece)
        out.write("\n")


def flows_table_reporter(
    markdown: bool = False, selection: Selection | None = None
) -> SectionReporter:
    """`selection` only for its echo of the filters in each header."""
    return FlowsTableReporter(markdown, (selection or Selection()).describe())


def flows_json_reporter(selection: Selection | None = None) -> JsonReporter:
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
        lambda r: (flow_dict(c) for c in r.connections),
        schema_version=SCHEMA_VERSION,
        filters=(selection or Selection()).describe(),
    )


def flow_dict(flow: FlowRecord, head: Mapping[str, object] | None = None) -> dict[str, object]:
    """A connection as JSON: `FlowRecord.to_dict` (after `head`'s keys) plus its endpoints
    split, for joins."""
    record = flow.to_dict(head)
    record["client_ip"], record["client_port"] = split_endpoint(flow.client)
    record["server_ip"], record["server_port"] = split_endpoint(flow.server)
    return record


# The members of a flow's JSON (flow_dict) that differ between a flood's unanswered SYNs.
_UNANSWERED_VARYING = (
    "conn_id", "community_id", "first_time", "last_time", "client", "server", "first_epoch",
    "last_epoch", "client_ip", "client_port", "server_ip", "server_port",
)  # fmt: skip


def unanswered_flow_dicts(
    run: UnansweredRun, head: Mapping[str, object] | None = None
) -> Iterator[dict[str, object]]:
    """flow_dict of each row of a run of a flood's SYNs, made from their numbers: the first
    row's, and for each other a copy with what differs between such rows set (a flood lists
    a million). tests/test_spool.py compares both ways."""
    first: dict[str, object] | None = None
    for conn_id, time, client_ip, client_port, server_ip, server_port, cid in run.columns(run.rows):
        if first is None:
            first = flow_dict(next(run.records()), head)
            yield first
            continue
        when = iso_time(time)
        record = first.copy()
        for name, value in zip(
            _UNANSWERED_VARYING,
            (conn_id, cid, when, when, f"{client_ip}:{client_port}",
             f"{server_ip}:{server_port}", time, time, client_ip, client_port, server_ip,
             server_port),
            strict=True,
        ):  # fmt: skip
            record[name] = value
        yield record


class FlowsCsvReporter:
    """One CSV table for all captures: a header row, then a row per connection."""

    def start(self, out: TextIO) -> None:
        csv.writer(out, lineterminator="\n").writerow(["capture", *COLUMNS, "initiator_known"])

    def write(self, report: CaptureReport, out: TextIO) -> None:
        # The row of _row(flow, mark_guess=False, human=False) with every cell through
        # csv_cell, spelled out: a flood's capture lists a million connections, and a call
        # per cell, then the csv module's tests of each, were most of the listing's cost. A
        # row whose cells need nothing from either (most: addresses, states, ISO times) is
        # written as the text they would have made of it; any other goes through both.
        writerow = csv.writer(out, lineterminator="\n").writerow
        write = out.write
        path, formula = csv_cell(report.path), FORMULA_START
        path_text = _csv_text(path)
        block, block_lines = None, []
        for item in report.connections.listing():
            if isinstance(item, UnansweredRun):
                if item.block is not block:
                    block, block_lines = item.block, _unanswered_lines(item, path, path_text)
                write("".join(block_lines[item.start : item.stop]))
                continue
            flow = item
            line = (
                f"{iso_time(flow.first_time)},{flow.duration:.6f},{flow.client},{flow.server},"
                f"{flow.client_packets},{flow.client_bytes},{flow.server_packets},"
                f"{flow.server_bytes},{flow.client_state},{flow.server_state},{flow.conn_state},"
                f"{flow.history},{flow.community_id},{','.join(flow.findings) or 'none'},"
                f"{flow.initiator_known}"
            )
            if (
                line.isprintable()  # (safe_line changes nothing; no line break to quote)
                and line.count(",") == _COMMAS  # (no cell holds one: none needs quotes)
                and '"' not in line  # (the csv module would quote the cell)
                # (No cell starts like a formula, which csv_cell would change; tab and CR are
                # not printable.)
                and line[:1] not in formula
                and ",=" not in line
                and ",+" not in line
                and ",-" not in line
                and ",@" not in line
            ):
                write(f"{path_text},{line}\n")
                continue
            writerow(_general_row(path, flow))

    def finish(self, out: TextIO) -> None:
        pass


# A plain row's text after the capture's cell: its cells joined by commas, none holding one.
_COMMAS = len(COLUMNS)
# FlowsCsvReporter.write spells out the starts of a formula (those a printable row can hold).
assert frozenset("=+-@\t\r") == FORMULA_START, "update FlowsCsvReporter.write"


def _general_row(path: object, flow: FlowRecord) -> list[object]:
    """A row as it is defined (FlowsCsvReporter.write spells out its plain case): the
    capture's cell (`path`, made safe), the listing's cells through csv_cell, and
    initiator_known."""
    return [path, *map(csv_cell, _row(flow, mark_guess=False, human=False)), flow.initiator_known]


def _unanswered_lines(run: UnansweredRun, path: object, path_text: str) -> list[str]:
    """The CSV lines of every row of the run's block (a flood's SYNs), as
    FlowsCsvReporter.write makes them of their FlowRecords (one packet, no byte, no duration,
    no finding): made a block at a time, written a run at a time. tests/test_flows.py
    compares both ways."""
    syn_sent, listen, conn_state, history = run.states()
    rest = f"1,0,0,0,{syn_sent},{listen},{conn_state},{history}"
    lines = []
    for at, (_, time, client_ip, client_port, server_ip, server_port, cid) in enumerate(
        run.columns(run.block)
    ):
        client, server = f"{client_ip}:{client_port}", f"{server_ip}:{server_port}"
        first = iso_time(time)
        # Of the cells, only the time's can be other than plain (see FlowsCsvReporter.write):
        # the others are addresses with ports, a Community ID ("1:" and base64) and
        # constants; a time no calendar holds is written as a number, which may start with a
        # minus sign.
        if first[:1] not in FORMULA_START:
            lines.append(f"{path_text},{first},0.000000,{client},{server},{rest},{cid},none,True\n")
            continue
        (record,) = UnansweredRun(run.block, at, at + 1, run.zeek).records()
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(_general_row(path, record))
        lines.append(text.getvalue())
    return lines


def _csv_text(cell: object) -> str:
    """A cell as the csv module writes it in a row of several."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow((cell, ""))
    return line.getvalue()[: -len(",\n")]


# Zeek's conn.log columns (base/protocols/conn/main.zeek), plus the community-id package's.
ZEEK_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"), ("community_id", "string"),
)  # fmt: skip
_UNSET = "-"


def _zeek_value(text: str) -> str:
    # Zeek escapes its separator and non-printable bytes as \xNN; nothing else may break a row.
    return safe_line(text).replace("\t", "\\x09") or "(empty)"


class ZeekConnLogReporter:
    """A Zeek conn.log (TSV with Zeek's header lines) that zeek-cut and Zeek's log readers take.
    One log for all captures, as Zeek writes one per run. Values tcpdiag does not know (service,
    IP-level byte counts, local_orig) are unset (`-`); `uid` is derived from the Community ID, so
    the same flow gets the same uid in every run."""

    def start(self, out: TextIO) -> None:
        out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n")
        out.write(f"#unset_field\t{_UNSET}\n#path\tconn\n")
        out.write("#fields\t" + "\t".join(name for name, _ in ZEEK_FIELDS) + "\n")
        out.write("#types\t" + "\t".join(kind for _, kind in ZEEK_FIELDS) + "\n")

    def write(self, report: CaptureReport, out: TextIO) -> None:
        for item in report.connections.listing():
            if isinstance(item, UnansweredRun):
                out.write("".join("\t".join(row) + "\n" for row in _unanswered_zeek_rows(item)))
            else:
                out.write("\t".join(_zeek_row(item)) + "\n")

    def finish(self, out: TextIO) -> None:
        out.write("#close\n")


def _zeek_uid(community_id: str) -> str:
    """A Zeek uid ("C" and 17 base32 characters) derived from the Community ID: the same flow
    gets the same uid in every run."""
    digest = hashlib.sha1(community_id.encode()).digest()
    return "C" + base64.b32encode(digest).decode()[:17]


def _zeek_row(flow: FlowRecord) -> list[str]:
    (orig_h, orig_p), (resp_h, resp_p) = split_endpoint(flow.client), split_endpoint(flow.server)
    return [
        f"{flow.first_time:.6f}", _zeek_uid(flow.community_id), orig_h, str(orig_p), resp_h,
        str(resp_p), "tcp", _UNSET,
        f"{flow.duration:.6f}", str(flow.client_bytes), str(flow.server_bytes),
        _zeek_value(flow.conn_state), _UNSET, _UNSET, "0", _zeek_value(flow.history),
        str(flow.client_packets), _UNSET, str(flow.server_packets), _UNSET, "(empty)",
        _zeek_value(flow.community_id),
    ]  # fmt: skip


# The columns of a Zeek row that differ between a flood's unanswered SYNs.
_ZEEK_VARYING = [
    [name for name, _ in ZEEK_FIELDS].index(name)
    for name in ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "community_id")
]


def _unanswered_zeek_rows(run: UnansweredRun) -> Iterator[list[str]]:
    """_zeek_row of each row of a run of a flood's SYNs, made from their numbers: the first
    row's, and for each other a copy with what differs between such rows set."""
    first: list[str] | None = None
    for _, time, client_ip, client_port, server_ip, server_port, cid in run.columns(run.rows):
        if first is None:
            first = _zeek_row(next(run.records()))
            yield first
            continue
        row = first.copy()
        for at, value in zip(
            _ZEEK_VARYING,
            (f"{time:.6f}", _zeek_uid(cid), client_ip, str(client_port), server_ip,
             str(server_port), _zeek_value(cid)),
            strict=True,
        ):  # fmt: skip
            row[at] = value
        yield row


def render_flows_json(reports: Iterable[CaptureReport]) -> str:
    return render(flows_json_reporter(), reports)


def render_flows_csv(reports: Iterable[CaptureReport]) -> str:
    return render(FlowsCsvReporter(), reports)
