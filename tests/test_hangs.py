"""Hangs: a connection one side stopped reading, its window closed and probed, nothing failed
(tcpdiag.hangs). No finding, one hang in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpdiag.analyze import analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.hangs import HangDetector
from tcpdiag.packets import ACK, FIN, PSH
from tcpdiag.reporters.story import nothing_found_line, summary_lines
from tcpdiag.rules import load_rules
from tests.flowbuilder import Capture, Conversation, findings, track

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENGINE = RuleEngine(load_rules())


def test_a_reader_that_stopped_is_a_hang_not_a_finding() -> None:
    """The kernel sample: the client reads the first 64 KiB and no more; the server's kernel
    probes the closed window (each probe answered, window still 0) until the capture stops."""
    report = analyze_capture(SAMPLES / "reader_stopped_hang.pcap", ENGINE)
    assert report.error is None and list(report.findings) == []
    (hang,) = report.hangs
    assert (hang.reader, hang.writer) == ("client", "server")
    assert hang.closed_frame == 15 and hang.probes == 5
    assert hang.seconds == pytest.approx(6.88, abs=0.01)
    assert hang.to_dict()["closed_epoch"] == hang.closed_time
    [(label, line)] = summary_lines(report)
    assert label == "hang" and line.startswith(f"{hang.client} (client) stopped reading")
    assert nothing_found_line(report).endswith("; the hang above has not failed yet.")


def _stalled_download(cap: Capture, probes: int, style: str = "linux") -> Conversation:
    """A download whose client stops reading: its window closes (0), and the server probes
    it `probes` times with growing gaps, each answered with the window still closed: with 0
    bytes at SND.NXT-1 as Linux does, or with the next byte of data, not taken, as Windows,
    macOS and the BSDs do."""
    conv = Conversation(cap)
    conv.handshake()
    conv.send("c", PSH | ACK, 100)
    for _ in range(4):
        conv.send("s", ACK, 1000)
    conv.send("c", ACK, window=0)
    gap = 0.2
    for _ in range(probes):
        _probe(conv, style, gap)
        conv.send("c", ACK, window=0)
        gap *= 2
    return conv


def _probe(conv: Conversation, style: str, gap: float) -> None:
    """The server's zero-window probe, `gap` seconds after the last packet (_stalled_download)."""
    if style == "linux":
        conv.send("s", ACK, seq=conv.s.seq - 1, dt=gap)
    else:
        conv.send("s", ACK, 1, advance=False, dt=gap)


def _hangs(cap: Capture) -> list[tuple[str, str, int]]:
    detector = HangDetector()
    for conn in track(cap):
        detector.observe(conn)
    return [(h.reader, h.client, h.probes) for h in detector.summaries()]


@pytest.mark.parametrize("style", ["linux", "windows"])
def test_a_stalled_download_at_the_end_is_a_hang(style: str) -> None:
    """Either way of probing: the byte a Windows, macOS or BSD sender repeats into the
    closed window, answered each time, is no data retransmitted to a silent or lossy peer
    (it was a retransmission_timeout before)."""
    cap = Capture()
    _stalled_download(cap, 5, style)
    assert _hangs(cap) == [("client", "10.0.0.1:40000", 5)]
    assert findings(cap) == []


@pytest.mark.parametrize(
    "then",
    ["window opens", "one probe only", "client closes", "server resets", "probes unanswered"],
)
def test_what_is_no_hang(then: str) -> None:
    """A window that opened again (the reader resumed), a single segment into it (it could
    have crossed the closing), either side's FIN, a RST (a finding tells that one), and
    probes the reader stopped answering (it went away, or its path did: a finding, see
    test_a_reader_gone_with_its_window_closed_is_a_probe_timeout)."""
    cap = Capture()
    conv = _stalled_download(cap, 1 if then == "one probe only" else 3)
    if then == "window opens":
        conv.send("c", ACK, window=512)
    elif then == "probes unanswered":
        for gap in (1.6, 3.2, 6.4):
            conv.send("s", ACK, seq=conv.s.seq - 1, dt=gap)
    elif then == "client closes":
        conv.send("c", FIN | ACK, window=0)
    elif then == "server resets":
        conv.rst("s")
    assert _hangs(cap) == []
    assert bool(findings(cap)) is (then in ("server resets", "probes unanswered"))


def test_only_the_first_hangs_are_kept_and_all_are_counted() -> None:
    cap = Capture()
    for port in range(3):
        conv = Conversation(cap, client=("10.0.0.1", 41000 + port))
        conv.handshake()
        conv.send("s", ACK, 1000)
        conv.send("c", ACK, window=0)
        for _ in range(2):
            conv.send("s", ACK, seq=conv.s.seq - 1, dt=0.5)
            conv.send("c", ACK, window=0)
    detector = HangDetector(kept=2)
    for conn in track(cap):
        detector.observe(conn)
    assert detector.count == 3
    assert [h.client for h in detector.summaries()] == ["10.0.0.1:41000", "10.0.0.1:41001"]


@pytest.mark.parametrize("style", ["linux", "windows"])
def test_a_reader_gone_with_its_window_closed_is_a_probe_timeout(style: str) -> None:
    """The reader answered the first probes (window still 0), then no more: it went away with
    its window closed. The writer's kernel gives up when its probes run out, without a RST:
    ETIMEDOUT for the writer (a retransmission_timeout), no hang. Linux probes with 0 bytes
    (which no data stall counts), Windows, macOS and the BSDs with the next byte."""
    cap = Capture()
    conv = _stalled_download(cap, 3, style)
    for gap in (1.6, 3.2, 6.4, 12.8):
        _probe(conv, style, gap)
    (finding,) = findings(cap)
    assert finding.rule == "zero-window-probe-timeout"
    assert (finding.client_sees.errno, finding.server_sees.errno) == (None, "ETIMEDOUT")
    assert finding.facts["stalled"] == "server" and finding.facts["peer_window_closed"]
    assert _hangs(cap) == []


def test_probes_answered_again_are_no_probe_timeout() -> None:
    """Unanswered probes followed by an answer (a reader whose kernel skipped a few, or a
    path that dropped them for a while): the reader is still there, the connection hangs."""
    cap = Capture()
    conv = _stalled_download(cap, 2)
    for gap in (0.8, 1.6, 3.2):
        conv.send("s", ACK, seq=conv.s.seq - 1, dt=gap)
    conv.send("s", ACK, seq=conv.s.seq - 1, dt=6.4)
    conv.send("c", ACK, window=0)
    assert findings(cap) == []
    assert _hangs(cap) == [("client", "10.0.0.1:40000", 6)]


@pytest.mark.parametrize("style", ["linux", "windows"])
@pytest.mark.parametrize("unanswered", [1, 2])
def test_a_few_probes_unanswered_at_the_end_still_hang(style: str, unanswered: int) -> None:
    """The reader answered the probes before, and the last one or two are unanswered when the
    capture ends: answers a Linux reader's kernel skips (one per 500 ms at most), or that came
    after the capture stopped. The reader is as likely still there: a hang, no finding (a
    retransmission_timeout said "one-way loss" for Windows' probes)."""
    cap = Capture()
    conv = _stalled_download(cap, 4, style)
    for gap in (3.2, 6.4)[:unanswered]:
        _probe(conv, style, gap)
    assert findings(cap) == []
    assert _hangs(cap) == [("client", "10.0.0.1:40000", 4 + unanswered)]


def test_probes_in_quick_succession_are_no_probe_timeout() -> None:
    """Linux probes spaced by a lowered tcp_rto_min: five within half a second of the
    reader's last answer, which its kernel skips (one answer per 500 ms to such segments):
    the capture ending then shows no reader gone, only a hang."""
    cap = Capture()
    conv = _stalled_download(cap, 2)
    for gap in (0.01, 0.02, 0.04, 0.08, 0.16):
        conv.send("s", ACK, seq=conv.s.seq - 1, dt=gap)
    assert findings(cap) == []
    assert _hangs(cap) == [("client", "10.0.0.1:40000", 7)]


@pytest.mark.parametrize(
    ("style", "reset_after", "rule"),
    [
        ("windows", 51.2, "retransmission-timeout-stack-reset"),  # when the next was due
        ("linux", 7.0, "zero-window-probe-timeout-reset"),  # its program's own timer
    ],
)
def test_a_writer_that_resets_after_its_probes_went_unanswered(
    style: str, reset_after: float, rule: str
) -> None:
    """The writer gave up on a reader gone with its window closed and reset the connection:
    the stall its probes make is the finding, as a data stall's (a Windows stack aborts when
    its retransmission limit runs out, when the next probe was due; a program on a timeout of
    its own at any other moment). It was a
    peer_reset blaming a send timeout on a reader that stopped reading, and the RST reaches
    nobody."""
    cap = Capture()
    conv = _stalled_download(cap, 3, style)
    for gap in (1.6, 3.2, 6.4, 12.8, 25.6):
        _probe(conv, style, gap)
    conv.rst("s", dt=reset_after)
    (finding,) = findings(cap)
    assert (finding.category, finding.rule) == ("retransmission_timeout", rule)
    assert finding.facts["stall_retransmissions"] == 5 and finding.facts["peer_window_closed"]
    assert finding.client_sees.errno is None
