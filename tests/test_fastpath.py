"""The fast path (batch reading, array decoding, bulk recognition of uneventful connections,
bare SYNs held in bulk, live connections continued in bulk) reports exactly what the
reference path reports: every packet through Decoder and FlowTable.track.

Each comparison is of the whole report (findings with their ids, connection ids, evidence and
facts; counts; warnings), and is made with the production window sizes and with tiny windows,
so that connections straddle window boundaries. Tests that expect the bulk path to take some
connections check that it did, so none of them passes by never leaving the reference path.
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, write_pcap
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag import attempts, fastpath, tracker
from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder
from tcpdiag.detect import RuleEngine
from tcpdiag.filters import ConnectionFilter
from tcpdiag.packets import ACK, FIN, PSH, RST, SYN, TcpSegment
from tcpdiag.reader import CaptureError, CaptureReader, RawFrame
from tcpdiag.rules import load_rules
from tcpdiag.spool import FindingSpool

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.pcap"))
# Every file there (a script too: input that is no capture at all), but the bytecode Python may
# cache beside the fixtures' script, which would make the set depend on what ran before.
FIXTURES = sorted(
    p
    for p in (ROOT / "tests" / "data").rglob("*")
    if p.is_file() and "__pycache__" not in p.relative_to(ROOT).parts
)
ENGINE = RuleEngine(load_rules())


def _make_capture_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_capture", ROOT / "bench/make_capture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_capture"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated capture like the benchmark's (every failure category among thousands of
    healthy connections), small enough for the test suite."""
    path = tmp_path_factory.mktemp("busy") / "busy.pcap"
    _make_capture_module().generate(40_000, path, seed=7)
    return path


@pytest.fixture(params=["production windows", "tiny windows", "few objects per window"])
def windows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "tiny windows":
        monkeypatch.setattr(fastpath, "WINDOW_ROWS", 64)
        monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 256)
        # (and live connections continued in bulk in tiny parts, however short the run)
        monkeypatch.setattr(fastpath, "_CONTINUE_ROWS", 16)
        monkeypatch.setattr(fastpath, "_CONTINUE_MIN_ROWS", 1)
    elif request.param == "few objects per window":
        # Windows decided early because of the Packet objects they hold (ICMP errors, odd
        # frames), at any span.
        monkeypatch.setattr(fastpath, "WINDOW_MAX_OBJECTS", 3)
    return str(request.param)


class _Counting(fastpath.FastPathTracker):
    taken = 0
    held = 0  # bare SYNs handed to the table in bulk
    ended = 0  # attempts that ended at once, handed to the table at their last rows

    def track(self, batches: Any) -> Iterator[Any]:
        yield from super().track(batches)
        _Counting.taken += self.fast_connections
        _Counting.held += self.held_in_bulk
        _Counting.ended += self.ended_in_bulk


def _reports(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, int]:
    """(reference report, fast report, connections the bulk path took) as dicts."""
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False)).to_dict()
    _Counting.taken = _Counting.held = 0
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Counting)
    fast = analyze_capture(path, ENGINE, AnalysisOptions()).to_dict()
    return reference, fast, _Counting.taken


@pytest.mark.parametrize("path", SAMPLES + FIXTURES, ids=lambda p: p.name)
def test_same_report_on_every_sample_and_fixture(
    path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, fast, _ = _reports(path, monkeypatch)
    assert fast == reference


@pytest.mark.parametrize("listing", [False, True], ids=["analyze", "flows"])
def test_clean_connections_among_a_flood_are_taken_in_bulk(
    listing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clean connections that close early in a window full of lone SYNs (a flood's, each a
    group of one row, which _uneventful leaves out of its arrays): each is taken in bulk, its
    retirement check point being a row of the window, however few rows are kept."""
    cap = Capture()
    for k in range(60):
        talk = Conversation(cap, client=("10.7.1.1", 30000 + k), server=("10.9.0.2", 80))
        talk.handshake()
        talk.data("c", 100)
        talk.data("s", 500)
        talk.close("c")
    for k in range(3000):  # 30 s of lone SYNs, distinct 4-tuples
        lone = Conversation(cap, client=(f"100.64.{k // 250}.{k % 250}", 1024 + k))
        lone.send("c", SYN, dt=0.01)
    path = tmp_path / "clean-among-flood.pcap"
    write_pcap(cap, path)
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", 2048)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 2048)
    _same_both_ways(path, listing, monkeypatch)
    assert _Counting.taken >= 60


def _same_both_ways(path: Path, listing: bool, monkeypatch: pytest.MonkeyPatch) -> CaptureReport:
    """The capture analysed both ways (listing its connections too, or not) gives the same
    report, and the same listing; the reference's report. (_Counting counts the fast path's.)"""
    options = {"keep_flows": listing}
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    _Counting.taken = _Counting.held = _Counting.ended = 0
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Counting)
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    assert fast.to_dict() == reference.to_dict()
    if listing:
        assert [f.to_dict() for f in fast.connections] == [
            f.to_dict() for f in reference.connections
        ]
    return reference


def test_bulk_path_takes_the_healthy_connections_of_the_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # graceful_close is one clean connection; mixed has clean ones among failures.
    for name in ("graceful_close.pcap", "mixed.pcap"):
        reference, fast, taken = _reports(ROOT / "samples" / name, monkeypatch)
        assert fast == reference
        assert taken >= 1, name


def test_same_report_on_a_busy_capture(
    busy_capture: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, fast, taken = _reports(busy_capture, monkeypatch)
    assert fast == reference
    assert len(reference["findings"]) > 100  # failures of every kind are in it
    # With windows of the normal size most connections take the bulk path. (With tiny ones,
    # 256 rows at most, hardly any: this capture spans two seconds, and a connection is decided
    # only once the window reaches a close grace period past it.)
    if windows == "production windows":
        assert taken > 0.8 * reference["flows"]


# -- crafted cases at the edges of what the bulk path may take ----------------------------------


def _clean(cap: Capture, client: tuple[str, int], dt: float = 0.01) -> Conversation:
    conv = Conversation(cap, client=client, server=("10.9.0.1", 443))
    conv.send("c", SYN, options=LINUX_SYN, dt=dt)
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.send("c", ACK)
    conv.send("c", PSH | ACK, 300)
    conv.send("s", PSH | ACK, 1200)
    conv.send("c", ACK)
    conv.close("c")
    return conv


def _healthy(cap: Capture, count: int, start_port: int = 50000) -> None:
    for k in range(count):
        _clean(cap, ("10.1.0.1", start_port + k), dt=0.05)


def _compare(cap: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference, fast, taken = _reports(path, monkeypatch)
    assert fast == reference
    return taken


@pytest.mark.parametrize(
    "gap",
    [0.5, 4.9, 5.2, 9.0, 10.6, 12.0, 30.0],  # around one and two close grace periods
)
def test_reused_four_tuple_after_a_clean_close(
    gap: float, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _healthy(cap, 20)
    conv = _clean(cap, ("10.2.0.1", 40000))
    # The same 4-tuple again, `gap` seconds later: a new connection, a stray ACK, or a RST.
    conv.c.seq += 100_000
    conv.send("c", SYN, options=LINUX_SYN, dt=gap)
    conv.send("s", ACK, seq=conv.s.seq - 1)  # an old ACK, as from TIME-WAIT
    conv.rst("c", with_ack=False)
    _healthy(cap, 400, start_port=51000)
    assert _compare(cap, tmp_path, monkeypatch) > 0


@pytest.mark.parametrize("late", [0.2, 3.0, 6.0, 11.0])
def test_late_segment_after_a_clean_close(
    late: float, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _healthy(cap, 20)
    conv = _clean(cap, ("10.2.0.1", 40001))
    conv.send("s", FIN | ACK, seq=(conv.s.seq - 1), dt=late)  # a retransmitted FIN
    conv.send("c", ACK)
    _healthy(cap, 400, start_port=51000)
    assert _compare(cap, tmp_path, monkeypatch) > 0


@pytest.mark.parametrize(
    ("copied", "counted"),
    [
        ("last ACK", True),  # the close's last ACK captured twice (tests/fuzzing.py found it)
        ("handshake ACK after FIN", True),  # the same ACK again once the server has closed
        ("ACK mid-stream", False),  # in order: the table's in-order path takes it as an ACK
    ],
)
def test_a_segment_captured_twice_amid_clean_connections(
    copied: str, counted: bool, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same packet twice (same IP ID, numbers, flags and length: two capture points) is
    dropped and counted where the table takes it on its general path (the handshake, and from
    the first FIN on); the fast path leaves such a connection to the table, so that the
    reports agree."""
    cap = Capture()
    _healthy(cap, 20)
    conv = Conversation(cap, client=("10.2.0.1", 40002), server=("10.9.0.1", 443))
    conv.handshake()
    handshake_ack = cap.packets[-1]
    copies: list[tuple[Any, Any]] = []  # (copy, original)

    def copy(original: Any, after: float) -> None:
        cap.packets.append(replace(original, time=cap.time + after))
        copies.append((cap.packets[-1], original))

    if copied == "handshake ACK after FIN":
        conv.send("s", FIN | ACK)
        copy(handshake_ack, 0.001)
        conv.send("c", FIN | ACK, ack=conv.s.seq)
        conv.send("s", ACK)
    else:
        conv.send("c", PSH | ACK, 300)
        conv.send("s", PSH | ACK, 1200)
        conv.send("c", ACK)
        if copied == "ACK mid-stream":
            copy(cap.packets[-1], 0.0001)
            conv.send("s", PSH | ACK, 1200)
            conv.send("c", ACK)
        conv.close("c")
        if copied == "last ACK":
            copy(cap.packets[-1], 0.09)
    _healthy(cap, 400, start_port=51000)
    # Every packet its own IP ID, the copies their original's (and frames numbered anew).
    for number, seg in enumerate(cap.packets, 1):
        seg.frame, seg.ip_id = number, 1000 + number
    for duplicate, original in copies:
        duplicate.ip_id = original.ip_id
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference, fast, _ = _reports(path, monkeypatch)
    assert fast == reference
    warned = any("captured twice" in warning for warning in reference["warnings"])
    assert warned is counted


def test_connections_with_events_amid_clean_ones(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _healthy(cap, 10)
    # A retransmission, a keepalive probe, a RST after the close: none may be taken. (ICMP
    # errors about clean connections are in the busy capture; write_pcap writes TCP only.)
    retrans = Conversation(cap, client=("10.3.0.1", 40000))
    retrans.handshake()
    retrans.send("c", PSH | ACK, 100)
    retrans.send("c", PSH | ACK, 100, seq=retrans.c.seq - 100, dt=0.3)
    retrans.send("c", PSH | ACK, 100, seq=retrans.c.seq - 100, dt=0.6)
    retrans.send("s", ACK)
    retrans.close("s")
    _healthy(cap, 10, start_port=50100)
    probe = Conversation(cap, client=("10.3.0.2", 40000))
    probe.handshake()
    probe.send("c", ACK, seq=probe.c.seq - 1, dt=2.0)
    probe.send("s", ACK)
    probe.close("c")
    _healthy(cap, 10, start_port=50200)
    reset = _clean(cap, ("10.3.0.3", 40000))
    reset.rst("s", dt=0.5)
    _healthy(cap, 300, start_port=50400)
    assert _compare(cap, tmp_path, monkeypatch) > 0


def test_a_download_left_hanging_amid_clean_connections(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long download among clean connections whose client stops reading: its window
    closes and the server probes it until the capture ends (tcpdiag.hangs). Both paths report
    the one hang, however the download's segments were taken before."""
    cap = Capture()
    _healthy(cap, 10)
    hang = Conversation(cap, client=("10.3.0.9", 40000))
    hang.handshake()
    hang.send("c", PSH | ACK, 100)
    for k in range(60):
        hang.send("s", PSH | ACK, 1000)
        hang.send("c", ACK)
        _clean(cap, ("10.1.0.2", 51000 + k))
    hang.send("c", ACK, window=0)
    for k in range(3):
        hang.send("s", ACK, seq=hang.s.seq - 1, dt=0.2 * 2**k)
        hang.send("c", ACK, window=0)
        _healthy(cap, 20, start_port=52000 + 100 * k)
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference, fast, taken = _reports(path, monkeypatch)
    assert fast == reference and taken > 0
    [found] = reference["hangs"]
    assert (found["client"], found["reader"], found["probes"]) == ("10.3.0.9:40000", "client", 3)


def _rules_found(
    cap: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str]]:
    """The capture's (rule, client) of every finding, sorted, once both paths agree on the
    whole report and the bulk path took some of its connections."""
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference, fast, taken = _reports(path, monkeypatch)
    assert fast == reference and taken > 0
    return sorted((f["rule"], f["client"]) for f in reference["findings"])


def test_a_servers_fin_leaving_the_client_waiting_is_never_taken_in_bulk(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clean on the wire, yet a finding (premature_close): the server's FIN with the client's
    request unanswered, or before the client's new request on a half-closed connection; in
    the window where it happens, or after many windows of exchanges (a followed connection).
    A server that closes after its response, and a client that closes first, stay in bulk."""
    cap = Capture()
    _healthy(cap, 10)
    turned_away = Conversation(cap, client=("10.5.0.1", 40000), server=("10.9.0.1", 443))
    turned_away.handshake()
    turned_away.data("c", 80)
    turned_away.send("s", FIN | ACK, dt=0.3)
    turned_away.send("c", FIN | ACK, dt=0.0002)
    turned_away.send("s", ACK)
    _healthy(cap, 10, start_port=50100)
    stale = Conversation(cap, client=("10.5.0.2", 40000), server=("10.9.0.1", 443))
    stale.handshake()
    stale.data("c", 100)
    stale.data("s", 300)
    stale.send("s", FIN | ACK, dt=1.5)
    stale.send("c", ACK)
    stale.send("c", PSH | ACK, 80, dt=2.0)
    stale.send("c", FIN | ACK, dt=0.0001)
    stale.send("s", ACK)
    # A longer one, followed across windows (tiny ones): a request that the server dies on,
    # among other connections.
    killed = Conversation(cap, client=("10.5.0.3", 40000), server=("10.9.0.1", 443))
    killed.handshake()
    for k in range(12):
        _clean(cap, ("10.1.1.1", 52000 + k), dt=0.05)
    killed.data("c", 60)
    for k in range(12):
        _clean(cap, ("10.1.1.2", 52000 + k), dt=0.05)
    killed.send("s", FIN | ACK, dt=0.1)
    killed.send("c", FIN | ACK, dt=0.0002)
    killed.send("s", ACK)
    server_closes = Conversation(cap, client=("10.5.0.4", 40000), server=("10.9.0.1", 443))
    server_closes.handshake()
    server_closes.data("c", 80)
    server_closes.data("s", 900)
    server_closes.close("s")
    _healthy(cap, 300, start_port=50400)
    assert _rules_found(cap, tmp_path, monkeypatch) == [
        ("premature-close-request-unanswered", "10.5.0.1:40000"),
        ("premature-close-request-unanswered", "10.5.0.3:40000"),
        ("premature-close-stale-connection", "10.5.0.2:40000"),
    ]


def test_a_host_rejected_syn_and_a_front_ends_second_syn_ack_amid_clean_connections(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shapes of real traffic on both paths: an ICMP error a host sent itself about its own
    SYN (rejected by its firewall, never on the wire), and a SYN-cookie front end's second
    SYN-ACK (another ISN) before the client's ACK of the first, then data and a RST."""
    cap = Capture()
    _healthy(cap, 10)
    rejected = Conversation(cap, client=("10.4.0.1", 40000), server=("10.9.0.1", 443))
    syn = rejected.send("c", SYN, options=LINUX_SYN)
    cap.packets.remove(syn)
    rejected.icmp(syn, 3, 3, "10.4.0.1")
    _healthy(cap, 10, start_port=50100)
    cookies = Conversation(cap, client=("10.4.0.2", 40000), server=("10.9.0.1", 443))
    cookies.send("c", SYN, options=LINUX_SYN)
    first = cookies.send("s", SYN | ACK, options=LINUX_SYN)
    cookies.send("s", SYN | ACK, options=LINUX_SYN, seq=first.seq + 7_000_000)
    cookies.send("c", ACK)
    cookies.send("c", PSH | ACK, 300)
    cookies.send("s", PSH | ACK, 1200)
    cookies.rst("s", dt=0.5)
    _healthy(cap, 300, start_port=50400)
    assert _rules_found(cap, tmp_path, monkeypatch) == [
        ("icmp-error-handshake", "10.4.0.1:40000"),
        ("peer-reset-established", "10.4.0.2:40000"),
    ]


def test_a_syn_captured_after_its_syn_ack_amid_clean_connections(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SYN stamped after the SYN-ACK that answers it (two capture queues merged), then a
    clean exchange, and the same shape ended by the server's RST: one connection each, the
    same report and the same listing both ways."""
    cap = Capture()
    _healthy(cap, 10)
    for port, reset in ((40000, False), (40001, True)):
        conv = Conversation(cap, client=("10.4.0.3", port), server=("10.9.0.1", 443))
        conv.send("s", SYN | ACK, options=LINUX_SYN, ack=conv.c.seq + 1, advance=False)
        conv.send("c", SYN, options=LINUX_SYN)
        conv.s.seq += 1
        conv.send("c", ACK)
        conv.send("c", PSH | ACK, 300)
        conv.send("s", PSH | ACK, 1200)
        if reset:
            conv.rst("s", dt=0.5)
        else:
            conv.close("c")
        _healthy(cap, 10, start_port=50100 + port % 2 * 100)
    _healthy(cap, 300, start_port=50400)
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference = _same_both_ways(path, True, monkeypatch)
    late = [c for c in reference.connections if c.client.startswith("10.4.0.3:")]
    assert [(c.client, c.conn_state) for c in late] == [
        ("10.4.0.3:40000", "SF"),
        ("10.4.0.3:40001", "REJ"),  # (Zeek's view: the SYN's sender never left SYN_SENT)
    ]
    assert [(f.rule, f.client) for f in reference.findings] == [
        ("peer-reset-established", "10.4.0.3:40001")
    ]


def test_capture_starting_at_time_zero(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The closing queue treats a closing time of exactly 0.0 as "not closed yet".
    cap = Capture(time=0.0)
    conv = Conversation(cap, client=("10.4.0.1", 40000))
    for who, flags, size in [
        ("c", SYN, 0), ("s", SYN | ACK, 0), ("c", ACK, 0), ("c", PSH | ACK, 10),
        ("s", ACK, 0), ("c", FIN | ACK, 0), ("s", FIN | ACK, 0), ("c", ACK, 0),
    ]:  # fmt: skip
        conv.send(who, flags, size, options=LINUX_SYN, dt=0.0)
    _healthy(cap, 300)
    _compare(cap, tmp_path, monkeypatch)


def test_live_connection_cap_keeps_the_reference_behaviour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    for k in range(60):  # established, never closed: they stay open
        conv = Conversation(cap, client=("10.5.0.1", 41000 + k))
        conv.handshake()
        conv.data("c", 10)
    _healthy(cap, 200)
    path = tmp_path / "cap.pcap"
    write_pcap(cap, path)
    options = {"max_connections": 50}
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    assert reference.evicted > 0
    assert fast.to_dict() == reference.to_dict()


@pytest.mark.parametrize("more_open", [0, 40], ids=["refusals", "refusals, then too many open"])
def test_closed_connections_do_not_fill_the_table(
    more_open: int, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed connections waiting out their close grace period are not what the cap bounds:
    a storm of refusals ten times --max-connections within one grace period evicts nothing,
    and is taken in bulk (a refusal is open only from its SYN to its RST). Open ones beyond
    the cap are evicted, the least recently active first, the same both ways."""
    cap = Capture()
    talks = [Conversation(cap, client=("10.5.0.1", 41000 + k)) for k in range(30)]
    for talk in talks:  # open to the end
        talk.handshake()
        talk.data("c", 10)
    refused = [Conversation(cap, client=("10.5.1.1", 20000 + k)) for k in range(500)]
    for conv in refused:  # 1 ms apart
        conv.send("c", SYN, options=LINUX_SYN)
        conv.rst("s")
    if more_open:
        # Within the refusals' grace period, the 30 talk again (the closed refusals are then
        # the least recently active), and 40 more open: 20 beyond the cap, talks evicted;
        # then each refusal's RST again, which joins its connection, still waiting.
        for talk in talks:
            talk.data("s", 10)
        for k in range(more_open):
            conv = Conversation(cap, client=("10.5.2.1", 42000 + k), server=("10.0.0.3", 80))
            conv.handshake()
        for conv in refused:
            conv.rst("s", dt=0.0001)
    path = tmp_path / "cap.pcap"
    write_pcap(cap, path)
    options = {"max_connections": 50}
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    _Counting.ended = 0
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Counting)
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    assert fast.to_dict() == reference.to_dict()
    assert reference.evicted == max(30 + more_open - 50, 0)
    assert reference.flows == 30 + 500 + more_open
    assert [f.client for f in reference.findings if f.category == "refused"] == [
        f"10.5.1.1:{20000 + k}" for k in range(500)
    ]
    if windows == "production windows" and not more_open:
        assert _Counting.ended == 500


@pytest.mark.parametrize("seed", range(12))
def test_the_open_connections_of_a_part_are_bounded_from_above(seed: int) -> None:
    """_open_at_once never says fewer than the table holds open at once when fed the rows
    (from empty): refusals close at their RST, anything else may stay open. Random mixes of
    refusals, near-refusals (a wrong ACK, a RST without ACK, a RST from the client, a third
    row, a RST before its SYN), open connections and 4-tuples used again."""
    rng = random.Random(seed)
    cap = Capture()
    for _ in range(120):
        port = 20000 + rng.randrange(300)  # (some 4-tuples used again)
        conv = Conversation(cap, client=("10.5.1.1", port), client_isn=rng.randrange(2**32))
        _attempt(conv, rng.choice(_ATTEMPTS), dt=rng.choice([0.001, 0.2, 6.0]) * 0.1)
    end = rng.randrange(len(cap.packets) // 2, len(cap.packets) + 1)
    table = tracker.FlowTable()
    most = 0
    for packet in itertools.islice(cap.packets, end):
        table.feed(packet)
        most = max(most, table.open_count)
    bound, four_tuples = _open_bound(cap, end)
    assert most <= bound < four_tuples  # (refusals do close)


# Kinds of connection attempt (_attempt): a refusal, near-refusals, one left open.
_ATTEMPTS = ("refused", "bad ack", "no ack", "client rst", "third row", "rst first", "open")


def _attempt(conv: Conversation, kind: str, dt: float = 0.001) -> None:
    """A connection attempt of `conv`, its SYN `dt` after the packet before: refused (the
    RST/ACK acknowledging the SYN), or a RST that acknowledges something else, one without
    ACK, one from the client, a refusal with a third row, a RST before the SYN and none
    after, or a handshake left open."""
    if kind == "rst first":
        conv.rst("s")
    conv.send("c", SYN, options=LINUX_SYN, dt=dt)
    if kind in ("refused", "third row"):
        conv.rst("s")
    elif kind == "bad ack":
        conv.rst("s", ack=conv.c.seq + 7)
    elif kind == "no ack":
        conv.rst("s", with_ack=False)
    elif kind == "client rst":
        conv.rst("c")
    elif kind == "open":
        conv.send("s", SYN | ACK, options=LINUX_SYN)
        conv.send("c", ACK)
    if kind == "third row":
        conv.send("c", ACK)


def _open_bound(cap: Capture, end: int) -> tuple[int, int]:
    """_open_at_once of the capture's first `end` rows, and their 4-tuples."""
    w = _window_of(cap)
    a, b = fastpath._ends(w, slice(0, end))
    context = fastpath._context(w.tunnel[:end], w.v6[:end])
    keys = fastpath._connection_keys(a, b, context)
    row = np.argsort(keys, kind="stable")
    starts = np.flatnonzero(np.append(True, keys[row][1:] != keys[row][:-1]))
    return fastpath._open_at_once(w, row, starts, end, context), len(starts)


@pytest.mark.parametrize(
    "kind", ["refused", "bad ack", "no ack", "client rst", "third row", "rst first", "ipv6"]
)
def test_only_a_refusal_closes_in_the_bound_of_open_connections(kind: str) -> None:
    """Fifty attempts one after another: refused ones (IPv6 too) are open one at a time; a
    RST that acknowledges something else, a RST without ACK, a RST from the client, a third
    row, a RST before the SYN leave each counted open to the end."""
    cap = Capture()
    for k in range(50):
        client = ("2001:db8::1" if kind == "ipv6" else "10.5.1.1", 20000 + k)
        server = ("2001:db8::2", 80) if kind == "ipv6" else ("10.0.0.2", 80)
        _attempt(Conversation(cap, client=client, server=server), kind.replace("ipv6", "refused"))
    assert _open_bound(cap, len(cap.packets)) == (1 if kind in ("refused", "ipv6") else 50, 50)


def test_colliding_group_keys_are_never_taken_for_one_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone SYN from port 40000 and the rest of a connection from port 40001 (as a fuzzed
    capture had it) once shared a group key, and passed for one clean connection. Here keys
    collide for neighbouring ports on purpose; each group must hold one 4-tuple or be left to
    the table."""
    original = fastpath.pair_hash
    client = int.from_bytes(bytes([10, 6, 0, 1]), "big")

    def colliding(lo: Any, hi: Any) -> Any:  # ports 40000 and 40001 of 10.6.0.1 collide
        return original(np.where(lo >> 16 == client, lo | 1, lo), hi)

    monkeypatch.setattr(fastpath, "pair_hash", colliding)
    cap = Capture()
    _healthy(cap, 20)
    lone = Conversation(cap, client=("10.6.0.1", 40000), server=("10.9.0.1", 443))
    lone.send("c", SYN, options=LINUX_SYN)
    rest = Conversation(cap, client=("10.6.0.1", 40001), server=("10.9.0.1", 443))
    rest.c.seq = lone.c.seq  # the SYN-ACK acknowledges the lone SYN
    rest.send("s", SYN | ACK, options=LINUX_SYN)
    rest.send("c", ACK)
    rest.send("c", PSH | ACK, 10)
    rest.send("s", ACK)
    rest.close("s")
    _healthy(cap, 300, start_port=51000)
    path = tmp_path / "collide.pcap"
    write_pcap(cap, path)
    reference, fast, taken = _reports(path, monkeypatch)
    assert fast == reference
    assert reference["flows"] == 322
    assert 0 < taken < 321  # the others were taken, the colliding pair was not


def _refusal(
    cap: Capture,
    client: tuple[str, int],
    *,
    isn: int = 1000,
    ack: int = 1,
    syn_data: int = 0,
    syn_dt: float = 0.003,
    rst_dt: float = 0.0002,
    rst_flags: int = RST | ACK,
) -> Conversation:
    """A client's SYN and the server's RST (`rst_flags`: with ACK) acknowledging `ack` past
    the SYN's ISN (1: a plain refusal)."""
    server = ("fd00::9:7", 8443) if ":" in client[0] else ("10.9.0.7", 8443)
    conv = Conversation(cap, client=client, server=server, client_isn=isn)
    conv.send("c", SYN, syn_data, options=LINUX_SYN, dt=syn_dt)
    conv.send("s", rst_flags, seq=0, ack=isn + ack, dt=rst_dt)
    return conv


def _half_open(
    cap: Capture, client: tuple[str, int], *, last: str = "c", rst_flags: int = RST
) -> Conversation:
    """A scanner's SYN, the server's SYN-ACK and a RST (the scanner's host knows no such
    connection)."""
    conv = Conversation(cap, client=client, server=("10.9.0.8", 22))
    conv.send("c", SYN, dt=0.003)
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.send(last, rst_flags, ack=conv.s.seq if rst_flags & ACK else None)
    return conv


def _reset_early(cap: Capture, client: tuple[str, int], k: int) -> Conversation:
    """A connection reset soon after its handshake, one of several ways by `k`: the server
    resets it after a request (a storm of those is a reset burst), the client aborts it, a
    RST out of the window (not accepted: it stays open), a retransmitted request, the server
    resets it at once, the client shuts down and resets the server's late data (broken
    pipe)."""
    server = ("fd00::9:5", 443) if ":" in client[0] else ("10.9.0.5", 443)
    conv = Conversation(cap, client=client, server=server, client_isn=7000 + k)
    conv.handshake()
    way = k % 6
    if way in (0, 1, 3, 5):
        conv.data("c", 120)
        if way == 3:
            conv.send("c", PSH | ACK, 120, seq=conv.c.seq - 120, advance=False)
    if way == 5:
        conv.send("c", FIN | ACK)
        conv.send("s", PSH | ACK, 300)
    if way in (1, 5):
        conv.rst("c", dt=0.0001)
    elif way == 2:
        conv.rst("s", seq=conv.s.seq + 10_000_000, dt=0.0001)
    else:
        conv.rst("s", dt=0.0001)
    return conv


@pytest.mark.parametrize("listing", [False, True], ids=["analyze", "flows"])
def test_attempts_that_ended_at_once_are_handed_over_at_their_last_rows(
    listing: bool, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection attempts refused at once (a SYN, then the RST/ACK acknowledging it),
    half-open probes (a SYN, the SYN-ACK, the client's RST) and connections reset soon after
    their handshake, nothing else of their 4-tuple in the window, are given to the table at
    their last rows, with the ids their SYNs took: the same report and listing as one packet
    at a time, next to the cases that must go packet by packet or make something else of it
    (an RST that acknowledges something else or nothing, a SYN with data, a retried SYN, an
    ICMP error about the attempt, the 4-tuple again, a connection idle on it, times that go
    backwards, an ISN at the end of the sequence space, a probe's RST from the server, a RST
    out of the window, one side's FIN before the RST, both sides' FINs before it, a FIN after
    it)."""
    cap = Capture()
    idle = Conversation(cap, client=("10.5.1.1", 40011), server=("10.9.0.7", 8443))
    idle.handshake()
    idle.data("c", 100)  # (and then silent: live in the table, in no later window)
    for k in range(240):
        if k % 3 == 0:
            _clean(cap, ("10.1.0.1", 50000 + k), dt=0.002)
        client = (f"fd00::1:{k}", 40000 + k) if k % 8 == 0 else ("10.5.0.1", 40000 + k)
        _refusal(cap, client, isn=1000 + k)
        if k % 4 == 1:
            _half_open(cap, ("10.5.7.1", 40000 + k), rst_flags=RST if k % 8 == 1 else RST | ACK)
        if k % 2 == 0:
            _reset_early(
                cap, (f"fd00::2:{k}", 41000 + k) if k % 16 == 0 else ("10.5.8.1", 41000 + k), k
            )
    _refusal(cap, ("10.5.1.1", 40000), ack=5)  # not the SYN's: a bad ACK
    _refusal(cap, ("10.5.1.1", 40001), syn_data=20)
    retried = Conversation(cap, client=("10.5.1.1", 40002), server=("10.9.0.7", 8443))
    retried.send("c", SYN, options=LINUX_SYN, advance=False)
    retried.send("c", SYN, options=LINUX_SYN, dt=1.0)
    retried.send("s", RST | ACK, seq=0)
    quoted = Conversation(cap, client=("10.5.1.1", 40003), server=("10.9.0.7", 8443))
    syn = quoted.send("c", SYN, options=LINUX_SYN)
    quoted.icmp(syn, 3, 1, "10.9.0.254")  # (about the SYN, before the RST)
    quoted.send("s", RST | ACK, seq=0)
    _refusal(cap, ("10.5.1.1", 40009), syn_dt=-400.0)  # a SYN stamped long before the clock
    _refusal(cap, ("10.5.1.1", 40010), rst_flags=RST)  # (a RST without ACK is not accepted)
    again = _refusal(cap, ("10.5.1.1", 40004))
    _healthy(cap, 30, start_port=52000)
    again.send("c", SYN, options=LINUX_SYN, seq=1000, advance=False, dt=1.0)  # its retry
    _refusal(cap, ("10.5.1.1", 40005), rst_dt=-0.5)  # stamped before its SYN
    _refusal(cap, ("10.5.1.1", 40006), isn=0xFFFFFFFF)  # acknowledged as 0
    _refusal(cap, ("10.5.1.1", 40007), rst_dt=7.0)  # refused after a close grace period
    _clean(cap, ("10.5.1.1", 40008))
    _healthy(cap, 30, start_port=52500)  # (a tiny window or more, within a close grace period)
    # The same 4-tuple refused while its last connection waits to retire:
    reused = Conversation(cap, client=("10.5.1.1", 40008), server=("10.9.0.1", 443))
    reused.send("c", SYN, options=LINUX_SYN, seq=777)
    reused.send("s", RST | ACK, seq=0, ack=778)
    _healthy(cap, 300, start_port=53000)
    _refusal(cap, ("10.5.1.1", 40011), isn=99999)  # a SYN and a RST on the idle one's 4-tuple
    _half_open(cap, ("10.5.7.2", 40000), last="s")  # (the server resets its own SYN-ACK)
    probed = _half_open(cap, ("10.5.7.2", 40001))
    probed.send("s", SYN | ACK, options=LINUX_SYN, seq=probed.s.seq - 1, dt=1.0)  # again
    # One server resetting 20 connections within 2 ms: a burst (the RST log is read at
    # retirement, written at each RST).
    burst = [
        Conversation(cap, client=("10.5.9.1", 42000 + i), server=("10.9.0.6", 443))
        for i in range(20)
    ]
    for conv in burst:
        conv.handshake()
        conv.data("c", 50)
    for conv in burst:
        conv.rst("s", dt=0.0001)
    # Closed (FIN, FIN, ACK), others closing after it, then a RST: it closed at its ACK.
    shut = Conversation(cap, client=("10.5.8.3", 41000), server=("10.9.0.5", 443))
    shut.handshake()
    shut.data("c", 60)
    shut.close("c")
    for k in range(5):
        _clean(cap, ("10.1.0.2", 55000 + k), dt=0.002)
    shut.rst("c", with_ack=False, dt=0.01)
    late_fin = _reset_early(cap, ("10.5.8.2", 41000), 0)
    late_fin.send("c", FIN | ACK)  # (after its RST: a late segment, so not taken)
    _healthy(cap, 50, start_port=54000)
    path = tmp_path / "refusals.pcap"
    write_pcap(cap, path)
    reference = _same_both_ways(path, listing, monkeypatch)
    findings = reference.to_dict()["findings"]
    categories = [f["category"] for f in findings]
    assert categories.count("refused") >= 240 and categories.count("half_open_scan") >= 60
    assert [f["facts"].get("burst_size") for f in findings].count(20) == 20
    if windows == "production windows":
        assert _Counting.ended >= 400
    else:
        assert _Counting.ended > 0
    # With all but 20 closed connections asleep, as their few segments (both ways): the same.
    monkeypatch.setattr("tcpdiag.tracker.CLOSED_IN_MEMORY", 20)
    assert _same_both_ways(path, listing, monkeypatch).to_dict() == reference.to_dict()


def test_an_ended_attempt_is_taken_only_whole_in_the_part_decided() -> None:
    """_ended_attempts takes a SYN, the rows after it and the RST that ends them only if all
    are in the part decided and none was decided before, only a 4-tuple with nothing else in
    the window, nothing between that could close the connection or start another, and at
    most ENDED_MAX_ROWS rows."""
    cap = Capture()
    _refusal(cap, ("10.5.2.1", 40000))
    _refusal(cap, ("10.5.2.1", 40001))
    lone = Conversation(cap, client=("10.5.2.1", 40002), server=("10.9.0.7", 8443))
    lone.send("c", SYN, options=LINUX_SYN)  # no answer
    _refusal(cap, ("10.5.2.1", 40002))  # (its 4-tuple again: a SYN between)
    _half_open(cap, ("10.5.2.1", 40003))
    reset = Conversation(cap, client=("10.5.2.1", 40004), server=("10.9.0.7", 8443))
    reset.handshake()
    reset.data("c", 100)
    reset.rst("s")  # rows 10 to 15
    finned = Conversation(cap, client=("10.5.2.1", 40005), server=("10.9.0.7", 8443))
    finned.handshake()
    finned.send("c", FIN | ACK)  # (the client's FIN between: taken)
    finned.rst("s")  # rows 16 to 20
    both = Conversation(cap, client=("10.5.2.1", 40007), server=("10.9.0.7", 8443))
    both.handshake()
    both.close("c")  # (both FINs between: it closes before its RST)
    both.rst("c", with_ack=False)  # rows 21 to 27
    long = Conversation(cap, client=("10.5.2.1", 40006), server=("10.9.0.7", 8443))
    long.handshake()
    for _ in range(fastpath.ENDED_MAX_ROWS // 2):
        long.data("c", 10)
    long.rst("s")
    w = _window_of(cap)
    none = np.zeros(0, np.uint64)

    def taken(end: int, done: list[int] = []) -> list[tuple[int, ...]]:  # noqa: B006
        decided = np.zeros(len(w), np.bool_)
        decided[done] = True
        syns = fastpath._syn_rows(w, decided, end)
        got = fastpath._ended_attempts(w, syns, decided, end, None, none)
        assert got.syn_row.tolist() == [rows[0] for rows in got.rows.tolist()]
        return [tuple(row for row in rows if row >= 0) for rows in got.rows.tolist()]

    resets, shut = (10, 11, 12, 13, 14, 15), (16, 17, 18, 19, 20)
    assert taken(len(w)) == [(0, 1), (2, 3), (7, 8, 9), resets, shut]
    assert taken(15) == [(0, 1), (2, 3), (7, 8, 9)]  # its RST lies beyond the part
    assert taken(9) == [(0, 1), (2, 3)]
    assert taken(3) == [(0, 1)]
    assert taken(1) == []
    assert taken(len(w), done=[3, 13]) == [(0, 1), (7, 8, 9), shut]
    assert taken(len(w), done=[0, 8]) == [(2, 3), resets, shut]


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_syn_and_a_rst_of_colliding_keys_are_no_refusal(
    side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SYN and a RST whose 4-tuples share a group key (here made to collide, for another
    client port or another server port) are two attempts, not one refused."""
    original = fastpath.pair_hash

    def colliding(lo: Any, hi: Any) -> Any:  # (an endpoint is address << 16 | port)
        if side == "client":
            return original(np.where(lo & 0xFFFF == 40001, lo - 1, lo), hi)
        return original(lo, np.where(hi & 0xFFFF == 8444, hi - 1, hi))

    monkeypatch.setattr(fastpath, "pair_hash", colliding)
    cap = Capture()
    syn = Conversation(cap, client=("10.5.3.1", 40000), server=("10.9.0.7", 8443))
    syn.send("c", SYN, options=LINUX_SYN)
    other = ("10.5.3.1", 40001) if side == "client" else ("10.5.3.1", 40000)
    port = 8443 if side == "client" else 8444
    rst = Conversation(cap, client=other, server=("10.9.0.7", port))
    rst.send("s", RST | ACK, seq=0, ack=1001)
    w = _window_of(cap)
    keys = fastpath._group_keys(*fastpath._endpoints(w)[:2], np.zeros(2, np.int64), np.zeros(2))
    assert keys[0] == keys[1]  # (the collision made)
    decided = np.zeros(len(w), np.bool_)
    syns = fastpath._syn_rows(w, decided, len(w))
    got = fastpath._ended_attempts(w, syns, decided, len(w), None, np.zeros(0, np.uint64))
    assert len(got.syn_row) == 0
    assert len(syns.count) == 1 and syns.count[0] == 2  # (what it made no refusal of)


# Mutated captures: tests/test_fuzz.py (fuzzing.check compares both paths on every input).


# -- the pieces ----------------------------------------------------------------------------------


def _readable(path: Path) -> bool:
    try:
        CaptureReader(path).close()
    except CaptureError:  # unreadable files are the reader tests' business
        return False
    return True


READABLE = [p for p in SAMPLES + FIXTURES if _readable(p)]


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.name)
@pytest.mark.parametrize("target", [1 << 12, 1 << 23])
def test_batch_reading_and_array_decoding_match_the_reference(path: Path, target: int) -> None:
    """chunks() + ColumnDecoder give the same packets, counts, warnings and truncation as
    iterating the reader through Decoder, whatever the chunk size."""
    plain, batched = CaptureReader(path), CaptureReader(path)
    decoder = Decoder()
    expected = [p for p in map(decoder.decode, plain) if p is not None]
    columns = ColumnDecoder()
    got = []
    for chunk in batched.chunks(target_bytes=target):
        batch = columns.decode(chunk)
        got.extend(batch.packets(np.arange(len(batch)), {}))
    assert got == expected
    assert columns.decoder.stats == decoder.stats
    assert (batched.warnings, batched.truncated) == (plain.warnings, plain.truncated)


def test_finding_spool_orders_and_numbers_like_a_sorted_list(tmp_path: Path) -> None:
    report = analyze_capture(
        ROOT / "samples" / "mixed.pcap", ENGINE, AnalysisOptions(fast_path=False)
    )
    findings = list(report.findings)
    shuffled = findings * 7
    random.Random(3).shuffle(shuffled)
    spool = FindingSpool(memory_limit=5)
    spool.extend(shuffled)
    assert spool._runs  # it did go to disk
    expected = sorted(shuffled, key=lambda f: (f.time, f.frames[:1]))
    got = list(spool)
    assert [(f.time, f.frames, f.category) for f in got] == [
        (f.time, f.frames, f.category) for f in expected
    ]
    assert [f.id for f in got] == [f"F{n}" for n in range(1, len(expected) + 1)]
    assert [f.id for f in spool] == [f.id for f in got]  # iterating again: the same ids
    assert len(spool) == len(expected)
    spool.close()


def test_report_findings_is_a_spool() -> None:
    assert isinstance(CaptureReport(path="x").findings, FindingSpool)


def _decoded_both_ways(frames: list[RawFrame]) -> tuple[list[Any], Any]:
    """Decoder's packets for these frames, and the ColumnDecoder's batch of them, checked to
    give the same packets and the same counts."""
    decoder = Decoder()
    expected = [p for p in map(decoder.decode, frames) if p is not None]
    columns = ColumnDecoder()
    batch = columns.decode(frames)
    assert batch.packets(np.arange(len(batch)), {}) == expected
    assert columns.decoder.stats == decoder.stats
    return expected, batch


def _ipv4_tcp(sport: int, flags: int, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1000, 2000, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 7, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    )
    return ip + tcp + payload


def _tags(*tpids: int) -> bytes:
    return b"".join(struct.pack("!HH", tpid, 100 + k) for k, tpid in enumerate(tpids))


@pytest.mark.parametrize(
    ("linktype", "make", "simple"),
    [
        (1, lambda p, t: b"\x02" * 12 + t + b"\x08\x00" + p, True),  # Ethernet
        (113, lambda p, t: b"\x00" * 14 + t + b"\x08\x00" + p, True),  # Linux SLL
        # SLL2: the protocol field comes first; tags sit between its header and the packet.
        (
            276,
            lambda p, t: (
                (t[:2] or b"\x08\x00") + b"\x00" * 18 + t[2:] + (b"\x08\x00" if t else b"") + p
            ),
            True,
        ),
    ],
    ids=["ethernet", "sll", "sll2"],
)
@pytest.mark.parametrize(
    "tags",
    [(), (0x8100,), (0x88A8, 0x8100), (0x9100, 0x88A8, 0x8100)],
    ids=["untagged", "802.1Q", "QinQ", "three tags"],
)
def test_vlan_tagged_frames_are_decoded_by_the_arrays_as_by_decoder(
    linktype: int, make: Any, simple: bool, tags: tuple[int, ...]
) -> None:
    """Frames with up to two VLAN tags are array rows (no Packet object each); deeper stacks
    go through Decoder; either way the packets are Decoder's, tag or no tag."""
    raw = make(_ipv4_tcp(40000, SYN | ACK, b"x" * 5), _tags(*tags))
    cut = raw[: len(raw) - 30]  # too short for the TCP header: undecodable either way
    frames = [RawFrame(1, 1.0, linktype, raw, len(raw)), RawFrame(2, 2.0, linktype, cut, len(raw))]
    expected, batch = _decoded_both_ways(frames)
    assert len(expected) == 1 and expected[0].payload_len == 5
    assert batch.simple.tolist() == [len(tags) <= 2]


def test_cisco_hdlc_frames_are_decoded_by_the_arrays_as_by_decoder() -> None:
    """Cisco HDLC (a router's serial link: an address byte, a control byte, then an ethertype)
    is an array layout as Ethernet is; what is not IPv4 TCP on it (its SLARP keepalive, a frame
    cut short) goes through Decoder, to the same packets and counts."""
    raw = b"\x0f\x00\x08\x00" + _ipv4_tcp(40000, SYN | ACK, b"x" * 5)
    slarp = b"\x8f\x00\x80\x35" + struct.pack("!IIIH", 2, 7, 6, 0xFFFF)
    frames = [
        RawFrame(1, 1.0, 104, raw, len(raw)),
        RawFrame(2, 2.0, 104, slarp, len(slarp)),
        RawFrame(3, 3.0, 104, raw[:-30], len(raw)),
    ]
    expected, batch = _decoded_both_ways(frames)
    assert len(expected) == 1 and expected[0].payload_len == 5
    assert batch.simple.tolist() == [True]


def test_ipv6_connections_are_taken_in_bulk_and_kept_apart_from_ipv4(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPv6 rows hold numbers for their addresses (0, 1, ... in the order of their bytes): an IPv4
    connection between the addresses 0.0.0.0 and 0.0.0.1 has the same numbers and ports as
    the first IPv6 one, and must stay another connection."""
    cap = Capture()
    for client, server in [
        (("2001:db8::a", 40000), ("2001:db8::b", 80)),
        (("0.0.0.0", 40000), ("0.0.0.1", 80)),
    ]:
        conv = Conversation(cap, client=client, server=server)
        conv.handshake()
        conv.data("c", 100)
        conv.rst("s", dt=0.2)
    for k in range(200):
        conv = Conversation(cap, client=("2001:db8::c", 50000 + k), server=("2001:db8::d", 443))
        conv.handshake()
        conv.data("c", 100)
        conv.data("s", 1000)
        conv.close("c")
    assert _compare(cap, tmp_path, monkeypatch) > 0


def test_ipv6_addresses_beyond_the_numbered_ones_go_through_the_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tcpdiag.columns.MAX_ADDRESSES6", 3)
    cap = Capture()
    for k in range(40):
        conv = Conversation(cap, client=(f"2001:db8::{k + 1:x}", 40000), server=("2001:db8::", 80))
        conv.handshake()
        conv.data("c", 100)
        if k % 7 == 3:
            conv.rst("s", dt=0.2)
        else:
            conv.close("c")
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    columns = ColumnDecoder()
    batch = columns.decode(next(CaptureReader(path).chunks()))
    # Numbered in the order of their bytes, within a batch: the server and two clients.
    assert columns.addresses6.text == ["2001:db8::", "2001:db8::1", "2001:db8::2"]
    assert 0 < int(batch.simple.sum()) < len(batch)
    reference, fast, _ = _reports(path, monkeypatch)
    assert fast == reference


@pytest.mark.parametrize(
    ("criteria", "matched"),
    [
        ({"hosts": ["2001:db8::d"]}, True),
        ({"hosts": ["2001:db8::e"]}, False),
        ({"nets": ["2001:db8::/64"], "ports": [443]}, True),
        ({"nets": ["2001:db8::/64"], "ports": [444]}, False),
        ({"nets": ["10.0.0.0/8"]}, False),
        ({"hosts": ["2001:db8::c"], "nets": ["2001:db8::d/128"]}, True),
    ],
)
def test_address_filters_see_ipv6_rows_of_the_arrays(
    criteria: dict[str, list[Any]], matched: bool, tmp_path: Path
) -> None:
    """Healthy IPv6 connections, all taken in bulk: whether --host/--net/--port matched
    anything is still told right (never "matched nothing" for a filter that matched)."""
    cap = Capture()
    for k in range(50):
        conv = Conversation(cap, client=("2001:db8::c", 50000 + k), server=("2001:db8::d", 443))
        conv.handshake()
        conv.data("c", 100)
        conv.close("c")
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    wanted = ConnectionFilter.build(**criteria)
    fast = analyze_capture(path, ENGINE, AnalysisOptions(connection_filter=wanted))
    reference = analyze_capture(
        path, ENGINE, AnalysisOptions(connection_filter=wanted, fast_path=False)
    )
    assert fast.filter_matched is reference.filter_matched is matched


def _ipv6_tcp(
    next_header: int = 6, payload_length: int | None = None, extension: bytes = b""
) -> bytes:
    tcp = (
        struct.pack("!HHIIBBHHH", 40000, 80, 1000, 2000, 5 << 4, SYN | ACK, 65535, 0, 0) + b"x" * 5
    )
    body = extension + tcp
    length = len(body) if payload_length is None else payload_length
    addresses = bytes(range(16)) + bytes(range(16, 32))
    return struct.pack("!IHBB", 6 << 28, length, next_header, 61) + addresses + body


@pytest.mark.parametrize(
    ("packet", "wire_more", "simple"),
    [
        (_ipv6_tcp(), 0, True),
        (_ipv6_tcp(next_header=0, extension=bytes([6, 0, 1, 4, 0, 0, 0, 0])), 0, False),  # HBH
        (_ipv6_tcp(payload_length=0), 0, False),  # jumbogram / BIG TCP: length from the capture
        (_ipv6_tcp(payload_length=10), 0, False),  # shorter than the TCP header: undecodable
        # cut short by the snaplen (the wire held all 900 bytes): payload from IPv6
        (_ipv6_tcp(payload_length=900), 900 - 25, True),
        # a header claiming more than the frame held on the wire (corrupted): Decoder's
        (_ipv6_tcp(payload_length=900), 0, False),
    ],
    ids=["plain", "extension header", "jumbogram", "too short", "snapped", "lying"],
)
def test_ipv6_frames_are_decoded_by_the_arrays_as_by_decoder(
    packet: bytes, wire_more: int, simple: bool
) -> None:
    raw = b"\x02" * 12 + b"\x86\xdd" + packet
    expected, batch = _decoded_both_ways([RawFrame(1, 1.0, 1, raw, len(raw) + wire_more)])
    assert batch.simple.tolist() == ([True] if simple else [False] * len(expected))


@pytest.mark.parametrize("version", [4, 6])
def test_a_header_claiming_more_than_the_frame_held_gives_the_frame_s_payload(
    version: int,
) -> None:
    """A fuzzed or corrupted packet whose IP length says 17,972 bytes in a 68-byte frame that
    was captured whole (nDPI's reasm_crash_anon.pcapng): its payload is what the frame held,
    as Wireshark takes it, not 17,900 bytes of data that make a stall of a pure ACK; a frame
    cut by the snaplen keeps the length its header gives (the wire held it)."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 2000, 5 << 4, ACK, 65535, 0, 0) + b"xy"
    claimed = 17972  # the IP packet's length, by its header
    if version == 4:
        addresses = b"\n\0\0\1\n\0\0\2"
        header = struct.pack("!BBHHHBBH", 0x45, 0, claimed, 1, 0, 64, 6, 0) + addresses
        raw = b"\x02" * 12 + b"\x08\x00" + header + tcp
    else:
        header = struct.pack("!IHBB", 6 << 28, claimed - 40, 6, 61) + bytes(range(32))
        raw = b"\x02" * 12 + b"\x86\xdd" + header + tcp
    whole = Decoder().decode(RawFrame(1, 1.0, 1, raw, len(raw)))
    assert isinstance(whole, TcpSegment) and whole.payload_len == 2
    snapped = Decoder().decode(RawFrame(1, 1.0, 1, raw, 14 + claimed))
    assert isinstance(snapped, TcpSegment)
    assert snapped.payload_len == claimed - len(header) - 20
    expected, batch = _decoded_both_ways([RawFrame(1, 1.0, 1, raw, len(raw))])
    assert batch.simple.tolist() == [False] * len(expected)


# -- flows (Zeek's view): connections taken in bulk are listed as the tracker lists them ---------


def _listed(
    path: Path, monkeypatch: pytest.MonkeyPatch, wanted: ConnectionFilter | None = None
) -> tuple[list[dict], list[dict], int]:
    """(reference flows, fast flows, connections the bulk path took), after checking that
    the rest of both reports is the same."""
    options: dict[str, Any] = {"keep_flows": True}
    if wanted is not None:
        options["connection_filter"] = wanted
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    _Counting.taken = 0
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Counting)
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    assert fast.to_dict() == reference.to_dict()
    flows = [[flow.to_dict() for flow in r.connections] for r in (reference, fast)]
    return flows[0], flows[1], _Counting.taken


def test_same_flows_on_a_busy_capture(
    busy_capture: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, fast, taken = _listed(busy_capture, monkeypatch)
    assert fast == reference
    assert len({flow["history"] for flow in reference}) > 10  # every kind of history in it
    if windows == "production windows":
        # Most are taken in bulk: closed, not split by Zeek's timers, no zero window.
        assert taken > 0.5 * len(reference)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_same_flows_on_every_sample(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, fast, _ = _listed(path, monkeypatch)
    assert fast == reference


def _flow_case(case: str, cap: Capture) -> None:
    """One connection at the edge of what the bulk path may list, amid clean ones."""
    conv = Conversation(cap, client=("10.7.0.1", 40000), server=("10.9.0.1", 443))
    if case == "SYN-ACK after Zeek's attempt timer":
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", SYN | ACK, options=LINUX_SYN, dt=5.5)  # Zeek's S0 row, then another
        conv.send("c", ACK)
        conv.close("c")
        return
    if case == "the capture clock passes the attempt timer before the SYN-ACK":
        conv.send("c", SYN, options=LINUX_SYN)
        _bare_syn(cap, dt=5.5)
        conv.send("s", SYN | ACK, options=LINUX_SYN, dt=-5.49)  # Zeek's S0 row, then another
        conv.send("c", ACK)
        conv.send("c", PSH | ACK, 100, dt=6.0)  # (closed long after: only that timer splits it)
        conv.send("s", ACK)
        conv.close("c")
        return
    conv.handshake()
    if case == "zero window":
        conv.send("c", PSH | ACK, 100)
        conv.send("s", ACK, window=0)  # Zeek's 'w'
        conv.send("s", ACK)
        conv.close("c")
    elif case == "ACK before the data it acknowledges":
        conv.send("s", ACK, ack=conv.c.seq + 100)  # captured ahead of the data
        conv.send("c", PSH | ACK, 100)
        conv.send("s", PSH | ACK, 50)
        conv.close("s")
    elif case == "ACK beyond anything sent":
        conv.send("s", PSH | ACK, 100)
        conv.send("c", FIN | ACK)
        conv.send("s", FIN | ACK)
        conv.send("c", ACK, ack=conv.s.seq + 1000)  # acknowledges the FIN, and more
    elif case == "a pause longer than Zeek's timers":
        conv.send("c", PSH | ACK, 100, dt=6.0)  # (Zeek waits 300 s: still one connection)
        conv.send("s", ACK)
        conv.close("c")
    elif case == "last ACK after Zeek's close timer":
        conv.send("c", FIN | ACK)
        conv.send("s", FIN | ACK)
        conv.send("c", ACK, dt=5.5)  # Zeek removed the connection: a row of its own
    elif case == "server closes first, FIN with data":
        conv.send("c", PSH | ACK, 100)
        conv.send("s", PSH | FIN | ACK, 700)
        conv.send("c", FIN | ACK)
        conv.send("s", ACK)
    elif case == "FINs cross":
        conv.send("c", PSH | ACK, 10)
        conv.send("c", FIN | ACK)
        conv.send("s", FIN | ACK, ack=conv.c.seq - 1)  # before it saw the client's FIN
        conv.send("c", ACK)
        conv.send("s", ACK)
    elif case == "a segment stamped long before its SYN":
        conv.send("c", PSH | ACK, 100, dt=-400.0)  # a corrupt timestamp: Zeek's 300 s timer
        conv.send("s", ACK, dt=400.0)
        conv.close("c")
    elif case == "no data":
        conv.close("c")
    elif case == "a pause as long as Zeek's inactivity timeout":
        conv.send("c", PSH | ACK, 100, dt=300.0)  # Zeek removed it: a row of its own
        conv.send("s", ACK)
        conv.close("c")
    elif case == "the capture clock passes the close timer before the last ACK":
        conv.send("c", FIN | ACK)
        conv.send("s", FIN | ACK)
        _bare_syn(cap, dt=5.5)  # another connection's packet moves the capture clock on
        conv.send("c", ACK, dt=-5.49)  # stamped soon after the FIN, seen after the timer


_SPLIT_BY_ZEEK = (
    "SYN-ACK after Zeek's attempt timer",
    "last ACK after Zeek's close timer",
    "a pause as long as Zeek's inactivity timeout",
    "the capture clock passes the close timer before the last ACK",
    "the capture clock passes the attempt timer before the SYN-ACK",
)


def _bare_syn(cap: Capture, dt: float) -> None:
    Conversation(cap, client=("10.7.0.9", 40001), server=("10.9.0.9", 443)).send(
        "c", SYN, options=LINUX_SYN, dt=dt
    )


def _flow_inside_case(case: str, cap: Capture) -> None:
    """One connection just inside what Zeek's timers allow: the bulk path takes it."""
    conv = Conversation(cap, client=("10.7.0.1", 40000), server=("10.9.0.1", 443))
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("s", SYN | ACK, options=LINUX_SYN, dt=4.9 if "SYN-ACK" in case else 0.001)
    conv.send("c", ACK)
    if case == "a pause just shorter than Zeek's inactivity timeout":
        conv.send("c", PSH | ACK, 100, dt=299.0)
        conv.send("s", ACK)
        conv.close("c")
    elif case == "last ACK just inside Zeek's close timer":
        conv.send("c", FIN | ACK)
        conv.send("s", FIN | ACK)
        conv.send("c", ACK, dt=4.9)
    else:
        conv.send("c", PSH | ACK, 100)
        conv.send("s", PSH | ACK, 300)  # (answered: a FIN on an unanswered request is a finding)
        conv.close("s")


@pytest.mark.parametrize(
    "case",
    [
        "zero window",
        "ACK before the data it acknowledges",
        "ACK beyond anything sent",
        "a pause longer than Zeek's timers",
        "SYN-ACK after Zeek's attempt timer",
        "last ACK after Zeek's close timer",
        "server closes first, FIN with data",
        "FINs cross",
        "a segment stamped long before its SYN",
        "no data",
        "a pause as long as Zeek's inactivity timeout",
        "the capture clock passes the close timer before the last ACK",
        "the capture clock passes the attempt timer before the SYN-ACK",
    ],
)
def test_same_flows_at_the_edges_of_the_bulk_path(
    case: str, tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, taken = _edge_flows(_flow_case, case, tmp_path, monkeypatch)
    assert taken > 0
    if case in _SPLIT_BY_ZEEK:
        # Zeek's timers split the connection into rows (so the bulk path, which lists a
        # connection as one row, must have left it to the table for the flows to agree).
        rows = [flow for flow in reference if "10.7.0.1:40000" in (flow["client"], flow["server"])]
        assert len(rows) >= 2


@pytest.mark.parametrize(
    "case",
    [
        "SYN-ACK just inside Zeek's attempt timer",
        "last ACK just inside Zeek's close timer",
        "a pause just shorter than Zeek's inactivity timeout",
    ],
)
def test_connections_longer_than_zeeks_shortest_timer_are_listed_in_bulk(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zeek's attempt and close timers wait 5 s and its inactivity timer 300 s, but a
    connection that none of them splits is taken in bulk however long it lasts."""
    reference, taken = _edge_flows(_flow_inside_case, case, tmp_path, monkeypatch)
    assert len({flow["conn_id"] for flow in reference}) == len(reference)  # not split
    assert taken == len(reference)


def _edge_flows(
    make: Callable[[str, Capture], None],
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[dict], int]:
    """The case's connection amid clean ones: (its flows, connections taken in bulk), once
    the fast path's flows are found to be the reference path's."""
    cap = Capture()
    _healthy(cap, 20)
    make(case, cap)
    _healthy(cap, 300, start_port=51000)
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    reference, fast, taken = _listed(path, monkeypatch)
    assert fast == reference
    return reference, taken


@pytest.mark.parametrize("states", [["SF"], ["REJ"], ["S1", "SF"]])
def test_state_filters_see_the_connections_taken_in_bulk(
    states: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _healthy(cap, 200)
    refused = Conversation(cap, client=("10.7.0.2", 40000))
    refused.send("c", SYN, options=LINUX_SYN)
    refused.rst("s")
    path = tmp_path / "case.pcap"
    write_pcap(cap, path)
    wanted = ConnectionFilter.build(states=states)
    reference, fast, taken = _listed(path, monkeypatch, wanted)
    assert fast == reference
    assert taken > 0


# -- bare SYNs, held in bulk --------------------------------------------------------------------


def _bare_syns(cap: Capture) -> None:
    """Healthy connections, then a flood of bare SYNs from many hosts with a scanner's
    unanswered probes in it, and then, seconds later, what can still happen to a bare SYN:
    an answer, a retry, a refusal, an ICMP error about it, a new connection on its 4-tuple."""
    _healthy(cap, 30)
    flood = []
    for k in range(1500):
        client = (f"100.64.{k >> 8}.{k & 255}", 1024 + k % 7)
        conv = Conversation(cap, client=client, server=("10.9.0.1", 80), client_isn=k * 7919)
        conv.send("c", SYN, options=LINUX_SYN if k % 3 else None, dt=0.0005)
        flood.append(conv)
        if k % 10 == 0:
            probe = Conversation(cap, client=("203.0.113.9", 61000), server=("10.9.0.2", k))
            probe.send("c", SYN, dt=0.0005)
    _healthy(cap, 30, start_port=52000)
    for k, conv in enumerate(flood[::50]):
        what = k % 5
        if what == 0:
            conv.send("s", SYN | ACK, options=LINUX_SYN, dt=0.01)
            conv.send("c", ACK)
        elif what == 1:
            conv.send("c", SYN, options=LINUX_SYN, seq=conv.c.seq - 1, dt=0.01)  # a retry
        elif what == 2:
            conv.rst("s", dt=0.01)
        elif what == 3:
            syn = next(p for p in cap.packets if getattr(p, "src", None) == conv.c.addr)
            assert isinstance(syn, TcpSegment)
            conv.icmp(syn, 3, 1, "10.9.255.1")
        else:
            conv.c.seq += 100_000
            conv.send("c", SYN, options=LINUX_SYN, dt=0.01)  # a new attempt, same 4-tuple


def test_bare_syns_held_in_bulk_report_as_the_reference(
    tmp_path: Path, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _bare_syns(cap)
    path = tmp_path / "syns.pcap"
    write_pcap(cap, path)
    reference, fast, _ = _reports(path, monkeypatch)
    assert fast == reference
    assert reference["floods"] and reference["scans"]  # the flood and the scanner, summed up
    if windows != "few objects per window":
        assert _Counting.held > 1000
    flows_reference, flows_fast, _ = _listed(path, monkeypatch)
    assert flows_fast == flows_reference
    assert sum(f["conn_state"] == "S0" for f in flows_reference) > 1000


@pytest.mark.parametrize("room", [10, 700, 1600, 3000])
def test_a_full_store_of_bare_syns_evicts_as_the_reference(
    room: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store of bare SYNs fills up, the oldest go first, one SYN at a time, whichever
    path took them: a window that could overflow it goes the per-packet way (this capture's
    windows hold more than bare SYNs; for windows of nothing else, see
    test_a_flood_filling_the_store_is_taken_in_bulk_as_one_by_one)."""
    cap = Capture()
    _bare_syns(cap)
    path = tmp_path / "syns.pcap"
    write_pcap(cap, path)
    options = AnalysisOptions(max_held_syns=room, keep_flows=True)
    reference = analyze_capture(path, ENGINE, replace(options, fast_path=False))
    fast = analyze_capture(path, ENGINE, options)
    assert fast.to_dict() == reference.to_dict()
    assert [f.to_dict() for f in fast.connections] == [f.to_dict() for f in reference.connections]
    assert (reference.evicted > 0) == (room < 1700)  # (1,710 bare SYNs in all)


@pytest.mark.parametrize("at_once", [1 << 18, 100])
def test_bare_syns_in_bulk_are_counted_as_one_by_one(
    at_once: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retired together (RetiredSyns, all at once or a few at a time) or one TrackedConnection
    each, the report is the same."""
    monkeypatch.setattr(attempts, "TAKE_AT_ONCE", at_once)
    cap = Capture()
    _bare_syns(cap)
    path = tmp_path / "syns.pcap"
    write_pcap(cap, path)

    def everything(report: CaptureReport) -> tuple[dict, list[dict]]:
        return report.to_dict(), [flow.to_dict() for flow in report.connections]

    together = [everything(analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=k)))
                for k in (False, True)]  # fmt: skip
    original = tracker.FlowTable.__init__

    def one_by_one(self: tracker.FlowTable, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "batch_held_syns": False})

    monkeypatch.setattr(tracker.FlowTable, "__init__", one_by_one)
    for keep_flows, expected in zip((False, True), together, strict=True):
        report = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=keep_flows))
        assert everything(report) == expected
    assert sum(flow["conn_state"] == "S0" for flow in together[1][1]) > 1000


# -- live connections continued in bulk along the in-order path ----------------------------------


class _Continuing(fastpath.FastPathTracker):
    continued = 0  # rows that continued live connections in bulk
    missed = 0  # continuations whose connection the handshake did not leave as foreseen

    def track(self, batches: Any) -> Iterator[Any]:
        yield from super().track(batches)
        _Continuing.continued += self.continued_rows
        _Continuing.missed += self.missed_continuations


def _continued_reports(
    path: Path, monkeypatch: pytest.MonkeyPatch, window: int = 64, part: int = 40, **options: Any
) -> tuple[dict, dict, int]:
    """(reference report, fast report, rows continued in bulk), with small windows and small
    parts, so that the capture's long connections are live in the table from one window to
    the next."""
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", window)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 4 * window)
    monkeypatch.setattr(fastpath, "_CONTINUE_ROWS", part)
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Continuing)
    _Continuing.continued = 0
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    continued, _Continuing.continued = _Continuing.continued, 0
    # The same connections listed (Zeek's view kept up to date along the runs too).
    listing = {**options, "keep_flows": True}
    flows = [
        [flow.to_dict() for flow in analyze_capture(path, ENGINE, settings).connections]
        for settings in (AnalysisOptions(**listing), AnalysisOptions(fast_path=False, **listing))
    ]
    assert flows[0] == flows[1]
    assert (_Continuing.continued > 0) == (continued > 0)
    return reference.to_dict(), fast.to_dict(), continued


def _retired(path: Path, fast: bool) -> dict[int, tracker.TrackedConnection]:
    """The connections the table retires, whole (every counter of both sides, not only what a
    report shows), by id: fed packet by packet, or through the fast path."""
    table = tracker.FlowTable(zeek=False)
    with CaptureReader(str(path)) as reader:
        if fast:
            columns = map(ColumnDecoder(Decoder()).decode, reader.chunks())
            retired = fastpath.FastPathTracker(table).track(columns)
        else:
            retired = table.track(p for p in map(Decoder().decode, reader) if p is not None)
        return {c.ref.conn_id: c for c in retired if isinstance(c, tracker.TrackedConnection)}


def _same_connections(path: Path) -> None:
    """Every connection the fast path retires through the table is the reference's (those it
    took in bulk are not retired there: the reports compare them)."""
    reference, fast = _retired(path, fast=False), _retired(path, fast=True)
    assert fast
    for conn_id, conn in fast.items():
        assert conn == reference[conn_id], conn_id


def _long_talks(
    cap: Capture, count: int, rounds: int, case: str = "clean", gap: float = 0.001
) -> None:
    """`count` connections exchanging requests and answers for `rounds` rounds, interleaved;
    halfway through, the first one meets `case`; then every one closes."""
    talks = [
        Conversation(cap, client=("10.7.0.1", 42000 + k), server=("10.9.0.2", 8080))
        for k in range(count)
    ]
    for talk in talks:
        talk.handshake()
    for number in range(rounds):
        for k, talk in enumerate(talks):
            talk.send("c", PSH | ACK, 100 + k, dt=gap)
            sent = talk.send("s", PSH | ACK, 900, dt=gap)
            talk.send("c", ACK, dt=gap)
            if number == rounds // 2 and k == 0:
                _twist(talk, sent, case)
    for talk in talks:
        talk.close("c")


def _twist(talk: Conversation, sent: TcpSegment, case: str) -> None:
    """Something off the in-order path, in the middle of a long connection."""
    if case == "retransmission":
        talk.send("s", PSH | ACK, 900, seq=sent.seq)
    elif case == "keepalive":
        talk.send("c", ACK, seq=talk.c.seq - 1)
        talk.send("s", ACK)
    elif case == "zero window":
        talk.send("s", ACK, window=0)
        talk.send("s", ACK)
    elif case == "reordered":
        talk.send("c", PSH | ACK, 100, seq=talk.c.seq + 100, advance=False)
        talk.send("c", PSH | ACK, 100)
        talk.c.seq = (talk.c.seq + 100) & 0xFFFFFFFF
        talk.send("s", ACK)
    elif case == "icmp":
        talk.icmp(sent, 3, 1, src="10.9.0.254")
    elif case == "ignored reset":
        talk.rst("s", seq=talk.s.seq + 100_000)
    elif case == "empty from a side without SYN":
        # (a connection the capture caught mid-stream is tracked apart: see test below)
        talk.send("c", ACK)
    elif case != "clean":
        raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "clean",
        "retransmission",
        "keepalive",
        "zero window",
        "reordered",
        "icmp",
        "ignored reset",
        "empty from a side without SYN",
    ],
)
def test_long_connections_continued_in_bulk_report_as_the_reference(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _long_talks(cap, 6, 30, case)
    path = tmp_path / "long.pcap"
    write_pcap(cap, path)
    reference, fast, continued = _continued_reports(path, monkeypatch)
    assert fast == reference
    assert continued > len(cap.packets) // 2  # most rows of the long connections
    _same_connections(path)


@pytest.mark.parametrize(
    "case", ["retransmission", "keepalive", "zero window", "reordered", "icmp", "ignored reset"]
)
def test_connections_that_start_in_a_part_are_continued_after_their_handshake(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short connections that start, talk and go off the in-order path within one part of a
    window (a failing connection's usual life): the table is fed each handshake, the rows
    after it are continued in bulk up to the first that is not in order. Around them, the
    handshakes that must not be foreseen so: a retransmitted SYN, a SYN-ACK that does not
    acknowledge the SYN, a 4-tuple used again, data on the SYN."""
    cap = Capture()
    _long_talks(cap, 6, 4, case)
    again = Conversation(cap, client=("10.7.0.2", 42100), server=("10.9.0.2", 8080))
    for _ in range(2):  # the same 4-tuple twice in a row, each with a few rounds
        again.handshake()
        for _ in range(3):
            again.send("c", PSH | ACK, 80)
            again.send("s", PSH | ACK, 400)
        again.rst("c")
    resent = Conversation(cap, client=("10.7.0.2", 42101), server=("10.9.0.2", 8080))
    resent.send("c", SYN, advance=False)
    resent.handshake()
    odd = Conversation(cap, client=("10.7.0.2", 42102), server=("10.9.0.2", 8080))
    odd.send("c", SYN)
    odd.send("s", SYN | ACK, ack=odd.c.seq + 7)
    odd.send("c", ACK)
    with_data = Conversation(cap, client=("10.7.0.2", 42103), server=("10.9.0.2", 8080))
    with_data.send("c", SYN, 20)
    with_data.send("s", SYN | ACK)
    with_data.send("c", ACK)
    for talk in (resent, odd, with_data):
        for _ in range(3):
            talk.send("c", PSH | ACK, 60)
            talk.send("s", PSH | ACK, 300)
        talk.rst("s")
    path = tmp_path / "short.pcap"
    write_pcap(cap, path)
    _Continuing.missed = 0
    reference, fast, continued = _continued_reports(path, monkeypatch, window=4096, part=4096)
    assert fast == reference
    # The first use of the reused 4-tuple: its 6 rows up to its RST. And the twisted
    # connection's rows before its twist, unless an ICMP error quotes it (then it is left to
    # the table) or the twist is no event (a zero window: it is taken in bulk).
    assert continued == 6 if case in ("icmp", "zero window") else continued > 6
    assert _Continuing.missed == 0
    _same_connections(path)


def test_a_handshake_that_does_not_end_as_foreseen_has_its_run_fed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the table, fed a handshake, did not hold the connection as _fresh_handshakes
    foresaw (no case is known), the run's rows are fed to it one by one at the run's end,
    instead of being taken as in-order segments they may not be."""
    cap = Capture()
    _long_talks(cap, 4, 4, "retransmission")
    path = tmp_path / "foreseen-wrongly.pcap"
    write_pcap(cap, path)
    found = fastpath._fresh_handshakes

    def wrongly(*args: Any) -> Any:
        handshakes, fresh = found(*args)
        for key, (table_key, client, server, state) in fresh.items():
            fresh[key] = (table_key, client, server, (state[0], state[1], True, False))
        return handshakes, fresh

    monkeypatch.setattr(fastpath, "_fresh_handshakes", wrongly)
    _Continuing.missed = 0
    reference, fast, continued = _continued_reports(path, monkeypatch, window=4096, part=4096)
    assert fast == reference
    assert continued > 0 and _Continuing.missed > 0


def test_connections_caught_mid_stream_are_continued_as_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No handshake: the roles are guessed, SYNs unseen, so an empty segment (an ACK) takes
    the general path and ends a run; data still continues."""
    cap = Capture()
    talks = [
        Conversation(cap, client=("10.7.0.3", 43000 + k), server=("10.9.0.2", 8080))
        for k in range(5)
    ]
    for number in range(40):
        for talk in talks:
            talk.send("c", PSH | ACK, 120)
            talk.send("s", PSH | ACK, 700)
            if number % 10 == 9:
                talk.send("c", ACK)
    path = tmp_path / "midstream.pcap"
    write_pcap(cap, path)
    reference, fast, continued = _continued_reports(path, monkeypatch)
    assert fast == reference
    assert continued > 0
    _same_connections(path)


def test_long_connections_of_a_full_table_are_not_continued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the table able to fill up, which connection is evicted depends on the order of
    activity, which a continuation brings up to date only at its end: none is taken."""
    cap = Capture()
    _long_talks(cap, 8, 30)
    path = tmp_path / "full.pcap"
    write_pcap(cap, path)
    reference, fast, continued = _continued_reports(path, monkeypatch, max_connections=6)
    assert reference["evicted"] > 0
    assert fast == reference
    assert continued == 0


def test_no_continuation_where_the_table_could_fill_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long connections talk on while new ones fill the table: which is evicted depends on
    the order of activity at that moment, which continuations would bring up to date only at
    their ends. So in such a window none is taken, and the evictions are the reference's."""
    cap = Capture()
    quiet = Conversation(cap, client=("10.7.0.6", 46000), server=("10.9.0.2", 8080))
    quiet.handshake()
    talks = [
        Conversation(cap, client=("10.7.0.4", 44000 + k), server=("10.9.0.2", 8080))
        for k in range(6)
    ]
    for talk in talks:
        talk.handshake()
    for number in range(40):
        for talk in talks:
            talk.send("c", PSH | ACK, 100)
            talk.send("s", PSH | ACK, 900)
        if number % 4 == 3:  # a new connection every fourth round, never closed
            new = Conversation(cap, client=("10.7.0.7", 47000 + number), server=("10.9.0.2", 80))
            new.handshake()
            new.send("c", PSH | ACK, 50)
    path = tmp_path / "filling.pcap"
    write_pcap(cap, path)
    options = {"max_connections": 16}  # (twice the live ones: not yet a flood)
    reference, fast, continued = _continued_reports(path, monkeypatch, 2048, 64, **options)
    assert reference["evicted"] > 0
    assert fast == reference
    assert continued == 0


def test_zeek_timers_of_continued_connections_run_on_the_capture_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection resumes with segments stamped long before the capture clock (merged
    captures): Zeek's timers, which the fast path's continuations keep too, judge them by the
    clock, as packet by packet (here: Zeek's inactivity timer splits its conn.log rows)."""
    cap = Capture()
    late = Conversation(cap, client=("10.7.0.8", 48000), server=("10.9.0.2", 8080))
    late.handshake()
    late.send("c", PSH | ACK, 100)
    other = Conversation(cap, client=("10.7.0.9", 48001), server=("10.9.0.3", 8080))
    other.handshake()
    for _ in range(200):
        other.send("c", PSH | ACK, 10, dt=1.0)
    stamp = cap.time
    cap.time -= 390.0  # the late connection's segments, stamped before the clock
    for _ in range(30):
        late.send("s", PSH | ACK, 300)
        late.send("c", PSH | ACK, 100)
    cap.time = stamp
    other.send("c", PSH | ACK, 10, dt=1.0)
    path = tmp_path / "stamped-late.pcap"
    write_pcap(cap, path)
    reference, fast, continued = _continued_reports(path, monkeypatch, window=64, part=16)
    assert fast == reference
    assert continued > 0


@pytest.mark.parametrize("idle_retire", [1.0, 60.0])
def test_idle_connections_are_retired_as_the_reference(
    idle_retire: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow connections (a segment every 0.4 s) amid a busy one. A continuation brings a
    connection's state up to date only at the end of its run, and its state says whether it
    is idle: so when the table retires connections idle for 1 s, a run that spans more must
    not be taken (the slow ones would look idle at a check point in it). With 60 s, they are
    continued."""
    monkeypatch.setattr(tracker.FlowTable.__init__, "__defaults__", (5.0, idle_retire))
    cap = Capture()
    talks = [
        Conversation(cap, client=("10.7.0.4", 44000 + k), server=("10.9.0.2", 8080))
        for k in range(3)
    ]
    busy = Conversation(cap, client=("10.7.0.5", 45000), server=("10.9.0.3", 8080))
    busy.handshake()
    for talk in talks:
        talk.handshake()
    for _ in range(10):
        for talk in talks:
            talk.send("c", PSH | ACK, 100, dt=0.2)
            for _ in range(150):  # (the table's check points, every 1024 packets)
                busy.send("c", PSH | ACK, 10, dt=0.001)
            talk.send("s", PSH | ACK, 900, dt=0.2)
    path = tmp_path / "idle.pcap"
    write_pcap(cap, path)
    reference, fast, continued = _continued_reports(path, monkeypatch, window=2048, part=2048)
    assert fast == reference
    assert reference["flows"] == 4  # (nothing was idle for long enough)
    assert continued > 0 if idle_retire > 10 else continued == 0


# -- connections followed across windows (fastpath._Followed) ----------------------------------


class _Following(fastpath.FastPathTracker):
    connections = 0  # followed to their end (left the table without a packet fed)
    rows = 0  # rows of followed connections taken in bulk

    def track(self, batches: Any) -> Iterator[Any]:
        yield from super().track(batches)
        _Following.connections += self.followed_connections
        _Following.rows += self.followed_rows


def _followed_reports(
    path: Path, monkeypatch: pytest.MonkeyPatch, window: int = 128, **options: Any
) -> tuple[dict, dict, int, int, list[int]]:
    """(reference report, fast report, connections followed to their end, rows followed,
    the ids of the followed connections the table replayed), with windows small enough (at most 4 *
    `window` rows) that connections outlive them; and the connections the table retires are
    the reference's, field by field (those it replayed from a followed one's rows among
    them)."""
    replayed: list[int] = []
    replay = tracker.FlowTable._replayed

    def counted(table: tracker.FlowTable, followed: Any) -> tracker.Connection:
        replayed.append(followed.conn_id)
        return replay(table, followed)

    monkeypatch.setattr(tracker.FlowTable, "_replayed", counted)
    # The table's check points every 64 packets (not 1,024), both ways: in windows this small
    # a connection's would otherwise seldom come before the window's end.
    monkeypatch.setattr(tracker, "RETIRE_CHECK_EVERY", 64)
    monkeypatch.setattr(fastpath, "RETIRE_CHECK_EVERY", 64)
    reference = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, **options))
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", window)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 4 * window)
    # (no connection of these tests reaches the bounds of what a followed one may keep)
    monkeypatch.setattr(fastpath, "FOLLOW_MAX_WINDOWS", 8)
    monkeypatch.setattr(fastpath, "FOLLOW_MAX_ROWS", 256)
    # (read in small pieces, or a window would be at least the 256 KB the reader reads)
    monkeypatch.setattr("tcpdiag.reader._CHUNK", 4096)
    monkeypatch.setattr(CaptureReader.chunks, "__defaults__", (4096,))
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", _Following)
    _Following.connections = _Following.rows = 0
    fast = analyze_capture(path, ENGINE, AnalysisOptions(**options))
    followed = (_Following.connections, _Following.rows, replayed[:])
    # The same connections listed (Zeek's view: those followed to their end are listed from
    # a summary of their whole life).
    listing = {**options, "keep_flows": True}
    _Following.connections = 0
    flows = [
        [flow.to_dict() for flow in analyze_capture(path, ENGINE, settings).connections]
        for settings in (AnalysisOptions(**listing), AnalysisOptions(fast_path=False, **listing))
    ]
    assert flows[0] == flows[1]
    listed = _Following.connections
    if not options:
        _same_connections(path)
    assert (listed > 0) == (followed[0] > 0)
    return reference.to_dict(), fast.to_dict(), *followed


def _followed_talks(cap: Capture, case: str = "clean") -> None:
    """Connections that each outlive a window of _followed_reports (about 14 s of this
    capture, 7 s of it decided): one starts every 2 s and talks once a second for 20 s, then
    closes, beside a ticker connection that sends every 50 ms and never closes. The second
    meets `case` 16 s into its life (in a later window than its SYN's, where it is followed);
    some cases change the others."""
    schedule: list[tuple[float, int, Callable[[], Any]]] = []
    start = cap.time
    originals: list[Any] = []  # ("handshake ACK again": the segment copied, and its copy)
    copies: list[Any] = []

    def at(t: float, action: Callable[[], Any]) -> None:
        schedule.append((start + t, len(schedule), action))

    def server_closes_on_it(talk: Conversation, t: float) -> None:
        """The server's FIN at `t`, the client's (on the end of file) 0.2 ms later, the last
        ACK."""
        at(t, lambda: talk.send("s", FIN | ACK, dt=0.0))
        at(t + 0.0002, lambda: talk.send("c", FIN | ACK, dt=0.0))
        at(t + 0.0003, lambda: talk.send("s", ACK, dt=0.0))

    ticker = Conversation(cap, client=("10.7.1.1", 41000), server=("10.9.1.1", 443))
    at(0.0, ticker.handshake)
    for k in range(1, 1100):
        at(k * 0.05, lambda: ticker.send("c", PSH | ACK, 10, dt=0.0))
    for n in range(12):
        talk = Conversation(cap, client=("10.7.0.1", 42000 + n), server=("10.9.0.2", 8080))
        t0 = 0.5 + 2.0 * n
        twisted = n == 1
        at(t0, talk.handshake)
        for r in range(20):
            if twisted and case in _CLOSED_ON_THE_CLIENT and r >= 15:
                break
            if twisted and case in ("request left unanswered", "first request left unanswered"):
                break  # (a server that never says a word)
            if twisted and case == "handshake ACK again":
                break  # (a client that never says a word)
            twist = twisted and r == 15 and case in _TWISTS

            def exchange(talk: Conversation = talk, twist: bool = twist) -> None:
                talk.send("c", PSH | ACK, 100, dt=0.0)
                sent = talk.send("s", PSH | ACK, 900)
                talk.send("c", ACK)
                if twist:
                    _twist(talk, sent, case)

            at(t0 + 1.0 + r + (25.0 if case == "pause" and twisted and r >= 15 else 0.0), exchange)
        if twisted and case == "request left unanswered":
            # (the request in a later window than the handshake, the server's FIN 24 s later,
            # windows after; a window update of the server's first, for the bulk path to
            # follow the connection from its first window)
            at(t0 + 1.0, lambda talk=talk: talk.send("s", ACK, dt=0.0))
            at(t0 + 16.2, lambda talk=talk: talk.data("c", 100))
            server_closes_on_it(talk, t0 + 40.2)
            continue
        if twisted and case == "first request left unanswered":
            # (the request in the window of the handshake, the server's FIN 16 s later)
            at(t0 + 1.0, lambda talk=talk: talk.data("c", 100))
            server_closes_on_it(talk, t0 + 17.0)
            continue
        if twisted and case == "handshake ACK again":
            # The server talks alone, then closes; a copy of the client's handshake ACK (its
            # IP ID too, set below) comes after the FIN: the table's last segment of that
            # client's is still that ACK, from the connection's first window.
            at(t0, lambda: originals.append(cap.packets[-1]))
            for r in range(20):
                at(t0 + 1.0 + r, lambda talk=talk: talk.data("s", 900))
            at(t0 + 21.5, lambda talk=talk: talk.send("s", FIN | ACK, dt=0.0))
            at(t0 + 21.5001, lambda: copies.append(replace(originals[0], time=cap.time)))
            at(t0 + 21.5001, lambda: cap.packets.append(copies[0]))
            at(t0 + 21.5002, lambda talk=talk: talk.send("c", FIN | ACK, dt=0.0))
            at(t0 + 21.5003, lambda talk=talk: talk.send("s", ACK, dt=0.0))
            continue
        if twisted and case == "request on a half-closed connection":
            at(t0 + 16.2, lambda talk=talk: talk.send("s", FIN | ACK, dt=0.0))
            at(t0 + 16.2001, lambda talk=talk: talk.send("c", ACK, dt=0.0))
            at(t0 + 19.2, lambda talk=talk: talk.send("c", PSH | ACK, 100, dt=0.0))
            at(t0 + 19.2001, lambda talk=talk: talk.send("c", FIN | ACK, dt=0.0))
            at(t0 + 19.2002, lambda talk=talk: talk.send("s", ACK, dt=0.0))
            continue
        if n == 11 and case == "open at the end":
            continue
        if n == 11 and case == "half closed at the end":
            at(t0 + 21.5, lambda talk=talk: talk.send("c", FIN | ACK, dt=0.0))
            continue
        if twisted and case == "slow close":
            at(t0 + 21.5, lambda talk=talk: talk.send("c", FIN | ACK, dt=0.0))
            at(t0 + 25.0, lambda talk=talk: talk.send("s", FIN | ACK, dt=0.0))
            at(t0 + 25.1, lambda talk=talk: talk.send("c", ACK, dt=0.0))
            continue
        at(t0 + (46.5 if case == "pause" and twisted else 21.5), lambda talk=talk: talk.close("c"))
        if twisted and case in ("late segment", "later segment"):
            late = 23.0 if case == "late segment" else 26.0  # (retired 5 s after the close)
            at(t0 + late, lambda talk=talk: talk.send("s", ACK, dt=0.0))
        if twisted and case == "reset after the close":
            at(t0 + 22.5, lambda talk=talk: talk.rst("s"))
        if twisted and case == "data after a FIN":
            at(t0 + 16.2, lambda talk=talk: talk.send("c", FIN | ACK, dt=0.0))
            at(t0 + 16.4, lambda talk=talk: talk.send("c", PSH | ACK, 10, dt=0.0))
        if twisted and case == "reused four-tuple":
            again = Conversation(cap, client=("10.7.0.1", 42000 + n), server=("10.9.0.2", 8080))
            at(t0 + 22.5, again.handshake)
            at(t0 + 23.5, lambda again=again: again.data("c", 50))
            at(t0 + 24.5, lambda again=again: again.close("c"))
    if case == "handshake only, open at the end":
        quiet = Conversation(cap, client=("10.7.2.1", 43000), server=("10.9.0.2", 8080))
        at(3.0, quiet.handshake)
        at(3.1, lambda: quiet.send("s", ACK, dt=0.0))
    for t, _, action in sorted(schedule, key=lambda item: item[:2]):
        cap.time = max(cap.time, t)
        action()
    if copies:  # every segment its own IP ID, the copy its original's
        for number, seg in enumerate(cap.packets, 1):
            seg.frame, seg.ip_id = number, 1 + number % 65535
        copies[0].ip_id = originals[0].ip_id


_TWISTS = ("retransmission", "keepalive", "zero window", "reordered", "icmp", "ignored reset")
# The server closes while the client waits (premature_close): clean rows, but a finding.
_CLOSED_ON_THE_CLIENT = (
    "request left unanswered",
    "first request left unanswered",
    "request on a half-closed connection",
)


@pytest.mark.parametrize(
    "case",
    [
        "clean",
        *_TWISTS,
        *_CLOSED_ON_THE_CLIENT,
        "pause",
        "slow close",
        "late segment",
        "later segment",
        "reset after the close",
        "data after a FIN",
        "reused four-tuple",
        "open at the end",
        "half closed at the end",
        "handshake only, open at the end",
        "handshake ACK again",
    ],
)
def test_connections_followed_across_windows_report_as_the_reference(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _followed_talks(cap, case)
    path = tmp_path / "followed.pcap"
    write_pcap(cap, path)
    reference, fast, connections, rows, replayed = _followed_reports(path, monkeypatch)
    assert fast == reference
    talks = sum(1 for p in cap.packets if isinstance(p, TcpSegment) and p.sport != 41000)
    assert rows > talks // 2  # (the ticker, 1,100 rows, is followed only for a while)
    assert connections >= 4  # (closed, or open at the end with data)
    # A followed connection that anything but clean rows happens to is replayed: the talk
    # that meets the case is the third connection (a zero window is nothing to the
    # analysis), the last talk the thirteenth, the one without payload the fourth. (A close
    # that straddles the end of a window's part decided is replayed too: the FIN state is
    # not carried over, so the talk's with a late segment may be.)
    if case in ("clean", "zero window", "pause", "open at the end"):
        assert 3 not in replayed
    elif case in (*_TWISTS, "reused four-tuple", "slow close", "data after a FIN"):
        assert 3 in replayed
    elif case == "handshake ACK again":  # (a copy the table drops and counts)
        assert 3 in replayed
        assert any("captured twice" in warning for warning in reference["warnings"])
    elif case in _CLOSED_ON_THE_CLIENT:
        assert 3 in replayed
        assert [f["category"] for f in reference["findings"]] == ["premature_close"]
    assert (13 in replayed) >= (case == "half closed at the end")
    assert (4 in replayed) == (case == "handshake only, open at the end")


def test_followed_connections_go_idle_as_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With connections idle for 20 s retired, a talk that goes quiet after 3 s is retired
    while followed (at a check point of the table, every 1,024 packets of a ticker's): the
    table replays it then, as it would have retired it packet by packet."""
    monkeypatch.setattr(tracker.FlowTable.__init__, "__defaults__", (5.0, 20.0))
    cap = Capture()
    ticker = Conversation(cap, client=("10.7.1.1", 41000), server=("10.9.1.1", 443))
    talk = Conversation(cap, client=("10.7.0.1", 42000), server=("10.9.0.2", 8080))
    ticker.handshake()
    for k in range(6000):
        ticker.send("c", PSH | ACK, 10, dt=0.02)
        if k == 100:
            talk.handshake()
        elif k in (150, 200, 250):
            talk.send("c", PSH | ACK, 100)
            talk.send("s", PSH | ACK, 900)
    path = tmp_path / "followed-idle.pcap"
    write_pcap(cap, path)
    idle: list[int] = []
    retire_due = tracker.FlowTable._retire_due

    def noting(table: tracker.FlowTable) -> Iterator[tracker.Retired]:
        # (the talk's id is 2; it is replayed, if at all, while it is retired as idle)
        for retired in retire_due(table):
            if isinstance(retired, tracker.TrackedConnection) and retired.ref.conn_id == 2:
                idle.append(retired.ref.conn_id)
            yield retired

    monkeypatch.setattr(tracker.FlowTable, "_retire_due", noting)
    reference, fast, _, rows, replayed = _followed_reports(path, monkeypatch)
    assert fast == reference
    assert idle  # (retired at a check point, as idle)
    assert rows and replayed  # (the talk: the ticker, its server silent, is never followed)


def test_followed_connections_are_evicted_as_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table that fills up evicts its least recently active connections, followed ones
    too (replayed then): so a followed connection must be in the order of activity where its
    rows would have put it (it is moved at the last of its rows in each window). Here a
    connection with a retransmission at 10 s (tracked packet by packet) then falls silent,
    and at 30 s thirty new connections come at once: the silent one is the first evicted, not
    a followed talk that last spoke long after it."""
    cap = Capture()
    _followed_talks(cap, "clean")
    silent = Conversation(cap, client=("10.7.3.1", 44000), server=("10.9.0.2", 8080))
    crowd = [
        Conversation(cap, client=("10.7.4.1", 45000 + k), server=("10.9.0.3", 80))
        for k in range(30)
    ]
    packets, cap.packets = cap.packets, []
    cap.time = packets[0].time + 9.0
    silent.handshake()
    sent = silent.send("c", PSH | ACK, 100)
    silent.send("c", PSH | ACK, 100, seq=sent.seq, dt=1.0)
    cap.time = packets[0].time + 30.0
    for talk in crowd:
        talk.handshake()
        talk.send("c", PSH | ACK, 10)
    cap.packets = sorted(packets + cap.packets, key=lambda p: p.time)
    for number, packet in enumerate(cap.packets, 1):
        packet.frame = number
    path = tmp_path / "followed-full.pcap"
    write_pcap(cap, path)
    reference, fast, _, rows, replayed = _followed_reports(path, monkeypatch, max_connections=36)
    assert reference["evicted"] > 0
    assert fast == reference
    assert rows and replayed


def _window_of(cap: Capture) -> fastpath.Columns:
    """The capture's packets as one window of columns, as the fast path decodes them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "window.pcap"
        write_pcap(cap, path)
        with CaptureReader(str(path)) as reader:
            decoder = ColumnDecoder(Decoder())
            return fastpath.Columns.join([decoder.decode(chunk) for chunk in reader.chunks()])


def _judged(
    cap: Capture,
    taken: int,
    end: int,
    *,
    last: bool = False,
    quoted: bool = False,
    zeek: bool = False,
) -> tuple[str, fastpath._FollowOn | None]:
    """What fastpath._follow_on makes of the first connection of `cap` (its first `taken`
    rows followed in an earlier window; the rows of the window from there, [0, `end`) the
    part decided): "finished", "going on", "closing" (closed, waiting in the table's closing
    queue) or "left" (to the table)."""
    w = _window_of(cap)
    done = np.zeros(len(w), np.bool_)
    done[:taken] = True
    first = cap.packets[0]
    assert isinstance(first, TcpSegment)
    next_seq = [0, 0]  # where each side's segments so far ended
    for packet in cap.packets[:taken]:
        assert isinstance(packet, TcpSegment)
        side = int(packet.src != first.src)
        next_seq[side] = (
            packet.seq + packet.payload_len + bool(packet.flags & SYN) + bool(packet.flags & FIN)
        ) & 0xFFFFFFFF
    a, b = fastpath._ends(w, np.array([0]))
    context = fastpath._context(w.tunnel[:1], w.v6[:1])
    key = int(fastpath._connection_keys(a, b, context)[0])
    history = fastpath._History({})
    table_key = tracker.FlowTable.key_of(first.src, first.sport, first.dst, first.dport, "")
    followed = fastpath._Followed(
        key,
        tracker.FollowedConnection(table_key, 1, first.time, history),
        history,
        int(a[0]),
        int(b[0]),
        int(context[0]),
        (next_seq[0], next_seq[1]),
        True,
        (0, 0, 0, 0),  # (no handshake ACK with an IP ID)
    )
    quotes = np.array([key] if quoted else [], np.uint64)
    clock = w.time.copy()
    on = fastpath._follow_on(w, clock, done, end, last, 0, [followed], quotes, zeek)
    if on is None:
        return "left", on
    if list(on.finished) == [0]:
        return "finished", on
    if list(on.going_on) == [0]:
        return ("closing" if on.closes[0] else "going on"), on
    return "left", on


def _judged_talk(case: str) -> Capture:
    """A connection's handshake and two exchanges (rows 0-8, followed before the window),
    then rows of the window: an exchange (9-11), and as `case` says, the close; then a ticker
    (another connection) 20 s later, so that the window reaches the check point."""
    cap = Capture()
    talk = Conversation(cap)
    talk.handshake()
    for _ in range(3):
        talk.send("c", PSH | ACK, 100)
        talk.send("s", PSH | ACK, 900)
        talk.send("c", ACK)
    if case == "out of sequence":
        talk.send("c", PSH | ACK, 100, seq=talk.c.seq + 1)
    if case == "second FIN":
        talk.send("c", FIN | ACK)
        talk.send("c", PSH | ACK, 10)
    if case != "no close":
        talk.close("c")
    if case == "late segment":
        talk.send("s", ACK, dt=1.0)
    if case == "reset after the close":
        talk.rst("s", dt=0.5)
    other = Conversation(cap, client=("10.0.0.9", 50000))
    other.send("c", PSH | ACK, 10, dt=20.0)
    return cap


@pytest.mark.parametrize(
    ("case", "end", "last", "quoted", "outcome"),
    [
        ("no close", 12, False, False, "going on"),
        ("no close", 10, False, False, "going on"),  # (rows 10-11 are the next window's)
        ("close", 16, False, False, "finished"),
        ("close", 16, True, False, "finished"),
        ("close", 13, False, False, "left"),  # a FIN before the end, its close after it
        ("close", 12, False, False, "going on"),  # the close wholly after the end
        ("reset after the close", 16, False, False, "left"),
        ("reset after the close", 17, False, False, "left"),
        ("second FIN", 18, False, False, "left"),
        ("out of sequence", 16, False, False, "left"),
        ("close", 16, False, True, "left"),  # an ICMP error quotes it
    ],
)
def test_followed_rows_are_judged_as_a_bulk_connection(
    case: str, end: int, last: bool, quoted: bool, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "RETIRE_CHECK_EVERY", 1)  # (a check point at every packet)
    cap = _judged_talk(case)
    judged, on = _judged(cap, 9, end, last=last, quoted=quoted)
    assert judged == outcome
    if judged == "going on":
        assert on is not None
        # It goes on from its last row before the end, where each side's segments ended.
        rows = [p for p in cap.packets[9:end] if isinstance(p, TcpSegment) and p.sport == 40000]
        last_row = max(p.frame - 1 for p in cap.packets[9:end])
        assert on.last_row.tolist() == [last_row]
        assert on.next_seq.tolist()[0][0] == (rows[-1].seq + rows[-1].payload_len) & 0xFFFFFFFF
        assert on.kept.tolist() == list(range(9, end))
        # (its last time is that of its rows taken: the next window judges the others)
        latest = max(p.time for p in cap.packets[:end])
        assert on.last_time_early.tolist() == [pytest.approx(latest, abs=1e-6)]


def test_followed_rows_wait_for_the_check_point_that_retires_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clean close is taken out of the table only once the window reaches the check point
    at which the table would retire it (a grace period after its last packet): before the
    capture's last window, a window that ends before it has the connection wait in the
    table's closing queue, as a closed connection does."""
    monkeypatch.setattr(fastpath, "RETIRE_CHECK_EVERY", 1)
    cap = _judged_talk("close")
    cap.packets.pop()  # (no ticker 20 s later)
    assert _judged(cap, 9, 15)[0] == "closing"
    assert _judged(cap, 9, 15, last=True)[0] == "finished"
    # (not where Zeek's view is wanted: it lists a connection as it leaves the table)
    assert _judged(cap, 9, 15, zeek=True)[0] == "left"
    # A segment after the close: the table would queue it at its close, not its last row.
    cap = _judged_talk("late segment")
    cap.packets.pop()
    assert _judged(cap, 9, 16)[0] == "left"
    assert _judged(cap, 9, 16, last=True)[0] == "finished"


@pytest.mark.parametrize("late", [False, True])
def test_a_new_connection_that_closes_where_its_window_ends_is_followed(late: bool) -> None:
    """A connection whose whole life is in a window that ends before its retirement check
    point is followed, waiting in the table's closing queue, if it closed with its last row
    (with a segment after its close, it is left to the table)."""
    cap = _judged_talk("late segment" if late else "close")
    cap.packets.pop()  # (no ticker 20 s later)
    w = _window_of(cap)
    done = np.zeros(len(w), np.bool_)
    quoted = np.zeros(0, np.uint64)
    listed = fastpath._uneventful(w, done, w.time.copy(), len(w), False, 0, True, quoted)
    assert listed.follow is None  # (Zeek's view lists a connection as it leaves the table)
    bulk = fastpath._uneventful(w, done, w.time.copy(), len(w), False, 0, False, quoted)
    assert not len(bulk.groups)
    if late:
        assert bulk.follow is None
    else:
        assert bulk.follow is not None and bulk.follow.closes.tolist() == [True]
        assert bulk.follow.last_row.tolist() == [len(w) - 1]


def _syn_flood_phases(cap: Capture) -> None:
    """Healthy connections; a flood of bare SYNs that fills a small store, with a refusal and a
    healthy connection in it here and there; a connection that closes just before more of the
    flood (its close grace runs out within it); then answers to a few SYNs of the flood, long
    evicted, and to a few recent ones."""
    _healthy(cap, 5)
    flood = []
    for k in range(1600):
        client = (f"100.65.{k >> 8}.{k & 255}", 2000 + k % 11)
        conv = Conversation(cap, client=client, server=("10.9.1.1", 80), client_isn=k * 104_729)
        conv.send("c", SYN, options=LINUX_SYN, dt=0.0004)
        flood.append(conv)
        if k in (300, 900):
            refused = Conversation(
                cap, client=("198.51.100.3", 40_000 + k), server=("10.9.1.2", 25)
            )
            refused.send("c", SYN, options=LINUX_SYN, dt=0.0004)
            refused.rst("s", dt=0.0004)
        if k == 1200:
            _clean(cap, ("10.1.0.9", 41_000), dt=0.0004)
    for k in range(1600, 2400):  # (5 s later: the clean connection's grace ends in here)
        client = (f"100.66.{k >> 8}.{k & 255}", 3000 + k % 13)
        conv = Conversation(cap, client=client, server=("10.9.1.1", 80), client_isn=k * 7919)
        conv.send("c", SYN, options=LINUX_SYN, dt=0.0004 if k > 1600 else 4.9)
        flood.append(conv)
    for conv in flood[::97]:
        conv.send("s", SYN | ACK, options=LINUX_SYN, dt=0.01)
        conv.send("c", ACK)


@pytest.mark.parametrize(("room", "in_bulk"), [(150, False), (400, True), (1000, True)])
def test_a_flood_filling_the_store_is_taken_in_bulk_as_one_by_one(
    room: int, in_bulk: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows of nothing but bare SYNs that fill the store are handed over in bulk, the
    store evicting its oldest as one by one would (FlowTable.hold_syns_evicting); a window
    with anything else in it, or in which the table could retire something, or with more
    SYNs than the store holds (room 150: each window has about 260), goes the per-packet way.
    Reports and flow listings as the reference's, windows small."""
    cap = Capture()
    _syn_flood_phases(cap)
    path = tmp_path / "flood.pcap"
    write_pcap(cap, path)
    options = AnalysisOptions(max_held_syns=room, keep_flows=True)
    reference = analyze_capture(path, ENGINE, replace(options, fast_path=False))
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", 128)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 512)
    monkeypatch.setattr(fastpath, "HOLD_AT_ONCE", 50)
    monkeypatch.setattr("tcpdiag.reader._CHUNK", 4096)
    monkeypatch.setattr(CaptureReader.chunks, "__defaults__", (4096,))
    handed: list[int] = []
    evicting = tracker.FlowTable.hold_syns_evicting

    def counting(table: tracker.FlowTable, rows: dict[str, Any]) -> None:
        handed.append(len(rows["conn_id"]))
        evicting(table, rows)

    monkeypatch.setattr(tracker.FlowTable, "hold_syns_evicting", counting)
    fast = analyze_capture(path, ENGINE, options)
    assert fast.to_dict() == reference.to_dict()
    assert [f.to_dict() for f in fast.connections] == [f.to_dict() for f in reference.connections]
    assert reference.evicted > 1000
    if not in_bulk:
        assert handed == []
        return
    assert len(handed) > 5 and max(handed) == 50  # (in pieces of HOLD_AT_ONCE at most)
    assert sum(handed) < 2400  # (not every SYN: some windows went the per-packet way)
    # What a detector sees: the same connections retired in the same order (the connection
    # whose close grace runs out amid the flood among them, where one by one retires it).
    assert _retired_order(path, room, fast=True) == _retired_order(path, room, fast=False)


def _retired_order(path: Path, room: int, fast: bool) -> list[int]:
    """The ids of the connections the table retires, in order (each bare SYN of a
    RetiredSyns in its place)."""
    table = tracker.FlowTable(max_held_syns=room, batch_held_syns=True)
    with CaptureReader(str(path)) as reader:
        if fast:
            columns = map(ColumnDecoder(Decoder()).decode, reader.chunks())
            retired = fastpath.FastPathTracker(table).track(columns)
        else:
            retired = table.track(p for p in map(Decoder().decode, reader) if p is not None)
        return [
            conn_id
            for r in retired
            for conn_id in (
                r.columns.rows["conn_id"].tolist()
                if isinstance(r, tracker.RetiredSyns)
                else [r.ref.conn_id]
            )
        ]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 5), max_size=40))
def test_values_found_once_are_those_np_unique_counts_once(values: list[int]) -> None:
    """fastpath._once (one sort) agrees with np.unique's counts (the keys of bare SYNs taken
    in bulk are those that collide with no other)."""
    keys = np.array(values, np.uint64)
    unique, counts = np.unique(keys, return_counts=True)
    assert fastpath._once(keys).tolist() == np.isin(keys, unique[counts == 1]).tolist()


@pytest.fixture(scope="module")
def concurrent_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 connections a second, healthy ones idle for seconds before they close: about 2,000
    open at once over half a minute (connections followed across windows of a few seconds)."""
    path = tmp_path_factory.mktemp("concurrent") / "concurrent.pcap"
    module = _make_capture_module()
    module.generate(40_000, path, seed=3, rate=200, knobs=module.Knobs(rate=200, idle_s=8.0))
    return path


@pytest.mark.parametrize("listing", [False, True], ids=["analyze", "flows"])
def test_memory_budgets_change_nothing_but_where_connections_wait(
    concurrent_capture: Path, monkeypatch: pytest.MonkeyPatch, listing: bool
) -> None:
    """Beyond AWAKE_IN_MEMORY live connections in memory the least recently active wait on disk,
    and beyond FOLLOWED_IN_MEMORY followed connections the others are tracked packet by packet:
    with small budgets, on both paths, the report (and the flows) are the unbounded reference's."""
    options: dict[str, Any] = {"keep_flows": listing}
    # Windows of a few seconds: connections are followed across them.
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 32768)
    unbounded = analyze_capture(
        concurrent_capture, ENGINE, AnalysisOptions(fast_path=False, **options)
    )
    stored: list[int] = []
    real_store = tracker.ConnectionSpill.store

    def store(self: tracker.ConnectionSpill, conn: tracker.Connection) -> Any:
        stored.append(conn.conn_id)
        return real_store(self, conn)

    followed: list[int] = []
    real_follow_up = fastpath.FastPathTracker._follow_up

    def follow_up(self: fastpath.FastPathTracker, *args: Any, **kwargs: Any) -> None:
        real_follow_up(self, *args, **kwargs)
        followed.append(len(self._followed))

    monkeypatch.setattr(tracker.ConnectionSpill, "store", store)
    monkeypatch.setattr(tracker, "AWAKE_IN_MEMORY", 64)
    monkeypatch.setattr(fastpath.FastPathTracker, "_follow_up", follow_up)
    monkeypatch.setattr(fastpath, "FOLLOWED_IN_MEMORY", 64)
    for fast_path in (False, True):
        stored.clear()
        report = analyze_capture(
            concurrent_capture, ENGINE, AnalysisOptions(fast_path=fast_path, **options)
        )
        assert report.to_dict() == unbounded.to_dict()
        if listing:
            assert [f.to_dict() for f in report.connections] == [
                f.to_dict() for f in unbounded.connections
            ]
        assert len(stored) > 1000  # live connections waited on disk for want of room
    assert max(followed) == 64  # the budget of followed connections was reached
