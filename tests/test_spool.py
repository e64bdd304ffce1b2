"""Sorted spools (tcpdiag.spool): findings and `tcpdiag flows`'s connections come back in order,
numbered and with their findings, while memory holds a bounded number of them, however many."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from flowbuilder import Capture, Conversation, FullDisk, findings, write_pcap
from typer.testing import CliRunner

from tcpdiag import flows as flows_module
from tcpdiag import spool as spool_module
from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.cli import app
from tcpdiag.detect import RuleEngine
from tcpdiag.events import Evidence
from tcpdiag.findings import Cause, Finding
from tcpdiag.flows import FlowRecord, FlowSpool
from tcpdiag.packets import ACK, RST, SYN
from tcpdiag.reporters import flows as flows_reporter
from tcpdiag.reporters.json_report import encode_finding, finding_dict, line_head
from tcpdiag.reporters.jsontext import json_text
from tcpdiag.rules import load_rules
from tcpdiag.spool import FindingSpool, SortedSpool

ENGINE = RuleEngine(load_rules())


@dataclasses.dataclass(slots=True)
class Item:
    """A spooled item that counts how many of its kind are alive."""

    key: int
    serial: int
    note: str = ""
    alive: ClassVar[int] = 0
    most: ClassVar[int] = 0

    def __post_init__(self) -> None:
        Item.alive += 1
        Item.most = max(Item.most, Item.alive)

    def __del__(self) -> None:
        Item.alive -= 1


def _item_key(item: Item) -> int:
    return item.key


def test_a_spool_lists_thousands_in_order_holding_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Like a stable sort, whatever the number of runs on disk; and the items alive at once,
    while spooling and while reading, stay bounded: the pending ones, and a block per run,
    with at most fan_in - 1 runs per level (levels grow with the log of the count)."""
    limit, count = 32, 10000
    rng = random.Random(5)
    keys = [rng.randrange(500) for _ in range(count)]  # many ties: stability
    spool = SortedSpool(Item, _item_key, memory_limit=limit, fan_in=4)  # several levels
    Item.alive = Item.most = 0
    for serial, key in enumerate(keys):
        spool.extend([Item(key, serial, note="x" * (serial % 7))])
    levels, block = len(spool._files), limit // 4
    assert levels == 5, "runs of 32, 128, 512, 2048 and 8192 items"
    assert len(spool._runs) <= 3 * levels
    bound = limit + 3 * levels * block + block
    assert Item.most <= bound, "spooling holds the pending items and a block per run merged"
    assert len(spool) == count
    Item.most = Item.alive
    expected = sorted(range(count), key=lambda serial: keys[serial])
    for _ in range(2):  # read again: the same
        got = [(item.key, item.serial, item.note) for item in spool]
        assert got == [(keys[s], s, "x" * (s % 7)) for s in expected]
    assert Item.most - Item.alive <= bound, "reading holds a block per run"
    spool.close()
    assert list(spool) == []


def test_a_spool_pickles_with_its_items_in_order() -> None:
    """Sent to another process (tcpdiag.batch), a spool travels with every item, in memory."""
    spool = SortedSpool(Item, _item_key, memory_limit=4)
    spool.extend(Item(key, serial) for serial, key in enumerate([5, 3, 9, 3, 1, 7, 2, 8, 3]))
    assert spool._runs
    copy = pickle.loads(pickle.dumps(spool))
    assert not copy._runs and len(copy) == 9
    assert [(i.key, i.serial) for i in copy] == [(i.key, i.serial) for i in spool]


def _rst_capture(connections: int) -> Capture:
    cap = Capture()
    for i in range(connections):
        conv = Conversation(cap, client=("10.0.0.1", 30000 + i))
        conv.handshake()
        conv.data("c", 10)
        conv.rst("s", dt=1.0)
    return cap


def test_finding_ids_with_skips_do_not_depend_on_the_memory_limit() -> None:
    made = findings(_rst_capture(40))
    random.Random(1).shuffle(made)

    def ids(limit: int) -> list[tuple[str, float]]:
        spool = FindingSpool(memory_limit=limit)
        for number, finding in enumerate(made):
            if number % 3:
                spool.extend([finding])
            else:
                spool.skip([finding])
        return [(f.id, f.time) for f in spool]

    assert ids(2) == ids(1000)
    assert [int(i[1:]) for i, _ in ids(2)] == sorted(int(i[1:]) for i, _ in ids(2))


def _record(conn_id: int, first: float, last: float) -> FlowRecord:
    return FlowRecord(
        conn_id, "1:x", first, last, "10.0.0.1:1", "10.0.0.2:2", True, 1, 0, 0, 1, 0, 0,
        "", "", "S0", "S", [],
    )  # fmt: skip


@pytest.mark.parametrize("limit", [1, 2, 1000])
def test_findings_go_to_the_row_of_their_time_or_else_the_last(limit: int) -> None:
    """Zeek split connection 7 into three rows; a finding is listed on the first row whose
    span holds its time, one outside every span on the last row."""
    flows = FlowSpool(memory_limit=limit)
    flows.add([_record(7, 10.0, 12.0), _record(7, 20.0, 22.0), _record(7, 30.0, 32.0)], 4)
    flows.add([_record(3, 15.0, 16.0)], 1)
    flows.add([_record(5, 11.0, 40.0)], 0)
    finding = findings(_rst_capture(1))[0]
    found = [
        dataclasses.replace(finding, conn_id=7, time=21.0, id="F1"),
        dataclasses.replace(finding, conn_id=7, time=25.0, id="F2"),  # between rows: last
        dataclasses.replace(finding, conn_id=3, time=15.5, id="F3"),
        dataclasses.replace(finding, conn_id=7, time=11.0, id="F4"),
        dataclasses.replace(finding, conn_id=7, time=31.0, id="F5"),
    ]
    flows.list_findings(found)
    for _ in range(2):
        listed = [(r.conn_id, r.first_time, r.findings) for r in flows]
        assert listed == [
            (7, 10.0, ["F4"]), (5, 11.0, []), (3, 15.0, ["F3"]), (7, 20.0, ["F1"]),
            (7, 30.0, ["F2", "F5"]),
        ]  # fmt: skip


def _varied_capture(connections: int) -> Capture:
    """Healthy, reset, refused-and-retried (Zeek splits those rows) and unanswered
    connections, interleaved in time."""
    cap = Capture()
    for i in range(connections):
        conv = Conversation(cap, client=(f"10.0.{i // 200}.{i % 200 + 1}", 40000 + i))
        kind = i % 4
        if kind == 0:
            conv.handshake()
            conv.data("c", 100)
            conv.data("s", 300)
            conv.close("c")
        elif kind == 1:
            conv.handshake()
            conv.data("c", 10)
            conv.rst("s", dt=0.5)
        elif kind == 2:  # refused, retried with the same ISN after Zeek's 5 s
            for _ in range(2):
                conv.send("c", SYN, seq=1000, advance=False)
                conv.send("s", RST | ACK, seq=0, ack=1001, advance=False)
                cap.time += 6
        else:
            conv.send("c", SYN)
        if i % 50 == 49:
            cap.time += 0.2
    for i in range(0, connections, 7):  # late ACKs: connections retire out of order
        Conversation(cap, client=("10.1.0.1", 50000 + i)).send("c", ACK)
    return cap


FORMATS = ("table", "markdown", "json", "jsonl", "csv", "zeek")


def _flows_outputs(path: Path, split: bool) -> dict[str, str]:
    runner = CliRunner()
    outputs = {}
    for fmt in FORMATS:
        extra = ["--zeek-split"] if split else []
        result = runner.invoke(app, ["flows", "-f", fmt, "--engine", "native", *extra, str(path)])
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.stdout
    return outputs


def _set_defaults(cls: type, monkeypatch: pytest.MonkeyPatch, *defaults: int) -> None:
    """The spools a report makes get these memory limit (and fan-in)."""
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]
    monkeypatch.setattr(init, "__defaults__", defaults)


@pytest.mark.parametrize("split", [False, True], ids=["tcpdiag", "zeek-split"])
def test_flows_are_the_same_listed_through_small_spools(
    split: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `tcpdiag flows` format: the same bytes when records and findings go to disk in
    runs of a few (several levels of runs) and the table is printed a few rows at a time, as
    when everything fits in memory; and the findings sit on the rows the whole-list rule puts
    them on."""
    path = tmp_path / "many.pcap"
    write_pcap(_varied_capture(600), path)
    whole = _flows_outputs(path, split)
    report = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True, zeek_split=split))
    records = list(report.connections)
    assert len(records) > 600 and len(report.connections._runs) == 0  # all in memory
    assert _listed_by_the_whole_list_rule(records, list(report.findings))
    assert sum(1 for r in records if r.findings) > 100
    rows_of: dict[int, int] = {}
    for record in records:
        rows_of[record.conn_id] = rows_of.get(record.conn_id, 0) + 1
    split_with_findings = any(
        rows > 1 and any(r.findings for r in records if r.conn_id == c)
        for c, rows in rows_of.items()
    )
    assert split_with_findings != split, "rows of one connection, or each a connection"

    # (Fan-in 2: records come mostly in order and continue runs (SortedSpool._spill), so they
    # make fewer runs than their count alone would.)
    _set_defaults(FlowSpool, monkeypatch, 3, 2)
    _set_defaults(FindingSpool, monkeypatch, 2, None)
    monkeypatch.setattr(flows_reporter, "TABLE_ROWS", 7)
    small = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True, zeek_split=split))
    assert len(small.connections._files) >= 3, "records went up levels of runs"
    assert [dataclasses.astuple(r) for r in small.connections] == [
        dataclasses.astuple(r) for r in records
    ]
    assert _flows_outputs(path, split) == whole


@pytest.mark.parametrize("held", [20, 1_000_000], ids=["evicted early", "retired at the end"])
def test_a_floods_syns_kept_as_numbers_list_as_their_records(
    held: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `tcpdiag flows` format: the same bytes whether the bare SYNs nothing answered
    (retired together, RetiredSyns) are kept as numbers and listed in runs, or made into
    FlowRecords one by one and spooled as any; with findings on the rows around them, rows
    and SYNs on disk in small parts, and SYNs evicted early from a small store (several blocks
    among the other rows) or retired at the end (one block)."""
    from tcpdiag.flows import UnansweredRun
    from tcpdiag.reporters.base import render
    from tcpdiag.reporters.flows import (
        FlowsCsvReporter,
        ZeekConnLogReporter,
        flows_json_reporter,
        flows_table_reporter,
    )
    from tcpdiag.reporters.machine import JsonLinesReporter

    path = tmp_path / "flood.pcap"
    cap = _varied_capture(400)
    for i in range(300):  # a flood among them
        Conversation(cap, client=(f"10.9.{i // 250}.{i % 250 + 1}", 30000 + i)).send("c", SYN)
        cap.time += 0.001
    write_pcap(cap, path)
    reporters = {
        "table": flows_table_reporter, "markdown": lambda: flows_table_reporter(markdown=True),
        "json": flows_json_reporter, "jsonl": lambda: JsonLinesReporter(flows=True),
        "csv": FlowsCsvReporter, "zeek": ZeekConnLogReporter,
    }  # fmt: skip
    options = AnalysisOptions(keep_flows=True, zeek_split=False, max_held_syns=held)

    def outputs() -> tuple[dict[str, str], Any]:
        report = analyze_capture(path, ENGINE, options)
        return {name: render(make(), [report]) for name, make in reporters.items()}, report

    _set_defaults(FlowSpool, monkeypatch, 9, 2)
    monkeypatch.setattr(flows_module, "SYN_ROWS_AT_ONCE", 16)
    monkeypatch.setattr(flows_module, "SYN_ROWS_IN_MEMORY", 40)
    bulk, report = outputs()
    blocks = len(report.connections._syn_on_disk) + len(report.connections._syn_blocks)
    assert (blocks > 5) if held == 20 else (blocks == 1)
    assert report.connections._syn_on_disk, "SYN rows went to disk"
    runs = [item for item in report.connections.listing() if type(item) is UnansweredRun]
    assert sum(map(len, runs)) >= 400, "the flood's SYNs and the unanswered ones, in runs"
    assert sum(1 for r in report.connections if r.findings) > 100

    def one_by_one(self: FlowSpool, syns: Any) -> None:
        self.extend_in_parts(FlowRecord.unanswered(syns))

    monkeypatch.setattr(FlowSpool, "extend_unanswered", one_by_one)
    expected, report = outputs()
    assert not report.connections._syn_on_disk and not report.connections._syn_blocks
    assert bulk == expected


def _listed_by_the_whole_list_rule(records: list[FlowRecord], findings: list[Any]) -> bool:
    """The rule as it was with every record in a list: each finding on the first row of its
    connection whose span holds its time, else on the connection's last row."""
    expected: dict[int, list[str]] = {id(r): [] for r in records}
    for finding in findings:
        rows = [r for r in records if r.conn_id == finding.conn_id]
        row = next((r for r in rows if r.first_time <= finding.time <= r.last_time), rows[-1])
        expected[id(row)].append(finding.id)
    return all(r.findings == expected[id(r)] for r in records)


def test_a_full_temporary_directory_keeps_every_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.pcap"
    write_pcap(_varied_capture(80), path)
    expected = list(analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True)).connections)
    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", FullDisk)
    _set_defaults(FlowSpool, monkeypatch, 4, 4)
    report = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True))
    assert report.connections.spill_failed.startswith("connections kept in memory: No space")
    assert any("connections kept in memory" in w for w in report.warnings)
    assert [dataclasses.astuple(r) for r in report.connections] == [
        dataclasses.astuple(r) for r in expected
    ]


@pytest.mark.parametrize(
    "disorder, count", [(0.0, 5000), (0.0, 4992), (0.01, 5000), (0.3, 5000)]
)  # (4,992: a multiple of the limit, nothing left in memory at the end)
def test_items_in_order_make_one_run_and_any_disorder_stays_sorted(
    disorder: float, count: int
) -> None:
    """Items that come in order (findings as connections retire, mostly) continue the newest
    run instead of starting one: a stream in order is one run on disk, never merged, read
    straight; an item out of order starts a run again. Either way: a stable sort, and the
    items alive while reading bounded as before."""
    rng = random.Random(11)
    limit = 32
    keys = sorted(rng.randrange(2000) for _ in range(count))  # ties: stability
    for i in range(count):
        if rng.random() < disorder:
            keys[i] = rng.randrange(2000)
    spool = SortedSpool(Item, _item_key, memory_limit=limit, fan_in=4)
    Item.alive = Item.most = 0
    for serial, key in enumerate(keys):
        spool.extend([Item(key, serial)])
    if disorder == 0.0:
        assert len(spool._runs) == 1 and len(spool._files) == 1, "one run, never merged"
        assert len(spool._pending) == count % limit
    Item.most = Item.alive
    expected = sorted(range(count), key=lambda serial: keys[serial])
    for _ in range(2):
        assert [(i.key, i.serial) for i in spool] == [(keys[s], s) for s in expected]
    bound = limit + 3 * len(spool._files) * (limit // 4) + limit // 4
    assert Item.most - Item.alive <= bound, "reading holds a block per run"
    copy = pickle.loads(pickle.dumps(spool))
    assert [(i.key, i.serial) for i in copy] == [(keys[s], s) for s in expected]
    spool.close()
    assert list(spool) == []


SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _sample_findings() -> list[Finding]:
    """Every sample's findings, in one list (evidence of one to many packets, with and without
    causes and alternatives)."""
    made: list[Finding] = []
    for path in sorted(SAMPLES.glob("*.pcap")):
        made.extend(analyze_capture(path, ENGINE).findings)
    assert any(f.alternatives for f in made) and any(f.cause is None for f in made)
    assert any(len(f.evidence) > 2 for f in made)
    return made


def test_findings_come_back_from_disk_whole() -> None:
    """A finding's evidence and causes go to disk laid out flat (_finding_to_disk); each comes
    back equal, field for field, and of its own type."""
    made = _sample_findings()
    shuffled = [dataclasses.replace(f, id="") for f in made]
    random.Random(5).shuffle(shuffled)
    spool = FindingSpool(memory_limit=2)
    for finding in shuffled:
        spool.extend([finding])
    # On disk, in runs merged back: several, or runs already merged into one of a higher level
    # (how many of each depends on how many findings the samples make).
    assert len(spool._runs) > 1 or spool._runs[0][0] > 0
    back = list(spool)
    expected = sorted(shuffled, key=lambda f: (f.time, f.frames[:1]))
    # (Reading numbers the findings, those still in memory in place: ids aside.)
    unnumbered = [dataclasses.replace(f, id="") for f in expected]
    assert [dataclasses.replace(f, id="") for f in back] == unnumbered
    assert all(type(e) is Evidence for f in back for e in f.evidence)
    assert all(type(c) is Cause for f in back for c in [*f.alternatives, f.cause] if c)
    assert sum(len(f.alternatives) for f in back) == sum(len(f.alternatives) for f in made)
    spool.close()


def test_a_spool_that_encodes_gives_the_json_the_reports_wrote() -> None:
    """With `encode`, the spool keeps each finding's JSON: read back in report order with the
    same ids, it is the text json_text(finding_dict(...)) makes of the findings of a spool
    that keeps them as they are, through runs on disk and across a process boundary."""
    made = _sample_findings()
    random.Random(7).shuffle(made)
    plain = FindingSpool(memory_limit=3)
    encoding = FindingSpool(memory_limit=3, encode=encode_finding)
    for finding in made:
        plain.extend([dataclasses.replace(finding, id="")])
        encoding.extend([dataclasses.replace(finding, id="")])
    expected = [(f.id, json_text(finding_dict(f))) for f in plain]
    assert len(encoding._runs) > 1
    got = [(f.id, f.json()) for f in encoding.encoded(encode_finding)]
    assert got == expected
    # a spool of findings as they are encodes them when asked the same way
    assert [(f.id, f.json()) for f in plain.encoded(encode_finding)] == expected
    assert [dataclasses.astuple(d) for d in encoding.digests()] == [
        dataclasses.astuple(d) for d in plain.digests()
    ]
    with pytest.raises(TypeError):
        iter(encoding)
    # as a worker hands them over (tcpdiag.batch.FileResult)
    moved = pickle.loads(pickle.dumps(encoding.in_order()))
    again = FindingSpool(memory_limit=3, encode=encode_finding)
    again.extend(moved)
    assert [(f.id, f.json()) for f in again.encoded(encode_finding)] == expected
    with pytest.raises(TypeError):
        FindingSpool().extend(moved)


def test_an_encoded_finding_is_the_json_of_any_values() -> None:
    """Facts JSON cannot hold as orjson writes them (an integer beyond 64 bits, a float that is
    not finite), text beyond ASCII and a fact named like the finding's own keys: the encoded
    finding is still exactly json_text(finding_dict(...))."""
    (base, *_) = analyze_capture(SAMPLES / "refused_no_listener.pcap", ENGINE).findings
    odd = {"id": "", "facts": 1, "big": 2**70, "nan": float("nan"), "name": "caf\u00e9 \u202e"}
    for facts in ({**base.facts, **odd}, {"name": "\u00e9"}, {"big": -(2**80)}, {}):
        for finding in (
            dataclasses.replace(base, facts=facts, id="F3"),
            dataclasses.replace(base, facts=facts, explanation='"id":"","facts": \u00e9'),
        ):
            assert encode_finding(finding).json() == json_text(finding_dict(finding))


def test_json_lines_keep_their_text_for_any_capture_name(tmp_path: Path) -> None:
    """`analyze -f jsonl`, whose findings wait as JSON: each finding line is the record the
    reporter made of a whole finding before (its head, the finding, the aggregate it went
    to), for a plain capture name and for one in other characters; aggregated or not."""
    for name in ("plain.pcap", "caf\u00e9 \u202egpj.pcap"):
        path = tmp_path / name
        path.write_bytes((SAMPLES / "mixed.pcap").read_bytes())
        for over in ("100", "1"):
            result = CliRunner().invoke(app, ["analyze", "-f", "jsonl", "--aggregate-over", over,
                                         str(path)])  # fmt: skip
            assert result.exit_code in (0, 1), result.output
            lines = [json.loads(line) for line in result.stdout.splitlines()]
            written = [line for line in result.stdout.splitlines() if '"type":"finding"' in line]
            report = analyze_capture(path, ENGINE)
            head = line_head("finding", str(path))
            aggregated = {d["id"]: d.get("aggregate") for d in lines if d["type"] == "finding"}
            assert (over == "1") == any(aggregated.values())
            expected = []
            for finding in report.findings:
                record = {**head, **finding_dict(finding)}
                if aggregated[finding.id]:
                    record["aggregate"] = aggregated[finding.id]
                expected.append(json_text(record))
            assert written == expected and len(written) > 2


def test_findings_for_a_flow_listing_stay_findings() -> None:
    """The JSON form is for reports of findings: with keep_flows (the listing reads each
    finding's connection) the spool keeps findings as they are, and the flows name them."""
    options = AnalysisOptions(keep_flows=True, finding_encoder=encode_finding)
    report = analyze_capture(SAMPLES / "mixed.pcap", ENGINE, options)
    assert report.findings.encode is None
    ids = [f.id for f in report.findings]
    assert ids and sorted(i for r in report.connections for i in r.findings) == sorted(ids)
    encoded = analyze_capture(
        SAMPLES / "mixed.pcap", ENGINE, AnalysisOptions(finding_encoder=encode_finding)
    )
    assert encoded.findings.encode is encode_finding
    assert [f.id for f in encoded.findings.encoded(encode_finding)] == ids


@pytest.mark.parametrize("limit", [3, 8192])
def test_many_rows_go_to_the_listing_in_parts_within_its_bound(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FlowSpool.extend_in_parts (a flood's rows, the rows listed from summaries): every row,
    in the listing's order, handed on in parts no bigger than the spool holds in memory."""
    import tcpdiag.flows as flows_module

    monkeypatch.setattr(flows_module, "_SLICE", 5)
    flows = FlowSpool(memory_limit=limit)
    parts: list[int] = []
    extend = flows.extend
    monkeypatch.setattr(flows, "extend", lambda part: (parts.append(len(part)), extend(part)))
    rows = [_record(conn_id, 100.0 - conn_id, 100.0) for conn_id in range(23)]
    flows.extend_in_parts(iter(rows))
    assert sum(parts) == 23 and max(parts) == min(limit, 5)
    assert [r.conn_id for r in flows] == list(range(22, -1, -1))
