"""Capture-quality warnings: what about the capture limits what its findings can claim."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from flowbuilder import Capture, Conversation, findings, track

from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import ACK, PSH
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
