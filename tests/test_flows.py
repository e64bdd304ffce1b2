"""Connection records (tcpdiag.flows) made in bulk are the ones made one connection at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.attempts import HeldSyns, endpoints_hash
from tcpdiag.columns import ColumnDecoder, ipv4_int
from tcpdiag.decode import Decoder
from tcpdiag.fastpath import FastPathTracker, SummarisedConnections
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord, FlowSpool
from tcpdiag.packets import SYN, SynOptions, TcpSegment
from tcpdiag.quality import CaptureQuality
from tcpdiag.reader import CaptureReader
from tcpdiag.scans import ScanDetector
from tcpdiag.tracker import FlowTable, RetiredSyns, lone_syn_connection


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_records_of_unanswered_syns_are_those_of_their_connections(zeek: bool) -> None:
    store = HeldSyns()
    syns = [
        TcpSegment(
            frame=k + 1,
            time=1_700_000_000.5 + k,
            src=f"198.51.100.{k}",
            dst="192.0.2.1",
            sport=40_000 + k,
            dport=80 if k % 2 else 443,
            seq=k * 1000,
            ack=0,
            flags=SYN,
            window=1024,
            payload_len=0,
            ttl=64,
            ip_version=4,
            ip_id=k,
            syn_options=SynOptions(mss=1460) if k % 3 else None,
        )
        for k in range(1, 7)
    ]
    for conn_id, syn in enumerate(syns, 1):
        src, dst = ipv4_int(syn.src), ipv4_int(syn.dst)
        options = store.options_index(syn.syn_options)
        assert options is not None
        key = endpoints_hash(src, syn.sport, dst, syn.dport)
        store.add(key, syn, src, dst, options, conn_id, syn.time)
    columns = store.take_columns()
    assert columns is not None
    retired = RetiredSyns(columns, zeek)
    expected = [FlowRecord.from_connection(conn) for conn in retired.connections()]
    assert [[record] for record in FlowRecord.unanswered(retired)] == expected
    assert [lone_syn_connection(held, zeek).ref.conn_id for held in columns.held()] == list(
        np.arange(1, 7)
    )


def test_an_unanswered_syn_tells_the_capture_quality_nothing() -> None:
    """Why bare SYNs retired together skip CaptureQuality.observe_connection (analyze.Pipeline):
    a connection of one SYN changes none of its counts."""

    from tcpdiag.attempts import HeldSyn
    from tcpdiag.quality import CaptureQuality

    syn = TcpSegment(
        frame=1, time=1_700_000_000.0, src="198.51.100.1", dst="192.0.2.1", sport=40_000,
        dport=80, seq=1, ack=0, flags=SYN, window=1024, payload_len=0, ttl=64, ip_version=4,
        ip_id=7, syn_options=SynOptions(mss=1460),
    )  # fmt: skip
    quality = CaptureQuality()
    before = asdict(quality)
    for zeek in (False, True):
        quality.observe_connection(lone_syn_connection(HeldSyn(1, syn, syn.time), zeek))
    assert asdict(quality) == before


def flow_records(text: Callable[[int], st.SearchStrategy[str]]) -> st.SearchStrategy[FlowRecord]:
    """Flow records whose text fields come from `text(max_size)`."""
    return st.builds(
        FlowRecord,
        conn_id=st.integers(0, 2**40),
        community_id=text(8),
        first_time=st.floats(allow_nan=True, allow_infinity=True),
        last_time=st.floats(allow_nan=True, allow_infinity=True),
        client=text(8),
        server=text(8),
        initiator_known=st.booleans(),
        client_packets=st.integers(0, 2**40),
        client_bytes=st.integers(0, 2**40),
        client_bytes_acked=st.integers(0, 2**40),
        server_packets=st.integers(0, 2**40),
        server_bytes=st.integers(0, 2**40),
        server_bytes_acked=st.integers(0, 2**40),
        client_state=text(8),
        server_state=text(8),
        conn_state=text(4),
        history=text(8),
        findings=st.lists(text(4), max_size=3),
        tunnel=text(8),
    )


RECORDS = flow_records(lambda size: st.text(max_size=size))
# Text as listings have it (addresses, states, ids), and in about one field in five, each
# character that matters to a CSV cell among it: quotes, commas, a formula's first characters,
# a tab, a space. (So that rows with one such field are common.)
CSV_LIKE_RECORDS = flow_records(
    lambda size: st.one_of(
        *[st.text(alphabet="09.:[]aF", max_size=size)] * 4,
        st.text(alphabet="09.:[]aF,=+-@\"' \t", max_size=size),
    )
)


@settings(max_examples=200, deadline=None)
@given(record=RECORDS)
def test_a_record_as_json_is_its_fields_in_order_then_duration_and_epochs(
    record: FlowRecord,
) -> None:
    """FlowRecord.to_dict, spelled out for speed, is what it was defined as: every field by
    dataclasses.asdict (times as text), then the duration and the epoch times, in that order."""
    expected = asdict(record)
    expected["duration"] = round(record.duration, 6)
    expected["first_time"] = iso_time(record.first_time)
    expected["last_time"] = iso_time(record.last_time)
    expected["first_epoch"] = record.first_time
    expected["last_epoch"] = record.last_time
    got = record.to_dict()
    # (Compared as JSON text: key order matters, and a NaN time is not equal to itself.)
    assert json.dumps(got) == json.dumps(expected)
    assert got["findings"] is not record.findings  # a copy, as asdict made


@pytest.mark.parametrize("strategy", [RECORDS, CSV_LIKE_RECORDS], ids=["any text", "csv-like"])
@settings(max_examples=300, deadline=None)
@given(data=st.data(), path=st.text(max_size=12))
def test_a_csv_row_is_every_cell_of_the_listing_made_safe(
    strategy: st.SearchStrategy[FlowRecord], data: st.DataObject, path: str
) -> None:
    """FlowsCsvReporter.write, spelled out for speed, writes what it was defined as: the
    capture, the listing's cells (_row) and initiator_known, each through csv_cell. (Records
    of any text mostly take its general way; csv-like ones mostly its plain rows.)"""
    import csv
    import io
    from types import SimpleNamespace

    spool = FlowSpool()
    spool.extend(data.draw(st.lists(strategy, max_size=3)))

    from tcpdiag.reporters.common import csv_cell
    from tcpdiag.reporters.flows import FlowsCsvReporter, _row

    report = SimpleNamespace(path=path, connections=spool)
    got = io.StringIO()
    FlowsCsvReporter().write(report, got)  # type: ignore[arg-type]
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    for record in spool:
        row = [path, *_row(record, mark_guess=False, human=False), record.initiator_known]
        writer.writerow([csv_cell(value) for value in row])
    assert got.getvalue() == expected.getvalue()


def _summarised(path: Path) -> list[SummarisedConnections]:
    """The connections a listing's fast path hands on together, tracking this capture."""
    table = FlowTable(zeek=True, batch_held_syns=True)
    with CaptureReader(str(path)) as reader:
        columns = map(ColumnDecoder(Decoder()).decode, reader.chunks())
        retired = FastPathTracker(table, summaries_together=True).track(columns)
        return [r for r in retired if isinstance(r, SummarisedConnections)]


@pytest.fixture(scope="module")
def mixed_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated busy capture with half its client hosts on IPv6, every frame VLAN-tagged."""
    import importlib.util
    import sys

    bench = Path(__file__).resolve().parent.parent / "bench" / "make_capture.py"
    spec = importlib.util.spec_from_file_location("make_capture", bench)
    assert spec is not None and spec.loader is not None
    make_capture = importlib.util.module_from_spec(spec)
    sys.modules["make_capture"] = make_capture
    spec.loader.exec_module(make_capture)
    path = tmp_path_factory.mktemp("mixed") / "mixed.pcap"
    make_capture.generate(20_000, path, seed=3, knobs=make_capture.Knobs(ipv6=0.5, vlan=7))
    return path


def test_records_of_summarised_connections_are_those_of_their_connections(
    mixed_capture: Path,
) -> None:
    """FlowRecord.summarised makes, without the connections, the records from_connection
    makes of them (IPv4 and IPv6 alike), in the same order."""
    together = _summarised(mixed_capture)
    records = [r for listed in together for r in FlowRecord.summarised(listed)]
    expected = [
        r for listed in together for conn in listed.connections()
        for r in FlowRecord.from_connection(conn)
    ]  # fmt: skip
    assert records == expected
    assert len(records) > 1000
    assert {r.client[0] == "[" for r in records} == {True, False}  # both families listed
    assert {r.client_state for r in records} == {"TIME-WAIT", "CLOSED"}  # either side first


def test_summarised_connections_tell_the_quality_and_the_scans_nothing(
    mixed_capture: Path,
) -> None:
    """Why analyze.Pipeline takes the connections handed on together without observing each
    (CaptureQuality.observe_connection, ScanDetector.observe): it would change nothing."""
    quality, scans = CaptureQuality(), ScanDetector()
    before = asdict(quality), scans.summaries(), scans.floods()
    count = 0
    for listed in _summarised(mixed_capture):
        for conn in listed.connections():
            quality.observe_connection(conn)
            scans.observe(conn)
            count += 1
    assert count > 1000
    assert (asdict(quality), scans.summaries(), scans.floods()) == before


def _tabulated(widest: list[str], rows: list[list[object]], tablefmt: str, first: bool) -> str:
    """A piece of the flows table as tabulate makes it (see reporters.flows._table_piece)."""
    from tabulate import tabulate

    from tcpdiag.reporters.flows import COLUMNS

    text = tabulate([widest, *rows], headers=COLUMNS, tablefmt=tablefmt, disable_numparse=True)
    header, separator, _widest, body = text.split("\n", 3)
    return f"\n{header}\n{separator}\n{body}" if first else f"\n{body}"


def _widest(rows: list[list[object]]) -> list[str]:
    from tcpdiag.reporters.flows import COLUMNS

    widest = ["" for _ in COLUMNS]
    for row in rows:
        for column, cell in enumerate(map(str, row)):
            if len(cell) > len(widest[column]):
                widest[column] = cell
    return widest


@pytest.mark.parametrize("tablefmt", ["simple", "github"])
@pytest.mark.parametrize("strategy", [RECORDS, CSV_LIKE_RECORDS], ids=["any text", "csv-like"])
@settings(max_examples=200, deadline=None)
@given(data=st.data(), first=st.booleans(), guess=st.booleans())
def test_a_table_of_plain_cells_is_what_tabulate_makes(
    tablefmt: str, strategy: st.SearchStrategy[FlowRecord], data: st.DataObject, first: bool,
    guess: bool,
) -> None:  # fmt: skip
    """reporters.flows._plain_piece, the table without tabulate, gives tabulate's text
    wherever it gives any (and a piece of ordinary text is always plain: see below)."""
    from tcpdiag.reporters.flows import _plain_piece, _row

    records = data.draw(st.lists(strategy, min_size=1, max_size=4))
    rows = [_row(record, mark_guess=guess) for record in records]
    widest = _widest(rows)
    plain = _plain_piece(widest, rows, tablefmt, first)
    if plain is not None:
        assert plain == _tabulated(widest, rows, tablefmt, first)


@pytest.mark.parametrize("tablefmt", ["simple", "github"])
def test_a_listing_of_ordinary_flows_is_tabled_without_tabulate(
    mixed_capture: Path, tablefmt: str
) -> None:
    """The flows of a busy capture (both address families, every duration unit but hours)
    are plain cells: made without tabulate, as tabulate makes them."""
    from tcpdiag.reporters.flows import _plain_piece, _row

    records = [r for listed in _summarised(mixed_capture) for r in FlowRecord.summarised(listed)]
    rows = [_row(record) for record in records[:3000]] + [
        _row(replace(records[0], first_time=0.0, last_time=seconds, initiator_known=False))
        for seconds in (0.0, 2e-6, 0.25, 3.5, 125.0)
    ]
    widest = _widest(rows)
    for first in (True, False):
        plain = _plain_piece(widest, rows, tablefmt, first)
        assert plain is not None
        assert plain == _tabulated(widest, rows, tablefmt, first)


@pytest.mark.parametrize("tablefmt", ["simple", "github"])
@pytest.mark.parametrize(
    "cell", [" wide" * 5, "wide " * 5, "wi  de" * 5, "wide|" * 5, "| wide" * 5, "µs" * 10]
)
def test_a_table_with_space_at_the_edge_of_a_cell_is_what_tabulate_makes(
    tablefmt: str, cell: str
) -> None:
    """tabulate strips the ends of each cell (and measures it stripped): a cell with a space
    at either end, in any column, the widest of it or not, is not taken for plain. (The
    cells are wider than any header, so that they set their column's width.)"""
    from tcpdiag.reporters.flows import COLUMNS, _plain_piece

    for column in range(len(COLUMNS)):
        for other in ("x", "a much wider cell than the others"):
            rows: list[list[object]] = [[other] * len(COLUMNS), ["y"] * len(COLUMNS)]
            rows[1][column] = cell
            widest = _widest(rows)
            plain = _plain_piece(widest, rows, tablefmt, True)
            assert plain is None or plain == _tabulated(widest, rows, tablefmt, True)


def _retired_syns(
    rng: np.random.Generator, first_id: int, count: int, times: np.ndarray, zeek: bool
) -> RetiredSyns:
    """Bare SYNs retired together, as the compact store gives them (tcpdiag.attempts)."""
    from tcpdiag.attempts import SynColumns

    rows = {
        "frame": np.arange(first_id, first_id + count, dtype=np.int64),
        "conn_id": np.arange(first_id, first_id + count, dtype=np.int64),
        "time": times.astype(np.float64),
        "src": rng.integers(0, 2**32, count, dtype=np.uint32),
        "sport": rng.integers(0, 2**16, count, dtype=np.uint16),
        "dst": rng.integers(0, 2**32, count, dtype=np.uint32),
        "dport": rng.integers(0, 2**16, count, dtype=np.uint16),
    }
    return RetiredSyns(SynColumns(rows, []), zeek)


def _closed_record(conn_id: int, first_time: float) -> FlowRecord:
    return FlowRecord(
        conn_id, f"1:r{conn_id}", first_time, first_time + 1, "10.0.0.1:1", "10.0.0.2:2", True,
        3, 10, 10, 2, 0, 0, "CLOSED", "CLOSED", "SF", "ShAF",
    )  # fmt: skip


def _csv(spool: FlowSpool, path: str = "cap.pcap") -> str:
    import io
    from types import SimpleNamespace

    from tcpdiag.reporters.flows import FlowsCsvReporter

    out = io.StringIO()
    FlowsCsvReporter().write(SimpleNamespace(path=path, connections=spool), out)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
@pytest.mark.parametrize("in_order", [True, False], ids=["blocks in order", "blocks overlapping"])
@pytest.mark.parametrize("seed", range(6))
def test_a_floods_syns_are_listed_in_their_place_as_their_records(
    seed: int, in_order: bool, zeek: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FlowSpool.extend_unanswered keeps a flood's bare SYNs as numbers, a few rows in memory
    and the rest on disk, and lists them merged among the other records in runs: the listing
    (every row, its place, its findings), its CSV (written from the numbers) and the spool
    sent to another process are those of their FlowRecords spooled one by one. Times tie
    (across records and SYNs too), blocks may overlap, and one time is no calendar's (its CSV
    row is written the general way)."""
    import pickle
    from types import SimpleNamespace

    import tcpdiag.flows as flows_module
    from tcpdiag.flows import UnansweredRun

    monkeypatch.setattr(flows_module, "SYN_ROWS_AT_ONCE", 3)
    rng = np.random.default_rng(seed)
    bulk, reference = FlowSpool(memory_limit=5, fan_in=2), FlowSpool(memory_limit=5, fan_in=2)
    bulk.syn_memory_rows = 7
    next_id, start = 1, 0.0
    for step in range(14):
        count = int(rng.integers(1, 9))
        if step == 0 or rng.random() < 0.5:
            if in_order:  # each block after the one before
                times = np.round(start + rng.random(count) * 1.9, 1)
                start += 2
            else:
                times = np.round(rng.random(count) * 20, 1)
            if step == 0:
                times[0] = -1e300  # (iso_time: "-1000...000.000000", a formula's start)
            syns = _retired_syns(rng, next_id, count, times, zeek)
            bulk.extend_unanswered(syns)
            reference.extend_in_parts(FlowRecord.unanswered(syns))
            assert bulk._syn_held < bulk.syn_memory_rows, "the rest on disk"
        else:
            times = np.round(rng.random(count) * 30, 1).tolist()
            records = [_closed_record(next_id + k, t) for k, t in enumerate(times)]
            bulk.extend(records)
            reference.extend([replace(r) for r in records])
        next_id += count
    syn_ids = [r.conn_id for r in reference if r.client_packets == 1 and r.server_packets == 0]
    record_id = next(r.conn_id for r in reference if r.history == "ShAF")
    # Findings about a record, then also (a flood's SYN has none, but were there one) about a
    # SYN: its block is listed as records, each with its findings.
    for about in ([record_id], [record_id, syn_ids[len(syn_ids) // 2]]):
        for spool in (bulk, reference):
            found = [SimpleNamespace(conn_id=c, time=0.0, id=f"F{k}") for k, c in enumerate(about)]
            spool.list_findings(found)  # type: ignore[arg-type]
        expected = [asdict(r) for r in reference]
        assert len(bulk) == len(reference) == len(expected)
        assert sum(1 for r in expected if r["findings"]) == len(about)
        for spool in (bulk, pickle.loads(pickle.dumps(bulk))):
            assert [asdict(r) for r in spool] == expected
            assert _csv(spool) == _csv(reference)
        runs = [item for item in bulk.listing() if type(item) is UnansweredRun]
        assert all(len(run) for run in runs)
        in_runs = len(syn_ids) if in_order and len(about) == 1 else 0
        assert sum(map(len, runs)) == in_runs
    assert bulk._syn_in_order == in_order


def test_a_floods_syns_stay_in_memory_when_the_temporary_directory_is_full() -> None:
    """As the spool's other rows: a disk that fills keeps every SYN row from then on in
    memory, says so, and lists them all, those written before it filled from disk."""
    import errno

    class Filled:
        """The spool's file, once the disk is full: what was written reads back; no write
        succeeds."""

        def __init__(self, file: Any) -> None:
            self._file = file

        def __getattr__(self, name: str) -> Any:
            return getattr(self._file, name)

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    rng = np.random.default_rng(5)
    bulk, reference = FlowSpool(), FlowSpool()
    bulk.syn_memory_rows = 4
    blocks = [_retired_syns(rng, 1 + 10 * k, 3, np.arange(3.0) + 10 * k, True) for k in range(6)]
    for k, syns in enumerate(blocks):
        if k == 3:  # (two blocks written: the first spill came at 6 rows held)
            assert len(bulk._syn_on_disk) == 2 and not bulk.spill_failed
            bulk._syn_file = Filled(bulk._syn_file)  # type: ignore[assignment]
        bulk.extend_unanswered(syns)
        reference.extend_in_parts(FlowRecord.unanswered(syns))
    assert bulk.spill_failed.startswith("connections kept in memory: No space")
    assert len(bulk._syn_on_disk) == 2 and len(bulk._syn_blocks) == 4
    assert [asdict(r) for r in bulk] == [asdict(r) for r in reference]
    assert len(bulk) == 18
