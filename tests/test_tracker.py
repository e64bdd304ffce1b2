"""Tracker and rule behaviour on hand-built segment sequences: RST validity (RFC 9293 / 5961),
sequence wrap-around, 4-tuple reuse, mid-stream starts, and each event the rules rely on."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flowbuilder import (
    LINUX_SYN,
    Capture,
    Conversation,
    categories,
    findings,
    findings_of,
    track,
)

from tcpdiag import tracker
from tcpdiag.detect import NOTHING_SEEN
from tcpdiag.events import IcmpErrorEvent, RstEvent, SilenceEvent
from tcpdiag.packets import ACK, FIN, PSH, RST, SYN, SynOptions, TcpSegment
from tcpdiag.seqnum import seq_between, seq_diff, seq_lt
from tcpdiag.tracker import (
    IDLE_RETIRE_SECONDS,
    RST_BURST_WINDOW_SECONDS,
    FlowTable,
    FollowedConnection,
    TrackedConnection,
    segment_identity,
)


def rst_events(capture: Capture) -> list[RstEvent]:
    return [e for conn in track(capture) for e in conn.events if isinstance(e, RstEvent)]


def established() -> tuple[Capture, Conversation]:
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 100)
    conv.data("s", 300)
    return cap, conv


# -- sequence arithmetic ------------------------------------------------------------------------


def test_seq_diff_wraps_around_2_32() -> None:
    assert seq_diff(5, 0xFFFFFFFB) == 10
    assert seq_diff(0xFFFFFFFB, 5) == -10
    assert seq_lt(0xFFFFFFF0, 0x10)
    assert not seq_lt(0x10, 0xFFFFFFF0)
    assert seq_between(0xFFFFFFF0, 0x5, 0x20)
    assert not seq_between(0xFFFFFFF0, 0x30, 0x20)


def test_connection_across_sequence_wrap_is_tracked_and_reset_accepted() -> None:
    cap = Capture()
    conv = Conversation(cap, client_isn=0xFFFFFF00, server_isn=0xFFFFFFF0)
    conv.handshake()
    conv.data("c", 0x200)  # client's data crosses 2**32
    conv.data("s", 0x100)  # so does the server's
    assert conv.c.seq < 0x1000 and conv.s.seq < 0x1000  # both wrapped
    conv.rst("s")
    (event,) = rst_events(cap)
    assert event.rst_verdict == "accepted"
    assert event.receiver_state == "ESTABLISHED"
    assert event.receiver_bytes_sent == 0x200 and event.sender_bytes_sent == 0x100
    assert categories(cap) == ["peer_reset"]


# -- RST validity -------------------------------------------------------------------------------


def test_rst_exactly_at_rcv_nxt_is_accepted() -> None:
    cap, conv = established()
    conv.rst("s")
    assert [e.rst_verdict for e in rst_events(cap)] == ["accepted"]


def test_rst_in_window_but_not_rcv_nxt_draws_challenge_and_is_ignored() -> None:
    cap, conv = established()
    conv.rst("s", seq=conv.s.seq + 1000)  # window 512 << 7: in window, not exact
    conv.send("c", ACK)  # the challenge ACK
    conv.data("s", 10)  # the connection carries on
    (event,) = rst_events(cap)
    assert event.rst_verdict == "challenge"
    assert event.carried_on
    assert categories(cap) == ["ignored_reset"]
    (finding,) = findings(cap)
    assert finding.client_sees.errno is None and finding.server_sees.errno is None
    assert any("challenge ACK" in e.what for e in finding.evidence)


def test_rst_out_of_window_is_ignored() -> None:
    cap, conv = established()
    conv.rst("s", seq=conv.s.seq + 0x40000000)
    conv.data("c", 10)
    assert [e.rst_verdict for e in rst_events(cap)] == ["out_of_window"]
    assert categories(cap) == ["ignored_reset"]


def test_rst_in_syn_sent_must_acknowledge_the_syn() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.rst("s", seq=0, ack=conv.c.seq + 7)  # wrong ACK: not ISS+1
    assert [e.rst_verdict for e in rst_events(cap)] == ["bad_ack"]
    assert categories(cap) == ["ignored_reset"]


def test_refused_connect_names_client_errno() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.rst("s", seq=0)
    (finding,) = findings(cap)
    assert finding.category == "refused"
    assert (finding.client, finding.server) == ("10.0.0.1:40000", "10.0.0.2:80")
    assert finding.client_sees.errno == "ECONNREFUSED"
    assert finding.server_sees.errno is None
    assert finding.frames == [1, 2]
    assert finding.client_state == "SYN-SENT"


def test_second_rst_after_reset_is_folded_into_the_first() -> None:
    cap, conv = established()
    conv.rst("s")
    conv.send("c", PSH | ACK, 50)  # in flight when the RST arrived
    conv.rst("s")
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.facts["further_rsts"] == 1
    assert len([e for e in finding.evidence if e.what.startswith("RST")]) == 2


# -- 4-tuple reuse and retries -----------------------------------------------------------------


def test_new_syn_after_close_on_same_four_tuple_starts_a_new_connection() -> None:
    cap = Capture()
    first = Conversation(cap, client_isn=1000)
    first.handshake()
    first.data("c", 10)
    first.close("c")
    second = Conversation(cap, client_isn=900_000)
    second.send("c", SYN, options=LINUX_SYN)
    second.rst("s", seq=0)
    conns = track(cap)
    assert len(conns) == 2
    assert [len(c.events) for c in conns] == [0, 1]
    (finding,) = findings(cap)
    assert finding.category == "refused" and finding.frames == [9, 10]


def test_same_syn_retried_after_refusal_is_one_attempt() -> None:
    cap = Capture()
    conv = Conversation(cap)
    for _ in range(3):
        conv.send("c", SYN, options=LINUX_SYN, advance=False)
        conv.rst("s", seq=0, ack=conv.c.seq + 1)
    assert len(track(cap)) == 1
    (finding,) = findings(cap)
    assert finding.category == "refused"
    assert finding.frames == [1, 2, 4, 6]  # first SYN, then every refusal


# -- mid-stream start ---------------------------------------------------------------------------


def test_mid_stream_capture_infers_roles_and_still_judges_rst() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("192.0.2.7", 51000), server=("192.0.2.8", 443))
    conv.send("s", PSH | ACK, 200)  # the capture starts with the server talking
    conv.send("c", ACK)
    conv.data("c", 40)
    conv.rst("s")
    (conn,) = track(cap)
    assert conn.ref.initiator_known is False
    assert conn.ref.client == "192.0.2.7:51000" and conn.ref.server == "192.0.2.8:443"
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.initiator_known is False
    assert finding.client_sees.errno == "ECONNRESET"


@pytest.mark.parametrize("challenge_ack", [False, True])
def test_mid_stream_stall_stays_a_stall_when_the_first_ack_reaches_none_of_its_data(
    challenge_ack: bool,
) -> None:
    """A capture that starts mid-connection with a Windows client's data, retransmitted with
    backoff and never acknowledged, then the client's RST when its next retransmission was due:
    its stack gave up (ETIMEDOUT). The server's first segment in the capture, an ACK of the
    data's first byte after that RST (RFC 5961's challenge ACK: the RST was not exact for it),
    acknowledges none of that data, so the stall and its verdict stand (public capture: wa1kpcap
    test/multi.pcap, 192.168.226.54:8018)."""
    cap = Capture()
    conv = Conversation(cap, client=("192.0.2.7", 51000), server=("192.0.2.8", 443))
    conv.c.ttl = conv.s.ttl = 128
    start = conv.c.seq
    conv.send("c", PSH | ACK, 687)
    gap = 0.3
    for _ in range(5):
        conv.send("c", PSH | ACK, 687, seq=start, dt=gap)
        gap *= 2
    conv.rst("c", dt=gap)
    if challenge_ack:
        conv.send("s", ACK, ack=start, dt=0.1)
    (finding,) = findings(cap)
    assert finding.rule == "retransmission-timeout-stack-reset"
    assert finding.client_sees.errno == "ETIMEDOUT"
    assert finding.facts["stall_retransmissions"] == 5


@pytest.mark.parametrize("server_reset", [False, True])
def test_data_lost_after_both_closed_is_no_stall_when_the_peer_had_reset_it(
    server_reset: bool,
) -> None:
    """The server closes; the client sends its last 500 bytes and its FIN, never acknowledged,
    and retransmits them. Without more, the client's last data never arrived: a finding
    (retransmission-timeout-after-close). When the server's own stack had answered with a bare
    RST at a stale sequence number (the acknowledgement of a segment that came for the socket
    it had dropped: the client moved past it, so it drops the RST), no program was left there
    to read the data: only that RST is worth a word, an ignored one, and it says why (public
    capture: nDPI skype_no_unknown.pcap, 192.168.1.34:51307)."""
    cap, conv = established()
    stale = conv.s.seq  # what the client's segments acknowledged before the server's FIN
    conv.send("s", FIN | ACK)
    start = conv.c.seq
    conv.send("c", PSH | ACK, 500)
    conv.send("c", FIN | ACK)
    if server_reset:
        conv.rst("s", with_ack=False, seq=stale, dt=0.01)
    gap = 0.3
    for _ in range(4):
        conv.send("c", PSH | ACK, 500, seq=start, dt=gap)
        gap *= 2
    (finding,) = findings(cap)
    if server_reset:
        assert finding.rule == "ignored-reset"
        assert finding.cause is not None and finding.cause.id == "stale-reset-from-closed-socket"
    else:
        assert finding.rule == "retransmission-timeout-after-close"


def test_synack_first_names_the_server() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("192.0.2.7", 80), server=("192.0.2.8", 9999))
    conv.send("s", SYN | ACK, options=LINUX_SYN, ack=1001)
    conv.send("c", ACK, seq=1001, ack=conv.s.seq)
    (conn,) = track(cap)
    assert conn.ref.server == "192.0.2.8:9999" and conn.ref.initiator_known


# -- the other categories, one each --------------------------------------------------------------


def test_unread_data_is_ranked_first_for_peer_reset() -> None:
    cap, conv = established()
    conv.data("c", 64)  # a second request the server acknowledges but never answers
    conv.rst("s")
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.cause is not None and finding.cause.id == "close-with-unread-data"
    assert finding.facts["sender_unanswered_bytes"] == 64


@pytest.mark.parametrize(
    ("window", "filled_since", "cause"),
    [
        (0, False, "quit-with-full-buffer"),
        (1, False, "quit-with-full-buffer"),
        (512, False, None),
        (512, True, "quit-with-full-buffer"),
    ],
)
def test_a_client_that_quit_a_download_with_its_buffer_full_left_data_unread(
    window: int, filled_since: bool, cause: str | None
) -> None:
    """A client whose last window had no room for another segment of the response (zero, or
    128 bytes at scale 7 against 64 KiB segments: flow control had paused the download; or
    64 KiB that the server filled since: Node's TLS client destroyed mid-download in s22's
    survey) and then reset had unread data: it abandoned the download, whatever the age of
    the response's last bytes. With room left (64 KiB), the capture cannot tell."""
    cap, conv = established()
    conv.data("c", 80)  # the request
    for _ in range(4):
        conv.send("s", ACK, 65536)
    conv.send("c", ACK, window=window)
    if filled_since:
        conv.send("s", ACK, 65536)
    conv.rst("c", dt=0.5)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.facts["sender_buffer_full"] is (cause is not None)
    causes = [c.id for c in [finding.cause, *finding.alternatives] if c is not None]
    assert (causes[0] == "quit-with-full-buffer") is (cause is not None)
    assert "teardown-after-exchange" not in causes[:1]


@pytest.mark.parametrize(("delay", "rule"), [(0.0005, "peer-reset-after-response"), (2.0, None)])
def test_a_servers_reset_right_after_its_whole_response_may_reach_nobody(
    delay: float, rule: str | None
) -> None:
    """Real traffic (s22's second survey: a Java server's SO_LINGER 0 right after a
    Content-Length response; Node's and HttpURLConnection's clients, stopping at the length,
    saw nothing, one reading to the end of file got ECONNRESET; the kernel sample
    response_then_server_abort): impact unknown. Seconds later it is an ordinary reset."""
    cap, conv = established()  # (the request and the server's whole response)
    conv.send("c", ACK)
    conv.rst("s", dt=delay)
    (finding,) = findings(cap)
    if rule:
        assert (finding.rule, finding.impact) == (rule, "unknown")
    else:
        assert finding.rule != "peer-reset-after-response" and finding.impact == "error_seen"
    assert finding.client_sees.errno == "ECONNRESET"


@pytest.mark.parametrize("in_flight", [0, 2000])
def test_a_reset_with_the_response_still_in_flight_ended_no_exchange(in_flight: int) -> None:
    """A client's RST that does not acknowledge the last of the response (still on its way:
    the client quit mid-response) ended no exchange, however close to the last data it came;
    one acknowledging all of it right after the response is a teardown after the exchange."""
    cap, conv = established()
    conv.data("c", 80)  # the request
    conv.send("s", ACK, 1000)
    conv.send("c", ACK)
    conv.send("s", ACK, 1000)
    if in_flight:
        conv.send("s", ACK, in_flight)
    conv.rst("c", ack=conv.s.seq - in_flight, dt=0.0005)
    (finding,) = findings(cap)
    assert finding.facts["receiver_data_in_flight"] == in_flight
    assert finding.cause is not None
    expected = "quit-with-response-in-flight" if in_flight else "teardown-after-exchange"
    assert finding.cause.id == expected


@pytest.mark.parametrize(("size", "is_request"), [(33, True), (200_000, False)])
def test_a_request_left_unanswered_for_seconds_is_no_idle_connection(
    size: int, is_request: bool
) -> None:
    """A request the server acknowledged and never answered, then the server's RST seconds
    later (a server that never accept()ed the connection closes its listening socket: the
    sample unaccepted_reset): the request was left unanswered, the connection was not idle.
    200 kB is an upload, not a request: its receiver answers it with nothing."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", size)
    conv.rst("s", dt=45.0)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.facts["sender_owes_reply"] and finding.facts["unanswered_age_seconds"] > 3
    causes = [c.id for c in [finding.cause, *finding.alternatives] if c is not None]
    assert (causes[0] == "request-left-unanswered") is is_request
    assert "idle-connection-dropped" not in causes


@pytest.mark.parametrize(
    ("resetter", "rule", "client_errno", "server_errno", "impact"),
    [
        ("c", "peer-reset-connect-probe", None, "ECONNRESET", "unknown"),
        ("s", "peer-reset-on-accept", "ECONNRESET", None, "error_seen"),
    ],
)
def test_a_reset_right_after_the_handshake_is_a_probe_only_from_the_client(
    resetter: str, rule: str, client_errno: str | None, server_errno: str | None, impact: str
) -> None:
    """A client that resets what it just connected probed the port; a server that resets what
    it just accepted turned the connection away, and the client's connect() had succeeded."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.rst(resetter, dt=0.002)
    (finding,) = findings(cap)
    assert (finding.category, finding.rule) == ("peer_reset", rule)
    assert finding.client_sees.errno == client_errno
    assert finding.server_sees.errno == server_errno
    assert finding.impact == impact


def test_an_idle_connection_dropped_after_its_reply_owes_nothing() -> None:
    """The client's request was answered; a minute later the client resets (a pool dropping
    an idle connection): the bytes it never answered are its response, nothing was owed."""
    cap, conv = established()
    conv.rst("c", dt=60.0)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.facts["unanswered_is_response"] and not finding.facts["sender_owes_reply"]
    assert finding.cause is not None and finding.cause.id == "idle-connection-dropped"
    # The server resetting instead owes nothing either: its reply was the last data.
    last = cap.packets[-1]
    cap.packets[-1] = replace(
        last, src=last.dst, dst=last.src, sport=last.dport, dport=last.sport,
        seq=last.ack, ack=last.seq,
    )  # fmt: skip
    (finding,) = findings(cap)
    assert finding.facts["sender"] == "server" and not finding.facts["sender_owes_reply"]


def _stall_then_own_reset(
    ttl: int, retransmissions: int, peer_speaks: bool = False, after: float = 0.4
) -> Capture:
    """The client's request retransmitted with doubling gaps, never acknowledged, then the
    client's own RST,ACK (seq = its SND.NXT), `after` times the last gap after the last
    retransmission (2: when the next one was due)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.c.ttl = ttl
    conv.handshake()
    conv.data("c", 100)
    conv.data("s", 300)
    request = conv.send("c", PSH | ACK, 500)
    gap = 0.3
    for k in range(retransmissions):
        conv.send("c", PSH | ACK, 500, seq=request.seq, advance=False, dt=gap)
        if peer_speaks and k == 1:
            conv.send("s", ACK, ack=request.seq)  # a duplicate ACK: the peer is there
        gap *= 2
    conv.rst("c", dt=gap / 2 * after)
    return cap


@pytest.mark.parametrize(("ttl", "errno"), [(128, "ETIMEDOUT"), (64, None)])
def test_a_sender_that_gave_up_on_a_silent_peer_is_a_retransmission_timeout(
    ttl: int, errno: str | None
) -> None:
    """Windows resets when its retransmission limit runs out (5 by default); Linux sends no
    RST then, so from a Linux host the RST is its application giving up on its own timer:
    either way the stall is the finding, not a peer_reset, and the silent peer is told
    nothing."""
    (finding,) = findings(_stall_then_own_reset(ttl, 5))
    assert (finding.category, finding.rule) == (
        "retransmission_timeout",
        "retransmission-timeout-reset",
    )
    assert finding.client_sees.errno == errno and finding.server_sees.errno is None
    assert finding.frames[-1] == len(_stall_then_own_reset(ttl, 5).packets)  # the RST's
    assert not finding.facts["reset_on_schedule"]


@pytest.mark.parametrize("ttl", [64, 128])
@pytest.mark.parametrize(
    ("after", "on_schedule"), [(1.0, True), (2.0, True), (0.5, False), (3.0, False)]
)
def test_a_reset_when_the_next_retransmission_was_due_is_the_stack_giving_up(
    ttl: int, after: float, on_schedule: bool
) -> None:
    """Real traffic (a Mac's Skype client, nDPI's capture): 12 retransmissions with the RTO
    capped, then the RST one RTO after the last: macOS and the BSDs, like Windows, abort at
    their retransmission limit with a RST sent as the next retransmission would have been,
    and their program gets ETIMEDOUT, whatever the TTL says (a Mac's is 64, like Linux's).
    A RST at any other moment of the backoff is a program's own timer."""
    (finding,) = findings(_stall_then_own_reset(ttl, 5, after=after))
    assert finding.facts["reset_on_schedule"] is on_schedule
    if on_schedule:
        assert finding.rule == "retransmission-timeout-stack-reset"
        assert finding.client_sees.errno == "ETIMEDOUT" and finding.server_sees.errno is None
    else:
        assert finding.rule == "retransmission-timeout-reset"
        assert finding.client_sees.errno == (None if ttl == 64 else "ETIMEDOUT")


@pytest.mark.parametrize(("retransmissions", "peer_speaks"), [(2, False), (5, True)])
def test_a_reset_after_a_short_or_answered_stall_stays_a_peer_reset(
    retransmissions: int, peer_speaks: bool
) -> None:
    """Two retransmissions are no stall to give up on, and a peer that answered during the
    stall (a duplicate ACK) was there to take the RST: the application's own reset."""
    findings_ = findings(_stall_then_own_reset(64, retransmissions, peer_speaks))
    assert [f.category for f in findings_] == ["peer_reset"]


@pytest.mark.parametrize("stops", [True, False])
def test_data_answered_only_by_further_resets_did_not_carry_on(stops: bool) -> None:
    """Real traffic (mptcpanalyzer's iperf3 captures, a 180 ms lossy path): the server resets
    the client's upload; the client's data in flight keeps arriving for 0.8 s, and the server,
    which no longer has the connection, answers each segment with another RST until the
    client stops: the connection was reset (peer_reset), it did not carry on. A client that
    keeps sending long after the server's last RST did carry on (ignored_reset)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("s", SYN | ACK, options=LINUX_SYN, dt=0.09)
    conv.send("c", ACK, dt=0.09)
    conv.data("c", 1448)
    conv.rst("s", dt=0.01)
    for _ in range(16):
        seg = conv.send("c", ACK, 1448, dt=0.05)
        conv.send("s", RST, seq=seg.ack, advance=False, dt=0.0001)
    if not stops:
        for _ in range(3):
            conv.send("c", ACK, 1448, dt=1.0)
    (finding,) = findings(cap)
    if stops:
        assert finding.category == "peer_reset" and finding.client_sees.errno == "ECONNRESET"
        assert finding.facts["further_rsts"] == 16
    else:
        assert finding.category == "ignored_reset"


def test_rst_in_close_wait_is_broken_pipe_for_the_writer() -> None:
    cap, conv = established()
    conv.send("c", 0x11)  # FIN|ACK from the client: done, closed
    conv.send("s", ACK)
    conv.send("s", PSH | ACK, 1000)  # the server keeps writing
    conv.send("c", 0x04, seq=conv.c.seq, advance=False)  # bare RST, seq = the data's ack
    (finding,) = findings(cap)
    assert finding.category == "broken_pipe"
    assert finding.server_sees.errno == "EPIPE" and finding.client_sees.errno is None


@pytest.mark.parametrize("took_fin", [True, False], ids=["wrote after the fin", "never took it"])
def test_a_writer_heard_from_only_after_the_rst_that_followed_a_fin_gets_epipe(
    took_fin: bool,
) -> None:
    """A client aborts right after its FIN (its RST at the FIN's own number, as macOS sends on
    ^C; Linux 4.14 and later accept it in CLOSE-WAIT) while the server streams to it. Nothing
    from the server between the FIN and the RST; then its data, on its way as the RST was
    sent, acknowledging the FIN: it had taken the FIN and kept writing, so the RST found a
    writer in CLOSE-WAIT (EPIPE). Data that does not acknowledge the FIN shows no such write
    (the FIN may never have arrived): no broken pipe."""
    cap, conv = established()
    fin_seq = conv.c.seq
    conv.send("c", FIN | ACK)
    abort = conv.rst("c", seq=fin_seq, dt=0.0001)
    for _ in range(3):
        conv.send("s", PSH | ACK, 1448, ack=None if took_fin else fin_seq, dt=0.001)
        # (the client's stack answers each with a bare RST at the data's ACK)
        conv.send("c", RST, seq=conv.c.seq if took_fin else fin_seq, advance=False, dt=0.0001)
    (event,) = [e for e in rst_events(cap) if e.rst_verdict == "accepted"]
    assert event.receiver_state == "CLOSE-WAIT" and event.frame == abort.frame
    assert event.receiver_sent_after_fin is took_fin
    found = [(f.category, f.server_sees.errno) for f in findings(cap)]
    assert found == ([("broken_pipe", "EPIPE")] if took_fin else [])
    if took_fin:
        assert event.receiver_write_after_fin_seconds == pytest.approx(0.0011)


@pytest.mark.parametrize("server_then", ["nothing", "its own abort", "a bare RST", "a late abort"])
def test_a_writer_that_aborted_on_its_own_as_the_rst_came_saw_no_broken_pipe(
    server_then: str,
) -> None:
    """Real traffic (a Zoom client, nDPI's capture): the client sends its close_notify and FIN,
    the server's reply draws the client's bare RST; but the server, within a round trip, sends
    its own close_notify and a RST with ACK at the end of its stream: a live socket's abort,
    sent before the client's RST could reach it. Its program had closed on its own: no EPIPE,
    nobody told. A bare RST from it (its stack answering a segment for a socket gone), or an
    abort long after, leaves the broken pipe as it was."""
    cap, conv = established()
    conv.send("c", FIN | ACK)
    conv.send("s", ACK)
    conv.send("s", PSH | ACK, 426, dt=0.016)
    conv.send("c", RST, seq=conv.c.seq, advance=False)  # bare RST, seq = the data's ack
    if server_then == "its own abort":
        conv.send("s", PSH | ACK, 31, dt=0.014)  # its close_notify, sent before the RST arrived
        conv.rst("s")
    elif server_then == "a bare RST":
        conv.send("s", RST, seq=conv.s.seq - 426, advance=False, dt=0.014)
    elif server_then == "a late abort":
        conv.rst("s", dt=5.0)
    found = findings(cap)
    if server_then == "its own abort":
        assert found == []
        return
    (finding,) = found
    assert finding.category == "broken_pipe" and finding.server_sees.errno == "EPIPE"


def test_both_ends_aborting_in_the_same_instant_tell_nobody() -> None:
    """Real traffic (nDPI's replayed captures): both ends send RST with ACK at the end of their
    own streams within microseconds; each left before the other's arrived (a RST never answers
    a RST), so both programs were closing and neither is told."""
    cap, conv = established()
    conv.rst("c")
    conv.rst("s", dt=0.0001)
    (event,) = rst_events(cap)
    assert event.rst_verdict == "receiver_closed"
    assert findings(cap) == []


def test_rst_while_half_closed_waiting_for_the_reply_is_fin_wait_reset() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 18)  # the request, and the server has sent nothing
    conv.send("c", 0x11)  # shutdown(SHUT_WR): still reading, waiting for the reply
    conv.send("s", ACK)
    conv.rst("s")
    (finding,) = findings(cap)
    assert finding.category == "fin_wait_reset"
    assert finding.client_sees.errno == "ECONNRESET"
    assert finding.cause is not None and finding.cause.id == "close-with-unread-data"
    # The same reset without ACK, right after the server's own ACK: it answers nothing, so it
    # is the server's own abort (some stacks send it without ACK), not a kernel's answer for a
    # connection it no longer knows.
    cap.packets[-1] = replace(cap.packets[-1], flags=RST)
    (finding,) = findings(cap)
    assert finding.category == "fin_wait_reset"
    assert not finding.facts["answers_receiver"]
    assert finding.cause is not None and finding.cause.id == "close-with-unread-data"
    # Without the server's ACK, the RST without ACK answers the client's FIN: its sender's
    # kernel had no socket for the connection left.
    del cap.packets[-2]
    (finding,) = findings(cap)
    assert finding.category == "fin_wait_reset"
    assert finding.facts["answers_receiver"]
    assert finding.cause is not None and finding.cause.id == "no-socket-left"


@pytest.mark.parametrize(("delay", "category"), [(0.01, "broken_pipe"), (4.0, "peer_reset")])
def test_a_fin_the_receiver_shows_it_never_got_leaves_it_established(
    delay: float, category: str
) -> None:
    """The client closes; the server's next data still acknowledges only what came before the
    FIN. Sent within the crossing allowance, it may have crossed the FIN: CLOSE-WAIT, and the
    client's RST is a broken pipe. Sent seconds later, it shows the FIN never arrived (lost):
    the RST finds the server ESTABLISHED, which gets ECONNRESET, not EPIPE."""
    cap, conv = established()
    before_fin = conv.c.seq
    conv.send("c", FIN | ACK)
    conv.send("s", PSH | ACK, 80, ack=before_fin, dt=delay)
    conv.rst("c", with_ack=False, seq=before_fin, dt=0.0001)
    (finding,) = findings(cap)
    assert finding.category == category
    if category == "peer_reset":
        assert finding.server_state == "ESTABLISHED"
        assert finding.server_sees.errno == "ECONNRESET" and finding.client_sees.errno is None
    else:
        assert finding.server_sees.errno == "EPIPE" and finding.client_sees.errno is None
    (event,) = rst_events(cap)
    assert event.receiver_state == ("ESTABLISHED" if category == "peer_reset" else "CLOSE-WAIT")


def test_a_fin_behind_data_never_acknowledged_was_never_taken() -> None:
    """Real traffic (a Skype client over a lossy path): the client's last request is
    retransmitted, never acknowledged, then its FIN; 4 s later the server's data acknowledges
    only the bytes before the request. The client's stack resets that data: the server was
    ESTABLISHED all along (peer_reset, ECONNRESET), not in CLOSE-WAIT."""
    cap, conv = established()
    lost = conv.c.seq
    conv.send("c", PSH | ACK, 54)
    for _ in range(3):
        conv.send("c", PSH | ACK, 54, seq=lost, dt=2.0)
    conv.send("c", FIN | ACK, dt=4.0)
    conv.send("s", PSH | ACK, 79, ack=lost, dt=4.0)
    conv.rst("c", with_ack=False, seq=lost, dt=0.0001)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.server_sees.errno == "ECONNRESET" and finding.client_sees.errno is None
    # A RST without ACK answers a segment for a connection its sender no longer has.
    assert finding.cause is not None and finding.cause.id == "no-socket-left"


def test_a_rst_after_a_fin_nobody_answered_is_no_broken_pipe() -> None:
    """The client sends its FIN, retransmits it unanswered, then its stack gives up with a RST
    (BSD, macOS, Windows do). Nothing from the server since the FIN: whether it ever got the FIN
    is unknown, and it sent nothing the RST could answer: no broken pipe."""
    cap, conv = established()
    fin = conv.c.seq
    conv.send("c", FIN | ACK)
    for gap in (1.0, 2.0, 4.0):
        conv.send("c", FIN | ACK, seq=fin, dt=gap)
    conv.rst("c", seq=fin + 1, dt=8.0)
    (event,) = rst_events(cap)
    assert event.receiver_state == "CLOSE-WAIT" and not event.receiver_sent_after_fin
    assert categories(cap) == []


def test_a_client_that_closed_after_its_data_stalled_was_not_waiting_for_a_reply() -> None:
    """The client's request was answered by nothing but an ACK; its next one is retransmitted
    again and again, never acknowledged, and then the client closes (FIN): it gave up, it did
    not shut down its writing half to wait. The server's later RST reaches no one waiting."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 72)  # acknowledged, never answered
    stalled = conv.c.seq
    conv.send("c", PSH | ACK, 56)
    for gap in (0.4, 0.8, 1.6, 3.2):
        conv.send("c", PSH | ACK, 56, seq=stalled, dt=gap)
    conv.send("c", FIN | ACK, dt=5.0)
    conv.rst("s", with_ack=False, seq=conv.s.seq, dt=10.0)
    (event,) = rst_events(cap)
    assert event.receiver_state == "FIN-WAIT-1" and event.receiver_stall_retransmissions == 4
    assert categories(cap) == []
    # The same client with its data acknowledged before the FIN was waiting: fin_wait_reset.
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 72)
    conv.send("c", FIN | ACK)
    conv.rst("s", with_ack=False, seq=conv.s.seq, dt=10.0)
    assert categories(cap) == ["fin_wait_reset"]


@pytest.mark.parametrize("peer_was_sending", [True, False])
def test_a_stall_seen_from_one_direction_only_proves_nothing(peer_was_sending: bool) -> None:
    """Real traffic (tcpflow's test capture, server to client only): the server's data and FIN
    are retransmitted and nothing of the client's is in the capture, yet the server's own ACKs
    advance (the client's FIN reached it): the capture missed the client's direction, and the
    stall proves nothing. With the server's ACK never moving, the client may truly be gone."""
    cap = Capture()
    conv = Conversation(cap)  # mid-stream: the capture starts after the handshake
    client_seq = conv.c.seq
    for _ in range(3):
        conv.send("s", ACK, 1396, ack=client_seq)
    if peer_was_sending:
        client_seq += 1  # the client's FIN, which the capture did not see
    stalled = conv.s.seq - 3 * 1396
    conv.send("s", FIN | ACK, ack=client_seq)
    for gap in (0.4, 0.9, 1.9, 3.8):
        conv.send("s", ACK, 1396, seq=stalled, ack=client_seq, dt=gap)
    events = [e for conn in track(cap) for e in conn.events if isinstance(e, SilenceEvent)]
    assert [e.other_direction_missed for e in events] == [peer_was_sending]
    assert categories(cap) == ([] if peer_was_sending else ["retransmission_timeout"])


@pytest.mark.parametrize("closed", [True, False])
def test_an_injected_reset_is_a_finding_only_where_someone_is_told(closed: bool) -> None:
    """Real traffic (a Skype call, nDPI's captures): a RST with a foreign TTL claims to come
    from the server after both sides sent their FINs (the client in LAST-ACK, the server in
    TIME-WAIT): the client only drops its connection and nobody is told (RFC 9293 3.10.7.4),
    whoever forged it: no finding, as for any RST in LAST-ACK. In ESTABLISHED, both are told
    (ECONNRESET)."""
    cap, conv = established()
    if closed:
        conv.send("s", FIN | ACK)
        conv.send("c", FIN | ACK)
    conv.rst("s", with_ack=False, ttl=126)
    (event,) = rst_events(cap)
    assert event.ttl_delta == 62
    if closed:
        assert (event.receiver_state, event.sender_state) == ("LAST-ACK", "TIME-WAIT")
        assert [f.category for f in findings(cap)] in ([], ["ignored_reset"])
        return
    (finding,) = findings(cap)
    assert finding.category == "injected_reset"
    assert (finding.client_sees.errno, finding.server_sees.errno) == ("ECONNRESET", "ECONNRESET")


@pytest.mark.parametrize("receiver_state", ["FIN-WAIT-2", "CLOSE-WAIT"])
def test_an_injected_reset_tells_a_half_closed_receiver_and_only_the_open_sender(
    receiver_state: str,
) -> None:
    """A forged RST to a side that has not closed both ways (it still reads, or still writes)
    is a finding; the claimed sender, if it had closed both ways, is told nothing."""
    cap, conv = established()
    if receiver_state == "FIN-WAIT-2":
        conv.send("c", FIN | ACK)
        conv.send("s", ACK)
    else:
        conv.send("s", FIN | ACK)
        conv.send("c", ACK)
    conv.rst("s", with_ack=False, ttl=126)
    (finding,) = findings(cap)
    assert finding.category == "injected_reset"
    assert finding.facts["receiver_state"] == receiver_state
    assert finding.client_sees.errno == "ECONNRESET"
    assert finding.client_sees.when != NOTHING_SEEN


def test_a_4_tuple_used_again_hours_later_is_a_new_connection() -> None:
    """Real traffic (tcpflow's test capture): a connection left open, then 3 h later the same
    4-tuple with a new ISN: handshake, request, and the client's RST at the server's RCV.NXT.
    Only a few packets in all, so no retirement check point comes in between, and the capture
    clock has not believed the jump yet: the old connection still retires (idle past
    IDLE_RETIRE_SECONDS by the SYN's own time) and the RST is judged in the new one."""
    cap = Capture()
    old = Conversation(cap, client_isn=3075353070, server_isn=938104748)
    old.handshake()
    old.data("c", 68)
    new = Conversation(cap, client_isn=2283464615, server_isn=2452641258)
    new.send("c", SYN, options=LINUX_SYN, dt=IDLE_RETIRE_SECONDS + 39)
    new.send("s", SYN | ACK, options=LINUX_SYN)
    new.send("c", ACK)
    new.data("c", 68)
    new.rst("c", dt=10.6)
    connections = track(cap)
    assert [c.client.isn for c in connections] == [3075353070, 2283464615]
    (finding,) = findings(cap)
    assert finding.category == "peer_reset" and finding.server_sees.errno == "ECONNRESET"


def test_bare_syn_attempts_are_bounded_apart_from_open_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of SYNs the compact store cannot hold (IPv6) fills only the attempts' own cap
    (MAX_LIVE_ATTEMPTS), retiring the oldest attempts early; the established connections stay,
    however far below its own cap (a million) the table is."""
    monkeypatch.setattr(tracker, "MAX_LIVE_ATTEMPTS", 10)
    cap = Capture()
    for k in range(5):
        conv = Conversation(cap, client=("10.0.0.1", 40000 + k))
        conv.handshake()
        conv.data("c", 10)
    for k in range(30):
        flood = Conversation(cap, client=("2001:db8::1", 50000 + k), server=("2001:db8::2", 443))
        flood.send("c", SYN, options=LINUX_SYN)
    table = FlowTable()
    retired = list(table.track(cap.packets))
    assert table.max_live == tracker.MAX_LIVE_CONNECTIONS >= 1_000_000
    assert table.evicted == table.evicted_attempts == 20
    assert sorted(c.ref.client for c in retired if c.ref.client.startswith("10.")) == [
        f"10.0.0.1:{40000 + k}" for k in range(5)
    ]


def test_rst_after_a_fin_that_followed_the_reply_is_teardown() -> None:
    """The server answered and closed (reply + FIN); the client resets instead of closing: both
    applications had finished, nobody is told (HTTP/TLS clients leaving the last bytes unread)."""
    cap, conv = established()
    conv.data("c", 100)
    conv.data("s", 400)
    conv.send("s", 0x11)  # the server is done
    conv.rst("c")
    assert findings(cap) == []


def test_closing_message_then_fin_then_rst_is_teardown() -> None:
    """An answered exchange, then a goodbye (LDAP unbind, QUIT) and FIN: the client closed; the
    server's abortive close after it reaches no application."""
    cap, conv = established()
    conv.data("c", 81)
    conv.data("s", 283)
    conv.data("c", 12)  # unbind: no reply expected
    conv.send("c", 0x11)
    conv.send("s", ACK)
    conv.rst("s")
    assert findings(cap) == []


def test_rst_in_closing_tells_nobody() -> None:
    cap, conv = established()
    conv.data("c", 10)
    conv.data("s", 10)
    conv.send("s", 0x11)  # FIN from the server ...
    conv.send("c", 0x11, ack=conv.s.seq - 1)  # ... crosses the client's FIN: CLOSING
    conv.rst("c")
    assert findings(cap) == []


def test_unanswered_keepalives_then_rst_is_keepalive_timeout() -> None:
    cap, conv = established()
    for _ in range(3):
        conv.send("c", ACK, seq=conv.c.seq - 1, dt=1.0)  # probe at SND.NXT-1, no answer
    conv.rst("c", dt=1.0)
    (event,) = rst_events(cap)
    assert event.sender_keepalive_probes == 3
    (finding,) = findings(cap)
    assert finding.category == "keepalive_timeout"
    assert finding.client_sees.errno == "ETIMEDOUT"
    assert finding.server_sees.errno == "ECONNRESET"


def test_answered_keepalives_are_not_counted() -> None:
    cap, conv = established()
    for _ in range(3):
        conv.send("c", ACK, seq=conv.c.seq - 1, dt=1.0)
        conv.send("s", ACK)
    conv.rst("c")
    (event,) = rst_events(cap)
    assert event.sender_keepalive_probes == 0
    assert categories(cap) == ["peer_reset"]


def test_unacknowledged_retransmissions_then_silence_is_retransmission_timeout() -> None:
    cap, conv = established()
    seq = conv.c.seq
    conv.send("c", PSH | ACK, 100)
    for gap in (0.2, 0.4, 0.8, 1.6):
        conv.send("c", PSH | ACK, 100, seq=seq, dt=gap)
    events = [e for c in track(cap) for e in c.events if isinstance(e, SilenceEvent)]
    (silence,) = events
    assert silence.stall_retransmissions == 4 and silence.backoff_growing and silence.peer_silent
    (finding,) = findings(cap)
    assert finding.category == "retransmission_timeout"
    assert finding.client_sees.errno == "ETIMEDOUT"


@pytest.mark.parametrize(
    ("last_bytes", "found"), [(0, False), (31, False), (100, False), (101, True), (620, True)]
)
def test_only_data_left_unacknowledged_after_a_close_is_a_stall(
    last_bytes: int, found: bool
) -> None:
    """Real traffic (phones losing their network, nDPI's captures): a side closes, and its FIN
    (alone, or with a goodbye: a TLS close_notify, an HTTP/2 GOAWAY) is retransmitted to a
    peer that went away. Nothing its program wrote is lost and nobody is told: a teardown that
    never completed, no finding. Data of more than a goodbye's 100 bytes that never arrived
    is one (retransmission-timeout-after-close), the client's program having closed."""
    cap, conv = established()
    seq = conv.c.seq
    conv.send("c", FIN | PSH | ACK, last_bytes)
    for gap in (0.2, 0.4, 0.8, 1.6):
        conv.send("c", FIN | PSH | ACK, last_bytes, seq=seq, advance=False, dt=gap)
    (silence,) = [e for c in track(cap) for e in c.events if isinstance(e, SilenceEvent)]
    assert silence.stall_payload_bytes == last_bytes and silence.stalled_state == "FIN-WAIT-1"
    found_ = findings(cap)
    if not found:
        assert found_ == []
        return
    (finding,) = found_
    assert finding.rule == "retransmission-timeout-after-close"
    assert finding.client_sees.errno is None and finding.server_sees.errno is None


def test_a_long_stall_cites_its_latest_retransmissions() -> None:
    """A stall keeps its latest STALL_KEPT retransmissions (as numbers, not Evidence items):
    the finding cites the first two and the last four of those, each as the frame it was, and
    the backoff is judged over them (the capped ones at the end are as long as the last); the
    third says how many of those kept came between."""
    from tcpdiag.tracker import STALL_KEPT

    cap, conv = established()
    seq = conv.c.seq
    conv.send("c", PSH | ACK, 100)
    count = STALL_KEPT + 9
    frames = []
    for n in range(count):
        conv.send("c", PSH | ACK, 100, seq=seq, dt=min(0.2 * 2**n, 30.0))
        frames.append(len(cap.packets))
    (conn,) = track(cap)
    (silence,) = [e for e in conn.events if isinstance(e, SilenceEvent)]
    assert silence.stall_retransmissions == count and silence.backoff_growing
    kept = frames[-STALL_KEPT:]
    cited = [e for e in silence.evidence if e.what.startswith("retransmission from client")]
    assert [e.frame for e in cited] == kept[:2] + kept[-4:]
    between = STALL_KEPT - 6
    assert cited[2].what == f"retransmission from client ({between} more before it, not listed)"
    assert all(type(e.frame) is int for e in cited)
    by_frame = {p.frame: p.time for p in cap.packets}
    assert all(e.time == by_frame[e.frame] for e in cited)
    assert silence.frame == kept[-1]


def test_retried_syn_never_answered_is_connect_timeout() -> None:
    cap = Capture()
    conv = Conversation(cap)
    for gap in (0.0, 1.0, 2.0):
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=gap)
    (finding,) = findings(cap)
    assert finding.rule == "connect-timeout"
    assert finding.client_sees.errno == "ETIMEDOUT"
    # Its evidence is the SYN and each retransmission of it (as Wireshark flags them).
    syns = [seg.frame for seg in cap.packets]
    assert finding.frames == syns and len(syns) == 3
    assert [e.what for e in finding.evidence] == ["SYN from client"] + [
        "SYN from client again (retransmission)"
    ] * 2


@pytest.mark.parametrize(
    ("gaps", "ttl", "then", "rule"),
    [
        # SYN retries stopped 2 s in, the capture went on 20 s: the program gave up first.
        ((1.0, 2.0), 64, 20.0, "connect-abandoned"),
        # The capture ended before the next retry was due: still retrying, as far as it shows.
        ((1.0, 2.0), 64, 5.0, "connect-timeout"),
        # A Windows stack retries a SYN twice by default: three SYNs and silence is its own end.
        ((3.0, 6.0), 128, 40.0, "connect-timeout"),
        # Retries over 31 s, as long as a default schedule's first 31 s: the kernel may be done.
        ((1.0, 2.0, 4.0, 8.0, 16.0), 64, 200.0, "connect-timeout"),
    ],
)
def test_syn_retries_that_stop_while_the_capture_goes_on_are_a_program_giving_up(
    gaps: tuple[float, ...], ttl: int, then: float, rule: str
) -> None:
    """Real traffic (nDPI's anyconnect-vpn capture: a macOS host's five SYNs over 5 s, then
    nothing for the 43 s the capture went on; pypacker's ether.pcap: a Linux guest's three SYNs,
    then 15 s): a client with a TTL of 64 whose SYN retries stop short of its stack's default
    schedule (about a minute of retries), while other traffic shows the capture still running
    well past when its next retry was due, was abandoned by its program on a connect timeout of
    its own; the kernel's connect-timeout otherwise. The new facts say how long the capture went
    on after the last SYN, on the capture clock at retirement."""
    cap = Capture()
    conv = Conversation(cap)
    conv.c.ttl = ttl
    conv.send("c", SYN, options=LINUX_SYN, advance=False)
    for gap in gaps:
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=gap)
    other = Conversation(cap, client=("10.0.0.3", 41000), server=("10.0.0.4", 80))
    other.handshake()
    ticks = 10
    for _ in range(ticks):
        other.send("c", PSH | ACK, 10, dt=then / ticks)
        other.send("s", ACK)
    other.close("c")
    (finding,) = findings(cap)
    assert finding.rule == rule
    assert finding.client_sees.errno == "ETIMEDOUT"
    last_syn = cap.packets[len(gaps)].time
    assert finding.facts["quiet_after_seconds"] == pytest.approx(
        cap.packets[-1].time - last_syn, abs=1e-3
    )
    assert finding.facts["retries_stopped"] is (then > 3 * gaps[-1])


def test_a_syn_ack_retransmitted_to_a_scanner_is_its_evidence() -> None:
    """A raw SYN scanner's host drops the SYN-ACK: the server retransmits it, never answered.
    The finding cites the probe, the SYN-ACK and its retransmissions (the latest four), not a
    copy of a segment captured twice (same IP ID)."""
    import dataclasses

    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, window=1024)
    synack = conv.send("s", SYN | ACK, options=LINUX_SYN, advance=False, dt=0.001)
    synack.ip_id = 100
    for k, gap in enumerate((1.0, 2.0, 4.0, 8.0, 16.0)):
        again = conv.send("s", SYN | ACK, options=LINUX_SYN, advance=False, dt=gap)
        again.ip_id = 101 + k  # (a retransmission is a new packet: a new IP ID)
    frame, time = cap.next_frame(0.0001)
    cap.packets.append(dataclasses.replace(again, frame=frame, time=time))  # captured twice
    (finding,) = findings(cap)
    assert finding.category == "half_open_scan"
    frames = [seg.frame for seg in cap.packets]
    assert finding.frames == frames[:2] + frames[3:7], "SYN, SYN-ACK, the last four again"
    assert finding.evidence[-1].what == "SYN-ACK from server again (retransmission)"


def _exchanged(cap: Capture, count: int) -> list[Conversation]:
    """`count` connections of one client, each with an exchange (10 bytes each way)."""
    convs = [Conversation(cap, client=("10.0.0.1", 40000 + i)) for i in range(count)]
    for conv in convs:
        conv.handshake()
        conv.data("c", 10)
        conv.data("s", 10)
    return convs


def _exchanges_then_a_burst(idle: float, resetter: str = "c") -> Capture:
    """Three connections of one client, each with an exchange; `idle` seconds later the
    `resetter` side resets all three within the same instant."""
    cap = Capture()
    convs = _exchanged(cap, 3)
    convs[0].rst(resetter, dt=idle)
    for conv in convs[1:]:
        conv.rst(resetter, dt=0.0001)
    return cap


def test_simultaneous_rsts_from_one_host_are_local_abort() -> None:
    found = findings(_exchanges_then_a_burst(0.4))
    assert [f.category for f in found] == ["local_abort"] * 3
    assert all(f.client_sees.errno == "ECONNABORTED" for f in found)
    assert all(f.server_sees.errno == "ECONNRESET" for f in found)


@pytest.mark.parametrize(("unacked_for", "category"), [(0.6, "peer_reset"), (0.3, "local_abort")])
def test_resets_that_first_acknowledge_data_long_left_unacknowledged_are_no_kill(
    unacked_for: float, category: str
) -> None:
    """Real traffic (a Webex client, nDPI's capture): five servers' replies arrive together,
    and a second later the client resets all five connections within a millisecond, each RST
    the first acknowledgement of its reply. A live stack acknowledges what it takes within
    half a second (RFC 1122), so that host was not running its sockets as usual (or the
    capture missed its ACKs): the timing a local_abort rests on says nothing, and each is the
    program's reset with the reply unread (peer_reset). Within a delayed ACK's time, the
    burst still reads as a kill from outside."""
    cap = Capture()
    convs = _exchanged(cap, 3)
    for conv in convs:
        conv.send("s", PSH | ACK, 500, dt=0.0001)  # a reply the client never acknowledges
    convs[0].rst("c", dt=unacked_for)
    for conv in convs[1:]:
        conv.rst("c", dt=0.0001)
    found = findings(cap)
    assert [f.category for f in found] == [category] * 3
    assert [f.facts["rst_acks_stale_data"] for f in found] == [unacked_for >= 0.5] * 3
    if category == "peer_reset":
        assert all(f.client_sees.errno is None for f in found)
        assert all(f.server_sees.errno == "ECONNRESET" for f in found)


def test_a_burst_with_a_reset_on_end_of_file_is_the_application_closing() -> None:
    """Real traffic (the same Webex client): two connections reset within 0.2 ms, one of them
    right after its server's FIN (CLOSE-WAIT: the program closing on the end of file,
    abortively). The other in that instant is the same program closing too: peer_reset, not
    a kill from outside."""
    cap = Capture()
    convs = _exchanged(cap, 2)
    convs[0].send("s", FIN | ACK, dt=0.4)
    convs[0].send("c", ACK)
    convs[0].rst("c", dt=0.1)
    convs[1].rst("c", dt=0.0002)
    events = rst_events(cap)
    assert [e.burst_size for e in events] == [2, 2]
    assert all(e.burst_after_exchange for e in events)
    assert "local_abort" not in [f.category for f in findings(cap)]


def test_rsts_together_right_after_the_exchanges_are_the_application_closing() -> None:
    """A client that ends its sessions abortively right after their last reply (Windows SMB
    logoff, nmap connect probes) is one application closing them: peer_reset, and the aborting
    side sees nothing."""
    cap = Capture()
    convs = [Conversation(cap, client=("10.0.0.1", 40000 + i)) for i in range(3)]
    for conv in convs:
        conv.handshake()
        conv.data("c", 10)
    for conv in convs:
        conv.data("s", 10)
    for conv in convs:
        conv.rst("c", dt=0.0001)
    found = findings(cap)
    assert [f.category for f in found] == ["peer_reset"] * 3
    assert all(f.client_sees.errno is None for f in found)
    assert all(f.server_sees.errno == "ECONNRESET" for f in found)
    assert all(f.facts["burst_size"] == 3 and f.facts["burst_after_exchange"] for f in found)


@pytest.mark.parametrize("resetter", ["c", "s"])
def test_idle_kept_alive_connections_reset_together_are_their_owner_closing(
    resetter: str,
) -> None:
    """A browser closing its pool of idle kept-alive connections (Windows resets them, in one
    burst), or a server whose keep-alive timeout expires on connections that went idle
    together: every response was delivered, seconds ago. Their owner closed them on purpose:
    peer_reset, and it sees nothing (not a kill from outside, ECONNABORTED)."""
    found = findings(_exchanges_then_a_burst(61.0, resetter))
    assert [f.category for f in found] == ["peer_reset"] * 3
    assert all(f.facts["burst_size"] == 3 and f.facts["burst_after_exchange"] for f in found)
    assert all(f.facts["exchange_age_seconds"] > 60 for f in found)  # (a server's too)
    assert all(f.cause is not None and f.cause.id == "idle-connection-dropped" for f in found)
    resetting, other = ("client", "server") if resetter == "c" else ("server", "client")
    assert all(getattr(f, f"{resetting}_sees").errno is None for f in found)
    assert all(getattr(f, f"{other}_sees").errno == "ECONNRESET" for f in found)


def test_rst_with_foreign_ttl_is_injected() -> None:
    cap, conv = established()
    conv.rst("s", ttl=50)
    conv.rst("c", ttl=50)
    (finding,) = findings(cap)
    assert finding.category == "injected_reset"
    assert finding.facts["ttl_delta"] == 14
    assert finding.client_sees.errno == finding.server_sees.errno == "ECONNRESET"
    assert (finding.facts["sender_ttl"], finding.facts["ttl_reference"]) == (64, "data segments")
    assert finding.facts["handshake_ttl_delta"] is None  # (one TTL for all it sent)
    assert finding.cause is not None and finding.cause.id == "middlebox-injection"


@pytest.mark.parametrize("rst_ttl", [231, 50])
def test_a_reset_with_the_ttl_of_a_front_ends_handshake(rst_ttl: int) -> None:
    """Real traffic (an Alexa device to AWS): the server's handshake and ACKs come with TTL
    231, its data with 219 (a front end terminates TCP for the host that sends the data), and
    after an idle minute a RST with TTL 231: the front end's own reset (an idle timeout), not
    a forgery. A RST with a TTL that neither had stays a middlebox's injection."""
    cap = Capture()
    conv = Conversation(cap)
    conv.s.ttl = 231
    conv.handshake()
    conv.data("c", 100)
    conv.send("s", PSH | ACK, 300, ttl=219)
    conv.send("c", ACK)
    conv.rst("s", dt=98.0, ttl=rst_ttl)
    (finding,) = findings(cap)
    assert finding.category == "injected_reset"
    facts = finding.facts
    assert (facts["sender_ttl"], facts["ttl_reference"]) == (219, "data segments")
    assert facts["ttl_delta"] == abs(rst_ttl - 219)
    assert facts["handshake_ttl_delta"] == abs(rst_ttl - 231)
    assert finding.cause is not None
    front_end = rst_ttl == 231
    assert finding.cause.id == ("front-end-reset" if front_end else "middlebox-injection")
    assert ("front-end-reset" in [c.id for c in finding.alternatives]) is False
    assert "data segments in this flow (TTL 219)" in " ".join(finding.explanation.split())


def test_half_open_scan_from_optionless_syn() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, window=1024, options=SynOptions(mss=1460))
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.rst("c", with_ack=False)
    (finding,) = findings(cap)
    assert finding.category == "half_open_scan"
    assert finding.cause is not None and finding.cause.id == "raw-socket-scanner"


def test_icmp_port_unreachable_on_syn_maps_to_econnrefused() -> None:
    cap = Capture()
    conv = Conversation(cap)
    syn = conv.send("c", SYN, options=LINUX_SYN)
    conv.icmp(syn, 3, 3, src="10.0.0.2")
    events = [e for c in track(cap) for e in c.events if isinstance(e, IcmpErrorEvent)]
    assert [(e.icmp_kind, e.icmp_hard, e.affected_state) for e in events] == [
        ("port_unreachable", True, "SYN-SENT")
    ]
    (finding,) = findings(cap)
    assert finding.category == "icmp_error"
    assert finding.client_sees.errno == "ECONNREFUSED"


@pytest.mark.parametrize("answered", [False, True])
def test_a_syn_retried_after_an_icmp_error_and_answered_made_its_connection(
    answered: bool,
) -> None:
    """Real traffic (FoxIO's ssh2 capture, a Windows client): an ICMP administratively
    prohibited about the SYN, and the client retries the same SYN at +1, +3, +7 s. Windows
    treats the error as soft in SYN-SENT; if a retry is answered, connect() succeeded after
    all: a transient error, nobody saw it (not "ICMP aborted connect()"); if none is, its
    connect() fails when its retries run out, with the error it kept, and the finding says the
    SYN was retried (not that the ICMP error aborted connect())."""
    cap = Capture()
    conv = Conversation(cap)
    conv.c.ttl = 128
    syn = conv.send("c", SYN, options=LINUX_SYN, advance=False)
    conv.icmp(syn, 3, 13, src="10.128.128.128")
    for gap in (1.0, 2.0, 4.0):
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=gap)
    if answered:
        conv.c.seq += 1
        conv.send("s", SYN | ACK, options=LINUX_SYN)
        conv.send("c", ACK)
        conv.data("c", 10)
        conv.data("s", 10)
    (finding,) = findings(cap)
    assert finding.category == "icmp_error"
    if answered:
        assert finding.rule == "icmp-error-transient" and finding.impact == "none"
        assert finding.client_sees.errno is None
    else:
        assert finding.rule == "icmp-error-handshake-retried"
        assert finding.facts["syn_retries_after"] == 3
        assert finding.client_sees.errno == "EHOSTUNREACH"
        assert finding.frames == [1, 2, 3, 4, 5]  # the SYN, the error, the SYN's three retries


@pytest.mark.parametrize(
    ("code", "cause"),
    [(13, "filtered-on-path"), (10, "filtered-on-path"), (1, "router-unreachable")],
)
def test_an_administratively_prohibited_error_from_a_router_is_a_filter(
    code: int, cause: str
) -> None:
    """ICMP destination unreachable from a router on the path: code 13 (communication
    administratively prohibited) or 10 (host prohibited) is a filter's policy, not a missing
    route (FoxIO's ssh2 capture); code 1 (host unreachable) is the router having no way."""
    cap = Capture()
    conv = Conversation(cap)
    syn = conv.send("c", SYN, options=LINUX_SYN, advance=False)
    conv.icmp(syn, 3, code, src="10.128.128.128")
    (finding,) = findings(cap)
    assert finding.category == "icmp_error"
    assert finding.cause is not None and finding.cause.id == cause


def test_icmp_on_established_is_soft_and_reports_stored_error() -> None:
    cap, conv = established()
    seq = conv.c.seq
    data = conv.send("c", PSH | ACK, 100)
    conv.icmp(data, 3, 1, src="10.0.0.2")
    for _ in range(4):
        conv.send("c", PSH | ACK, 100, seq=seq, dt=0.2)
    (finding,) = findings(cap)  # one finding: the ICMP explains the stall too
    assert finding.rule == "icmp-error-established-stall"
    assert finding.client_sees.errno == "EHOSTUNREACH"
    assert finding.facts["retransmissions_after"] == 4


def test_graceful_close_gives_no_finding() -> None:
    cap, conv = established()
    conv.close("c")
    assert findings(cap) == []


def test_timestamps_going_backwards_do_not_break_tracking() -> None:
    cap, conv = established()
    conv.data("c", 10)
    conv.send("s", PSH | ACK, 20, dt=-3.0)  # written out of order by the capturing host
    conv.send("c", ACK)
    conv.rst("s", dt=0.5)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.client_sees.errno == "ECONNRESET"


def test_a_reordered_segment_is_not_a_retransmission() -> None:
    cap, conv = established()
    first = conv.c.seq
    conv.send("c", PSH | ACK, 100, seq=first + 100, advance=False)  # the second segment first
    conv.send("c", PSH | ACK, 100, seq=first, advance=False)  # then the first, late
    conv.c.seq = first + 200
    conv.send("s", ACK)
    (conn,) = track(cap)
    assert conn.client.retransmissions == 0 and conn.client.reordered == 1
    assert conn.client.bytes_sent == 100 + 200  # established() sent 100 before


def test_acknowledged_bytes_do_not_wrap_past_2_gib() -> None:
    cap, conv = established()
    for _ in range(3):  # 3 x 1 GiB, each acknowledged
        conv.data("c", 1 << 30)
    (conn,) = track(cap)
    assert conn.client.bytes_acked == 100 + 3 * (1 << 30)


def test_window_scale_above_14_is_used_as_14() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=SynOptions(window_scale=20))
    conv.send("s", SYN | ACK, options=SynOptions(window_scale=7))
    conv.send("c", ACK)
    (conn,) = track(cap)
    assert conn.client.window_scale == 14


def test_a_connection_closed_at_time_zero_retires() -> None:
    """A capture whose clock starts at the epoch: a close at exactly 0.0 is a close like any
    other (it was once taken for "not closed yet", and nothing behind it ever retired)."""
    cap = Capture()
    cap.time = -0.001  # the first packet is stamped 0.0
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN, dt=0.001)
    conv.send("s", RST | ACK, advance=False, dt=0.0)  # refused at 0.0
    other = Conversation(cap, client=("10.0.0.3", 41000))
    other.handshake()
    for _ in range(3000):
        other.send("c", ACK, dt=0.01)  # 30 s of traffic: well past the close grace
    consumed = 0

    def counted():  # type: ignore[no-untyped-def]
        nonlocal consumed
        for packet in cap.packets:
            consumed += 1
            yield packet

    first = next(iter(FlowTable().track(counted())))
    assert first.ref.client == f"{conv.c.addr}:{conv.c.port}"
    assert consumed < len(cap.packets), "retired only at the end of the capture"


def test_keepalive_expiry_without_the_handshake() -> None:
    """A capture that starts while the connection idles: the probes (empty, same sequence number
    each time, the peer silent) are recognised though SND.NXT was never seen, and the RST at
    that number + 1 ends a keepalive timeout."""
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 45000), server=("10.0.0.2", 8080))
    for _ in range(3):
        conv.send("c", ACK, advance=False, dt=1.0)
    conv.c.seq += 1  # the probes were at SND.NXT-1
    conv.rst("c", dt=1.0)
    (finding,) = findings(cap)
    assert finding.category == "keepalive_timeout"
    assert finding.client_sees.errno == "ETIMEDOUT" and finding.server_sees.errno == "ECONNRESET"


def test_repeated_empty_segments_then_data_are_not_probes() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 45000), server=("10.0.0.2", 8080))
    conv.send("c", ACK, advance=False, dt=1.0)
    conv.send("c", ACK, advance=False, dt=1.0)  # looks like a probe at SND.NXT-1 ...
    conv.send("c", PSH | ACK, 500)  # ... but the data starts right there
    conv.send("s", ACK)
    (conn,) = track(cap)
    assert conn.client.retransmissions == 0 and conn.client.bytes_sent == 500
    assert findings(cap) == []


def test_a_rst_the_receiver_keeps_sending_after_was_not_accepted() -> None:
    """Data from the RST's receiver long after it (beyond any round trip) shows the RST was not
    acted on; data right after it may have crossed it and proves nothing."""
    for gap, verdict in ((5.0, "carried_on"), (0.0001, "accepted")):
        cap, conv = established()
        conv.rst("c")
        conv.send("s", PSH | ACK, 200, dt=gap)
        (event,) = rst_events(cap)
        assert event.rst_verdict == verdict, gap


def _resets_one_after_another(count: int, gap: float) -> Capture:
    """`count` exchanges from one client host, then the client resets them one after another,
    `gap` seconds apart (the first a second after the exchanges)."""
    cap = Capture()
    convs = [Conversation(cap, client=("10.0.0.1", 40000 + i)) for i in range(count)]
    for conv in convs:
        conv.handshake()
        conv.data("c", 10)
        conv.data("s", 10)
    convs[0].rst("c", dt=1.0)
    for conv in convs[1:]:
        conv.rst("c", dt=gap)
    return cap


def test_rsts_exactly_a_window_apart_are_no_burst() -> None:
    """A host resetting one connection every 10 ms is a steady stream, not one burst chained
    end to end (the burst window is open at its edges)."""
    cap = _resets_one_after_another(4, RST_BURST_WINDOW_SECONDS)
    assert [e.burst_size for e in rst_events(cap)] == [1, 1, 1, 1]


def test_spurious_retransmissions_of_acknowledged_data_are_no_stall() -> None:
    """Data the peer had already acknowledged, sent again and again: nothing is outstanding,
    so no retransmission timeout."""
    cap, conv = established()
    seq = conv.c.seq
    conv.data("c", 100)  # sent and acknowledged
    for gap in (0.2, 0.4, 0.8, 1.6):
        conv.send("c", PSH | ACK, 100, seq=seq, advance=False, dt=gap)
    (conn,) = track(cap)
    assert conn.client.retransmissions == 4 and conn.client.stall_retransmissions == 0
    assert findings(cap) == []


def test_a_steady_stream_of_resets_is_no_burst() -> None:
    """One host resetting a connection every millisecond for a while: every instant has
    neighbours, but nothing stands out as one instant's kill, so no local_abort."""
    cap = _resets_one_after_another(60, 0.001)
    assert {f.category for f in findings(cap)} == {"peer_reset"}


def test_segment_identity_is_equal_only_for_equal_fields() -> None:
    """The number that recognises a packet captured twice keeps every field apart, at the
    limits of each (32-bit sequence numbers, flags byte, IPv4 lengths, 16-bit IP IDs)."""
    rng = random.Random(5)
    limits = (2**32 - 1, 2**32 - 1, 255, 65_535, 65_535)
    fields = [
        tuple(rng.choice((0, 1, top, rng.randrange(top))) for top in limits) for _ in range(3_000)
    ]
    by_identity: dict[int, tuple[int, ...]] = {}
    for values in fields:
        assert by_identity.setdefault(segment_identity(*values), values) == values
    assert len(by_identity) == len(set(fields))


def test_recent_segments_keep_what_a_bounded_dict_would() -> None:
    """The recent data segments an ICMP error's quote is looked up in: the latest (frame,
    time) per starting sequence number, a start seen again keeping its place, the oldest half
    dropped past twice RECENT_SEGMENTS."""
    from tcpdiag.tracker import RECENT_SEGMENTS, Endpoint, _new_data

    rng = random.Random(11)
    sender, receiver = Endpoint("10.0.0.1", 1000), Endpoint("10.0.0.2", 80)
    model: dict[int, tuple[int, float]] = {}
    starts = [rng.randrange(2**32) for _ in range(40)]
    for frame in range(1, 600):
        seq = rng.choice(starts) if rng.random() < 0.3 else rng.randrange(2**32)
        time = 1_700_000_000.0 + frame / 1000
        seg = TcpSegment(frame, time, sender.addr, receiver.addr, 1000, 80, seq, 0, ACK, 512,
                         100, 64, 4)  # fmt: skip
        _new_data(seg, sender, receiver)
        model[seq] = (frame, time)
        if len(model) > 2 * RECENT_SEGMENTS:
            for old in list(model)[:RECENT_SEGMENTS]:
                del model[old]
        for probe in (seq, rng.choice(starts), rng.randrange(2**32)):
            assert sender.recent_segment(probe) == model.get(probe)


class _Segments:
    """A followed connection's history (tcpdiag.tracker.SegmentHistory): its segments, each
    with the capture clock at it (its own time, or `clock` from the `ahead`th segment on)."""

    def __init__(self, segments: list[TcpSegment], ahead: int = 0, clock: float = 0.0) -> None:
        self.list, self.ahead, self.clock = segments, ahead or len(segments), clock

    def segments(self) -> Iterator[tuple[TcpSegment, float]]:
        for k, seg in enumerate(self.list):
            yield seg, (seg.time if k < self.ahead else self.clock)


def _talk(cap: Capture, port: int) -> tuple[Conversation, list[TcpSegment]]:
    talk = Conversation(cap, client=("10.0.0.1", port))
    start = len(cap.packets)
    talk.handshake()
    talk.data("c", 100)
    talk.data("s", 900)
    segments = cap.packets[start:]
    assert all(isinstance(seg, TcpSegment) for seg in segments)
    return talk, segments  # type: ignore[return-value]


def test_a_followed_connection_is_replayed_when_the_table_needs_it() -> None:
    """A connection a front end follows (FollowedConnection) is a Connection only once the
    table needs one: here a later segment of it. It is then exactly the connection its
    segments make when fed one by one, each with the capture clock it came at (here the
    clock jumps 400 s ahead of the segments' times after the handshake, past Zeek's
    inactivity timeout)."""
    cap = Capture()
    talk, segments = _talk(cap, 40001)
    talk.send("c", ACK)  # (what comes after the following)
    last = cap.packets[-1]
    assert isinstance(last, TcpSegment)
    clock = last.time + 400.0
    reference = FlowTable(zeek=True)
    for k, seg in enumerate(cap.packets):
        assert isinstance(seg, TcpSegment)
        if k == 3:
            reference.advance(clock)
        reference.feed(seg)
    table = FlowTable(zeek=True)
    key = FlowTable.key_of(last.src, last.sport, last.dst, last.dport, "")
    followed = FollowedConnection(key, 1, segments[-1].time, _Segments(segments, 3, clock))
    table.skip_connections(1)
    table.follow(followed)
    assert followed.followed and table.live_count == 1
    table.advance(clock)
    table.feed(last)
    assert not followed.followed
    (mine,), (theirs,) = list(table.flush()), list(reference.flush())
    assert mine == theirs


def test_a_followed_connection_keeps_its_place_in_the_order_of_activity() -> None:
    """Eviction takes the least recently active connection: a followed one counts as active
    where the front end says its segments were (followed_active), and is evicted (replayed
    first) when it is the least recently active."""
    cap = Capture()
    _, followed_segments = _talk(cap, 40001)
    _, other = _talk(cap, 40002)
    table = FlowTable(zeek=False, max_live=2)
    table.skip_connections(1)
    first = followed_segments[0]
    key = FlowTable.key_of(first.src, first.sport, first.dst, first.dport, "")
    followed = FollowedConnection(key, 1, followed_segments[-1].time, _Segments(followed_segments))
    table.follow(followed)
    for seg in other:
        table.feed(seg)
    # The followed one had a segment after the other's last: the other is evicted first.
    table.followed_active(followed, other[-1].time + 1.0)
    _, newcomer = _talk(cap, 40003)
    table.feed(newcomer[1])  # (its SYN-ACK: a connection at once, no held SYN)
    retired = [c for c in table.retire_due(True) if isinstance(c, TrackedConnection)]
    assert [c.ref.conn_id for c in retired] == [2]
    assert followed.followed
    # Now the followed one is the least recently active: evicted, and replayed for it.
    _, newcomer = _talk(cap, 40004)
    table.feed(newcomer[1])
    retired = [c for c in table.retire_due(True) if isinstance(c, TrackedConnection)]
    assert [c.ref.conn_id for c in retired] == [1] and not followed.followed
    assert retired[0].client.payload_bytes == 100


def test_a_followed_connection_that_closed_waits_in_the_closing_queue() -> None:
    """A followed connection that closed cleanly waits out the close grace period in the
    closing queue: then it leaves the table unretired (as a connection tracked elsewhere);
    a late segment before that has it replayed, and it retires as it would have been fed."""
    cap = Capture()
    talk, segments = _talk(cap, 40001)
    talk.close("c")
    closing = cap.packets[len(segments) :]
    talk.send("s", ACK, dt=1.0)  # (late: within the grace period)
    late = cap.packets[-1]
    assert isinstance(late, TcpSegment)
    everything = [seg for seg in cap.packets if isinstance(seg, TcpSegment)]
    key = FlowTable.key_of(late.src, late.sport, late.dst, late.dport, "")

    def closed_table() -> tuple[FlowTable, FollowedConnection]:
        table = FlowTable(zeek=False)
        table.skip_connections(1)
        history = _Segments([*segments, *closing])  # type: ignore[list-item]
        followed = FollowedConnection(key, 1, closing[-1].time, history)
        table.follow(followed)
        table.followed_closed(followed, closing[-1].time, closing[-1].time)
        return table, followed

    # Nothing after the close: after the grace period, gone, and nothing retired.
    table, followed = closed_table()
    table.advance(closing[-1].time + 4.0)
    assert not list(table.retire_due(True)) and followed.followed
    table.advance(closing[-1].time + 6.0)
    assert not list(table.retire_due(True))
    assert not followed.followed and table.live_count == 0 and not list(table.flush())
    # A segment before the close stamped 2 s after it: the grace period runs from that.
    table, followed = closed_table()
    followed.last_time += 2.0
    for seconds, still in ((6.0, True), (7.5, False)):
        table.advance(closing[-1].time + seconds)
        assert not list(table.retire_due(True)) and followed.followed == still
    # A late segment: replayed, and retired a grace period after it, as the reference.
    reference = FlowTable(zeek=False)
    for seg in everything:
        reference.advance(seg.time)
        reference.feed(seg)
    table, followed = closed_table()
    table.advance(late.time)
    table.feed(late)
    assert not followed.followed
    mine, theirs = [], []
    for t in (closing[-1].time + 5.5, late.time + 6.0):
        table.advance(t)
        reference.advance(t)
        mine.append(list(table.retire_due(True)))
        theirs.append(list(reference.retire_due(True)))
    assert mine == theirs
    assert [len(retired) for retired in mine] == [0, 1]  # (the late segment made it wait)
    assert table.live_count == reference.live_count == 0


@pytest.mark.parametrize("quiet", [58.0, 0.5])
def test_a_refused_syn_retried_and_answered_opens_the_connection_again(quiet: float) -> None:
    """Real traffic (nDPI's RTSP capture, a Windows client): the SYN is refused (RST/ACK
    acking it), sent again 0.5 s later with the same ISN (Windows retries a refused connect()
    twice) and answered: connect() succeeds, nobody is told of the refusal, and the server's
    RST after `quiet` seconds of an RTSP session (longer than the close grace period, or not)
    resets an established connection: one connection, one peer_reset, however often the
    table checks what is due (here after every packet)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.c.ttl = 128
    conv.send("c", SYN, options=LINUX_SYN, advance=False)
    conv.send("s", RST | ACK, seq=0, ack=conv.c.seq + 1, advance=False)
    conv.send("c", SYN, options=LINUX_SYN, dt=0.5)
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.send("c", ACK)
    conv.data("c", 100)
    conv.data("s", 300)
    conv.send("c", PSH | ACK, 148, dt=quiet)
    conv.send("s", ACK)
    conv.rst("s")
    table = FlowTable()
    retired: list[TrackedConnection] = []
    for packet in cap.packets:
        table.advance(packet.time)
        table.feed(packet)
        retired += [c for c in table.retire_due(True) if isinstance(c, TrackedConnection)]
        if packet.payload_len == 148:  # (past the refusal's grace period, or not)
            assert table.open_count == (1 if quiet > tracker.CLOSE_GRACE_SECONDS else 0)
    table.advance(cap.packets[-1].time + 60.0)
    retired += [c for c in table.retire_due(True) if isinstance(c, TrackedConnection)]
    retired += [c for c in table.flush() if isinstance(c, TrackedConnection)]
    (conn,) = retired
    verdicts = [e.rst_verdict for e in conn.events if isinstance(e, RstEvent)]
    assert verdicts == ["retried", "accepted"]
    assert (table.live_count, table.open_count) == (0, 0)  # (no closed one counted twice)
    found = findings(cap)
    assert [(f.category, f.client_sees.errno, f.server_sees.errno) for f in found] == [
        ("peer_reset", "ECONNRESET", None)
    ]


def test_a_refused_syn_retried_and_refused_again_is_one_refusal() -> None:
    """The corpus's Windows client (chrissanders nowebaccess2): three SYNs with one ISN, each
    refused: connect() fails once, after the last, with ECONNREFUSED: one finding."""
    cap = Capture()
    conv = Conversation(cap)
    for attempt in range(3):
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=0.5 if attempt else 0.001)
        conv.send("s", RST | ACK, seq=0, ack=conv.c.seq + 1, advance=False)
    (finding,) = findings(cap)
    assert (finding.category, finding.client_sees.errno) == ("refused", "ECONNREFUSED")


@pytest.mark.parametrize("answers", [True, False])
def test_a_reset_without_ack_has_no_socket_behind_it_only_if_it_answers(answers: bool) -> None:
    """Real traffic (an iPhone's Signal app): three idle connections reset by the client
    within 32 us with RSTs without ACK, 13 s after anything came from the server: they answer
    nothing, so they are the client's own aborts, not a kernel's answer for a connection it
    no longer knows (which a RST without ACK right after the server's segment may be)."""
    cap, conv = established()
    if answers:
        conv.data("s", 38)  # (the client's ACK comes back at once, then silence)
        conv.send("s", PSH | ACK, 38, dt=13.0)  # the server speaks, and the RST answers it
        conv.rst("c", with_ack=False)
    else:
        conv.data("s", 38)
        conv.rst("c", with_ack=False, dt=13.0)
    (finding,) = findings(cap)
    assert (finding.category, finding.server_sees.errno) == ("peer_reset", "ECONNRESET")
    assert finding.facts["answers_receiver"] is answers
    assert finding.cause is not None
    assert (finding.cause.id == "no-socket-left") is answers


@pytest.mark.parametrize("answered", [False, True])
def test_a_connect_that_gave_up_with_its_own_rst_still_timed_out(answered: bool) -> None:
    """Real traffic (an Android device, nDPI's Alexa capture): a SYN sent 7 times on Linux's
    schedule (1, 2, 4 ... 64 s) and never answered, then, 127 s after the first, a RST/ACK
    from the client itself with seq = ISS: its connect() gave up (ETIMEDOUT); the RST tells
    the silent server nothing and must not hide the timeout. Had the server answered
    anything, the RST would not end a silent attempt."""
    cap = Capture()
    conv = Conversation(cap)
    gaps = [0.001, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    for gap in gaps:
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=gap)
    if answered:
        conv.send("s", ACK, ack=conv.c.seq + 7)  # (an ACK a stale connection there sends)
    conv.send("c", RST | ACK, seq=conv.c.seq, ack=0, advance=False, dt=64.0)
    found = findings(cap)
    timeouts = [f for f in found if f.rule == "connect-timeout"]
    if answered:
        assert not timeouts
        return
    (finding,) = found
    assert finding.rule == "connect-timeout"
    assert (finding.client_sees.errno, finding.server_sees.errno) == ("ETIMEDOUT", None)
    assert finding.facts["ended_by_reset"] and finding.facts["stall_retransmissions"] == 6
    assert finding.facts["stall_seconds"] == pytest.approx(127.0, abs=0.01)
    assert finding.evidence[-1].what.startswith("RST from client")


@pytest.mark.parametrize("chosen", ["first", "second", "first-acked-before-the-second"])
def test_a_front_ends_second_syn_ack_does_not_replace_the_one_the_client_took(
    chosen: str,
) -> None:
    """Real traffic (nDPI's KakaoTalk captures): a SYN-cookie front end answers each
    retransmitted SYN with a SYN-ACK of another ISN. The client goes on with the one it took
    (the first, unless its ACK says otherwise) and answers the other with a duplicate ACK; the
    server's data and its RST follow that ISN, so the RST is accepted and the bytes count."""
    cap = Capture()
    conv = Conversation(cap, server_isn=5_000)
    conv.send("c", SYN, options=LINUX_SYN, advance=False)
    conv.send("c", SYN, options=LINUX_SYN, dt=1.0)
    conv.s.ttl = 248  # (the front end's)
    first = conv.send("s", SYN | ACK, options=LINUX_SYN, seq=5_000)
    second_isn = 900_000
    if chosen != "first-acked-before-the-second":
        conv.send("s", SYN | ACK, options=LINUX_SYN, seq=second_isn)
    isn = second_isn if chosen == "second" else first.seq
    conv.s.seq = isn + 1
    conv.send("c", ACK)
    conv.data("c", 600)
    if chosen == "first-acked-before-the-second":
        conv.send("s", SYN | ACK, options=LINUX_SYN, seq=second_isn, ack=first.ack)
        conv.send("c", ACK)  # (the duplicate ACK)
    conv.s.ttl = 142  # (the back end's)
    conv.data("s", 206)
    conv.rst("s")
    (conn,) = track(cap)
    assert conn.server.isn == isn
    assert conn.server.bytes_sent == 206 and conn.server.bytes_acked == 206
    assert [e.rst_verdict for e in conn.events if isinstance(e, RstEvent)] == ["accepted"]
    assert [(f.category, f.client_sees.errno) for f in findings(cap)] == [
        ("peer_reset", "ECONNRESET")
    ]


@pytest.mark.parametrize(
    "quote", ["own-host", "in-the-destinations-name", "router", "data", "first-8-bytes"]
)
def test_an_icmp_error_a_host_sent_itself_about_its_own_syn_failed_its_connect(
    quote: str,
) -> None:
    """Real traffic (nDPI's instagram capture, an Android phone) and the Linux sample
    own_host_firewall_reject: a firewall rule on the host rejects its own SYN before it reaches
    the wire, so the capture holds only the ICMP error quoting that SYN, from the host itself
    (Android) or in the destination's name (Linux's REJECT): connect() failed with
    ECONNREFUSED. Anyone else's ICMP error about a connection the capture does not show (a
    router's, or one quoting data, or a quote that stops before the flags) stays an orphan: it
    proves nothing."""
    cap = Capture()
    conv = Conversation(cap, client=("192.168.0.103", 49400), server=("173.194.40.20", 443))
    about = conv.send("c", SYN if quote != "data" else PSH | ACK, options=LINUX_SYN)
    cap.packets.remove(about)  # (not on the wire)
    source = {"router": "10.9.0.254", "in-the-destinations-name": conv.s.addr}
    conv.icmp(about, 3, 3, src=source.get(quote, conv.c.addr))
    if quote == "first-8-bytes":
        icmp = cap.packets[-1]
        assert isinstance(icmp, tracker.IcmpError) and icmp.quoted is not None
        icmp.quoted = replace(icmp.quoted, flags=None)
    table = FlowTable()
    found = [f for conn in table.track(cap.packets) for f in findings_of(conn)]
    if quote not in ("own-host", "in-the-destinations-name"):
        assert found == [] and table.orphan_icmp == 1
        return
    assert table.orphan_icmp == 0
    (finding,) = found
    assert (finding.rule, finding.client_sees.errno, finding.server_sees.errno) == (
        "icmp-error-handshake",
        "ECONNREFUSED",
        None,
    )
    assert finding.cause is not None and finding.cause.id == "own-host-firewall"
    (evidence,) = finding.evidence
    assert evidence.frame == cap.packets[-1].frame
    assert "quoting client's SYN (not on the wire)" in evidence.what
    assert finding.facts["quoted_only"] is True


def test_on_one_hosts_loopback_an_icmp_error_names_no_side_of_the_firewall() -> None:
    """On loopback both sides have the ICMP error's source address: the rejecting firewall may
    be either's, so the cause is the peer's reject, not the connecting side's own firewall."""
    cap = Capture()
    conv = Conversation(cap, client=("127.0.0.1", 40000), server=("127.0.0.1", 80))
    syn = conv.send("c", SYN, options=LINUX_SYN)
    conv.icmp(syn, 3, 3, src="127.0.0.1")
    (finding,) = findings(cap)
    assert finding.client_sees.errno == "ECONNREFUSED"
    assert finding.cause is not None and finding.cause.id == "firewall-reject-icmp"


@pytest.mark.parametrize("client_closed", [False, True])
def test_a_dropped_reset_followed_by_an_accepted_one_did_not_leave_the_connection_alive(
    client_closed: bool,
) -> None:
    """Real traffic (nDPI's KakaoTalk chat capture): the server's RST is out of window, the
    client answers with a challenge ACK, and the server, which had lost the connection, answers
    that with a RST at the right number (RFC 5961 3.2): the second RST ends the connection. No
    "ignored reset, the connection lived on": the accepted one tells what happened, which is
    nothing for anyone if the client's application had closed already (FIN-WAIT-2)."""
    cap, conv = established()
    if client_closed:
        conv.send("c", FIN | ACK)
        conv.send("s", ACK)
    conv.rst("s", seq=conv.s.seq + 900_000, dt=13.0)  # out of window
    challenge = conv.send("c", ACK)
    conv.rst("s", with_ack=False, seq=challenge.ack)
    (conn,) = track(cap)
    events = [e for e in conn.events if isinstance(e, RstEvent)]
    assert [(e.rst_verdict, e.later_rst_accepted) for e in events] == [
        ("out_of_window", True),
        ("accepted", False),
    ]
    found = [(f.category, f.client_sees.errno) for f in findings(cap)]
    assert found == ([] if client_closed else [("peer_reset", "ECONNRESET")])


def test_a_dropped_reset_the_sender_went_on_after_stands_on_its_own() -> None:
    """The corpus's Zeek rst-inject trace: a forged RST with a bad ACK in SYN-SENT is dropped,
    the real handshake and exchange follow, and much later the server resets the connection:
    two findings, the dropped RST's (the connection did live on after it) and the real one's."""
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("s", RST | ACK, seq=0, ack=conv.c.seq - 1, ttl=46)  # acknowledges ISS, not ISS+1
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.send("c", ACK)
    conv.data("c", 100)
    conv.data("s", 300)
    conv.rst("s", dt=2.0)
    (conn,) = track(cap)
    events = [e for e in conn.events if isinstance(e, RstEvent)]
    assert [(e.rst_verdict, e.later_rst_accepted) for e in events] == [
        ("bad_ack", False),
        ("accepted", False),
    ]
    assert sorted(categories(cap)) == ["ignored_reset", "peer_reset"]


@pytest.mark.parametrize(
    "shape",
    [
        "closing-message",
        "server-closed-later",
        "two-writes",
        "crossed-the-fin",
        "still-streaming",
        "wrote-on-after-the-rst",
    ],
)
def test_one_closing_write_after_the_peers_reply_and_fin_is_no_broken_pipe(shape: str) -> None:
    """Real traffic (fq's TLS captures, Linux on loopback): the client's request, the server's
    whole reply and its FIN (at once or not: Wireshark's tls-renegotiation capture); the client,
    having taken the FIN, writes its close_notify and nothing more, and the server's closed
    socket answers with a RST. The send() succeeded and recv() returns 0 (the FIN comes first),
    so the client closes and sees nothing: no finding.
    A writer that writes again, wrote before it had the FIN, or was still streaming its own
    data when the FIN came gets EPIPE on its next send(): broken_pipe."""
    cap, conv = established()  # (the client's request, the server's reply)
    if shape == "still-streaming":
        conv.data("c", 1000)  # the client's upload, not answered when the server closes
    fin = conv.send("s", FIN | ACK, dt=0.5 if shape == "server-closed-later" else 0.001)
    if shape == "crossed-the-fin":
        conv.send("c", PSH | ACK, 33, ack=fin.seq)  # sent before the FIN reached it
    else:
        conv.send("c", PSH | ACK, 33)  # (acknowledges the FIN)
    if shape == "two-writes":
        conv.send("c", PSH | ACK, 500)
    conv.rst("s", with_ack=False)
    if shape == "wrote-on-after-the-rst":  # (queued before the RST came: s56, nginx's writev)
        conv.send("c", PSH | ACK, 500, dt=0.00001)
        conv.rst("s", with_ack=False)
    found = [(f.category, f.client_sees.errno) for f in findings(cap)]
    closing = shape in ("closing-message", "server-closed-later")
    assert found == ([] if closing else [("broken_pipe", "EPIPE")])


@pytest.mark.parametrize(
    ("size", "delay", "closing"),
    [(24, 0.0005, True), (24, 1.0, False), (1000, 0.0005, False)],
    ids=["close-notify-at-once", "message-a-second-later", "a-streams-next-segment"],
)
def test_a_servers_short_goodbye_to_the_clients_fin_is_no_broken_pipe(
    size: int, delay: float, closing: bool
) -> None:
    """Real traffic (s22's second application survey: Node's TLS server and stunnel, strace
    showing read()=0, write(close_notify)=24, close()): the client took the whole response and
    closed without a close_notify; the server answered the FIN at once with one short message
    and the client's closed socket reset it. Nobody saw an error: no finding. A message long
    after the FIN, or a full segment (a stream going on), is the writer's next send() failing
    with EPIPE: broken_pipe."""
    cap, conv = established()  # (the client's request, the server's whole response)
    conv.send("c", FIN | ACK, dt=0.01)
    conv.send("s", PSH | ACK, size, dt=delay)  # (acknowledges the FIN)
    conv.rst("c", with_ack=False)
    found = [(f.category, f.server_sees.errno) for f in findings(cap)]
    assert found == ([] if closing else [("broken_pipe", "EPIPE")])


@pytest.mark.parametrize("client_writes", [False, True])
def test_a_reset_after_the_closers_own_fin_is_no_broken_pipe_unless_the_peer_wrote(
    client_writes: bool,
) -> None:
    """Real traffic (s22's second survey: a Node server answers 413 to an upload, end()s and
    destroy()s the socket with the upload unread; curl's last call read the 413, no EPIPE):
    the server's FIN, the client's ACK of it, then the server's own RST. The client wrote
    nothing after the FIN, so nothing of its was broken: no finding. A client that went on
    writing after the FIN gets EPIPE on its next send()."""
    cap, conv = established()
    conv.send("c", PSH | ACK, 2000)  # part of an upload the server never reads
    conv.send("s", ACK)
    conv.send("s", FIN | ACK)
    conv.send("c", ACK)
    if client_writes:
        conv.send("c", PSH | ACK, 2000)
    conv.rst("s", dt=0.01)
    found = [(f.category, f.client_sees.errno) for f in findings(cap)]
    assert found == ([("broken_pipe", "EPIPE")] if client_writes else [])


@pytest.mark.parametrize(
    ("server_data", "write_after", "rule"),
    [
        (True, 2.0, "broken-pipe-stale-connection"),  # a pool reusing a closed connection
        (False, 0.001, "broken-pipe-stale-connection"),  # turned away without a word
        (True, 0.001, None),  # a closing message answering the FIN at once
    ],
)
def test_a_request_sent_long_after_the_servers_fin_is_a_stale_connection_reused(
    server_data: bool, write_after: float, rule: str | None
) -> None:
    """Real traffic (s22's application survey: Python's http.client, psycopg2, pymemcache,
    wrk against an nginx out of connections): the server closed, the client took its FIN and
    later wrote a new request, which the closed socket reset. The client's send() succeeded
    and its recv() returns 0: EOF, no errno. A write right after the FIN to a server that had
    replied is a closing message (no finding)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    if server_data:
        conv.data("c", 100)
        conv.data("s", 300)
    conv.send("s", FIN | ACK, dt=1.5)
    conv.send("c", ACK)
    conv.send("c", PSH | ACK, 80, dt=write_after)
    conv.rst("s", with_ack=False)
    found = findings(cap)
    assert [f.rule for f in found] == ([rule] if rule else [])
    if rule:
        assert found[0].client_sees.errno is None and found[0].client_sees.label == "EOF"
        assert found[0].impact == "error_seen"


@pytest.mark.parametrize(
    ("gaps", "timed_out"), [((1.0, 2.0, 4.0), True), ((0.006, 0.005, 0.005), False)]
)
def test_syns_repeated_faster_than_any_retry_schedule_are_no_connect_timeout(
    gaps: tuple[float, ...], timed_out: bool
) -> None:
    """Real traffic (dnscap's test captures): a SYN repeated every few milliseconds, faster
    than any stack retries one (a first SYN RTO of 1 s or more, an RTO floor of 200 ms), is
    copies (several capture points, a replay, a generator), not a connect() backing off: no
    ETIMEDOUT. A kernel's schedule is a connect timeout, its gaps taken from the SYNs' times."""
    cap = Capture()
    conv = Conversation(cap)
    conv.send("c", SYN, options=LINUX_SYN, advance=False)
    for gap in gaps:
        conv.send("c", SYN, options=LINUX_SYN, advance=False, dt=gap)
    found = findings(cap)
    if not timed_out:
        assert found == []
        return
    (finding,) = found
    assert finding.rule == "connect-timeout" and finding.client_sees.errno == "ETIMEDOUT"
    assert finding.facts["backoff_growing"] is True
    assert finding.facts["mean_retry_gap_seconds"] == pytest.approx(7.0 / 3, abs=1e-3)


def test_data_acknowledging_a_syn_ack_the_capture_missed_completes_the_handshake() -> None:
    """Real traffic (tcpdump's LDP capture, one direction captured): the SYN, then the client's
    data acknowledging the server's ISN+1, which only a socket that got the SYN-ACK sends. The
    connection is established, so a later ICMP error about its data is a soft error on an
    established connection, not a connect() aborted in SYN-SENT."""
    cap = Capture()
    conv = Conversation(cap, server_isn=87764)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.s.seq += 1  # (the SYN-ACK, not captured)
    data = conv.send("c", PSH | ACK, 41)
    conv.send("c", PSH | ACK, 18, ack=conv.s.seq + 59)
    conv.icmp(data, 3, 1, src="10.9.0.254")
    (conn,) = track(cap)
    assert (conn.client.state, conn.server.state) == ("ESTABLISHED", "ESTABLISHED")
    assert conn.server.isn == 87764
    (event,) = [e for e in conn.events if isinstance(e, IcmpErrorEvent)]
    assert event.affected_state == "ESTABLISHED"
    assert "icmp-error-handshake" not in [f.rule for f in findings(cap)]


@pytest.mark.parametrize("streamed_on", [False, True])
@pytest.mark.parametrize("crossed", [False, True])
@pytest.mark.parametrize("wait", [0.001, 3.0])
def test_a_late_reply_to_a_client_that_gave_up_waiting_is_still_a_broken_pipe(
    wait: float, crossed: bool, streamed_on: bool
) -> None:
    """Real traffic (nDPI's skype captures, the corpus's POP3 trace): the client's last request,
    then its FIN, then the server's one reply, answered by the client's RST. A client that sent
    its FIN at once (a QUIT) was waiting for nothing: "+OK bye" is the server's last write, no
    finding, even when the reply crossed the FIN (sent before the FIN arrived: a Windows
    client's last HTTP request in networkml's capture). One that closed seconds later had given
    up waiting for the reply (or died): broken_pipe, but the server's send() of its reply
    succeeded and its next recv() returns 0: EOF, not EPIPE (s22's survey: mariadbd under
    strace; the kernel sample late_reply_reset)."""
    cap, conv = established()
    request = conv.send("c", PSH | ACK, 6)
    conv.send("s", ACK)
    conv.send("c", FIN | ACK, dt=wait)
    # The reply acknowledges the FIN, or only the request (it crossed the FIN).
    conv.send("s", PSH | ACK, 9, ack=request.seq + 6 if crossed else None)
    conv.rst("c", with_ack=False)
    if streamed_on:  # more of its writing, queued before the RST came: not one reply
        conv.send("s", PSH | ACK, 1000, dt=0.00001)
        conv.rst("c", with_ack=False)
    found = [(f.rule, f.server_sees.errno, f.server_sees.label) for f in findings(cap)]
    if streamed_on:
        assert found == [("broken-pipe-rst-in-close-wait", "EPIPE", "")]
    else:
        assert found == ([] if wait < 0.2 else [("broken-pipe-late-reply", None, "EOF")])


@pytest.mark.parametrize(("gap", "late"), [(0.00015, True), (0.5, False)])
def test_a_late_reply_in_two_segments_sent_together_is_one_reply(gap: float, late: bool) -> None:
    """Real traffic (nDPI's alexa-app capture): the client's request, its FIN 0.35 s later, then
    the server's reply in two TLS records 146 us apart (37 and 517 bytes), both answered by the
    client's closed socket with RSTs. One write, split: a late reply, whose sender reads EOF
    next, not a writer whose next send() fails. Two writes half a second apart are a server
    that went on writing: a broken pipe (EPIPE)."""
    cap, conv = established()
    conv.send("c", PSH | ACK, 200)
    conv.send("s", ACK)
    conv.send("c", FIN | ACK, dt=0.35)
    conv.send("s", ACK)
    conv.send("s", PSH | ACK, 37, dt=0.1)
    conv.send("s", PSH | ACK, 517, dt=gap)
    conv.rst("c", with_ack=False)
    found = [(f.rule, f.server_sees.errno, f.server_sees.label) for f in findings(cap)]
    if late:
        assert found == [("broken-pipe-late-reply", None, "EOF")]
    else:
        assert found == [("broken-pipe-rst-in-close-wait", "EPIPE", "")]


@pytest.mark.parametrize("who", ["c", "s"])
def test_a_resets_evidence_calls_a_response_the_end_of_a_response_not_unanswered(who: str) -> None:
    """The last data before a RST, acknowledged by the RST's sender: a server's response to the
    client's request asked for no answer ("the end of server's response"; auditors read "never
    answered" as unread data), while a client's request the server took and reset on was never
    answered (the unread-data cause's evidence)."""
    cap, conv = established()  # the client's 100-byte request, the server's 300-byte response
    if who == "s":
        conv.data("c", 64)  # a second request, acknowledged, never answered
    conv.rst(who, dt=10.0)
    (finding,) = findings(cap)
    texts = [e.what for e in finding.evidence]
    if who == "c":
        assert (
            "300 bytes of data from server, acknowledged by client: the end of server's response"
            in texts
        )
    else:
        assert "64 bytes of data from client, acknowledged, never answered by server" in texts


def test_data_acknowledging_the_syn_ack_and_a_greeting_completes_the_handshake() -> None:
    """The server speaks first (a telnet, FTP or SMTP banner) and the capture lacks the
    client's pure ACK of the SYN-ACK: the client's first segment acknowledges the SYN-ACK and
    the banner at once, which only an established socket sends (RFC 9293: SND.UNA < SEG.ACK
    <= SND.NXT completes SYN-RECEIVED). The server's later RST then resets an established
    connection, not a SYN-SENT one ("bad ACK", nobody told)."""
    cap = Capture()
    conv = Conversation(cap, server=("10.0.0.2", 23))
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("s", SYN | ACK, options=LINUX_SYN)
    conv.send("s", PSH | ACK, 22)  # the banner, the client's ACK of the SYN-ACK not captured
    conv.data("c", 1)
    conv.data("s", 12)
    conv.rst("s", dt=2.0)
    (conn,) = track(cap)
    assert conn.client.handshake_time is not None
    (finding,) = findings(cap)
    assert finding.category == "peer_reset" and finding.client_sees.errno == "ECONNRESET"


def test_a_syn_ack_captured_after_the_ack_that_answers_it_moves_nothing_back() -> None:
    """A capture that orders the client's ACK before the SYN-ACK it answers (two capture
    queues): the ACK completes the handshake; the late SYN-ACK only tells its options, and the
    connection stays established, so the client's later RST resets the server's socket."""
    cap = Capture()
    conv = Conversation(cap, server_isn=5_000)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("c", ACK, ack=5_001)
    conv.send("s", SYN | ACK, options=LINUX_SYN, seq=5_000, dt=0.0)
    conv.data("s", 300)  # (a server that speaks first: nothing acknowledges ISN+1 again)
    conv.data("c", 100)
    conv.rst("c")
    (conn,) = track(cap)
    assert conn.server.syn is not None and conn.server.syn_options == LINUX_SYN
    (event,) = [e for e in conn.events if isinstance(e, RstEvent)]
    assert (event.rst_verdict, event.receiver_state) == ("accepted", "ESTABLISHED")
    assert [(f.category, f.server_sees.errno) for f in findings(cap)] == [
        ("peer_reset", "ECONNRESET")
    ]


@pytest.mark.parametrize("late_isn", [True, False])
def test_a_syn_captured_after_the_syn_ack_that_answers_it_is_the_same_connection(
    late_isn: bool,
) -> None:
    """Two capture queues merged can stamp the SYN-ACK before its SYN. The SYN whose sequence
    number the SYN-ACK acknowledges is the connection's own, late: one connection (with the
    SYN's options), whose server later resets it established. A SYN with another ISN answers
    to nothing there, and starts a connection of its own as before."""
    cap = Capture()
    conv = Conversation(cap, client_isn=1_000, server_isn=5_000)
    conv.send("s", SYN | ACK, options=LINUX_SYN, ack=1_001, advance=False)
    conv.send("c", SYN, options=LINUX_SYN, seq=1_000 if late_isn else 90_000)
    conv.c.seq, conv.s.seq = (1_001 if late_isn else 90_001), 5_001
    conv.send("c", ACK)
    conv.data("c", 100)
    conv.rst("s")
    conns = track(cap)
    if not late_isn:
        assert len(conns) == 2
        return
    (conn,) = conns
    assert conn.client.syn is not None and conn.client.syn_options == LINUX_SYN
    assert conn.server.syn is not None and conn.client.isn == 1_000
    (event,) = rst_events(cap)
    assert (event.rst_verdict, event.receiver_state) == ("accepted", "ESTABLISHED")
    assert [(f.category, f.client_sees.errno) for f in findings(cap)] == [
        ("peer_reset", "ECONNRESET")
    ]


@pytest.mark.parametrize("syn_seen", [True, False])
def test_a_syn_ack_reset_without_its_syn_in_the_capture_says_nothing_of_the_syn(
    syn_seen: bool,
) -> None:
    """A SYN-ACK its receiver resets: a scanner's half-open probe when the capture holds the
    SYN (its options tell a raw socket), and without it no word on a SYN nobody saw, but
    backscatter of a SYN flood that forged the address, a SYN-ACK scan, or a late capture."""
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 5555), server=("198.51.100.7", 80))
    if syn_seen:
        conv.send("c", SYN, options=SynOptions(mss=1460), window=1024)
    conv.send("s", SYN | ACK, options=LINUX_SYN, ack=conv.c.seq + 1)
    conv.send("c", RST, seq=conv.c.seq + 1, dt=0.0002)
    (finding,) = findings(cap)
    assert finding.rule == "half-open-rst-to-synack"
    assert finding.facts["client_syn_seen"] is syn_seen
    assert finding.cause is not None
    causes = [finding.cause.id, *(c.id for c in finding.alternatives)]
    if syn_seen:
        assert finding.cause.id == "raw-socket-scanner" and "unsolicited-synack" not in causes
    else:
        assert finding.cause.id == "unsolicited-synack"
        assert not {"raw-socket-scanner", "client-gave-up"} & set(causes)
        assert "SYN that forged 10.0.0.1:5555's address" in finding.cause.text


def _unaccepted(*, repeat_after: float, taken_later: bool, reset: bool) -> Capture:
    """A handshake whose ACK the server's kernel may not take: the client's ACK and request,
    then the server's SYN-ACK again `repeat_after` seconds after that ACK, the client's
    retransmissions of its request (acknowledged at last if `taken_later`: the ACK was only
    lost on the way), and, if `reset`, the listener's bare RST answering one of them."""
    cap = Capture()
    conv = Conversation(cap, client_isn=1_000, server_isn=5_000)
    conv.send("c", SYN, options=LINUX_SYN)
    synack = conv.send("s", SYN | ACK, options=LINUX_SYN, ack=1_001)
    conv.send("c", ACK)
    request = conv.send("c", PSH | ACK, 40)
    conv.send("s", SYN | ACK, options=LINUX_SYN, seq=synack.seq, ack=1_001, dt=repeat_after)
    conv.send("c", ACK, seq=request.seq, dt=0.0001)  # (its duplicate ACK of the SYN-ACK)
    for gap in (0.3, 0.6, 1.2):
        conv.send("c", PSH | ACK, 40, seq=request.seq, dt=gap)
    if taken_later:
        conv.send("s", ACK, ack=request.seq + 40)
    if reset:
        conv.send("s", RST, seq=5_001, dt=0.0001)
    return cap


@pytest.mark.parametrize("reset", [True, False])
def test_a_server_that_never_took_the_handshake_is_an_accept_queue_overflow(reset: bool) -> None:
    """The server repeats its SYN-ACK long after the client's ACK and acknowledges none of its
    request (a Linux listener with a full accept queue drops both, sample accept_queue_overflow):
    its later RST says it never had the connection (rule peer-reset-handshake-not-taken), and
    without a RST yet the stall's leading cause is the full accept queue."""
    (finding,) = findings(_unaccepted(repeat_after=2.0, taken_later=False, reset=reset))
    assert finding.cause is not None and finding.cause.id == "accept-queue-full"
    if reset:
        assert finding.rule == "peer-reset-handshake-not-taken"
        assert finding.facts["sender_never_took_handshake"] is True
        assert (finding.client_sees.errno, finding.server_sees.errno) == ("ECONNRESET", None)
        assert "SYN-ACK from server again" in " ".join(e.what for e in finding.evidence)
    else:
        assert finding.rule == "retransmission-timeout"
        assert finding.facts["peer_never_took_handshake"] is True


@pytest.mark.parametrize(
    ("repeat_after", "taken_later"),
    [(0.2, False), (2.0, True)],  # a SYN-ACK that crossed the ACK; an ACK lost on the way
)
def test_a_syn_ack_crossing_the_ack_or_a_lost_ack_is_no_accept_queue_overflow(
    repeat_after: float, taken_later: bool
) -> None:
    for conn in track(_unaccepted(repeat_after=repeat_after, taken_later=taken_later, reset=True)):
        for event in conn.events:
            assert not event.facts().get("sender_never_took_handshake")
            assert not event.facts().get("peer_never_took_handshake")
    rules = [
        f.rule
        for f in findings(
            _unaccepted(repeat_after=repeat_after, taken_later=taken_later, reset=True)
        )
    ]
    assert "peer-reset-handshake-not-taken" not in rules and rules


def _stalled_download(*, segment: int, earlier_large: bool, handshake: bool) -> Capture:
    """A request, then the server's response in `segment`-byte segments that nothing
    acknowledges, the first retransmitted with backoff; before it, if `earlier_large`, a
    response in segments of the same size that the client acknowledged. Without `handshake`
    the capture starts mid-stream."""
    cap = Capture()
    conv = Conversation(cap)
    if handshake:
        conv.handshake()
    else:
        conv.send("c", ACK)
        conv.send("s", ACK)
    conv.data("c", 80)
    if earlier_large:
        for _ in range(3):
            conv.send("s", PSH | ACK, segment)
        conv.send("c", ACK)
        conv.data("c", 80)
    first = conv.send("s", PSH | ACK, segment)
    conv.send("s", PSH | ACK, segment)
    for gap in (0.2, 0.4, 0.8, 1.6):
        conv.send("s", PSH | ACK, segment, seq=first.seq, advance=False, dt=gap)
    return cap


@pytest.mark.parametrize(
    ("segment", "earlier_large", "handshake", "black_hole"),
    [
        (1448, False, True, True),  # the first large segments never got through
        (8948, False, True, True),  # (jumbo frames, a standard MTU on the way)
        (1448, True, True, False),  # large segments got through before: the path carries them
        (600, False, True, False),  # small segments: nothing says the size matters
        (1448, False, False, False),  # mid-stream, nothing of the server's ever acknowledged
    ],
)
def test_a_stall_of_the_first_large_segments_is_a_path_mtu_black_hole(
    segment: int, earlier_large: bool, handshake: bool, black_hole: bool
) -> None:
    """A sender whose first large segments are never acknowledged, while its smaller packets
    reach the peer (sample pmtu_black_hole): a link with a smaller MTU drops them and the ICMP
    that would say so is filtered. Its stall's leading cause says so."""
    cap = _stalled_download(segment=segment, earlier_large=earlier_large, handshake=handshake)
    (finding,) = findings(cap)
    assert finding.category == "retransmission_timeout"
    assert finding.facts["large_never_acked"] is black_hole
    assert finding.facts["stall_segment_bytes"] == segment
    assert finding.cause is not None
    assert (finding.cause.id == "path-mtu-black-hole") is black_hole
    if black_hole:
        assert f"({segment} bytes of" in finding.cause.text


@pytest.mark.parametrize(
    ("idle", "keepalive_every", "expired"),
    [
        (600.0, None, True),  # ten quiet minutes, then the request: dropped by the path
        (20.0, None, False),  # a pause no middlebox forgets a connection in
        (600.0, 45.0, False),  # keepalives all along: the connection was never idle that long
    ],
)
def test_data_after_a_long_silence_that_is_never_acknowledged_is_an_expired_state(
    idle: float, keepalive_every: float | None, expired: bool
) -> None:
    """A request sent after the connection had been quiet for minutes, then retransmitted and
    never acknowledged (sample idle_state_expired): a firewall, NAT or load balancer on the path
    forgot the connection; its stall's leading cause says so, and not after a short pause or on
    a connection whose keepalives were answered."""
    cap, conv = established()
    quiet = idle
    if keepalive_every is not None:
        while quiet > keepalive_every:
            conv.send("c", ACK, seq=conv.c.seq - 1, dt=keepalive_every)
            conv.send("s", ACK, dt=0.001)
            quiet -= keepalive_every
    request = conv.send("c", PSH | ACK, 120, dt=quiet)
    for gap in (0.2, 0.4, 0.8, 1.6):
        conv.send("c", PSH | ACK, 120, seq=request.seq, advance=False, dt=gap)
    (finding,) = findings(cap)
    assert finding.category == "retransmission_timeout"
    assert finding.cause is not None
    assert (finding.cause.id == "idle-state-expired") is expired
    assert finding.facts["idle_before_stall_seconds"] == pytest.approx(
        idle if keepalive_every is None else quiet, abs=0.01
    )


@pytest.mark.parametrize(("idle", "tls"), [(1.5, False), (1.5, True), (0.2, False)])
def test_a_new_request_crossing_the_servers_close_of_an_idle_connection_is_a_keepalive_race(
    idle: float, tls: bool
) -> None:
    """The HTTP keep-alive race: after an answered exchange the connection idles, the server
    closes it (its keep-alive timeout) and the client, not yet knowing, sends a new request:
    it crossed the FIN (it does not acknowledge it), and the closed socket answers it with a
    RST. The client's send() succeeded and its recv() returns 0: it sees the server close
    without a response (impact error_seen, no errno). A FIN right after the reply is no idle
    close: the writer gets EPIPE on its next send(), as any broken pipe. (A TLS server writes
    its close_notify just before its FIN: the idle time is the client's, since its request.)"""
    cap, conv = established()  # (request 1 and its response)
    seen = conv.s.seq  # (what the client has of the server's when it sends request 2)
    if tls:
        conv.send("s", PSH | ACK, 31, dt=idle)  # close_notify
    conv.send("s", FIN | ACK, dt=0.0001 if tls else idle)
    conv.send("c", PSH | ACK, 120, ack=seen, dt=0.01)  # request 2, sent before the FIN came
    conv.rst("s", with_ack=False)
    (finding,) = findings(cap)
    if idle < 1.0:
        assert (finding.rule, finding.client_sees.errno) == (
            "broken-pipe-rst-in-close-wait",
            "EPIPE",
        )
        return
    assert finding.rule == "broken-pipe-keepalive-race"
    assert (finding.client_sees.errno, finding.server_sees.errno) == (None, None)
    assert finding.impact == "error_seen"
    assert finding.cause is not None and finding.cause.id == "keepalive-timeout-race"
    assert finding.facts["receiver_idle_before_fin_seconds"] == pytest.approx(idle, abs=0.01)


# -- the server's FIN with the client's request outstanding (no RST) ----------------------------


def _premature(
    *,
    earlier_exchanges: int = 0,
    request: int = 80,
    wait: float = 0.3,
    client_fin_after: float | None = 0.0002,
    client_first: bool = False,
    streamed: int = 0,
    stream_gap: float = 0.001,
    mptcp: bool = False,
) -> Capture:
    """A request the server acknowledges and answers with its FIN after `wait` seconds (none
    of it if the client closes first), the client's FIN `client_fin_after` seconds after that
    (None: none in the capture); before the request, `streamed` segments of 1,400 bytes that
    the server never answers, `stream_gap` seconds apart; on a Multipath TCP subflow with
    `mptcp`."""
    cap = Capture()
    conv = Conversation(cap)
    options = replace(LINUX_SYN, mptcp=1) if mptcp else LINUX_SYN  # (MP_CAPABLE)
    conv.send("c", SYN, options=options)
    conv.send("s", SYN | ACK, options=options)
    conv.send("c", ACK)
    for _ in range(earlier_exchanges):
        conv.data("c", 60)
        conv.data("s", 400)
    for _ in range(streamed):
        conv.send("c", PSH | ACK, 1400, dt=stream_gap)
        conv.send("s", ACK)
    conv.data("c", request)
    if client_first:
        conv.send("c", FIN | ACK, dt=0.0001)
    conv.send("s", FIN | ACK, dt=wait)
    if not client_first and client_fin_after is not None:
        conv.send("c", FIN | ACK, dt=client_fin_after)
    conv.send("s" if not client_first else "c", ACK)
    return cap


@pytest.mark.parametrize(
    ("shape", "rule"),
    [
        ({}, "premature-close-request-unanswered"),  # nginx `return 444`, a worker that failed
        ({"wait": 4.0}, "premature-close-request-unanswered"),  # killed while working on it
        # A goodbye (PostgreSQL's Terminate, 5 bytes) after a session, closed on at once.
        ({"earlier_exchanges": 2, "request": 5, "wait": 0.002}, None),
        # The same 5 bytes waited on for seconds: a request the server died on, no goodbye.
        ({"request": 5, "wait": 3.0}, "premature-close-request-unanswered"),
        # A server that had talked may be the side that asks (OpenFlow's controller closing
        # after its switch's replies) or sign off longer than any known goodbye (a device's
        # 62 bytes): not claimed, though a backend killed mid-query looks the same.
        ({"earlier_exchanges": 2, "wait": 4.0}, None),
        ({"earlier_exchanges": 2, "request": 62, "wait": 0.06}, None),
        ({"client_fin_after": None}, None),  # the client was not reading: it never closed
        ({"client_fin_after": 20.0}, None),  # ... or closed long after, for its own reasons
        ({"client_first": True}, None),  # the client closed first: an ordinary close
        # The end of a one-way stream to a server that never said a word (iperf3's data
        # connections) is no request left unanswered; a few segments of one may be.
        ({"streamed": 50, "wait": 0.002}, None),
        ({"streamed": 5, "wait": 0.002}, "premature-close-request-unanswered"),
        # ... nor a log shipper's messages, written one by one over a second, closed on by
        # the sink's idle timeout (its sender watches the socket and closes on the EOF).
        ({"streamed": 19, "stream_gap": 0.05, "wait": 2.0}, None),
        # memcached's `quit` (6 bytes) closed on at once, the session's only command.
        ({"request": 6, "wait": 0.0001}, None),
        # A Multipath TCP subflow's data may be answered on another subflow.
        ({"mptcp": True}, None),
    ],
)
def test_a_servers_fin_with_the_request_unanswered_is_a_premature_close(
    shape: dict[str, Any], rule: str | None
) -> None:
    """Real traffic (s22's surveys: nginx `return 444`, a server or PostgreSQL backend killed
    mid-request, redis CLIENT KILL, Node's `socket.destroy()`): the server acknowledged the
    request and closed with a plain FIN; the client, blocked for the answer, read EOF and
    closed at once. No RST, no errno: "Empty reply from server", "server closed the connection
    unexpectedly". A client that closes first, one not reading (no prompt FIN), a short
    goodbye that the server closes on at once (psql's Terminate), and a request to a server
    that had talked before (public captures: OpenFlow, a Nest device's sign-off) are none."""
    found = findings(_premature(**shape))
    assert [f.rule for f in found] == ([rule] if rule else [])
    if rule:
        (finding,) = found
        assert finding.category == "premature_close" and finding.impact == "error_seen"
        assert finding.client_sees.errno is None and finding.client_sees.label == "EOF"
        assert finding.server_sees.errno is None and not finding.server_sees.label
        frames = [e.what for e in finding.evidence]
        assert frames[0].endswith("never answered by server") and frames[1] == "FIN from server"


def _written_after_the_servers_fin(write_after: float, size: int) -> tuple[Capture, Conversation]:
    """An exchange; 1.5 s later the server's FIN, which the client takes; `write_after` seconds
    later, `size` bytes from the client."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 100)
    conv.data("s", 300)
    conv.send("s", FIN | ACK, dt=1.5)
    conv.send("c", ACK)
    conv.send("c", PSH | ACK, size, dt=write_after)
    return cap, conv


@pytest.mark.parametrize(
    ("write_after", "rule"),
    [
        (2.0, "premature-close-stale-connection"),  # Apache, lighttpd: a pool reused it
        (0.001, None),  # a closing message (a TLS close_notify) answering the FIN at once
    ],
)
def test_a_request_on_a_half_closed_connection_is_a_stale_connection_without_a_reset(
    write_after: float, rule: str | None
) -> None:
    """Real traffic (s22's second survey: Python's http.client against Apache's and lighttpd's
    keep-alive timeouts): the server half-closes an idle kept-alive connection and reads on
    (a lingering close), so the client's new request long after the FIN draws no RST. The
    client reads EOF and closes: `RemoteDisconnected`, no errno."""
    cap, conv = _written_after_the_servers_fin(write_after, 80 if rule else 24)
    conv.send("c", FIN | ACK, dt=0.0001)
    conv.send("s", ACK)
    found = findings(cap)
    assert [f.rule for f in found] == ([rule] if rule else [])
    if rule:
        assert found[0].client_sees.label == "EOF" and found[0].impact == "error_seen"
        assert found[0].facts["peer_write_after_fin_seconds"] == pytest.approx(2.0, abs=0.01)


def test_a_stale_request_that_a_reset_answers_is_told_once() -> None:
    """The server closed fully, so its kernel reset the stale request: the RST's rule tells it
    (broken-pipe-stale-connection); the FIN's does not tell it again."""
    cap, conv = _written_after_the_servers_fin(2.0, 80)
    conv.rst("s", with_ack=False)
    conv.send("c", FIN | ACK, dt=0.0001)
    assert [f.rule for f in findings(cap)] == ["broken-pipe-stale-connection"]


def test_a_servers_fin_after_data_the_capture_missed_is_no_premature_close() -> None:
    """The server's FIN comes after a gap in its sequence numbers: it sent data the capture
    missed (a lossy tap), which may be the answer. No finding."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 80)
    conv.s.seq += 1200  # (the response, not captured)
    conv.send("s", FIN | ACK, dt=0.3)
    conv.send("c", FIN | ACK, dt=0.0002)
    conv.send("s", ACK)
    assert findings(cap) == []


def test_a_client_fin_crossing_the_servers_is_no_end_of_file_read() -> None:
    """The client's FIN does not acknowledge the server's: the two crossed, so the client
    closed on its own account (it gave up, or ended the session), before any end of file
    reached it. No premature close, however soon after the server's FIN it was captured."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 80)
    conv.send("s", FIN | ACK, dt=0.3)
    conv.send("c", FIN | ACK, ack=conv.s.seq - 1, dt=0.0002)  # (the server's FIN not taken)
    conv.send("s", ACK)
    conv.send("c", ACK)
    assert findings(cap) == []


@pytest.mark.parametrize(
    ("client_fin_takes_server_fin", "rule"),
    [
        (True, "premature-close-keepalive-race"),  # it read the end of file, then closed
        (False, None),  # it closed the idle connection itself (a close_notify, then its FIN)
    ],
)
def test_a_request_crossing_a_half_close_of_an_idle_connection_is_a_keepalive_race(
    client_fin_takes_server_fin: bool, rule: str | None
) -> None:
    """The keep-alive race against a server that half-closes (Apache, lighttpd: no RST ever):
    after 1.5 s idle the server's FIN and the client's new request cross (the request does
    not acknowledge the FIN); the client reads EOF and closes, its FIN acknowledging the
    server's. A client whose FIN crossed the server's too was closing the connection itself:
    nothing was lost."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 100)
    conv.data("s", 300)
    fin = conv.send("s", FIN | ACK, dt=1.5)
    conv.send("c", PSH | ACK, 80, ack=fin.seq, dt=0.01)  # (sent before the FIN arrived)
    conv.send("c", FIN | ACK, ack=None if client_fin_takes_server_fin else fin.seq, dt=0.05)
    conv.send("s", ACK)
    found = findings(cap)
    assert [f.rule for f in found] == ([rule] if rule else [])
    if rule:
        assert found[0].client_sees.label == "EOF" and found[0].impact == "error_seen"


def test_a_servers_fin_in_a_capture_that_missed_the_handshake_is_no_premature_close() -> None:
    """A capture that starts mid-connection may have missed all the server said (a Nest
    device's session, captured 25 minutes in): no claim that it had said nothing."""
    cap = _premature()
    cap.packets[:] = cap.packets[3:]  # (from the request on)
    assert findings(cap) == []


@pytest.mark.parametrize(
    ("probe_style", "probes", "reopened", "stopped_reading"),
    [
        ("linux", 4, False, True),  # 0 bytes at SND.NXT-1, each answered with window 0
        ("windows", 4, False, True),  # the next byte, sent again and again (BSDs alike)
        ("linux", 1, False, False),  # one segment into the closed window: it may have crossed
        ("linux", 4, True, False),  # the window opened again before the RST: reading resumed
        (None, 0, False, False),  # nothing sent into it: the sender had nothing left to write
    ],
)
def test_a_reset_after_probing_a_closed_window_says_the_peer_stopped_reading(
    probe_style: str | None, probes: int, reopened: bool, stopped_reading: bool
) -> None:
    """A server streaming to a client whose window closed (its application stopped reading)
    probes the closed window and, after seconds, resets (sample send_timeout_reset: its own
    send timeout, as nginx's send_timeout with reset_timedout_connection): the client's program
    had stopped reading, not dropped an idle connection."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 100)
    for _ in range(4):
        conv.send("s", PSH | ACK, 1000)
    conv.send("c", ACK, window=0)
    gap = 0.3
    for k in range(probes):
        if probe_style == "windows":  # the same byte beyond the window each time
            first = k == 0
            conv.send("s", PSH | ACK, 1, seq=None if first else conv.s.seq - 1, dt=gap)
        else:
            conv.send("s", ACK, seq=conv.s.seq - 1, dt=gap)
        conv.send("c", ACK, window=0)
        gap *= 2
    if reopened:
        conv.send("c", ACK, window=65535, dt=0.5)
    conv.rst("s", dt=5.0)
    (finding,) = findings(cap)
    assert finding.category == "peer_reset"
    assert finding.cause is not None
    assert (finding.cause.id == "peer-stopped-reading") is stopped_reading
    # Five seconds since the last exchange: an idle connection dropped, unless it was probed.
    others = {cause.id for cause in finding.alternatives}
    assert ("idle-connection-dropped" in {finding.cause.id} | others) is not stopped_reading
    closed = finding.facts["receiver_window_closed_seconds"]
    assert (closed > 1.0) is stopped_reading and (closed == 0) is not stopped_reading
    closing = [e.what for e in finding.evidence if "window closed" in e.what]
    assert closing == (
        [f"client's window closed (0): it is not reading; server probed it {probes} times"]
        if stopped_reading
        else []
    )


@pytest.mark.parametrize(
    ("peer_after", "cause"),
    [
        # Its last segment came after the data first went out, before any retransmission:
        # an acknowledgement of earlier data in flight, then nothing: gone, or its path.
        ("before the retries", "peer-or-path-black-holed"),
        # It kept sending while the data was retransmitted: the data is lost one way.
        ("during the retries", "one-way-loss"),
    ],
)
def test_a_peer_is_silent_from_the_first_retransmission_on(peer_after: str, cause: str) -> None:
    """Real traffic (nDPI's skype captures: a server's last segment 60 ms after the client's
    request, then the request's retransmissions unanswered): whether the peer fell silent is judged
    from the stalled side's first retransmission, not from the data's first transmission,
    which the peer's segments already in flight may follow."""
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 100)
    request = conv.c.seq
    conv.send("c", PSH | ACK, 137)
    conv.send("s", PSH | ACK, 3, ack=request, dt=0.06)  # (sent before the request reached it)
    gap = 0.4
    for _ in range(5):
        conv.send("c", PSH | ACK, 137, seq=request, advance=False, dt=gap)
        if peer_after == "during the retries":
            conv.send("s", ACK, ack=request)  # (a duplicate ACK: its segments still arrive)
        gap *= 2
    (finding,) = findings(cap)
    assert finding.rule == "retransmission-timeout"
    assert finding.cause is not None and finding.cause.id == cause


def test_a_windows_sender_resetting_after_its_retries_to_a_peer_silent_since_is_a_stall() -> None:
    """The same peer, silent from the first retransmission on (its segment in flight came
    after the request first went out), and a Windows client whose stack gives up after five
    retransmissions with a RST, when the next one was due: its connection timed out
    (ETIMEDOUT), no application reset it (a peer_reset telling the server ECONNRESET before)."""
    cap = Capture()
    conv = Conversation(cap)
    conv.c.ttl = 128
    conv.handshake()
    conv.data("c", 100)
    request = conv.c.seq
    conv.send("c", PSH | ACK, 137)
    conv.send("s", PSH | ACK, 3, ack=request, dt=0.06)
    gap = 0.4
    for _ in range(5):
        conv.send("c", PSH | ACK, 137, seq=request, advance=False, dt=gap)
        gap *= 2
    conv.rst("c", dt=gap)
    (finding,) = findings(cap)
    assert finding.rule == "retransmission-timeout-stack-reset"
    assert (finding.client_sees.errno, finding.server_sees.errno) == ("ETIMEDOUT", None)
