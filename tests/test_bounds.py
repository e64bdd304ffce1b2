"""Resource bounds under hostile traffic: a flood of distinct 4-tuples cannot grow memory without
limit; the tracker retires the least recently active connections and says how many."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, established

from tcpdiag import tracker
from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, SynOptions, TcpSegment
from tcpdiag.rules import load_rules
from tcpdiag.tracker import ConnectionSpill, FlowTable


def syn_flood(count: int, ipv6: bool = False) -> Iterator[TcpSegment]:
    for i in range(count):
        yield TcpSegment(
            frame=i + 1,
            time=1_700_000_000.0 + i * 1e-5,
            src=f"2001:db8::{i:x}" if ipv6 else f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            dst="2001:db8:ffff::1" if ipv6 else "192.0.2.1",
            sport=1024 + i % 60000,
            dport=80,
            seq=i * 7919,
            ack=0,
            flags=SYN,
            window=1024,
            payload_len=0,
            ttl=64,
            ip_version=6 if ipv6 else 4,
            syn_options=LINUX_SYN,
        )


@pytest.mark.parametrize("ipv6", [False, True], ids=["held compactly", "held in the table"])
def test_flood_keeps_at_most_its_bound_of_bare_syns(ipv6: bool) -> None:
    """IPv4 bare SYNs wait in the compact store, bounded by max_held_syns; others (IPv6 here)
    in the live table, bounded by max_live. Either way the oldest go first, counted."""
    table = FlowTable(max_live=500, max_held_syns=300)
    peak_live = peak_held = retired = 0
    for _ in table.track(syn_flood(20_000, ipv6)):
        retired += 1
        peak_live = max(peak_live, len(table._live))
        peak_held = max(peak_held, table.held_syns)
    bound = 500 if ipv6 else 300
    assert retired == 20_000
    assert (peak_live, peak_held) == ((bound, 0) if ipv6 else (0, bound))
    assert table.evicted == table.evicted_attempts == 20_000 - bound
    assert table.connections_seen == 20_000


def test_a_million_bare_syns_are_held_without_eviction_by_default() -> None:
    assert tracker.MAX_HELD_SYNS >= 1_000_000 > tracker.MAX_LIVE_ATTEMPTS
    table = FlowTable(max_live=10)
    assert table.max_held_syns == tracker.MAX_HELD_SYNS
    for seg in syn_flood(5_000):
        table.feed(seg)
    assert (table.held_syns, table.live_count, table.evicted) == (5_000, 0, 0)


def peak_memory(count: int) -> int:
    tracemalloc.start()
    for _ in FlowTable(max_live=1000, max_held_syns=1000).track(syn_flood(count)):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_the_flood() -> None:
    small, large = peak_memory(5_000), peak_memory(40_000)
    assert large < small * 1.5, (small, large)


def test_analysis_creates_no_reference_cycles() -> None:
    """The CLI runs the cyclic garbage collector rarely because nothing needs it: everything the
    pipeline builds is freed by reference counting alone."""
    engine = RuleEngine(load_rules())
    samples = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.pcap"))
    for options in (AnalysisOptions(keep_flows=True), AnalysisOptions()):
        # Libraries build some things once, lazily, with cycles (numpy's helpers): not ours.
        analyze_capture(samples[0], engine, options)
    gc.collect()
    gc.disable()
    try:
        for path in samples:
            for options in (AnalysisOptions(keep_flows=True), AnalysisOptions()):  # both paths
                report = analyze_capture(path, engine, options)
                assert report.error is None
                del report
        assert gc.collect() == 0
    finally:
        gc.enable()


def _stalled_then_back(cap: Capture) -> None:
    """A connection that stalls, stays silent for ten minutes among other traffic, and then
    speaks again and is reset; long enough to be spilled to disk in between."""
    stalled = Conversation(cap, client=("10.7.0.1", 40000))
    stalled.handshake()
    stalled.send("c", PSH | ACK, 100)
    for gap in (0.2, 0.4, 0.8):
        stalled.send("c", PSH | ACK, 100, seq=stalled.c.seq - 100, dt=gap)
    for k in range(3000):  # other connections, 0.2 s apart: retirement check points
        other = Conversation(cap, client=("10.8.0.1", 20000 + k % 40000))
        other.send("c", SYN, options=LINUX_SYN, dt=0.2)
    stalled.send("s", ACK, dt=0.5)
    stalled.send("c", PSH | ACK, 50)
    stalled.rst("s")


def test_idle_connections_come_back_from_disk_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = Capture()
    _stalled_then_back(cap)
    stored: list[int] = []
    original_store = ConnectionSpill.store

    def counting_store(self: ConnectionSpill, conn: Any) -> Any:
        stored.append(conn.conn_id)
        return original_store(self, conn)

    monkeypatch.setattr(ConnectionSpill, "store", counting_store)
    spilled = [(c.ref, c.events, c.client, c.server) for c in FlowTable().track(cap.packets)]
    assert 1 in stored  # the stalled connection did wait on disk
    monkeypatch.setattr(tracker, "IDLE_SPILL_SECONDS", float("inf"))
    in_memory = [(c.ref, c.events, c.client, c.server) for c in FlowTable().track(cap.packets)]
    assert spilled == in_memory
    (events,) = [events for ref, events, _, _ in spilled if ref.conn_id == 1]
    assert [e.KIND for e in events] == ["rst"]  # the RST after the silence was tracked


@pytest.mark.parametrize("ipv6", [False, True], ids=["held compactly", "held in the table"])
def test_a_full_table_retires_bare_syns_before_established_connections(ipv6: bool) -> None:
    """A SYN flood fills the table while established connections sit idle; when those are
    reset afterwards, each is still whole (one connection, its reset diagnosed): the flood's
    bare SYNs were the ones retired early."""
    cap = Capture()
    conversations = established(cap, "198.51.100.7", 20)
    flood = list(syn_flood(3_000, ipv6))
    for seg in flood:
        seg.frame += len(cap.packets)
        seg.time = cap.time + 1 + (seg.time - flood[0].time)
    cap.packets.extend(flood)
    cap.time = flood[-1].time
    for conv in conversations:
        conv.rst("s")
    table = FlowTable(max_live=100, max_held_syns=100)
    engine = RuleEngine(load_rules())
    retired = list(table.track(cap.packets))
    # (IPv4 SYNs compete with each other in the store, IPv6 ones with the connections)
    assert table.evicted == table.evicted_attempts == 3_000 - 100 + (20 if ipv6 else 0)
    reset = [c for c in retired if c.ref.client.startswith("198.51.100.7:")]
    assert len(reset) == 20  # none split in two by an early retirement
    categories = {f.category for c in reset for f in engine.findings_for(c)}
    assert categories and categories <= {"peer_reset", "local_abort"}


def refusals(count: int) -> Iterator[TcpSegment]:
    """SYN, RST/ACK, on distinct 4-tuples 5 us apart: every connection closed at once."""
    for seg in syn_flood(count):
        yield seg
        yield TcpSegment(
            frame=seg.frame + count,
            time=seg.time + 1e-6,
            src=seg.dst,
            dst=seg.src,
            sport=seg.dport,
            dport=seg.sport,
            seq=0,
            ack=seg.seq + 1,
            flags=RST | ACK,
            window=0,
            payload_len=0,
            ttl=64,
            ip_version=4,
        )


def _refusals_reusing(count: int, tuples: int) -> Iterator[TcpSegment]:
    """Refusals (SYN, RST/ACK) 10 us apart on `tuples` 4-tuples in turn, each attempt with a
    new ISN: each 4-tuple is used again well within the close grace period of its last one."""
    for i in range(count):
        time, port, seq = 1_700_000_000.0 + i * 1e-5, 1024 + i % tuples, i * 7919
        yield TcpSegment(
            frame=2 * i + 1, time=time, src="10.0.0.1", dst="192.0.2.1", sport=port, dport=80,
            seq=seq, ack=0, flags=SYN, window=1024, payload_len=0, ttl=64, ip_version=4,
            syn_options=LINUX_SYN,
        )  # fmt: skip
        yield TcpSegment(
            frame=2 * i + 2, time=time + 1e-6, src="192.0.2.1", dst="10.0.0.1", sport=80,
            dport=port, seq=0, ack=seq + 1, flags=RST | ACK, window=0, payload_len=0, ttl=64,
            ip_version=4,
        )  # fmt: skip


def test_connections_retired_early_leave_only_a_shell_in_the_closing_queue() -> None:
    """Closed connections wait a grace period in the closing queue; one retired before it
    ends (a new SYN reused its 4-tuple) leaves only a small shell queued until then, not the
    whole connection."""

    def peak(count: int) -> int:
        tracemalloc.start()
        table = FlowTable(zeek=False)
        retired = sum(1 for _ in table.track(_refusals_reusing(count, 500)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert retired == table.connections_seen == count
        assert table.evicted == table.grace_cut == 0
        return top

    small, large = peak(2_000), peak(10_000)
    # Queued whole until the queue is rid of them, the retired connections took about 0.8 KB
    # each; as shells, about 0.2 KB.
    assert (large - small) / 8_000 < 400, (small, large)


def test_an_endpoint_fits_the_small_object_allocator() -> None:
    """Each live connection holds two Endpoints: past 512 bytes (CPython's small-object limit)
    each is a malloc of its own, which cost fail_50 0.2 % more instructions for two slots
    added, and more memory per open connection."""
    assert sys.getsizeof(tracker.Endpoint.__new__(tracker.Endpoint)) <= 512


def test_the_rst_log_keeps_an_rst_in_a_few_bytes() -> None:
    """A host resetting connections as fast as it can: the RST-burst log keeps each of its
    RSTs until the connections that could count it retired (here each its close grace
    period after its RST), half of them as after an exchange too. As doubles: in lists of
    Python floats they took 48 bytes an RST."""
    log = tracker.RstLog()
    count, gap = 200_000, 1e-4
    grace = int(tracker.CLOSE_GRACE_SECONDS / gap)
    start = 1_700_000_000.0
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        if i >= grace:
            log.settled(start + (i - grace) * gap)  # (that connection retired)
        log.record(("", "10.0.0.1"), start + i * gap, i % 2 == 0)
    per_rst = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    assert per_rst < 16, per_rst
    # (those of the connections still to retire are all there)
    assert log.needed_from <= start + (count - grace) * gap - tracker.BURST_SPAN * log.window
    assert log.burst(("", "10.0.0.1"), start + (count - 1) * gap) == (1, True)  # a stream


def test_the_rst_log_keeps_what_a_connection_retiring_late_counts() -> None:
    """Real traffic (nDPI's WebEx capture): a host resets five connections within 3.4 ms, and
    another 34 s later; in a sparse capture the five retire only after that one came (at the
    next check point, or the end). Their burst still counts all five (it counted one: the log
    kept only a fixed span before the newest RST)."""
    log = tracker.RstLog()
    host, start = ("", "10.8.0.1"), 1_444_570_639.2556
    five = [start + i * 0.00085 for i in range(5)]
    for time in five:
        log.record(host, time, False)
    log.record(host, start + 34.0, False)
    for time in five:
        assert log.burst(host, time) == (5, False)
        log.settled(time)
    log.record(host, start + 35.0, False)  # (now they may go)
    assert log.needed_from > five[-1]
    assert log.burst(host, five[0]) == (0, False)


def test_a_bare_syn_waits_in_little_memory() -> None:
    """Bare SYNs wait in the table as small stand-ins (a SYN flood costs little memory), and
    become connections as soon as anything else happens to them."""
    flood = list(syn_flood(5_000))
    tracemalloc.start()
    table = FlowTable(zeek=False)
    before = tracemalloc.get_traced_memory()[0]
    for seg in flood:
        table.feed(seg)
    per_syn = (tracemalloc.get_traced_memory()[0] - before) / len(flood)
    tracemalloc.stop()
    assert per_syn < 600, per_syn  # a whole Connection takes about 3 KB
    answered = flood[0]
    table.feed(
        TcpSegment(
            frame=10_001, time=answered.time + 0.001, src=answered.dst, dst=answered.src,
            sport=answered.dport, dport=answered.sport, seq=77, ack=answered.seq + 1,
            flags=SYN | ACK, window=65535, payload_len=0, ttl=64, ip_version=4,
            syn_options=LINUX_SYN,
        )
    )  # fmt: skip
    conn = table.lookup(answered.src, answered.sport, answered.dst, answered.dport)
    assert conn is not None and conn.conn_id == 1 and conn.server.isn == 77
    assert conn.client.isn == answered.seq and conn.client.packets == 1


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"ip_id": 4242},
        {"syn_options": None},
        {"syn_options": SynOptions(mss=1460, window_scale=15)},  # clamped to 14
        {"syn_options": SynOptions(mss=536)},
        {"src": "2001:db8::1", "dst": "2001:db8::2", "ip_version": 6, "ttl": 255},
        {"tunnel": "vxlan 192.0.2.1<->192.0.2.2 vni 42", "seq": 0xFFFFFFFF},
        {"flags": SYN | URG | PSH | ECE | CWR, "ttl": 128, "ip_id": 7},
        {"flags": SYN | FIN},  # not plain: the tracker makes it
        {"payload_len": 20},  # TCP Fast Open data: the tracker makes it
        {"clock_ahead": 301.0},  # Zeek's inactivity timer fires at once: the tracker makes it
    ],
)
@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_a_lone_syn_retires_as_its_tracked_connection_would(
    variant: dict[str, Any], zeek: bool
) -> None:
    """A bare SYN retired from the table (evicted by a flood, or at the end) is built without
    tracking it; every field must be what tracking the SYN in a Connection gives."""
    fields: dict[str, Any] = {
        "frame": 3, "time": 1_700_000_000.25, "src": "198.51.100.7", "dst": "192.0.2.1",
        "sport": 40_000, "dport": 443, "seq": 123_456, "ack": 0, "flags": SYN,
        "window": 64_240, "payload_len": 0, "ttl": 64, "ip_version": 4, "syn_options": LINUX_SYN,
    }  # fmt: skip
    variant = dict(variant)
    ahead = variant.pop("clock_ahead", 0.0)
    syn = TcpSegment(**(fields | variant))
    table = FlowTable(zeek=zeek)
    table.advance(syn.time + ahead)
    table.feed(syn)
    # Plain IPv4 SYNs outside tunnels wait in the compact store, the rest in the table.
    compact = not ({"src", "tunnel", "payload_len"} & set(variant)) and not (
        syn.flags & FIN or ahead
    )
    assert (table.held_syns, table.live_count) == ((1, 0) if compact else (0, 1))
    reference = FlowTable(zeek=zeek)
    conn = reference._connection(syn, 1)
    conn.on_segment(syn, reference._rst_log, syn.time + ahead)
    tracked = conn.retire(reference._rst_log, syn.time + ahead)
    if not compact:
        [held] = table._live.values()
        assert isinstance(held, tracker.HeldSyn)
        assert table._retire_attempt(held) == tracked
    assert [*table.flush()] == [tracked]  # at the end of the capture


def test_a_flood_evicts_lone_syns_as_tracked_connections() -> None:
    """Evicted lone SYNs reach the detector as the connections their tracking would make."""
    flood = list(syn_flood(300))
    fast = FlowTable(max_held_syns=100, zeek=False)
    retired = list(fast.track(flood))
    assert fast.evicted == fast.evicted_attempts == 200
    reference = FlowTable(zeek=False)
    expected = []
    for seg in flood:
        conn = reference._connection(seg, seg.frame)
        conn.on_segment(seg, reference._rst_log, seg.time)
        expected.append(conn.retire(reference._rst_log, seg.time))
    assert retired == expected


def _flood_with_refusals(count: int) -> list[TcpSegment]:
    """Bare SYNs 20 ms apart, and every 37th time a client refused (SYN, then RST/ACK) and the
    previous refused 4-tuple tried again, so that refused connections retire (after the close
    grace, or early) among the SYNs a full store evicts."""
    out: list[TcpSegment] = []

    def segment(time: float, src: str, sport: int, dst: str, dport: int, flags: int, seq: int,
                ack: int = 0) -> None:  # fmt: skip
        out.append(
            TcpSegment(
                frame=len(out) + 1,
                time=time,
                src=src,
                dst=dst,
                sport=sport,
                dport=dport,
                seq=seq,
                ack=ack,
                flags=flags,
                window=1024,
                payload_len=0,
                ttl=64,
                ip_version=4,
                syn_options=LINUX_SYN if flags & SYN else None,
            )
        )

    for i in range(count):
        time = 1_700_000_000.0 + i * 0.02
        segment(time, f"10.0.{i >> 8}.{i & 255}", 1024 + i, "192.0.2.1", 80, SYN, i * 7919)
        if i % 37 == 0:
            sport, seq = 20_000 + i, i * 104_729
            segment(time + 0.001, "198.51.100.7", sport, "192.0.2.2", 443, SYN, seq)
            segment(time + 0.002, "192.0.2.2", 443, "198.51.100.7", sport, RST | ACK, 0, seq + 1)
            if i:  # the 4-tuple refused before, tried again: it retires early, then the SYN
                # the store takes in evicts one (both at one packet, in that order)
                segment(time + 0.003, "198.51.100.7", sport - 37, "192.0.2.2", 443, SYN, i)
    return out


@pytest.mark.parametrize("zeek", [False, True])
def test_evicted_syns_leave_together_in_the_order_they_would_one_by_one(
    zeek: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full store evicts a bare SYN per SYN it takes in. With batch_held_syns, each run of
    evicted ones leaves as one RetiredSyns (at most EVICTED_AT_ONCE), and what retires, its
    rows taken one by one, is what retires one by one, in the same order."""
    monkeypatch.setattr(tracker, "EVICTED_AT_ONCE", 7)
    packets = _flood_with_refusals(1500)
    reference = FlowTable(max_held_syns=100, zeek=zeek)
    one_by_one = list(reference.track(packets))
    batched = FlowTable(max_held_syns=100, zeek=zeek, batch_held_syns=True)
    retired = list(batched.track(packets))
    runs = [r for r in retired[:-1] if isinstance(r, tracker.RetiredSyns)]  # (the last: flush)
    assert batched.evicted == reference.evicted > 1400 and len(runs) < batched.evicted
    assert max(map(len, runs)) == 7 and min(map(len, runs)) >= 1
    refused = [r for r in retired if isinstance(r, tracker.TrackedConnection)]
    assert len(refused) == len(range(0, 1500, 37))  # (retired among the runs, not after)
    position = {id(r): n for n, r in enumerate(retired)}
    assert position[id(refused[0])] < position[id(runs[-1])]
    expanded = [
        conn
        for r in retired
        for conn in (r.connections() if isinstance(r, tracker.RetiredSyns) else [r])
    ]
    assert expanded == one_by_one


@pytest.mark.parametrize("quoted_only", [False, True])
def test_connects_aborted_by_icmp_errors_leave_the_table_after_the_grace_period(
    quoted_only: bool,
) -> None:
    """A stream of connect() attempts each aborted by an ICMP error (a router's unreachable, or
    a host firewall rejecting its own SYNs, which the capture holds only as the errors' quotes):
    each is closed, the server never having known of it, and leaves the table after the close
    grace period, however many follow. (They once stayed open until idle retirement.)"""
    cap = Capture()
    for k in range(2_000):
        conv = Conversation(cap, client=("10.0.0.5", 20_000 + k), server=("10.9.0.1", 443))
        syn = conv.send("c", SYN, options=LINUX_SYN, dt=0.01)
        if quoted_only:
            cap.packets.remove(syn)
        conv.icmp(syn, 3, 3, "10.0.0.5" if quoted_only else "10.9.0.254")
    table = FlowTable()
    retired = most_live = 0
    for packet in cap.packets:
        table.advance(packet.time)
        table.feed(packet)
        retired += len(list(table.retire_due(True)))
        assert table.open_count <= 1  # (a SYN waiting for its ICMP error)
        most_live = max(most_live, table.live_count)
    # (one grace period's worth, at 100 attempts a second)
    assert most_live <= tracker.CLOSE_GRACE_SECONDS * 100 + 10
    assert retired >= 2_000 - most_live
