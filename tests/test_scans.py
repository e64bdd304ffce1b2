"""Scans, whole: one summary per source that probes many targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, track

from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import ACK, RST, SYN
from tcpdiag.reporters.html import render_html
from tcpdiag.reporters.markdown import render_markdown
from tcpdiag.reporters.story import SUMMARIES_SHOWN, summary_lines
from tcpdiag.reporters.text import render_text
from tcpdiag.rules import load_rules
from tcpdiag.scans import (
    MIN_FLOOD_ATTEMPTS,
    MIN_FLOOD_RATE,
    MIN_TARGETS,
    FloodSummary,
    ScanDetector,
)

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"


def probe(cap: Capture, port: int, answer: str) -> None:
    conv = Conversation(cap, client=("10.0.0.9", 50000), server=("10.0.0.2", port))
    conv.send("c", SYN, options=LINUX_SYN)
    if answer == "closed":
        conv.send("s", RST | ACK, advance=False)
    elif answer == "open":
        conv.send("s", SYN | ACK, options=LINUX_SYN)
        conv.send("c", RST, advance=False)


def test_many_probes_from_one_source_are_one_scan() -> None:
    cap = Capture()
    answers = ["closed"] * 8 + ["open"] * 2 + ["none"] * 5
    for i, answer in enumerate(answers):
        probe(cap, 1000 + i, answer)
    detector = ScanDetector()
    for conn in track(cap):
        detector.observe(conn)
    (scan,) = detector.summaries()
    assert (scan.source, scan.probes, scan.ports, scan.hosts) == ("10.0.0.9", 15, 15, 1)
    assert (scan.open, scan.closed, scan.unanswered) == (2, 8, 5)
    assert scan.sample_targets[0] == "10.0.0.2:1000"
    assert "raw SYN scan from 10.0.0.9: 15 probes of 15 ports on 1 host" in scan.text()


def test_attempts_a_host_firewall_rejected_before_the_wire_are_no_scan() -> None:
    """A program retrying against its own host's firewall: each attempt is known only from the
    ICMP error that quotes its SYN (never on the wire). Failed connects, not probes."""
    cap = Capture()
    for i in range(3 * MIN_TARGETS):
        conv = Conversation(cap, client=("10.0.0.9", 50000 + i), server=("10.0.0.2", 1000 + i))
        syn = conv.send("c", SYN, options=LINUX_SYN)
        cap.packets.remove(syn)
        conv.icmp(syn, 3, 3, "10.0.0.2")
    detector = ScanDetector()
    conns = track(cap)
    for conn in conns:
        detector.observe(conn)
    assert len(conns) == 3 * MIN_TARGETS and detector.summaries() == []


def test_few_probes_or_real_conversations_are_no_scan() -> None:
    cap = Capture()
    for i in range(MIN_TARGETS - 1):
        probe(cap, 2000 + i, "closed")
    for i in range(20):  # ordinary connections with data are never probes
        conv = Conversation(cap, client=("10.0.0.9", 40000 + i), server=("10.0.0.3", 80))
        conv.handshake()
        conv.data("c", 10)
        conv.close("c")
    detector = ScanDetector()
    for conn in track(cap):
        detector.observe(conn)
    assert detector.summaries() == []


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="the real-world corpus is not beside the repo")
def test_nmap_syn_scan_of_a_thousand_ports_is_summarised() -> None:
    report = analyze_capture(
        REALWORLD / "chrissanders_synscan.pcapng", RuleEngine(load_rules()), AnalysisOptions()
    )
    (scan,) = report.scans
    assert scan.source == "172.16.0.8" and scan.hosts == 1 and scan.ports == 1000
    assert (scan.open, scan.closed) == (3, 5)
    assert report.to_dict(findings=False)["scans"][0]["ports"] == 1000


def test_many_sources_leaving_one_server_half_open_are_a_syn_flood() -> None:
    cap = Capture()
    for i in range(150):  # spoofed sources: each SYN-ACK goes nowhere
        conv = Conversation(cap, client=(f"198.51.{i // 200}.{i % 200 + 1}", 1024 + i))
        conv.send("c", SYN, dt=0.001)
        conv.send("s", SYN | ACK, options=LINUX_SYN, dt=0.0001)
    detector = ScanDetector()
    for conn in track(cap):
        detector.observe(conn)
    assert detector.summaries() == []  # one probe per source: no scanner
    (flood,) = detector.floods()
    assert (flood.target, flood.attempts, flood.sources, flood.half_open) == (
        "10.0.0.2:80",
        150,
        150,
        150,
    )
    assert flood.text().startswith("SYN flood against 10.0.0.2:80: 150 connection attempts")


def test_reports_show_the_largest_scans_and_count_the_rest() -> None:
    cap = Capture()
    for source in range(SUMMARIES_SHOWN + 3):
        scanner = (f"10.9.0.{source + 1}", 50000)
        for port in range(MIN_TARGETS + source):
            conv = Conversation(cap, client=scanner, server=("10.0.0.2", port))
            conv.send("c", SYN, options=LINUX_SYN)
            conv.send("s", RST | ACK, advance=False)
    detector = ScanDetector()
    for conn in track(cap):
        detector.observe(conn)
    report = CaptureReport(path="x.pcap", scans=detector.summaries())
    lines = summary_lines(report)
    assert len(lines) == SUMMARIES_SHOWN + 1
    assert lines[0][1].startswith(f"raw SYN scan from 10.9.0.{SUMMARIES_SHOWN + 3}:")  # the largest
    assert lines[-1] == ("scan", "3 more scans (-f json lists them)")


def _attempts_from_one_host(count: int, gap: float) -> list[FloodSummary]:
    cap = Capture()
    for i in range(count):
        conv = Conversation(cap, client=("100.64.0.1", 1024 + i))
        conv.send("c", SYN, options=LINUX_SYN, dt=gap)
    detector = ScanDetector()
    for conn in track(cap):
        detector.observe(conn)
    return detector.floods()


def test_a_fast_flood_from_one_host_is_a_syn_flood() -> None:
    """A flood tool on one host cycles its source ports: one source, but thousands of
    attempts a second on one target."""
    (flood,) = _attempts_from_one_host(MIN_FLOOD_ATTEMPTS, 0.0001)
    assert (flood.target, flood.attempts, flood.sources, flood.unanswered) == (
        "10.0.0.2:80",
        MIN_FLOOD_ATTEMPTS,
        1,
        MIN_FLOOD_ATTEMPTS,
    )
    assert f"{MIN_FLOOD_ATTEMPTS} connection attempts from 1 source in " in flood.text()


def test_a_slow_retry_loop_or_a_short_burst_from_one_host_is_no_flood() -> None:
    assert _attempts_from_one_host(MIN_FLOOD_ATTEMPTS, 1.5 / MIN_FLOOD_RATE) == []
    assert _attempts_from_one_host(MIN_FLOOD_ATTEMPTS - 1, 0.0001) == []


def test_a_report_without_findings_does_not_call_a_flood_nothing_abnormal() -> None:
    """Unanswered SYNs make no finding, but the flood they are is summed up, and every human
    report says the capture had that, in its table, Markdown and HTML alike."""
    (flood,) = _attempts_from_one_host(MIN_FLOOD_ATTEMPTS, 0.0001)
    report = CaptureReport(path="flood.pcap", packets=MIN_FLOOD_ATTEMPTS, floods=[flood])
    wanted = "No abnormal TCP connection found apart from the SYN flood above."
    for text in (render_text([report]), render_markdown([report]), render_html([report])):
        assert "SYN flood against 10.0.0.2:80" in text
        assert wanted in text
        assert text.index("SYN flood against") < text.index(wanted)
    clean = render_text([CaptureReport(path="clean.pcap", packets=10)])
    assert "No abnormal TCP connection found.\n" in clean


@pytest.mark.parametrize(("seed", "at_a_time"), [(1, 1 << 16), (2, 1 << 16), (3, 37), (4, 1)])
def test_unanswered_attempts_in_bulk_are_tallied_as_one_by_one(
    seed: int, at_a_time: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observe_unanswered (a flood's bare SYNs, retired together) leaves every tally as
    observe on each attempt's connection would, with the bounds on tallies and peers reached,
    tallies from earlier connections (IPv6 ones too), and repeated sources and targets;
    whether it takes them all at once or `at_a_time`."""
    import random

    import numpy as np

    from tcpdiag import scans
    from tcpdiag.attempts import HeldSyn
    from tcpdiag.columns import ipv4_int
    from tcpdiag.packets import TcpSegment
    from tcpdiag.tracker import lone_syn_connection

    monkeypatch.setattr(scans, "MAX_TALLIES", 12)
    monkeypatch.setattr(scans, "MAX_PEERS", 9)
    monkeypatch.setattr(scans, "BULK_ATTEMPTS", at_a_time)
    rng = random.Random(seed)
    earlier = Capture()
    for k in range(4):  # tallies before the flood: an IPv6 and IPv4 sources and targets
        conv = Conversation(
            earlier,
            client=("2001:db8::5", 40000 + k) if k % 2 else (f"10.0.0.{k}", 40000 + k),
            server=("2001:db8::9", 80) if k % 2 else ("10.9.9.9", 80 + k),
        )
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", RST | ACK, advance=False)
    sources = [f"10.0.0.{k}" for k in range(6)] + [f"172.16.0.{k}" for k in range(30)]
    targets = [("10.9.9.9", 80), ("10.9.9.9", 81), ("10.9.9.8", 443)]
    targets += [(f"10.8.0.{k}", 22) for k in range(20)]
    attempts = []
    for k in range(400):
        source = rng.choice(sources[:8]) if rng.random() < 0.5 else rng.choice(sources)
        server, port = rng.choice(targets[:3]) if rng.random() < 0.6 else rng.choice(targets)
        syn = TcpSegment(
            frame=k + 100, time=1_700_000_000.0 + rng.random() * 50, src=source, dst=server,
            sport=rng.choice([40000, 40001, 40002, 40003, 50000 + k]), dport=port, seq=k,
            ack=0, flags=SYN, window=1024, payload_len=0, ttl=64, ip_version=4,
        )  # fmt: skip
        attempts.append(lone_syn_connection(HeldSyn(k + 100, syn, syn.time), zeek=False))

    def tallies(bulk: bool) -> tuple[dict, dict]:
        detector = ScanDetector()
        for conn in track(earlier):
            detector.observe(conn)
        if bulk:
            column = [
                [ipv4_int(c.client.addr) for c in attempts],
                [c.client.port for c in attempts],
                [ipv4_int(c.server.addr) for c in attempts],
                [c.server.port for c in attempts],
            ]
            detector.observe_unanswered(
                *(np.array(values, np.int64) for values in column),
                np.array([c.ref.first_time for c in attempts]),
            )
        else:
            for conn in attempts:
                detector.observe(conn)
        return detector._sources, detector._targets

    one_by_one, in_bulk = tallies(False), tallies(True)
    assert [list(t.items()) for t in in_bulk] == [list(t.items()) for t in one_by_one]
    assert len(one_by_one[0]) == 12 and any(t.peers_overflow for t in one_by_one[1].values())
