"""What goes to temporary files stays bounded, and a full temporary directory loses nothing."""

from __future__ import annotations

import dataclasses
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, FullDisk, findings, write_pcap

from tcpdiag import spool as spool_module
from tcpdiag import tracker as tracker_module
from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.decode import Decoder
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import ACK, FIN, PSH, RST, SYN, SynOptions, TcpSegment
from tcpdiag.reader import CaptureReader
from tcpdiag.rules import load_rules
from tcpdiag.spool import FindingSpool
from tcpdiag.tracker import IDLE_SPILL_SECONDS, FlowTable, InOrderRun, RstLog, TrackedConnection

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _largest_spill_file(compaction_bytes: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """20 connections, 15 times idle (so spilled to disk) and woken again: the largest the
    idle-connection file gets."""
    monkeypatch.setattr(tracker_module, "SPILL_COMPACT_BYTES", compaction_bytes)
    cap = Capture()
    convs = [Conversation(cap, client=("10.0.0.1", 40000 + i)) for i in range(20)]
    for conv in convs:
        conv.handshake()
    for _ in range(15):  # each round: everybody idle for a while, then one segment each
        convs[0].send("c", ACK, dt=IDLE_SPILL_SECONDS + 1)
        for conv in convs[1:]:
            conv.send("c", ACK)
    table = FlowTable(zeek=False)
    largest = 0
    for packet in cap.packets:
        table.advance(packet.time)
        table.feed(packet)
        list(table.retire_due(check=True))
        largest = max(largest, table.spill_bytes)
    assert table.live_count == 20
    return largest


def test_the_idle_spill_file_is_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections that sleep (to disk), wake and sleep again are written again each time; the
    file is rewritten with only the sleeping ones once half of it is garbage, so it follows
    the idle connections (one round's entries, at most twice), not the length of the capture."""
    compacted = _largest_spill_file(1 << 10, monkeypatch)
    growing = _largest_spill_file(1 << 40, monkeypatch)  # a threshold never reached
    assert growing > 10 * compacted / 2, "without compaction the file grows round by round"
    assert compacted * 7 < growing


def test_a_full_temporary_directory_keeps_every_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = Capture()
    for i in range(30):
        conv = Conversation(cap, client=("10.0.0.1", 41000 + i))
        conv.handshake()
        conv.data("c", 10)
        conv.data("s", 10)
        conv.rst("s", dt=1.0)
    made = findings(cap)
    assert len(made) == 30
    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", FullDisk)
    kept = FindingSpool(memory_limit=8)
    for finding in made:
        kept.extend([finding])
    assert kept.spill_failed.startswith("findings kept in memory: No space left on device")
    assert len(kept) == 30
    assert [f.id for f in kept] == [f"F{n}" for n in range(1, 31)]


def test_findings_come_back_from_the_spool_exactly() -> None:
    """Findings wait on disk pickled (with their own compact pickling of the small parts)."""
    cap = Capture()
    for i in range(12):
        conv = Conversation(cap, client=("10.0.0.1", 42000 + i))
        conv.handshake()
        conv.data("c", 10)
        conv.rst("s", dt=1.0)
    made = findings(cap)
    spool = FindingSpool(memory_limit=4)
    spool.extend(made)
    back = [dataclasses.replace(f, id="") for f in spool]  # ids are given on the way out
    expected = [dataclasses.replace(f, id="") for f in made]
    assert back == sorted(expected, key=lambda f: (f.time, f.frames[:1]))
    assert all(f.evidence and f.client_sees.os == "linux" for f in back)


# -- closed connections beyond CLOSED_IN_MEMORY wait out the close grace period asleep -----------
# (as their packed segments when they are few, tracker._Replayable; else on disk)

# How a connection sleeps: as its segments, if they are few (the default), or always on disk.
ASLEEP = pytest.mark.parametrize(
    "replay_segments",
    [tracker_module.REPLAY_SEGMENTS, 0],
    ids=["short ones replayed", "all on disk"],
)

ROOT = Path(__file__).resolve().parent.parent
ENGINE = RuleEngine(load_rules())


def _report(path: Path, options: AnalysisOptions) -> tuple[dict, list[dict]]:
    report = analyze_capture(path, ENGINE, options)
    return report.to_dict(), [flow.to_dict() for flow in report.connections]


@ASLEEP
@pytest.mark.parametrize("path", sorted((ROOT / "samples").glob("*.pcap")), ids=lambda p: p.name)
def test_closed_connections_asleep_change_nothing(
    path: Path, replay_segments: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every closed connection put to sleep at once, each report (and flows) is what it
    is with all of them in memory: late segments wake them, reused 4-tuples and evictions
    retire them, exactly as before."""
    options = AnalysisOptions(fast_path=False, keep_flows=True)
    expected = _report(path, options)
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 0)
    monkeypatch.setattr(tracker_module, "REPLAY_SEGMENTS", replay_segments)
    assert _report(path, options) == expected


def _closing_storm(cap: Capture, count: int) -> None:
    """Connections refused one after another, some retried (a late SYN wakes the closed one),
    4-tuples reused within the grace period (the closed one retires at once) and after it.
    First, open connections that fall idle long enough to sleep (IDLE_SPILL_SECONDS), and
    more opened during the storm: with max_connections 200, the table evicts the least
    recently active open ones, the sleeping ones first (woken to retire); closed ones
    waiting out their grace period are never evicted."""
    for i in range(150):
        Conversation(cap, client=("10.0.0.3", 10000 + i)).handshake()
    for i in range(count):
        port = 30000 + i % 2000 if i % 2 else 33000 + i % 150  # (the latter: within grace)
        conv = Conversation(cap, client=("10.0.0.1", port))
        conv.c.seq += 7919 * i  # a new ISN for each attempt on a reused 4-tuple
        conv.send("c", SYN, options=LINUX_SYN, dt=61.0 if i == 0 else 0.002)
        conv.rst("s")
        if i % 7 == 0:
            conv.send("c", SYN, options=LINUX_SYN, seq=conv.c.seq - 1, advance=False, dt=0.05)
            conv.rst("s")
        if i % 15 == 0:
            Conversation(cap, client=("10.0.0.4", 10000 + i)).handshake()
    retried = conv if (count - 1) % 7 == 0 else None
    # Well past the grace period, after enough packets for retirement checks: a stray ACK on
    # a 4-tuple whose connection was woken from disk starts a connection of its own.
    for i in range(1_100):
        filler = Conversation(cap, client=("10.0.0.2", 20000 + i))
        filler.send("c", SYN, options=LINUX_SYN, dt=6.0 if i == 0 else 0.001)
        filler.rst("s")
    assert retried is not None
    retried.send("c", ACK)


@ASLEEP
def test_closed_connections_asleep_change_nothing_in_a_storm_of_closes(
    tmp_path: Path, replay_segments: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Capture()
    _closing_storm(cap, 3_011)
    path = tmp_path / "storm.pcap"
    write_pcap(cap, path)
    options = AnalysisOptions(fast_path=False, keep_flows=True, max_connections=200)
    expected = _report(path, options)
    # Evictions wake sleeping connections too: the open ones beyond 200 (the 150 idle ones
    # asleep, first), never the closed ones.
    assert expected[0]["evicted"] == 150 + 201 + 1 - 200  # (+1: the stray ACK's)
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 10)
    monkeypatch.setattr(tracker_module, "REPLAY_SEGMENTS", replay_segments)
    assert _report(path, options) == expected
    assert _report(path, AnalysisOptions(keep_flows=True, max_connections=200)) == expected


@ASLEEP
def test_closed_connections_beyond_the_bound_take_little_memory(
    replay_segments: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of refusals keeps at most CLOSED_IN_MEMORY closed connections in memory while
    they wait out the grace period; the others cost a stand-in each: their two segments,
    packed, or a place on disk."""
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 200)
    monkeypatch.setattr(tracker_module, "REPLAY_SEGMENTS", replay_segments)

    def peak(count: int) -> int:
        cap = Capture()
        for i in range(count):
            conv = Conversation(cap, client=("10.0.0.1", 20000 + i))
            conv.send("c", SYN, options=LINUX_SYN, dt=0.0001)
            conv.rst("s")
        tracemalloc.start()
        table = FlowTable(zeek=False)
        spilled = 0
        for _ in table.track(cap.packets):
            spilled = max(spilled, table.spill_bytes)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert table.evicted == 0
        assert (spilled > 0) == (replay_segments < 2)  # (a refused connection is 2 segments)
        return top

    small, large = peak(2_000), peak(10_000)
    # A whole refused connection takes about 3 KB in memory.
    assert (large - small) / 8_000 < 600, (small, large)


# -- the closing queue is rid of the connections retired early -----------------------------------


def test_the_table_counts_its_closed_connections_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What --max-connections bounds is the live entries less the closed ones waiting out
    their grace period, whose count the table keeps as they come and go (it never scans for
    them): checked against a count of them at every retirement check point, with closed
    connections in memory, asleep, retired for a reused 4-tuple, cut short by their bound,
    open ones evicted and woken, both ways; and on every sample."""
    counts: list[int] = []
    retire_due = FlowTable._retire_due

    def checked(table: FlowTable) -> Any:
        closed = sum(getattr(e, "closed_at", None) is not None for e in table._live.values())
        assert table._closed_live == closed
        counts.append(closed)
        return retire_due(table)

    monkeypatch.setattr(FlowTable, "_retire_due", checked)
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 10)
    monkeypatch.setattr(tracker_module, "MAX_CLOSED_WAITING", 400)
    cap = Capture()
    _closing_storm(cap, 3_011)
    path = tmp_path / "storm.pcap"
    write_pcap(cap, path)
    for fast in (False, True):
        options = AnalysisOptions(fast_path=fast, keep_flows=True, max_connections=200)
        report = analyze_capture(path, ENGINE, options)
        assert report.evicted > 0
        assert any("close grace period (5 s) ended" in w for w in report.warnings)
    assert max(counts) >= 300
    for sample in sorted(SAMPLES.glob("*.pcap")):
        for fast in (False, True):
            analyze_capture(sample, ENGINE, AnalysisOptions(fast_path=fast, keep_flows=True))


def test_closed_connections_beyond_their_bound_are_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond MAX_CLOSED_WAITING closed connections waiting out the grace period, the first
    closed retire at once: the same report and flows both ways (the fast path's connections
    closed in bulk wait as stand-ins, cut short alike), and the report says so."""
    monkeypatch.setattr(tracker_module, "MAX_CLOSED_WAITING", 300)
    cap = Capture()
    _closing_storm(cap, 3_011)
    for i in range(600):  # clean connections (the fast path's, in bulk) among refusals
        clean = Conversation(cap, client=("10.0.0.5", 10000 + i))
        clean.handshake()
        clean.data("c", 100)
        clean.close("c")
        refused = Conversation(cap, client=("10.0.0.6", 10000 + i))
        refused.send("c", SYN, options=LINUX_SYN)
        refused.rst("s")
    path = tmp_path / "storm.pcap"
    write_pcap(cap, path)
    reference = _report(path, AnalysisOptions(fast_path=False, keep_flows=True))
    assert any("more than 300 were waiting it out" in w for w in reference[0]["warnings"])
    in_bulk = 0
    closed_elsewhere = FlowTable.closed_elsewhere

    def counted(table: FlowTable, closed_at: float, last_time: float) -> None:
        nonlocal in_bulk
        in_bulk += 1
        closed_elsewhere(table, closed_at, last_time)

    monkeypatch.setattr(FlowTable, "closed_elsewhere", counted)
    assert _report(path, AnalysisOptions(keep_flows=True)) == reference
    assert in_bulk > 300


def test_connections_cut_short_leave_at_the_check_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose grace period is cut short leaves at the next retirement check
    point, not at once: one that closed elsewhere (the fast path's, in bulk) leaves nothing to
    give, so giving it at once would add a check point the fast path does not have. Here,
    with room for two, a clean connection (in bulk) closes, then one with a retransmission
    (tracked), whose late FIN comes right after a third connection closed past its grace
    period: no check point comes in between (fewer than RETIRE_CHECK_EVERY packets), so the
    FIN joins it, both ways."""
    monkeypatch.setattr(tracker_module, "MAX_CLOSED_WAITING", 2)
    cap = Capture()
    first = Conversation(cap, client=("10.0.0.7", 10001))
    first.handshake()
    first.data("c", 100)
    first.close("c")
    late = Conversation(cap, client=("10.0.0.7", 10002))
    late.handshake()
    sent = late.send("c", PSH | ACK, 100)
    late.send("c", PSH | ACK, 100, seq=sent.seq)  # (a retransmission: tracked)
    late.send("s", ACK)
    late.close("c")
    third = Conversation(cap, client=("10.0.0.7", 10003))
    third.send("c", SYN, options=LINUX_SYN, dt=5.0)
    third.send("s", SYN | ACK, options=LINUX_SYN)
    third.send("c", ACK)
    third.data("c", 100)
    third.close("c")
    late.send("s", FIN | ACK, seq=late.s.seq - 1, dt=0.01)  # its FIN again
    path = tmp_path / "cut.pcap"
    write_pcap(cap, path)
    reference = _report(path, AnalysisOptions(fast_path=False, keep_flows=True))
    assert reference[0]["flows"] == 3
    assert any("more than 2 were waiting it out" in w for w in reference[0]["warnings"])
    assert _report(path, AnalysisOptions(keep_flows=True)) == reference


def test_compacting_the_closing_queue_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries of evicted connections, folded into runs as soon as possible or never: the
    same report and flows (with closed connections in memory and on disk)."""
    cap = Capture()
    _closing_storm(cap, 3_011)
    path = tmp_path / "storm.pcap"
    write_pcap(cap, path)
    options = AnalysisOptions(fast_path=False, keep_flows=True, max_connections=200)
    monkeypatch.setattr(tracker_module, "CLOSING_COMPACT_MIN", 64)
    compactions = 0
    compact = FlowTable._compact_closing

    def counted(table: FlowTable) -> None:
        nonlocal compactions
        compactions += 1
        compact(table)

    monkeypatch.setattr(FlowTable, "_compact_closing", counted)
    expected = _report(path, options)
    assert expected[0]["evicted"] > 0 and compactions > 0
    monkeypatch.setattr(tracker_module, "CLOSING_COMPACT_MIN", 1)
    assert _report(path, options) == expected
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 10)
    assert _report(path, options) == expected
    monkeypatch.setattr(tracker_module, "REPLAY_SEGMENTS", 0)
    assert _report(path, options) == expected
    assert _report(path, AnalysisOptions(keep_flows=True, max_connections=200)) == expected


def test_closed_connections_beyond_their_bound_leave_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusals far faster than the close grace period: beyond MAX_CLOSED_WAITING waiting out
    their grace period, the first closed retire at once, counted, and nothing of them stays.
    Memory follows the bound, not the refusals still inside their grace period; none counts
    toward the live connections (nothing is evicted)."""
    monkeypatch.setattr(tracker_module, "MAX_CLOSED_WAITING", 300)

    def peak(count: int) -> int:
        cap = Capture()
        for i in range(count):
            conv = Conversation(cap, client=(f"10.0.{i // 50_000}.1", 10000 + i % 50_000))
            conv.send("c", SYN, options=LINUX_SYN, dt=0.0001)
            conv.rst("s")
        tracemalloc.start()
        table = FlowTable(zeek=False, max_live=300)
        retired = sum(1 for _ in table.track(cap.packets))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert retired == count and table.evicted == 0
        assert table.grace_cut == count - 300
        return top

    small, large = peak(2_000), peak(10_000)
    assert (large - small) / 8_000 < 100, (small, large)


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_a_connection_comes_back_from_disk_as_it_went(zeek: bool) -> None:
    """Every slot of every object of a spilled connection (frozen dataclasses too) comes back
    with its value (tracker._rebuilder), and a frozen one is still frozen."""
    table = FlowTable(zeek=zeek)
    for sample in ("peer_reset_linger0", "icmp_host_unreachable_established", "mixed"):
        with CaptureReader(SAMPLES / f"{sample}.pcap") as reader:
            decoder = Decoder()
            for frame in reader:
                packet = decoder.decode(frame)
                if packet is not None:
                    table.feed(packet)
    live = [conn for conn in table._live.values() if type(conn) is tracker_module.Connection]
    assert any(conn.rsts for conn in live) and any(conn.icmp_events for conn in live)
    spill = tracker_module.ConnectionSpill()
    try:
        for conn in live:
            back = spill.restore(spill.store(conn))
            assert back is not conn
            assert _slot_values(back) == _slot_values(conn)
            with pytest.raises(dataclasses.FrozenInstanceError):
                back.ref.conn_id = 0  # type: ignore[misc]
    finally:
        spill.close()


def _slot_values(value: object) -> object:
    """A value with every slotted object in it replaced by its type and slot values, and
    every other value by its type and itself (True is not 1, nor -1 None)."""
    names = tracker_module._slot_names(type(value))
    if names:
        return type(value), [_slot_values(getattr(value, name)) for name in names]
    if isinstance(value, list | tuple):
        return type(value), [_slot_values(item) for item in value]
    if isinstance(value, dict):
        return {key: _slot_values(item) for key, item in value.items()}
    return type(value), value


# -- a short connection asleep is made again exactly from its segments ---------------------------


class _ReplayChecking(FlowTable):
    """A table that, at each close, makes the connection again from its history (as it will
    if the connection sleeps) and checks that every slot of every object is the same; and,
    for each plain refusal that never becomes a Connection, that what refused_connection
    retires is what replaying its stand-in and retiring that gives; for each attempt an ICMP
    error rejected that sleeps as that error, that its stand-in is what the connection made of
    it would sleep as."""

    replayed = 0
    refused = 0
    rejected = 0  # of those replayed: made of the ICMP error that rejected a SYN not on the wire

    def _refused(
        self,
        key: tracker_module.Key,
        syn: TcpSegment,
        syn_now: float,
        rst: TcpSegment,
        rst_now: float,
        conn_id: int,
    ) -> bool:
        if not super()._refused(key, syn, syn_now, rst, rst_now, conn_id):
            return False
        asleep = self._live[key]
        assert isinstance(asleep, tracker_module._Replayable)
        made = tracker_module.refused_connection(syn, rst, conn_id, self._rst_log, self.zeek)
        replayed = self._replay(asleep).retire(self._rst_log, rst_now)
        assert _slot_values(made) == _slot_values(replayed), made.ref
        self.refused += 1
        return True

    def _queue_closed(self, key: tracker_module.Key, conn: tracker_module.Connection) -> None:
        if conn.history is not None:
            again = self._replay(tracker_module._Replayable.of(conn, key))
            assert again is not conn
            assert _slot_values(again) == _slot_values(conn), conn.ref
            self.replayed += 1
        super()._queue_closed(key, conn)

    def _wait_asleep(
        self, key: tracker_module.Key, asleep: tracker_module._Spilled | tracker_module._Replayable
    ) -> None:
        # One an ICMP error rejected, asleep as that error without being made: its stand-in
        # is what the Connection it stands for would have slept as.
        if type(asleep) is tracker_module._Replayable and asleep.rejected is not None:
            conn = self._replay(asleep)
            assert conn.closed and conn.history is None
            conn.history = b""  # (as _Replayable.of asks: none of its segments is on the wire)
            expected = tracker_module._Replayable.of(conn, key)
            expected.rejected = asleep.rejected
            assert asleep == expected, conn.ref
            self.replayed += 1
            self.rejected += 1
        super()._wait_asleep(key, asleep)


def _short_connections(cap: Capture) -> None:
    """Connections of a few segments, of every kind whose fields a replay must get right."""
    scanner = dataclasses.replace(LINUX_SYN, mss=None, window_scale=0, sack_permitted=False)
    odd = dataclasses.replace(LINUX_SYN, window_scale=200, timestamps=False)
    unscaled = dataclasses.replace(LINUX_SYN, window_scale=None)
    for i, options in enumerate((LINUX_SYN, None, scanner, odd, unscaled)):
        conv = Conversation(cap, client=("10.0.0.1", 31000 + i))
        conv.send("c", SYN, options=options, window=1024 + i)
        conv.rst("s")
    conv = Conversation(cap, client=("10.0.0.1", 31010))  # a RST without ACK to a SYN
    conv.send("c", SYN, options=LINUX_SYN)
    conv.rst("s", with_ack=False)
    probe = Conversation(cap, client=("10.0.0.1", 31011))  # a half-open probe
    probe.send("c", SYN, options=scanner)
    probe.send("s", SYN | ACK, options=LINUX_SYN)
    probe.rst("c", with_ack=False)
    late = Conversation(cap, client=("10.0.0.1", 31012))  # caught at its SYN-ACK
    late.send("s", SYN | ACK, options=LINUX_SYN)
    late.rst("c", with_ack=False)
    six = Conversation(cap, client=("2001:db8::1", 31013), server=("2001:db8::2", 443))
    six.send("c", SYN, options=LINUX_SYN)
    six.rst("s")
    retried = Conversation(cap, client=("10.0.0.1", 31014))  # a retry wakes it
    retried.send("c", SYN, options=LINUX_SYN)
    retried.rst("s")
    retried.send("c", SYN, options=LINUX_SYN, seq=retried.c.seq - 1, advance=False, dt=0.5)
    whole = Conversation(cap, client=("10.0.0.1", 31015))  # too many segments to replay
    whole.handshake()
    whole.rst("s")
    same_ports = Conversation(cap, client=("10.0.0.3", 80))  # told apart by address only
    same_ports.send("c", SYN, options=LINUX_SYN)
    same_ports.rst("s")
    # Answered by a RST stamped behind the clock, which another packet took past the SYN's
    # Zeek attempt timer (its conn.log splits there).
    behind = Conversation(cap, client=("10.0.0.1", 31019))
    behind.send("c", SYN, options=LINUX_SYN)
    Conversation(cap, client=("10.0.0.4", 31019)).send("c", ACK, dt=6.0)
    behind.rst("s", dt=-5.9)
    unreachable = Conversation(cap, client=("10.0.0.1", 31018))  # closed by an ICMP error
    unreachable.icmp(unreachable.send("c", SYN, options=LINUX_SYN), 3, 1, "10.0.0.254")
    # SYNs a firewall on their own host rejected, only the ICMP error quoting each on the wire
    # (FlowTable._attempt_rejected): from the host itself, in the destination's name (Linux's
    # REJECT), in a tunnel, retried once the rule is gone (the SYN wakes it), and a PMTU
    # message from the host, which leaves the attempt open (it never sleeps as the error).
    for port, source, code, tunnel in (
        (31020, "10.0.0.5", 3, ""),
        (31021, "10.0.0.2", 10, ""),
        (31022, "10.0.0.5", 3, "gre 7"),
        (31023, "10.0.0.5", 13, ""),
        (31024, "10.0.0.5", 4, ""),
    ):
        rejected = Conversation(cap, client=("10.0.0.5", port))
        syn = rejected.send("c", SYN, options=LINUX_SYN)
        cap.packets.remove(syn)
        rejected.icmp(syn, 3, code, source, mtu=1400 if code == 4 else None)
        cap.packets[-1] = dataclasses.replace(cap.packets[-1], tunnel=tunnel)
        if port == 31023:
            rejected.send("c", SYN, options=LINUX_SYN, seq=syn.seq, advance=False, dt=0.5)
    # One with IP ids and a long TTL path, one in a tunnel.
    for port, change in ((31016, {"ip_id": 4242, "ttl": 117}), (31017, {"tunnel": "gre 7"})):
        conv = Conversation(cap, client=("10.0.0.1", port))
        conv.send("c", SYN, options=LINUX_SYN)
        conv.rst("s")
        cap.packets[-2:] = [dataclasses.replace(seg, **change) for seg in cap.packets[-2:]]


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_a_short_connection_is_made_again_exactly_from_its_segments(
    zeek: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 0)
    cap = Capture()
    _short_connections(cap)
    table = _ReplayChecking(zeek=zeek)
    retired, spilled = [], 0
    for connection in table.track(cap.packets):
        retired.append(connection)
        spilled = max(spilled, table.spill_bytes)
    # Every one that closed but the one with a handshake and the one an ICMP error closed (a
    # RST without ACK does not close an attempt; the retried one closed once). The plain
    # refusals among them never become a Connection: all but the half-open probe and the one
    # caught at its SYN-ACK; with Zeek's view, not those taken past their SYN's attempt timer
    # (the one whose RST came behind the clock, and the last two: the clock stays ahead).
    # So are the four attempts an ICMP error rejected (not the one a PMTU message left open).
    assert table.replayed + table.refused == 17
    assert table.refused == (8 if zeek else 11)
    assert table.rejected == 4
    assert len(retired) == 22
    assert spilled > 0  # (that one waited on disk)


def _refusal(rng: random.Random) -> tuple[TcpSegment, TcpSegment, RstLog]:
    """A random plain refusal (sequence numbers at the wrap, IPv6, tunnels, every kind of SYN
    options, IP ids or none, a RST stamped before its SYN), and a log of other RSTs of its
    server's host around it (its burst)."""
    six = rng.random() < 0.3
    client, server = ("2001:db8::1", "2001:db8::2") if six else ("10.0.0.1", "10.0.0.2")
    seq = rng.choice([0, 0xFFFFFFFF, rng.getrandbits(32)])
    options = rng.choice(
        [
            None,
            LINUX_SYN,
            SynOptions(mss=1460),
            SynOptions(mss=None, window_scale=15, timestamps=True),
            SynOptions(mss=536, sack_permitted=True),
        ]
    )
    time, tunnel = rng.choice([0.0, 1_700_000_000.0]), rng.choice(["", "vxlan 42"])
    syn = TcpSegment(
        frame=rng.randint(1, 100), time=time, src=client, dst=server,
        sport=rng.randint(1, 65535), dport=rng.randint(1, 65535), seq=seq,
        ack=rng.choice([0, 77]), flags=SYN, window=rng.randint(0, 65535), payload_len=0,
        ttl=rng.randint(1, 255), ip_version=6 if six else 4,
        ip_id=None if six else rng.choice([0, rng.randint(1, 65535)]), syn_options=options,
        tunnel=tunnel,
    )  # fmt: skip
    rst = TcpSegment(
        frame=syn.frame + rng.randint(1, 5), time=time + rng.choice([0.0, 5e-6, 0.3, -0.5, 100.0]),
        src=server, dst=client, sport=syn.dport, dport=syn.sport,
        seq=rng.choice([0, rng.getrandbits(32)]), ack=(seq + 1) & 0xFFFFFFFF, flags=RST | ACK,
        window=rng.choice([0, 29200]), payload_len=0, ttl=rng.randint(1, 255),
        ip_version=syn.ip_version, ip_id=None if six else rng.choice([0, rng.randint(1, 65535)]),
        syn_options=None, tunnel=tunnel,
    )  # fmt: skip
    log = RstLog()
    for _ in range(rng.randint(0, 6)):
        log.record((tunnel, server), rst.time + rng.uniform(-0.02, 0.02), rng.random() < 0.5)
    return syn, rst, log


def _tracked(
    syn: TcpSegment,
    rst: TcpSegment,
    log: RstLog,
    zeek: bool = False,
    nows: tuple[float, float] | None = None,
) -> TrackedConnection:
    """The two segments tracked in a Connection, as FlowTable does (each at the capture clock
    in `nows`, by default its own time)."""
    conn = FlowTable(zeek=zeek)._connection(syn, 9)
    for seg, now in zip((syn, rst), nows or (syn.time, rst.time), strict=True):
        conn.on_segment(seg, log, now)
    return conn.retire(log, (nows or (syn.time, rst.time))[1])


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_a_plain_refusal_is_made_as_tracking_makes_it(zeek: bool) -> None:
    """Slot by slot; with Zeek's view, at capture clocks around its attempt timer (the clock
    a segment came at can be well past its own time): where Zeek's view is no single REJ row,
    zeek_rejected says so, and refused_connection would have it wrong."""
    rng = random.Random(11)
    compared = 0
    for _ in range(600):
        syn, rst, log = _refusal(rng)
        assert tracker_module.plain_refusal(syn, rst)
        syn_now = syn.time + rng.choice([0.0, 0.0, 4.99, 5.0, 400.0])
        rst_now = max(syn_now, rst.time) + rng.choice([0.0, 0.0, 3.0, 5.0, 400.0])
        made = tracker_module.refused_connection(syn, rst, 9, log, zeek)
        tracked = _tracked(syn, rst, log, zeek, (syn_now, rst_now))
        if not zeek or tracker_module.zeek_rejected(syn, syn_now, rst_now):
            assert _slot_values(made) == _slot_values(tracked)
            compared += 1
        else:
            assert _slot_values(made) != _slot_values(tracked)
    assert compared == 600 if not zeek else 100 < compared < 600


_NOT_PLAIN: dict[str, Callable[[TcpSegment, TcpSegment], tuple[TcpSegment, TcpSegment]]] = {
    "the RST acknowledges something else": lambda syn, rst: (syn, replace(rst, ack=rst.ack + 1)),
    "the RST has no ACK": lambda syn, rst: (syn, replace(rst, flags=RST)),
    "the SYN carries data": lambda syn, rst: (replace(syn, payload_len=10), rst),
    "the RST is the SYN's frame": lambda syn, rst: (syn, replace(rst, frame=syn.frame)),
    "the client sent the RST": lambda syn, rst: (
        syn,
        replace(rst, src=syn.src, dst=syn.dst, sport=syn.sport, dport=syn.dport),
    ),
}


@pytest.mark.parametrize("change", _NOT_PLAIN.values(), ids=_NOT_PLAIN.keys())
def test_what_is_no_plain_refusal_tracking_makes_otherwise(
    change: Callable[[TcpSegment, TcpSegment], tuple[TcpSegment, TcpSegment]],
) -> None:
    """These conditions of plain_refusal are needed: refused_connection would make such pairs
    other than tracking does. (Its other conditions, a SYN's flags exactly SYN, a RST's
    exactly RST and ACK, no payload on the RST, only leave rarities to tracking.)"""
    rng = random.Random(12)
    for _ in range(20):
        syn, rst = change(*_refusal(rng)[:2])
        assert not tracker_module.plain_refusal(syn, rst)
        made = tracker_module.refused_connection(syn, rst, 9, RstLog())
        assert _slot_values(made) != _slot_values(_tracked(syn, rst, RstLog()))


@pytest.mark.parametrize("keep_flows", [False, True], ids=["analyze", "with flows"])
@pytest.mark.parametrize("fast_path", [False, True], ids=["reference", "fast path"])
def test_plain_refusals_made_without_tracking_change_no_report(
    tmp_path: Path, fast_path: bool, keep_flows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sample's report (and its flows, Zeek's view included), and a storm of
    refusals' (late retries waking them, 4-tuples reused within the grace period, evictions
    around them), is what it is when every plain refusal is tracked as any connection."""
    cap = Capture()
    _closing_storm(cap, 3_011)
    storm = tmp_path / "storm.pcap"
    write_pcap(cap, storm)
    paths = [storm, *sorted((ROOT / "samples").glob("*.pcap"))]
    options = AnalysisOptions(fast_path=fast_path, keep_flows=keep_flows, max_connections=200)
    made = [_report(path, options) for path in paths]
    monkeypatch.setattr(tracker_module, "plain_refusal", lambda syn, rst: False)
    assert [_report(path, options) for path in paths] == made


def test_a_reset_burst_counts_the_same_with_its_connections_asleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server resetting 40 connections within 8 ms, each caught mid-stream (one data segment,
    then the RST: two segments, so they sleep replayable): each RST's burst is counted from
    the RST log when the connection retires. A replayed connection's RSTs were logged when
    they came; replaying them must not log them again."""
    cap = Capture()
    for i in range(40):
        conv = Conversation(cap, client=(f"10.0.1.{1 + i}", 30000 + i))
        conv.send("c", PSH | ACK, 100, dt=0.0001)
        conv.rst("s", dt=0.0001)
    _short_connections(cap)
    path = tmp_path / "burst.pcap"
    write_pcap(cap, path)
    for fast_path in (False, True):
        options = AnalysisOptions(fast_path=fast_path, keep_flows=True)
        monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 1 << 20)
        expected = _report(path, options)
        bursts = [f["facts"].get("burst_size") for f in expected[0]["findings"]]
        assert bursts.count(40) >= 40  # (and a handshake reset by the same server then)
        monkeypatch.setattr(tracker_module, "CLOSED_IN_MEMORY", 0)
        assert _report(path, options) == expected


def test_a_connection_continued_in_bulk_sleeps_whole() -> None:
    """Segments a front end hands over as an in-order run (FlowTable.continue_in_order) are not
    in the connection's history: once it has had any, it sleeps on disk, never as the
    segments before them. Both ways, the same connection as fed one by one."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    run = [conv.send("c", PSH | ACK, 100), conv.send("c", PSH | ACK, 100)]
    Conversation(cap, client=("10.0.0.9", 50000)).send("c", ACK, dt=IDLE_SPILL_SECONDS + 1)

    def retired(packets: list) -> tuple[list[object], int]:
        """The retired connections, and the largest the spill file got."""
        table, spilled = FlowTable(zeek=False), 0
        for packet in packets:
            table.advance(packet[-1].time if isinstance(packet, list) else packet.time)
            if isinstance(packet, list):
                key = FlowTable.key_of(conv.c.addr, conv.c.port, conv.s.addr, conv.s.port, "")
                table.continue_in_order(key, InOrderRun(
                    [True] * len(packet), [s.frame for s in packet], [s.time for s in packet],
                    [s.seq for s in packet], [s.ack for s in packet], [s.flags for s in packet],
                    [s.window for s in packet], [s.payload_len for s in packet],
                    [s.ttl for s in packet], [0] * len(packet), [s.time for s in packet],
                ))  # fmt: skip
            else:
                table.feed(packet)
            list(table.retire_due(check=True))
            spilled = max(spilled, table.spill_bytes)
        return [_slot_values(connection) for connection in table.flush()], spilled

    one_by_one, _ = retired(cap.packets)
    in_bulk, spilled = retired([*cap.packets[:3], run, cap.packets[-1]])
    assert in_bulk == one_by_one
    assert spilled > 0  # (idle, it went to disk: its history had been dropped)
