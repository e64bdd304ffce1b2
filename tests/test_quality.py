"""Capture-quality warnings: what about the capture limits what its findings can claim."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from flowbuilder import (
    LINUX_SYN,
    Capture,
    Conversation,
    established,
    findings,
    track,
    write_pcap,
)

from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.clock import CONFIRM, CaptureClock
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import ACK, PSH, SYN
from tcpdiag.quality import CaptureQuality
from tcpdiag.rules import load_rules

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"


def test_times_going_backwards_are_counted_across_batches() -> None:
    quality = CaptureQuality()
    quality.observe_times([1.0, 2.0, 3.0])
    quality.observe_times([2.5, 4.0])  # one step back, at the batch boundary
    quality.observe_times([3.0])  # and another
    assert quality.packets_backwards == 2
    assert quality.largest_step_back == pytest.approx(1.0)
    (warning,) = quality.warnings("x.pcap", 0)
    assert warning.startswith("x.pcap: timestamps go backwards 2 times (by up to 1.000000 s)")


def test_a_jump_of_years_is_two_captures_joined() -> None:
    quality = CaptureQuality()
    quality.observe_times([1_000.0, 1_000.5, 1_000.0 + 3 * 86_400])
    assert quality.time_jumps == 1
    assert "jump forward by 3.0 days once" in quality.warnings("x.pcap", 0)[0]


def test_one_direction_only_is_said() -> None:
    """A side whose ACKs advance though the capture holds nothing from its peer: the capture
    missed a direction. (Keepalive probes to a dead peer keep their ACK: not that.)"""
    cap = Capture()
    for port in (40000, 40001):
        conv = Conversation(cap, client=("10.0.0.1", port))
        conv.send("c", ACK)
        conv.send("c", PSH | ACK, 100)
        conv.s.seq += 1400  # the server's reply, which the capture does not hold ...
        conv.send("c", PSH | ACK, 100)  # ... yet the client acknowledges it
    quality = CaptureQuality()
    for conn in track(cap):
        quality.observe_connection(conn)
    assert quality.one_way_connections == 2 and quality.midstream_connections == 2
    text = " ".join(quality.warnings("x.pcap", 2))
    assert "2 of 2 connections were seen in one direction only" in text
    assert "2 of 2 connections started before the capture" in text


def test_a_segment_captured_twice_is_a_copy_not_a_retransmission() -> None:
    """Same IP ID and sequence number: the capture saw one packet twice. Counted and warned
    about, never taken for a retransmission (a retransmission gets a new IP ID)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    sent = conv.send("c", PSH | ACK, 100)
    sent.ip_id = 0x1234
    for _ in range(3):  # three more copies of it, as a mirror port might deliver
        frame, time = cap.next_frame(0.0001)
        cap.packets.append(dataclasses.replace(sent, frame=frame, time=time))
    (conn,) = track(cap)
    assert conn.client.duplicates == 3 and conn.client.retransmissions == 0
    assert findings(cap) == []


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="the real-world corpus is not beside the repo")
@pytest.mark.parametrize("fast_path", [True, False])
def test_real_captures_get_their_quality_warnings(fast_path: bool) -> None:
    engine = RuleEngine(load_rules())
    options = AnalysisOptions(fast_path=fast_path)
    vnc = analyze_capture(REALWORLD / "zeek_rfb_vnc-scanner.pcap", engine, options)
    assert any("timestamps go backwards once" in w for w in vnc.warnings)
    half = analyze_capture(REALWORLD / "zeek_ssh_ssh.client-side-half-duplex.pcap", engine, options)
    assert any("20 of 20 connections were seen in one direction only" in w for w in half.warnings)
    doubled = analyze_capture(REALWORLD / "zeek_tcp_ctu-64702-888.pcap", engine, options)
    assert any("segments were captured twice" in w for w in doubled.warnings)


def _open_then_reset(outlier_hours: float | None, tmp_path: Path) -> CaptureReport:
    """Connections opened, then (after one frame stamped far ahead, or none) reset."""
    cap = Capture()
    conversations = established(cap, "10.9.0.1", 40)
    if outlier_hours is not None:
        stray = Conversation(cap, client=("10.9.0.2", 40000))
        seg = stray.send("c", SYN, options=LINUX_SYN)
        seg.time += outlier_hours * 3600
    for k in range(1100):  # enough frames for the table's retirement checks to run
        conv = Conversation(cap, client=("10.9.0.3", 20000 + k % 30000))
        conv.send("c", ACK, dt=0.0001)
    for conv in conversations:
        conv.data("s", 500)
        conv.rst("c")
    path = tmp_path / f"outlier-{outlier_hours}.pcap"
    write_pcap(cap, path)
    return analyze_capture(path, RuleEngine(load_rules()), AnalysisOptions())


def _shape(report: CaptureReport) -> list[tuple[str, str, str]]:
    return sorted((f.category, f.client, f.server) for f in report.findings)


@pytest.mark.parametrize("hours", [4.0, 400.0])
def test_one_frame_stamped_hours_ahead_does_not_retire_the_live_connections(
    hours: float, tmp_path: Path
) -> None:
    plain = _open_then_reset(None, tmp_path)
    stepped = _open_then_reset(hours, tmp_path)
    assert _shape(stepped) == _shape(plain) and len(plain.findings) == 40
    assert stepped.flows == plain.flows + 1  # the stray SYN's own connection, nothing split
    assert any("1 frame stamped more than 60 s ahead" in w for w in stepped.warnings)
    assert not any("stamped more than" in w for w in plain.warnings)


@pytest.mark.parametrize(
    "cuts",
    [None, (3, 6, 9, 12, 15, 18, 21, 24), (4, 5), (12,)],
    ids=["one by one", "in threes", "a run far ahead ends a batch", "two batches"],
)
def test_a_real_gap_moves_the_capture_clock(cuts: tuple[int, ...] | None) -> None:
    """Frames far ahead that keep coming are where the capture went on: the clock follows
    after a few of them, and the connections idle across the gap are retired by it. Only
    the frames far ahead that the frames after them did not follow count as ignored: not
    those of a real gap (an idle minute is common), nor a run the capture ends on. The same
    frames in batches (steps, split anywhere) count the same."""
    times = [0.0, 1.0, 5000.0, 5001.0, 2.0, *[10_000.0 + k for k in range(20)]]
    times += [10_020.0 + 90.0, 10_020.0 + 91.0]  # the capture ends after another gap
    clock = CaptureClock()
    if cuts is None:
        stepped = [clock.step(t) for t in times]
    else:
        bounds = [0, *cuts, len(times)]
        parts = [times[a:b] for a, b in itertools.pairwise(bounds)]
        stepped = [t for part in parts for t in clock.steps(np.array(part)).tolist()]
    assert stepped[:5] == [0.0, 1.0, 1.0, 1.0, 2.0]  # the two frames far ahead are ignored
    assert stepped[5 : 5 + CONFIRM - 1] == [2.0] * (CONFIRM - 1)  # until the gap is believed
    assert stepped[5 + CONFIRM - 1] == 10_000.0 + CONFIRM - 1
    assert stepped[-3:] == [10_019.0] * 3
    assert clock.ignored == 2
    assert clock.copy().ignored == 2


def _quiet_then_busy(gap: float, after: int) -> Capture:
    """Connections that talk, all go quiet for `gap` seconds, then `after` frames: a real
    idle gap, no clock step."""
    cap = Capture()
    conversations = established(cap, "10.9.0.1", 5)
    for conv in conversations:
        conv.data("c", 100)
    cap.time += gap
    for conv in conversations[: max(after // 2, 1)]:
        conv.data("c", 100)
        conv.data("s", 100)
    return cap


@pytest.mark.parametrize("after", [2, 6, 40])
@pytest.mark.parametrize("fast_path", [True, False])
def test_a_real_idle_gap_is_no_clock_step(after: int, fast_path: bool, tmp_path: Path) -> None:
    """A capture that goes quiet for minutes and then goes on, for a few frames (its end) or
    many, says nothing about frames stamped ahead; one frame stamped hours ahead does (see
    test_one_frame_stamped_hours_ahead_does_not_retire_the_live_connections)."""
    path = tmp_path / "gap.pcap"
    write_pcap(_quiet_then_busy(246.0, after), path)
    report = analyze_capture(path, RuleEngine(load_rules()), AnalysisOptions(fast_path=fast_path))
    assert report.packets > 20
    assert not any("stamped more than" in w for w in report.warnings), report.warnings


def test_icmp_errors_about_connections_not_in_the_capture_are_counted_by_source(
    tmp_path: Path,
) -> None:
    """An ICMP error quoting a connection the capture does not show open says nothing about a
    connection, but thousands of them (a router complaining about traffic the capture missed,
    forged quotes) are worth a line: how many, and the busiest source. Both paths say it."""
    cap = Capture()
    gone = Conversation(cap, client=("10.0.0.1", 40000))
    gone.send("c", SYN, options=LINUX_SYN)
    gone.rst("s")
    ghost = Conversation(Capture(), client=("10.0.0.7", 41000))  # never in `cap`
    unseen = ghost.send("c", SYN, options=LINUX_SYN)
    for i in range(5):
        gone.icmp(unseen, 3, 1, src="192.0.2.1" if i < 3 else "192.0.2.2")
    live = Conversation(cap, client=("10.0.0.3", 42000))
    syn = live.send("c", SYN, options=LINUX_SYN)
    live.icmp(syn, 3, 1, src="192.0.2.9")  # about a connection it shows: not counted
    path = tmp_path / "orphans.pcap"
    write_pcap(cap, path)
    engine = RuleEngine(load_rules())
    for fast in (True, False):
        report = analyze_capture(path, engine, AnalysisOptions(fast_path=fast))
        (warning,) = [w for w in report.warnings if "ICMP" in w]
        assert warning == (
            f"{path}: 5 ICMP errors quoted TCP connections the capture does not show open "
            "(begun before it, already closed, or forged quotes); 3 of them from 192.0.2.1"
        )
