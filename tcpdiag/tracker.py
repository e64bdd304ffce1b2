"""Per-connection TCP state rebuilt from both directions, and the events rules look at.

The tracker is the only stage that sees packets in order. It keeps, for each side of each
connection, what an observer on the wire can infer of that side's RFC 9293 state and sequence
space, and turns what matters into events (`tcpdiag.events`). It judges nothing: whether a RST
*counts* is a fact (`rst_verdict`) the tracker computes with the receiver's checks, but what the
RST *means* is for the rules.

Connections are retired (handed on as `TrackedConnection` with their events) once they have been
closed for a grace period, or idle for very long, so memory follows the number of live
connections, not the size of the capture. The grace period lets late evidence arrive: a
challenge ACK after an ignored RST, the sibling RSTs of a host that killed many sockets at once.
"""

from __future__ import annotations

import copyreg
import functools
import pickle
import struct
import tempfile
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from operator import attrgetter
from typing import IO, Any, Final, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from tcpdiag.attempts import EvictedSyns, HeldSyn, HeldSyns, SynColumns, endpoints_hash
from tcpdiag.clock import CaptureClock
from tcpdiag.columns import ipv4_number
from tcpdiag.communityid import community_id
from tcpdiag.events import (
    CloseEvent,
    ConnectionRef,
    Evidence,
    FlowEvent,
    IcmpErrorEvent,
    Role,
    RstEvent,
    SilenceEvent,
)
from tcpdiag.packets import (
    ACK,
    FIN,
    MPTCP_FASTCLOSE,
    MPTCP_JOIN,
    RST,
    SYN,
    URG,
    IcmpError,
    Packet,
    QuotedTcp,
    SegmentFields,
    SynOptions,
    TcpSegment,
)
from tcpdiag.seqnum import seq_add, seq_between, seq_diff, seq_le, seq_lt
from tcpdiag.zeek import (
    ATTEMPT_DELAY_SECONDS,
    INACTIVITY_SECONDS,
    ZeekConnection,
    ZeekEndpoint,
    ZeekRecord,
    ZeekTimeline,
)

# How long (capture time) a closed connection stays in the table to collect late evidence.
CLOSE_GRACE_SECONDS = 5.0
# An idle connection is retired after this long; above Linux's default keepalive idle time
# (7200 s) plus its probes (9 x 75 s), so a keepalive timeout is still seen whole.
IDLE_RETIRE_SECONDS = 3 * 3600.0
# RSTs from one host to several of its connections this close together suggest something on that
# host killed the sockets from outside the application (ss -K, a host firewall): such a tool
# kills each socket within microseconds of the last (3 in 0.7 ms in the sample). Kept short so a
# busy server's ordinary linger-0 closes rarely fall into one window.
RST_BURST_WINDOW_SECONDS = 0.01
# Segments sent into a closed window before it counts as probed (RstEvent
# .receiver_window_closed_seconds): one could have crossed the window's closing.
CLOSED_WINDOW_PROBES = 2
# A burst stands out from the RSTs within this many windows around it (see RstLog.burst).
BURST_SPAN = 10
# A RST this soon after an application exchange ended (the reply to the sender's last request
# arrived, or the handshake completed) is the application closing: a connect probe, a logoff
# followed by an abortive close. A tool killing sockets from outside strikes at a random moment.
APP_CLOSE_SECONDS = 0.05
# A RST on a connection left idle this long after its last exchange ended is its owner dropping
# a kept-alive connection (a browser closing its pool, a server's keep-alive timeout: Apache's
# default is 5 s), several at once when they went idle together: the application closing too.
IDLE_TEARDOWN_SECONDS = 4.0
# The longest a live stack delays its ACK of data it took (RFC 1122 4.2.3.2: "MUST be less than
# 0.5 seconds"; Linux 40-200 ms, Windows 200 ms).
DELAYED_ACK_MAX_SECONDS = 0.5
# A RST that ends its sender's retransmission stall is its stack's when it comes as the next
# retransmission would have: after the last one, between these multiples of the gap before it
# (the timeout stays the same when capped, doubles otherwise, with some jitter).
RESET_SCHEDULE_MIN = 0.9
RESET_SCHEDULE_MAX = 2.5
# A side whose retransmissions stopped while the capture went on longer than this many times its
# last gap after the last one was done retrying (SilenceEvent.retries_stopped): its next
# retransmission was due within about twice that gap (the timeout doubles, with some jitter).
RETRY_DUE_FACTOR = 3.0
# A FIN this soon after its sender's last write (or its handshake) is a program closing when it
# had said all it had to say, not one that waited for an answer and gave up (_closing_write).
CLOSE_AFTER_WRITE_SECONDS = 0.2
# A late reply may leave in several segments (TLS records, the MSS), all within this of the first
# and no more than its sender's kernel takes in one send(): one write, none left blocked when the
# RST came (_late_reply).
REPLY_BURST_SECONDS = 0.005
REPLY_BURST_BYTES = 65536
# A goodbye is short: a TLS close_notify is a 24- to 31-byte record, an SSH disconnect about 60,
# "+OK bye" 9 (a closing write, _closing_write; a stream's next segment is longer).
CLOSING_MESSAGE_BYTES = 100
# The largest goodbye a client sends and then waits for the server to close on (see
# CloseEvent.request_may_be_goodbye): a TLS close_notify is 24 bytes (TLS 1.3), 31 (TLS 1.2 with
# AES-GCM) or up to 53 (CBC with padding); PostgreSQL's Terminate and MySQL's COM_QUIT are 5.
GOODBYE_BYTES = 53
# More data than this (the largest window without scaling) to a side that sent nothing is a
# one-way stream, not a request (CloseEvent.peer_one_way_stream).
ONE_WAY_STREAM_BYTES = 65535
# ... and so is unanswered data in this many segments or more, spread over longer than a reply
# could take (CloseEvent.peer_one_way_stream): a stream of messages, not one request's burst.
STREAM_WRITES = 3
# Verdicts of a RST the receiver dropped while its connection lived on (a later one may end it).
_DROPPED_VERDICTS = frozenset(("challenge", "out_of_window", "bad_ack"))
# Unanswered data that arrived this long before a RST was read by then: an application that is
# reading takes it at once, so it is no sign of a close with unread data.
UNREAD_DATA_SECONDS = 3.0
# A RST that comes this soon after the receiver's segment, with nothing of the sender's in
# between, may answer it: what a kernel that no longer knows the connection sends.
RST_ANSWER_SECONDS = 3.0
# Data segments of each side remembered (sequence number -> frame), to cite the segment an ICMP
# error quotes: at least this many, at most twice as many.
RECENT_SEGMENTS = 16
# A stall needs this many retransmissions of the same data before it is worth an event.
MIN_STALL_RETRANSMISSIONS = 2
# Zero-window probes left unanswered before the prober's stall is worth an event, the last of
# them at least WINDOW_PROBE_ANSWER_SECONDS after the reader's last segment: a live Linux reader
# answers at most one Linux probe (an out-of-window segment) in tcp_invalid_ratelimit (500 ms),
# so probes closer together than that (the backoff's first gaps; more of them with a lowered
# tcp_rto_min) can miss an answer from a reader that is still there.
MIN_WINDOW_PROBES = 3
WINDOW_PROBE_ANSWER_SECONDS = 0.5
# A server's SYN-ACK repeated this long after the client's ACK of it was sent after that ACK
# had arrived, whichever side the capture was taken on (RFC 6298's initial RTO is 1 s; a SYN-ACK
# sent before the ACK arrived reaches the capture within a round trip of it).
SYNACK_AFTER_ACK_SECONDS = 1.0
# A data segment this big is what a link with a smaller MTU than the sender's (a tunnel, a VPN,
# PPPoE: 1,280 to 1,492 bytes) cannot carry; requests, ACKs and handshakes are smaller and pass.
LARGE_SEGMENT_BYTES = 1200
# Open connections tracked at most; beyond it the least recently active one is retired early,
# so a flood of established connections cannot exhaust memory. (Closed ones waiting out the close
# grace period do not count: MAX_CLOSED_WAITING bounds them.) Beyond AWAKE_IN_MEMORY of them in
# memory, the least recently active go to disk (ConnectionSpill), as idle ones do: a capture
# with a quarter of a million connections open at once is tracked whole, not cut short.
MAX_LIVE_CONNECTIONS = 1_000_000
AWAKE_IN_MEMORY = 8_192
# Of those, connection attempts that are so far nothing but a client's SYN waiting in the table
# (those the compact store cannot hold: IPv6, unusual options) at most; beyond it the oldest is
# retired early, as a kernel under a SYN flood drops half-open attempts first.
MAX_LIVE_ATTEMPTS = 100_000
# Connection attempts that are nothing but a client's SYN, held at most (tcpdiag.attempts: about
# 75 bytes each, outside the live connections): a flood of a million spoofed SYNs is tracked
# whole, with nothing evicted, in under 100 MB.
MAX_HELD_SYNS = 1_200_000
# An open connection idle this long (a stalled or quiet one, kept for IDLE_RETIRE_SECONDS) waits
# on disk rather than in memory, until its next packet or its retirement (see ConnectionSpill).
IDLE_SPILL_SECONDS = 60.0
# Closed connections waiting out the close grace period in memory (about 3 KB each); beyond this
# many, the newly closed ones wait asleep (below), so that a flood of short failures (a port scan
# answered with RSTs: thousands closing every second) does not hold thousands of connections.
CLOSED_IN_MEMORY = 8_192
# Closed connections waiting out the close grace period at most (they do not count toward
# max_live); beyond, those that closed first retire at once (FlowTable._cut_grace): a storm of
# more than 20,000 refusals a second. Asleep, one takes about 0.6 KB with its entries in the
# table: this many take about 80 MB with the CLOSED_IN_MEMORY awake (a scan of 600,000 ports
# answered in 6 s peaks at about 275 MiB; 500,000 waiting took 501 MiB).
MAX_CLOSED_WAITING = 100_000
# A connection of at most this many segments that goes to sleep (closed beyond CLOSED_IN_MEMORY,
# or idle) is kept as those segments, packed (a _Replayable: about 180 bytes, where the
# Connection takes 3 KB), and replayed when it is needed again; a longer one goes to disk
# (ConnectionSpill). A refused connection is two segments, a half-open probe three: a storm of
# them then costs neither a pickle nor a file.
REPLAY_SEGMENTS = 3
# Entries of the closing queue whose connection was retired early (evicted, or its 4-tuple
# reused) before the queue is rid of them: at least this many, and at least half the queue.
CLOSING_COMPACT_MIN = 4096
# Sources of ICMP errors about connections the table does not hold, counted at most (the
# warning names the busiest).
ORPHAN_ICMP_SOURCES = 4096
# Gaps in a side's sequence space remembered, to tell a reordered segment from a retransmission.
MAX_HOLES = 8
# The idle-connection spill file is rewritten once this much of it is garbage (and at least half).
SPILL_COMPACT_BYTES = 8 << 20
# Evidence kept per event: a finding cites the frames that prove it, not every frame.
MAX_EVIDENCE = 12
# Retransmissions of a stall kept (the latest): its evidence and the growth of its backoff.
STALL_KEPT = 4 * MAX_EVIDENCE
# Retirement is checked every this many packets (and whenever a connection was retired early).
RETIRE_CHECK_EVERY = 1024
# Bare SYNs evicted from the full compact store given out together at most (FlowTable._in_order).
EVICTED_AT_ONCE = 4096


# The evidence texts every connection has, one string each for all of them (a live
# connection holds two or four).
OPENING_TEXT = {
    (synack, role): f"{'SYN-ACK' if synack else 'SYN'} from {role}"
    for synack in (False, True)
    for role in ("client", "server")
}
FIN_TEXT = {role: f"FIN from {role}" for role in ("client", "server")}
REPEATED_TEXT = {key: f"{text} again (retransmission)" for key, text in OPENING_TEXT.items()}
QUOTED_SYN_TEXT = "SYN from client, not on the wire (only quoted by the ICMP error)"

# Flags that take a segment off the fast path: anything but ACK (PSH, ECE, CWR do not matter).
_FAST_FLAGS_MASK = SYN | FIN | RST | ACK | URG


class TcpState(StrEnum):
    """RFC 9293 section 3.3.2 state names, as an observer on the wire can infer them."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


_DONE = (TcpState.CLOSED, TcpState.TIME_WAIT)


SYNCHRONIZED = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
    }
)


_ESTABLISHED = TcpState.ESTABLISHED
# The states in which a side's application can still be waiting on what it sent.
_APP_WAITING = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)


def endpoint_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class WritesAfterFin(NamedTuple):
    """What a side wrote after its peer's FIN (Endpoint.after_peer_fin)."""

    segments: int  # segments of new data
    bytes: int
    took_fin: bool  # the first acknowledged the FIN: written after this side had taken it
    wrote_before: float | None  # when this side had last written before it (None: never)
    first_time: float  # when it sent the first of them
    # The peer had acknowledged everything this side sent before them: nothing was in flight
    # when the peer closed (its exchange was over, not cut short).
    all_acked_before: bool


@dataclass(slots=True)
class Endpoint:
    """One side of a connection, as seen from the wire."""

    addr: str
    port: int
    state: TcpState = TcpState.CLOSED
    isn: int | None = None
    snd_nxt: int | None = None  # one past the highest sequence number this side has sent
    snd_una: int | None = None  # highest sequence number the peer has acknowledged
    acked: int = 0  # sequence space the peer acknowledged since data_start (no wrap at 2^31)
    data_start: int | None = None  # sequence number of the first data byte (ISN+1, or first seen)
    rcv_nxt: int | None = None  # the last ACK this side sent: its announced RCV.NXT
    acks_advanced: bool = False  # its ACKs acknowledged new data of the peer's at least once
    window: int = 0  # last advertised window, raw
    window_scale: int | None = None  # from this side's SYN; applies only if both sides sent one
    syn_options: SynOptions | None = None
    syn_window: int = 0
    syn: Evidence | None = None
    syn_retries: int = 0
    # The latest of those retransmissions of its SYN (or SYN-ACK), for a stalled handshake's
    # evidence: what Wireshark flags as retransmissions.
    syn_repeats: list[Evidence] | None = None
    # A second SYN-ACK answering the same SYN with another ISN (a SYN proxy or SYN-cookie front
    # end answers each retransmitted SYN anew), before the client acknowledged either: its ISN
    # and evidence, in case the client's ACK settles on it rather than on the first.
    other_synack: tuple[int, Evidence] | None = None
    # What this side wrote after the peer's FIN; None if nothing.
    after_peer_fin: WritesAfterFin | None = None
    # An ACK of this side's that carried MP_FASTCLOSE: its MPTCP stack aborted the connection
    # (RFC 8684 3.5), and the peer's RST on this subflow answers it.
    fastclose: Evidence | None = None
    fin_seq: int | None = None
    fin: Evidence | None = None
    fin_acked: bool = False
    packets: int = 0
    payload_bytes: int = 0  # every payload byte sent, retransmissions included
    bytes_sent: int = 0  # new payload bytes
    ttl: int | None = None  # IP TTL / hop limit of this side's first ordinary (non-RST) segment
    # TTL of this side's latest data segment: the host that really speaks for this side (a SYN
    # proxy or load balancer may have made the handshake with a TTL of its own).
    data_ttl: int | None = None
    # TTL of this side's latest segment that acknowledged something new of the peer's: for a
    # side that sends no data, the host that took the peer's (see data_ttl).
    ack_ttl: int | None = None
    max_payload: int = 0  # the largest payload this side sent in one segment
    first_large_seq: int | None = None  # where its first LARGE_SEGMENT_BYTES segment started
    # Recent data segments, oldest first (bounded; see recent_segment): their sequence numbers,
    # and their (frame, time) as two floats each. Arrays made at the first data segment: a live
    # connection's few entries take about 150 bytes, where a dict of tuples takes 500.
    recent_seqs: array[int] | None = None
    recent_marks: array[float] | None = None
    # The client's SYN-ACK-answering ACK was seen (a raw scanner never sends one).
    handshake_time: float | None = None  # when the handshake completed
    last_time: float = 0.0
    # The last new data this side sent (frame, time, length): kept as numbers because it
    # changes on every data segment; `last_data` builds the evidence when a finding needs it.
    last_data_frame: int = 0
    last_data_time: float = 0.0
    last_data_len: int = 0
    role: Role = "client"  # set by the Connection that owns it
    # Payload sent since the peer last sent payload (data that got no answer, yet).
    unanswered_bytes: int = 0
    replies: int = 0  # times this side's data answered data of the peer's (acknowledging it)
    run_is_reply: bool = False  # this side's latest run of data answered the peer's data
    # Mid-stream only: the last empty segment and its (seq, ack), to recognise keepalive probes
    # whose SND.NXT the capture never showed (the same sequence number again, the peer silent
    # in between).
    last_empty: tuple[Evidence, tuple[int, int | None]] | None = None
    # The last data segment, or segment off the in-order path, as its segment_identity(), to
    # recognise the same packet captured twice (a retransmission gets a new IP ID).
    last_segment: int | None = None
    duplicates: int = 0
    keepalive_probes: int = 0
    # The lists below are None while empty, as they are in most connections most of the time:
    # three empty lists per side are a tenth of a live connection's memory.
    unanswered_probes: list[Evidence] | None = None
    retransmissions: int = 0
    reordered: int = 0  # segments that arrived after a later one and filled its gap
    # Sequence ranges skipped by a later segment, not seen yet (bounded; oldest dropped).
    holes: list[tuple[int, int]] | None = None
    # The current stall: retransmissions since the peer last acknowledged new data, the latest
    # STALL_KEPT of them as (frame, time) pairs of floats (`stall_evidence` makes them evidence
    # when a finding needs it). A stalled connection retransmits for as long as it lives: as
    # Evidence items, each with its own text, they took most of its memory.
    stall_marks: array[float] | None = None
    stall_retransmissions: int = 0
    stall_segment_len: int = 0  # the payload of the stall's latest retransmission
    first_unacked_time: float | None = None  # when the oldest unacknowledged data was first sent
    idle_before_unacked: float = 0.0  # how long the connection had been quiet before that
    stall_start: float | None = None
    last_progress_time: float | None = None  # when the peer last acknowledged new data
    # The segment by which this side's advertised window closed (0), while it stays closed
    # (None: open), and how many segments the peer has sent into it since: zero-window probes
    # (0 bytes at SND.NXT-1, as Linux sends them) and payload (the byte Windows and the BSDs
    # probe with). See RstEvent.receiver_window_closed_seconds.
    window_closed: Evidence | None = None
    closed_window_probes: int = 0
    # This side's zero-window probes as Linux sends them (0 bytes at SND.NXT-1 into the peer's
    # closed window) since the peer last sent anything: None, or how many, followed by the
    # latest STALL_KEPT as (frame, time) pairs (one slot: with one more, an Endpoint outgrows
    # the 512 bytes of Python's small-object allocator, and every connection costs a malloc).
    # A reader answers each (its window still 0) for as long as it is there; one that stops
    # answering went away with its window closed.
    window_probes: array[float] | None = None

    @property
    def text(self) -> str:
        return endpoint_text(self.addr, self.port)

    def recent_segment(self, seq: int) -> tuple[int, float] | None:
        """(frame, time) of the recent data segment that started at `seq`, if any."""
        seqs, marks = self.recent_seqs, self.recent_marks
        if seqs is None or marks is None or seq not in seqs:
            return None
        at = 2 * seqs.index(seq)
        return int(marks[at]), marks[at + 1]

    @property
    def bytes_acked(self) -> int:
        """Payload bytes of this side that the peer acknowledged (counted as the
        acknowledgements advance, so a transfer past 2 GiB does not wrap)."""
        return max(self.acked - self.fin_acked, 0)

    def acknowledged(self, ack: int, time: float) -> None:
        """The peer acknowledged new data up to `ack`."""
        if self.snd_una is not None:
            self.acked += seq_diff(ack, self.snd_una)
        elif self.data_start is not None:
            new = seq_diff(ack, self.data_start)
            if new <= 0:
                # The first acknowledgement of a connection captured mid-stream, reaching none
                # of the data this side was seen to send: its left edge, and no progress (a
                # stall of that data goes on: the peer may be answering its RST, or probing).
                self.snd_una = ack
                return
            self.acked += new
        self.snd_una = ack
        self.progress(time)

    @property
    def unacknowledged(self) -> bool:
        """Something it sent is not acknowledged yet (or the capture cannot say)."""
        return self.snd_una is None or self.snd_nxt is None or seq_lt(self.snd_una, self.snd_nxt)

    @property
    def retrying_since(self) -> float | None:
        """When this side began retransmitting its stalled data (the first retransmission
        kept; the stall's start without any): its peer's segments since then tell whether the
        peer is still there, those in flight when the data first went out do not."""
        marks = self.stall_marks
        return marks[1] if marks else self.stall_start

    def window_probe(self, frame: int, time: float) -> None:
        """This side probed the peer's closed window with 0 bytes (see window_probes)."""
        marks = self.window_probes
        if marks is None:
            self.window_probes = array("d", (1, frame, time))
            return
        marks[0] += 1
        marks.extend((frame, time))
        if len(marks) > 1 + 2 * STALL_KEPT:
            del marks[1:3]

    @property
    def window_probe_count(self) -> int:
        """How many zero-window probes since the peer last sent anything (see window_probes)."""
        marks = self.window_probes
        return int(marks[0]) if marks else 0

    def window_probe_evidence(self) -> list[Evidence]:
        """The unanswered zero-window probes kept (see window_probes), oldest first."""
        marks = self.window_probes
        what = f"zero-window probe from {self.role}, unanswered"
        return _marked(marks[1:], what) if marks else []

    def stall_evidence(self) -> list[Evidence]:
        """The current stall's retransmissions kept (see stall_marks), oldest first."""
        marks = self.stall_marks
        return [] if marks is None else _marked(marks, f"retransmission from {self.role}")

    @property
    def last_data(self) -> Evidence | None:
        if not self.last_data_frame:
            return None
        return Evidence(
            self.last_data_frame,
            self.last_data_time,
            f"{self.last_data_len} bytes of data from {self.role}",
        )

    def progress(self, time: float) -> None:
        """The peer acknowledged new data from this side: any stall is over."""
        self.last_progress_time = time
        self.stall_marks = None
        self.stall_retransmissions = 0
        self.stall_segment_len = 0
        self.stall_start = None
        self.first_unacked_time = None


@dataclass(slots=True)
class TrackedConnection:
    """A retired connection: its summary and the events it produced, in time order."""

    ref: ConnectionRef
    client: Endpoint
    server: Endpoint
    last_time: float
    events: list[FlowEvent]
    conn_state: str  # Zeek's conn_state (S0, SF, REJ, RSTO, ...); "" unless zeek was tracked
    history: str  # Zeek's history letters; uppercase = Zeek's originator
    zeek_flipped: bool  # Zeek's originator is not the first packet's sender
    # When Zeek's timers split this connection (an unanswered attempt after 5 s, a close 5 s
    # old, inactivity), the conn.log rows Zeek writes for it, in order; empty when it is one.
    zeek_rows: list[ZeekRecord] = field(default_factory=list)

    @property
    def on_wire(self) -> bool:
        """Whether any packet of it is in the capture: not a connect() known only from an ICMP
        error's quote (FlowTable._quoted_attempt)."""
        return bool(self.client.packets or self.server.packets)

    @property
    def community_id(self) -> str:
        # Computed on demand: hashing every connection of a large capture costs more than all
        # the tracking, and most connections never reach a report.
        return community_id(self.client.addr, self.client.port, self.server.addr, self.server.port)


@dataclass(slots=True)
class _PendingRst:
    """A RST whose facts are completed as later segments show how the receiver took it."""

    event: RstEvent
    sender: Endpoint
    receiver: Endpoint
    sender_host: tuple[str, str]  # (tunnel, address): tenants in different tunnels are apart
    sender_spoke_after: bool = False
    receiver_spoke_after: bool = False
    # The receiver sent its own FIN afterwards, or its own RST with ACK at the end of its stream
    # within the crossing allowance: its application had closed before the RST could reach it
    # (they crossed), or the RST was not accepted. Either way nobody was told.
    receiver_closed_after: bool = False
    receiver_data_after: bool = False  # the receiver's data kept arriving after the RST
    # ... and the latest time it did: data sent after the RST had reached the receiver means
    # the RST was not accepted (data within a round trip of it may simply have crossed it).
    receiver_data_last: float = 0.0
    # When the first of its data came that acknowledged the sender's FIN (0.0: none did): the
    # receiver had taken the FIN and went on writing. A capture near the sender shows such
    # writes only after the RST (they were on their way as it was sent), a capture near the
    # receiver before it: either way the RST found a writer in CLOSE-WAIT.
    receiver_wrote_after_fin: float = 0.0
    # When the sender last answered with another RST (0: never), having sent nothing else
    # since: data the receiver kept sending was answered only by RSTs, from a sender that no
    # longer had the connection.
    sender_reset_again: float = 0.0
    recorded: bool = False  # told to the RST log (RstLog.record): settled there at retirement


class RstLog:
    """Recent accepted RSTs per sending host, to see one host reset several connections at once.

    Per host (an address within its tunnel), two time-sorted arrays: every RST, and those that
    came right after an application exchange ended. A burst is counted with two binary
    searches, so a host that resets tens of thousands of connections costs O(log n) per RST,
    not a scan of its history.
    """

    def __init__(self, window: float = RST_BURST_WINDOW_SECONDS) -> None:
        self.window = window
        # (Arrays of doubles: 8 bytes an RST, where a list of floats takes 32; a host that
        # resets a hundred thousand connections a second keeps those of the close grace period
        # and of the time between the table's retirement check points.)
        self._times: dict[tuple[str, str], array[float]] = {}
        self._app_closing: dict[tuple[str, str], array[float]] = {}
        self._records = 0
        # The times of the RSTs recorded whose connections may not have retired yet, in order
        # from `_first` on, and of those among them that have (taken off the front lazily).
        # Entries are kept as long as such a connection could count them: not for a fixed span
        # after the newest RST, since a connection retires at the first check point after its
        # close grace period, which in a sparse capture comes long after its RST, while later
        # RSTs of the same host come meanwhile.
        self._unsettled = array("d")
        self._first = 0
        self._settled: Counter[float] = Counter()

    @property
    def needed_from(self) -> float:
        """RSTs before this time can count for no connection still to retire."""
        unsettled, settled, first = self._unsettled, self._settled, self._first
        while first < len(unsettled) - 1 and settled[unsettled[first]]:
            time = unsettled[first]
            first += 1
            settled[time] -= 1
            if not settled[time]:
                del settled[time]
        if first * 2 >= len(unsettled):  # (amortised O(1), as _prune)
            del unsettled[:first]
            first = 0
        self._first = first
        # (the newest RST is always kept: with none left to retire, no burst is counted before
        # it, and one recorded later counts those around its own time)
        return unsettled[first] - BURST_SPAN * self.window if unsettled else float("-inf")

    def settled(self, time: float) -> None:
        """The connection of the RST recorded at `time` retired: its burst was counted."""
        self._settled[time] += 1

    def record(self, host: tuple[str, str], time: float, app_closing: bool) -> None:
        for logs, wanted in ((self._times, True), (self._app_closing, app_closing)):
            if wanted:
                log = logs.get(host)
                if log is None:
                    log = logs[host] = array("d")
                if not log or log[-1] <= time:
                    log.append(time)
                else:
                    insort(log, time)  # timestamps that go backwards
        unsettled = self._unsettled
        if not unsettled or unsettled[-1] <= time:
            unsettled.append(time)
        else:
            insort(unsettled, time, self._first)
        needed_from = self.needed_from
        for logs in (self._times, self._app_closing):
            log = logs.get(host)
            if log:
                _prune(log, needed_from)
        # Sweep once as many RSTs as there are hosts were recorded: amortised O(1) per RST
        # even when every RST comes from a host of its own.
        self._records += 1
        if self._records >= max(4096, len(self._times)):
            self._records = 0
            self._forget_quiet_hosts(needed_from)

    def burst(self, host: tuple[str, str], time: float) -> tuple[int, bool]:
        """RSTs of this host within the window around `time` (this one included), and whether
        one of them came right after an application exchange."""
        # Strictly within the window: RSTs exactly one window apart (a host resetting a
        # connection every 10 ms) are a steady stream, not one burst chained end to end.
        low, high = time - self.window, time + self.window
        times = self._times.get(host, ())
        closing = self._app_closing.get(host, ())
        count = bisect_left(times, high) - bisect_right(times, low)  # this one among them
        # A burst stands out: a host that resets connections steadily (one every millisecond)
        # has as many around any instant, which is a stream, not one instant's kill.
        wide_low, wide_high = time - BURST_SPAN * self.window, time + BURST_SPAN * self.window
        around = bisect_left(times, wide_high) - bisect_right(times, wide_low)
        if around > 2 * count:
            count = 1
        return count, bisect_left(closing, high) > bisect_right(closing, low)

    def _forget_quiet_hosts(self, horizon: float) -> None:
        for logs in (self._times, self._app_closing):
            for host in [h for h, log in logs.items() if not log or log[-1] < horizon]:
                del logs[host]


def _marked(marks: array[float], what: str) -> list[Evidence]:
    """Evidence items from (frame, time) pairs kept as floats (Endpoint.stall_marks,
    Endpoint.window_probes), all with the same text."""
    pairs = zip(marks[::2], marks[1::2], strict=True)
    return [Evidence(int(frame), time, what) for frame, time in pairs]


def probed_window(receiver: Endpoint) -> Evidence | None:
    """The segment that closed the receiver's window, if it is still closed and the sender
    probed it at least twice since (one segment could be one that crossed the closing)."""
    if receiver.closed_window_probes < CLOSED_WINDOW_PROBES:
        return None
    return receiver.window_closed


def _window_closed_for(time: float, receiver: Endpoint) -> float:
    """RstEvent.receiver_window_closed_seconds: how long the receiver's window had been closed
    at `time`, probed (probed_window); 0 otherwise."""
    closed = probed_window(receiver)
    return 0.0 if closed is None else round(max(time - closed.time, 0.0), 3)


def _window_update(endpoint: Endpoint, window: int, seg: SegmentFields) -> None:
    """A segment from `endpoint` advertised `window`: its window closes (0) or opens again."""
    if window:
        endpoint.window_closed = None
        endpoint.closed_window_probes = 0
    elif endpoint.window_closed is None:
        endpoint.window_closed = Evidence(
            seg.frame, seg.time, f"{endpoint.role}'s window closed (0): it is not reading"
        )


def _prune(log: array[float], horizon: float) -> None:
    """Drop entries older than the horizon, in amortised O(1): only once they are half the list."""
    if log[0] < horizon:
        stale = bisect_left(log, horizon)
        if stale * 2 >= len(log):
            del log[:stale]


class _Row:
    """One in-order segment of a run (see Connection.continue_in_order), its fields set anew
    for each: the in-order path and Zeek's view read nothing else, and keep none of it."""

    __slots__ = (
        "ack", "dport", "dst", "flags", "frame", "ip_id", "payload_len", "seq", "sport", "src",
        "syn_options", "time", "ttl", "window",
    )  # fmt: skip

    def __init__(self) -> None:
        self.frame = self.seq = self.ack = self.flags = self.window = self.payload_len = 0
        self.ttl = self.ip_id = self.sport = self.dport = 0
        self.time = 0.0
        self.src = self.dst = ""
        self.syn_options: SynOptions | None = None  # (no SYN in a run)


@dataclass(frozen=True, slots=True)
class InOrderRun:
    """Segments of one connection, in capture order, that each take the in-order path: per
    segment, whether the client sent it, and its fields (plain lists, read once)."""

    from_client: list[bool]
    frame: list[int]
    time: list[float]
    seq: list[int]
    ack: list[int]
    flags: list[int]
    window: list[int]
    payload_len: list[int]
    ttl: list[int]
    ip_id: list[int]  # 0 where there is none (IPv6)
    now: list[float]  # the capture clock at the segment (for Zeek's timers)


def segment_identity(seq: int, ack: int, flags: int, length: int, ip_id: int) -> int:
    """(seq, ack, flags, payload length, IP ID) as one number, equal only for equal fields:
    every live connection keeps one per side, and one int is a fifth of the tuple's memory."""
    return (seq << 88) | (ack << 56) | (flags << 48) | (length << 16) | ip_id


def _new_data(
    seg: SegmentFields,
    sender: Endpoint,
    receiver: Endpoint,
    new_bytes: int | None = None,
    *,
    fresh: bool = False,
) -> None:
    """Bookkeeping for a segment carrying new data (both the in-order and the general path).
    `fresh`: it starts where the sender's data ended, so no recent segment started there (the
    in-order path; saves a look through the recent ones per segment)."""
    length = seg.payload_len
    if not sender.unanswered_bytes:
        sender.run_is_reply = False  # a new run of data: does it answer the peer's?
    sender.unanswered_bytes += length if new_bytes is None else new_bytes
    sender.last_data_frame = seg.frame
    sender.last_data_time = seg.time
    sender.last_data_len = length
    sender.data_ttl = seg.ttl
    if seg.ip_id:
        sender.last_segment = segment_identity(seg.seq, seg.ack, seg.flags, length, seg.ip_id)
    if length > sender.max_payload:
        sender.max_payload = length
    if length >= LARGE_SEGMENT_BYTES and sender.first_large_seq is None:
        sender.first_large_seq = seg.seq
    seqs, marks = sender.recent_seqs, sender.recent_marks
    if seqs is None or marks is None:
        sender.recent_seqs = array("I", (seg.seq,))
        sender.recent_marks = array("d", (seg.frame, seg.time))
    elif not fresh and seg.seq in seqs:
        # The same start again (data sent anew with more after it): it keeps its place.
        at = 2 * seqs.index(seg.seq)
        marks[at], marks[at + 1] = seg.frame, seg.time
    else:
        seqs.append(seg.seq)
        marks.extend((seg.frame, seg.time))
        if len(seqs) > 2 * RECENT_SEGMENTS:  # trimmed in batches: this runs per data segment
            del seqs[:RECENT_SEGMENTS]
            del marks[: 2 * RECENT_SEGMENTS]
    # This data answers the peer's only as far as its ACK reaches: bytes the peer sent that it
    # does not acknowledge were still in flight when it was sent (a reply must come after the
    # request to answer it).
    if receiver.unanswered_bytes:
        before = receiver.unanswered_bytes
        if seg.flags & ACK and receiver.snd_nxt is not None:
            in_flight = seq_diff(receiver.snd_nxt, seg.ack)
            receiver.unanswered_bytes = min(receiver.unanswered_bytes, max(in_flight, 0))
        else:
            receiver.unanswered_bytes = 0
        if receiver.unanswered_bytes < before:
            sender.replies += 1
            sender.run_is_reply = True


def _fill_hole(holes: list[tuple[int, int]], start: int, end: int) -> bool:
    """Does [start, end) lie in a gap a later segment left? Then take it out of the gap."""
    for index, (low, high) in enumerate(holes):
        if seq_le(low, start) and seq_le(end, high):
            rest = [(a, b) for a, b in ((low, start), (end, high)) if seq_lt(a, b)]
            holes[index : index + 1] = rest
            return True
    return False


def _add_evidence(event: FlowEvent, item: Evidence) -> None:
    evidence, frame = event.evidence, item.frame
    if len(evidence) < MAX_EVIDENCE:
        # (A loop, not all() over a generator: a few items, for every RST and ICMP error.)
        for e in evidence:
            if e.frame == frame:
                return
        evidence.append(item)


class Connection:
    """One TCP connection (one generation of a 4-tuple), updated segment by segment."""

    __slots__ = (
        "accepted_rst",
        "client",
        "closed_at",
        "conn_id",
        "early_fin",
        "first_frame",
        "first_time",
        "history",
        "icmp_events",
        "initiator_known",
        "ip_version",
        "last_ordinary_time",
        "last_time",
        "ref",
        "rsts",
        "server",
        "tunnel",
        "wscale_on",
        "zeek",
    )

    def __init__(
        self,
        conn_id: int,
        client: Endpoint,
        server: Endpoint,
        *,
        initiator_known: bool,
        ip_version: int,
        first_frame: int,
        first_time: float,
        zeek: ZeekTimeline | None,
        tunnel: str = "",
    ) -> None:
        self.conn_id = conn_id
        self.client = client
        self.server = server
        client.role, server.role = "client", "server"
        self.initiator_known = initiator_known
        self.ip_version = ip_version
        self.first_frame = first_frame
        self.first_time = first_time
        self.ref = ConnectionRef(
            conn_id=conn_id,
            client=client.text,
            server=server.text,
            initiator_known=initiator_known,
            ip_version=ip_version,
            first_frame=first_frame,
            first_time=first_time,
            tunnel=tunnel,
        )
        self.zeek = zeek
        self.tunnel = tunnel  # the tunnel context of its packets (TcpSegment.tunnel), in its key
        self.last_time = first_time
        self.last_ordinary_time = first_time  # last segment that was neither a probe nor a RST
        self.wscale_on = False
        self.closed_at: float | None = None
        self.rsts: list[_PendingRst] = []
        self.accepted_rst: _PendingRst | None = None
        # Each ICMP error with the affected side's retransmission count when it arrived.
        # (event, the side it affects, that side's retransmissions and SYN retries by then)
        self.icmp_events: list[tuple[IcmpErrorEvent, Endpoint, int, int]] = []
        # Every segment fed so far with the clock it came at, packed (see _Replayable), while
        # they are few and nothing but segments changed it; None otherwise. Kept by FlowTable.
        self.history: bytes | None = None
        # The server's FIN came first: what it found (see _close_event). None otherwise.
        self.early_fin: _EarlyFin | None = None

    def endpoint(self, addr: str, port: int) -> Endpoint:
        if addr == self.client.addr and port == self.client.port:
            return self.client
        return self.server

    def peer(self, ep: Endpoint) -> Endpoint:
        return self.server if ep is self.client else self.client

    @property
    def closed(self) -> bool:
        # (A server still in LISTEN with its client CLOSED: an ICMP error aborted the connect(),
        # and the server never knew of it.)
        client_done = self.client.state in _DONE and self.client.isn is not None
        return self.accepted_rst is not None or (
            client_done and (self.server.state in _DONE or self.server.state is TcpState.LISTEN)
        )

    def accepts_new_syn(self, seg: TcpSegment, zeek_split: bool = False) -> bool:
        """Does this SYN start a new generation of the 4-tuple rather than belong to this one?

        With zeek_split, as Zeek's TCPSessionAdapter::IsReuse: once a FIN or RST was seen any
        SYN starts a new connection, even a retry of a refused SYN with the same ISN.
        """
        sender = self.endpoint(seg.src, seg.sport)
        if zeek_split and (self.client.fin or self.server.fin or self.rsts):
            return True
        if sender.isn == seg.seq:
            return False  # a retransmission (or retry) of the same SYN
        peer = self.peer(sender)
        if (
            sender.packets == 0
            and sender.isn is None
            and peer.syn is not None
            and peer.state == TcpState.SYN_RECEIVED
            and sender.snd_nxt == seq_add(seg.seq, 1)
        ):
            # The SYN the SYN-ACK answered, captured after it (two taps merged, a SPAN port
            # reordering within microseconds): the same connection, with its first packet late.
            return False
        if self.closed or sender.syn is None:
            return True  # the old connection ended, or the capture caught it mid-stream
        # A fresh ISN while the old attempt never got anywhere (e.g. connect() retried).
        return sender is self.client and self.server.isn is None and not seg.flags & ACK

    def _scaled_window(self, ep: Endpoint) -> int:
        if self.wscale_on and ep.window_scale is not None:
            return ep.window << ep.window_scale
        if ep.syn_options is None:
            # Mid-stream start: the scale is unknown, so assume the largest (RFC 7323 limit)
            # rather than call an in-window RST out of window.
            return ep.window << 14
        return ep.window

    def _relseq(self, ep: Endpoint, value: int) -> int:
        """Sequence numbers relative to the ISN, as Wireshark shows them by default."""
        return seq_diff(value, ep.isn) if ep.isn is not None else value

    # -- per ICMP error --------------------------------------------------------------------

    def on_icmp(self, icmp: IcmpError, quoted: QuotedTcp) -> bool:
        """An ICMP error that quotes this connection: a new IcmpErrorEvent, or one more error
        of the same kind for an event it has. True if the error ended the handshake (the
        connection closed now)."""
        affected = self.endpoint(quoted.src, quoted.sport)
        kind, hard = icmp_kind(icmp)
        for event, _, _, _ in self.icmp_events:
            if event.icmp_kind == kind and event.affected == affected.role:
                event.icmp_count += 1
                _add_evidence(event, Evidence(icmp.frame, icmp.time, _icmp_text(icmp, kind)))
                return False
        peer = self.peer(affected)
        event = IcmpErrorEvent(
            connection=self.ref,
            frame=icmp.frame,
            time=icmp.time,
            client_state=self.client.state.value,
            server_state=self.server.state.value,
            affected=affected.role,
            affected_state=affected.state.value,
            icmp_kind=kind,
            icmp_type=icmp.icmp_type,
            icmp_code=icmp.icmp_code,
            icmp_version=icmp.ip_version,
            icmp_hard=hard,
            icmp_source=icmp.src,
            from_peer=icmp.src == peer.addr,
            from_own_host=icmp.src == affected.addr,
            quoted_only=affected.syn is not None and affected.syn.frame == icmp.frame,
            mtu=icmp.mtu,
            quoted_oversize=(
                quoted.payload_len is not None
                and affected.max_payload > 0
                and quoted.payload_len > affected.max_payload
            ),
            quoted_payload=quoted.payload_len,
            affected_max_payload=affected.max_payload,
            mptcp_join=_mptcp_join(self.client.syn_options),
            client_os=os_family(self.client.ttl),
            server_os=os_family(self.server.ttl),
        )
        quoted_segment = affected.recent_segment(quoted.seq)
        text = _icmp_text(icmp, kind)
        if affected.syn is not None and affected.state == TcpState.SYN_SENT:
            if event.quoted_only:
                text += f", quoting {affected.role}'s SYN (not on the wire)"
            else:
                _add_evidence(event, affected.syn)
        elif quoted_segment is not None:
            # The segment the ICMP error quotes (same sequence number).
            frame, time = quoted_segment
            what = f"data from {affected.role} quoted by the ICMP error"
            _add_evidence(event, Evidence(frame, time, what))
        elif affected.last_data is not None:
            _add_evidence(event, affected.last_data)
        _add_evidence(event, Evidence(icmp.frame, icmp.time, text))
        self.icmp_events.append((event, affected, affected.retransmissions, affected.syn_retries))
        if affected.state == TcpState.SYN_SENT and kind not in PMTU_KINDS:
            # Linux aborts connect() on the first ICMP error of the handshake (tcp_v4_err,
            # tcp_v6_err), soft or hard; only PMTU messages leave it alone.
            affected.state = TcpState.CLOSED
            if self.closed_at is None:
                self.closed_at = icmp.time
                return True
        return False

    # -- per segment -----------------------------------------------------------------------

    def on_segment(self, seg: TcpSegment, rst_log: RstLog, now: float) -> None:
        client = self.client
        if seg.sport == client.port and seg.src == client.addr:
            sender, receiver = client, self.server
        else:
            sender, receiver = self.server, client
        if self.zeek is not None:
            self.zeek.update(seg, now)
        flags = seg.flags
        if (
            flags & _FAST_FLAGS_MASK == ACK
            and seg.seq == sender.snd_nxt
            and sender.state is _ESTABLISHED
            and receiver.state is _ESTABLISHED
            and sender.rcv_nxt is not None  # both unset only in odd mid-stream starts
            and receiver.snd_nxt is not None
            and not self.rsts
            and not sender.unanswered_probes
            and not receiver.unanswered_probes
            and not receiver.window_probes
            and (seg.payload_len or sender.syn is not None)  # see _is_keepalive
            and not seg.mptcp_options
        ):
            self._in_order(seg, sender, receiver)
            return
        self._general(seg, sender, receiver, rst_log)

    def in_order_start(self) -> tuple[int, int, bool, bool] | None:
        """If each side's next segment would take the in-order path (see on_segment) as long as
        it is an ACK without SYN, FIN, RST or URG that starts at the side's SND.NXT (and, empty,
        comes from a side whose SYN was seen), and would leave it so: the client's and the
        server's SND.NXT, and whether each side's SYN was seen. None otherwise."""
        client, server = self.client, self.server
        if (
            self.rsts
            or client.state is not _ESTABLISHED
            or server.state is not _ESTABLISHED
            or client.snd_nxt is None
            or server.snd_nxt is None
            or client.rcv_nxt is None
            or server.rcv_nxt is None
            or client.unanswered_probes
            or server.unanswered_probes
            or client.window_probes
            or server.window_probes
        ):
            return None
        return client.snd_nxt, server.snd_nxt, client.syn is not None, server.syn is not None

    def continue_in_order(self, run: InOrderRun) -> None:
        """Segments that each take the in-order path, one after another (as in_order_start
        says they would: tcpdiag.fastpath checks it), applied as on_segment applies them."""
        row = _Row()
        client, server, zeek = self.client, self.server, self.zeek
        for from_client, *fields, now in zip(
            run.from_client,
            run.frame,
            run.time,
            run.seq,
            run.ack,
            run.flags,
            run.window,
            run.payload_len,
            run.ttl,
            run.ip_id,
            run.now,
            strict=True,
        ):
            (row.frame, row.time, row.seq, row.ack, row.flags, row.window, row.payload_len,
             row.ttl, row.ip_id) = fields  # fmt: skip
            sender, receiver = (client, server) if from_client else (server, client)
            if zeek is not None:
                row.src, row.sport, row.dst, row.dport = (
                    sender.addr,
                    sender.port,
                    receiver.addr,
                    receiver.port,
                )
                zeek.update(row, max(now, row.time))
            self._in_order(row, sender, receiver)

    def _in_order(self, seg: SegmentFields, sender: Endpoint, receiver: Endpoint) -> None:
        """The bulk of any capture: an in-order data or ACK segment of an established connection
        with nothing pending. It moves counters and sequence positions only, exactly as the
        general path would, without the checks that cannot apply (handshake, FIN, RST, probes,
        retransmissions)."""
        time = seg.time
        previous_time = self.last_time
        if time > previous_time:
            self.last_time = time
        self.last_ordinary_time = time
        sender.packets += 1
        sender.last_time = time
        window = sender.window = seg.window
        if not window or sender.window_closed is not None:
            _window_update(sender, window, seg)
        if receiver.window_closed is not None and seg.payload_len:
            receiver.closed_window_probes += 1
        ack = seg.ack
        assert sender.rcv_nxt is not None and receiver.snd_nxt is not None  # checked by the caller
        if seq_lt(sender.rcv_nxt, ack):
            sender.rcv_nxt = ack
            sender.acks_advanced = True
        snd_una = receiver.snd_una
        if (snd_una is None or seq_lt(snd_una, ack)) and seq_le(ack, receiver.snd_nxt):
            receiver.acknowledged(ack, time)
            sender.ack_ttl = seg.ttl
        length = seg.payload_len
        if length:
            sender.payload_bytes += length
            sender.snd_nxt = (seg.seq + length) & 0xFFFFFFFF
            if sender.first_unacked_time is None:
                sender.first_unacked_time = time
                sender.idle_before_unacked = max(time - previous_time, 0.0)
            sender.bytes_sent += length
            _new_data(seg, sender, receiver, fresh=True)

    def _general(
        self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint, rst_log: RstLog
    ) -> None:
        previous_time = self.last_time
        self.last_time = max(self.last_time, seg.time)
        sender.packets += 1
        sender_previous_time = sender.last_time
        sender.last_time = seg.time
        if seg.ip_id:  # IPv4 with a real IP ID (0 is what Linux puts on many DF packets)
            key = segment_identity(seg.seq, seg.ack, seg.flags, seg.payload_len, seg.ip_id)
            if key == sender.last_segment:
                sender.duplicates += 1  # the same packet captured twice: nothing happened
                return
            sender.last_segment = key
        flags = seg.flags
        if flags & RST:
            answers = (
                receiver.packets > 0
                and receiver.last_time >= sender_previous_time
                and seg.time - receiver.last_time <= RST_ANSWER_SECONDS
            )
            self._on_rst(seg, sender, receiver, rst_log, previous_time, answers)
            return
        if seg.mptcp_options and not flags & SYN:  # (MP_FASTCLOSE: see TcpSegment)
            sender.fastclose = Evidence(
                seg.frame,
                seg.time,
                f"ACK from {sender.role} with MP_FASTCLOSE: its MPTCP stack aborts the connection",
            )
        for pending in self.rsts:
            if pending.sender is sender:
                pending.sender_spoke_after = True
            elif flags & FIN and not flags & SYN:
                pending.receiver_spoke_after = pending.receiver_closed_after = True
            elif seg.payload_len:
                pending.receiver_spoke_after = pending.receiver_data_after = True
                pending.receiver_data_last = seg.time
                fin_seq = pending.sender.fin_seq
                if (
                    not pending.receiver_wrote_after_fin
                    and fin_seq is not None
                    and _acknowledges_fin(seg, fin_seq)
                ):
                    pending.receiver_wrote_after_fin = seg.time
            elif not pending.receiver_spoke_after:
                pending.receiver_spoke_after = True
                if pending.event.rst_verdict in ("challenge", "out_of_window"):
                    what = f"{sender.role} carries on after the RST"
                    if flags & ACK and seg.payload_len == 0:
                        what += f" (ACK={self._relseq(receiver, seg.ack)}: challenge ACK)"
                    _add_evidence(pending.event, Evidence(seg.frame, seg.time, what))
        if sender.ttl is None:
            sender.ttl = seg.ttl
        if flags & SYN:
            self._on_syn(seg, sender, receiver)
        if sender.snd_nxt is None:
            # First segment of this side in a capture that missed the handshake.
            sender.snd_nxt = sender.data_start = seg.seq
            for ep in (sender, receiver):
                if ep.state == TcpState.CLOSED:
                    ep.state = TcpState.ESTABLISHED
        if flags & ACK:
            self._on_ack(seg, sender, receiver)
        if self._is_keepalive(seg, sender, receiver):
            sender.keepalive_probes += 1
            if sender.unanswered_probes is None:
                sender.unanswered_probes = []
            sender.unanswered_probes.append(
                Evidence(seg.frame, seg.time, f"keepalive probe from {sender.role}")
            )
            del sender.unanswered_probes[:-MAX_EVIDENCE]
        else:
            sender.unanswered_probes = None
            self._on_payload(seg, sender, receiver, previous_time)
            self.last_ordinary_time = seg.time
        receiver.unanswered_probes = None  # any segment from the sender answers the peer's probes
        if receiver.window_probes is not None:
            receiver.window_probes = None
        if flags & FIN:
            self._on_fin(seg, sender, receiver)
        window = sender.window = seg.window
        if not window or sender.window_closed is not None:
            _window_update(sender, window, seg)
        if receiver.window_closed is not None and (
            seg.payload_len
            or (sender.snd_nxt is not None and seg.seq == seq_add(sender.snd_nxt, -1))
        ):
            receiver.closed_window_probes += 1
            if not seg.payload_len:
                sender.window_probe(seg.frame, seg.time)
        if self.closed and self.closed_at is None:
            self.closed_at = seg.time

    def _on_syn(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> None:
        is_synack = bool(seg.flags & ACK)
        if sender.isn == seg.seq and sender.syn is not None:
            sender.syn_retries += 1
            repeats = sender.syn_repeats
            if repeats is None:
                repeats = sender.syn_repeats = []
            repeats.append(Evidence(seg.frame, seg.time, REPEATED_TEXT[is_synack, sender.role]))
            if len(repeats) > MAX_EVIDENCE:
                del repeats[0]
            if sender.state == TcpState.CLOSED:
                # The same SYN again after a RST refused it: some stacks retry a refused
                # connect() with the same ISN; it is the same attempt, reopened.
                sender.state = TcpState.SYN_RECEIVED if is_synack else TcpState.SYN_SENT
            return
        if (
            is_synack
            and sender.syn is not None
            and receiver.isn is not None
            and seg.ack == seq_add(receiver.isn, 1)
        ):
            # Another SYN-ACK for the same SYN, with another ISN: a front end answering each
            # SYN with a new cookie. The client goes on with the first it got and answers the
            # others with a duplicate ACK (RFC 9293 3.10.7.4), so the first stays the server's
            # ISN; until the client acknowledges one, the other is kept in case it is that one.
            if sender.state == TcpState.SYN_RECEIVED and sender.other_synack is None:
                sender.other_synack = (
                    seg.seq,
                    Evidence(seg.frame, seg.time, OPENING_TEXT[is_synack, sender.role]),
                )
            return
        # The SYN-ACK of a handshake already inferred from the client's ACK (see _on_ack),
        # captured after it: it tells its options, and moves nothing back.
        inferred = is_synack and sender.syn is None and sender.isn == seg.seq
        if not inferred:
            sender.isn = seg.seq
            sender.snd_nxt = sender.data_start = seq_add(seg.seq, 1)
        sender.syn = Evidence(seg.frame, seg.time, OPENING_TEXT[is_synack, sender.role])
        sender.syn_options = seg.syn_options
        sender.syn_window = seg.window
        shift = seg.syn_options.window_scale if seg.syn_options else None
        # RFC 7323 2.3: a shift count above 14 is used as 14 (and logged by the receiver).
        sender.window_scale = min(shift, 14) if shift is not None else None
        if is_synack:
            if not inferred:
                sender.state = TcpState.SYN_RECEIVED
            self.wscale_on = sender.window_scale is not None and receiver.window_scale is not None
            refusal = self.accepted_rst
            if (
                refusal is not None
                and refusal.receiver is receiver
                and refusal.event.receiver_state == TcpState.SYN_SENT
                and receiver.state == TcpState.SYN_SENT
            ):
                # The client retried its refused SYN (the same ISN: Windows retries a refused
                # connect() twice) and this one is answered: connect() goes on, nobody was told
                # of the refusal, and the connection is open again (the table takes it out of
                # the closing queue when its entry comes due: FlowTable._leave_closing).
                refusal.event.rst_verdict = "retried"
                self.accepted_rst = None
        else:
            sender.state = TcpState.SYN_SENT
            if receiver.state == TcpState.CLOSED:
                receiver.state = TcpState.LISTEN

    def _on_ack(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> None:
        ack = seg.ack
        other = receiver.other_synack
        if other is not None:
            receiver.other_synack = None
            if receiver.state == TcpState.SYN_RECEIVED and ack == seq_add(other[0], 1):
                # The client took the front end's other SYN-ACK (see _on_syn): its ISN is the
                # server's.
                receiver.isn = other[0]
                receiver.snd_nxt = receiver.data_start = ack
                receiver.syn = other[1]
        if (
            sender.state == TcpState.SYN_SENT
            and receiver.isn is None
            and sender.isn is not None
            and not seg.flags & SYN
            and seg.seq == seq_add(sender.isn, 1)
        ):
            # The SYN's sender acknowledges a SYN-ACK the capture missed (one direction not
            # captured, or a frame dropped): only a socket that got the SYN-ACK sends this, so
            # the handshake was made, with the peer's ISN one below this ACK.
            receiver.isn = seq_add(ack, -1)
            if receiver.snd_nxt is None:
                receiver.snd_nxt = receiver.data_start = ack
            sender.state = receiver.state = TcpState.ESTABLISHED
            sender.handshake_time = receiver.handshake_time = seg.time
        if sender.rcv_nxt is None or seq_lt(sender.rcv_nxt, ack):
            sender.acks_advanced = sender.rcv_nxt is not None or sender.acks_advanced
            sender.rcv_nxt = ack
        if receiver.snd_nxt is None:
            receiver.snd_nxt = ack  # mid-stream: the peer's position, learnt from this ACK
        if seq_le(ack, receiver.snd_nxt) and (
            receiver.snd_una is None or seq_lt(receiver.snd_una, ack)
        ):
            receiver.acknowledged(ack, seg.time)
            sender.ack_ttl = seg.ttl
        if (
            receiver.state == TcpState.SYN_RECEIVED
            and not seg.flags & SYN
            and receiver.isn is not None
            and seq_lt(receiver.isn, ack)
            and (receiver.snd_nxt is None or seq_le(ack, receiver.snd_nxt))
            and (sender.isn is None or seq_lt(sender.isn, seg.seq))
        ):
            # The client's ACK of the SYN-ACK completes the handshake: any ACK with SND.UNA <
            # SEG.ACK <= SND.NXT (RFC 9293 3.10.7.4), so also a first captured segment that
            # acknowledges the server's greeting too (the pure ACK not captured). Its sequence
            # number must be past the client's ISS: a segment at the SYN's own number is
            # outside the receive window and is dropped, whatever it acknowledges.
            receiver.state = TcpState.ESTABLISHED
            receiver.handshake_time = sender.handshake_time = seg.time
            if sender.state in (TcpState.SYN_SENT, TcpState.CLOSED):
                sender.state = TcpState.ESTABLISHED
        if (
            receiver.fin_seq is not None
            and not receiver.fin_acked
            and seq_le(seq_add(receiver.fin_seq, 1), ack)
        ):
            receiver.fin_acked = True
            receiver.state = {
                TcpState.FIN_WAIT_1: TcpState.FIN_WAIT_2,
                TcpState.CLOSING: TcpState.TIME_WAIT,
                TcpState.LAST_ACK: TcpState.CLOSED,
            }.get(receiver.state, receiver.state)

    def _is_keepalive(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> bool:
        """0 or 1 byte at SND.NXT-1 (Wireshark's tcp.analysis.keep_alive). A zero-window probe
        looks the same, but then the peer's window is closed."""
        if seg.payload_len > 1 or seg.flags & (SYN | FIN) or sender.snd_nxt is None:
            return False
        if sender.syn is None and seg.seq == sender.snd_nxt and not seg.payload_len:
            return self._midstream_probe(seg, sender, receiver)
        if seg.seq != seq_add(sender.snd_nxt, -1):
            return False
        return not (receiver.window == 0 and receiver.rcv_nxt is not None)

    def _midstream_probe(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> bool:
        """A capture that starts mid-connection takes a side's first sequence number as its
        SND.NXT; if that side was idle and probing, that is SND.NXT-1. An empty segment at the
        same number as the side's previous one, at least half a second later, with nothing from
        the peer in between, is the second of such probes: both were keepalives."""
        last = sender.last_empty
        key = (seg.seq, seg.ack if seg.flags & ACK else None)
        sender.last_empty = (
            Evidence(seg.frame, seg.time, f"keepalive probe from {sender.role}"),
            key,
        )
        if last is None:
            return False
        previous, previous_key = last
        if (
            previous_key != key
            or seg.time - previous.time < 0.5
            or receiver.last_time > previous.time
            or (receiver.window == 0 and receiver.rcv_nxt is not None)
        ):
            return False
        sender.snd_nxt = sender.data_start = seq_add(seg.seq, 1)
        if not sender.unanswered_probes:
            sender.keepalive_probes += 1
            sender.unanswered_probes = [previous]
        return True

    def _on_payload(
        self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint, previous_time: float
    ) -> None:
        """Data (or a FIN) from `sender`; `previous_time`: the connection's packet before it."""
        length = seg.payload_len + (1 if seg.flags & FIN else 0)
        if length == 0:
            return
        assert sender.snd_nxt is not None
        if (
            sender.syn is None
            and sender.keepalive_probes
            and seg.payload_len > 1
            and seg.seq == seq_add(sender.snd_nxt, -1)
        ):
            # Data where the probes' SND.NXT-1 was: they were not probes after all, only empty
            # segments repeated; that is SND.NXT (see _midstream_probe).
            sender.snd_nxt = seg.seq
        start = seg.seq if not seg.flags & SYN else seq_add(seg.seq, 1)
        end = seq_add(start, length)
        sender.payload_bytes += seg.payload_len
        if seq_lt(start, sender.snd_nxt):
            if sender.holes and _fill_hole(sender.holes, start, end):
                # A first transmission that arrived after a later one (reordered), not a
                # retransmission: its bytes are new, and SND.NXT stays where it is.
                sender.reordered += 1
                if seg.payload_len:
                    sender.bytes_sent += seg.payload_len
                    _new_data(seg, sender, receiver)
                return
            self._on_retransmission(seg, sender, end)
            if seq_le(end, sender.snd_nxt):
                return
            new_from = sender.snd_nxt
        else:
            if seq_lt(sender.snd_nxt, start):
                # A gap: those bytes were sent (or will be) and not seen yet.
                if sender.holes is None:
                    sender.holes = []
                sender.holes.append((sender.snd_nxt, start))
                del sender.holes[:-MAX_HOLES]
            new_from = start
        new_payload = min(seq_diff(end, new_from), seg.payload_len)
        sender.snd_nxt = end
        if sender.first_unacked_time is None:
            sender.first_unacked_time = seg.time
            sender.idle_before_unacked = max(seg.time - previous_time, 0.0)
        if new_payload > 0:
            wrote_before = sender.last_data_time if sender.bytes_sent else None
            sender.bytes_sent += new_payload
            _new_data(seg, sender, receiver, new_payload)
            if receiver.fin_seq is not None:  # (never on the in-order path: both established)
                after = sender.after_peer_fin
                if after is None:
                    took_fin = _acknowledges_fin(seg, receiver.fin_seq)
                    all_acked = receiver.rcv_nxt is not None and seq_le(new_from, receiver.rcv_nxt)
                    sender.after_peer_fin = WritesAfterFin(
                        1, new_payload, took_fin, wrote_before, seg.time, all_acked
                    )
                else:
                    sender.after_peer_fin = after._replace(
                        segments=after.segments + 1, bytes=after.bytes + new_payload
                    )

    def _on_retransmission(self, seg: TcpSegment, sender: Endpoint, end: int) -> None:
        sender.retransmissions += 1
        if sender.snd_una is not None and seq_le(end, sender.snd_una):
            return  # spurious: the peer had acknowledged all of it already, nothing stalls
        sender.stall_retransmissions += 1
        sender.stall_segment_len = seg.payload_len
        if sender.stall_start is None:
            sender.stall_start = sender.first_unacked_time or seg.time
        marks = sender.stall_marks
        if marks is None:
            sender.stall_marks = array("d", (seg.frame, seg.time))
            return
        marks.extend((seg.frame, seg.time))
        if len(marks) > 2 * STALL_KEPT:
            del marks[:2]

    def _on_fin(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> None:
        if sender.fin_seq is not None:
            return  # a retransmitted FIN
        # (A server with a gap before its FIN sent data the capture missed: maybe the answer.)
        if (
            sender.role == "server"
            and receiver.fin_seq is None
            and seg.flags & ACK
            and not sender.holes
        ):
            writes, spread = _writes_since(
                receiver, sender.last_data_time if sender.bytes_sent else None
            )
            self.early_fin = _EarlyFin(
                _unanswered_by(seg.ack, receiver),
                receiver.state.value,
                sender.state.value,
                writes,
                spread,
            )
        elif self.early_fin is not None and receiver.fin_seq is not None:
            # The client's FIN after the server's: did it acknowledge it (sent once the end of
            # file had reached it, not crossing it)?
            took = _acknowledges_fin(seg, receiver.fin_seq)
            self.early_fin = self.early_fin._replace(fin_answered=took)
        sender.fin_seq = seq_add(seg.seq, seg.payload_len)
        sender.fin = Evidence(seg.frame, seg.time, FIN_TEXT[sender.role])
        sender.state = (
            TcpState.LAST_ACK if sender.state == TcpState.CLOSE_WAIT else TcpState.FIN_WAIT_1
        )
        if not seg.flags & ACK or (
            receiver.state == TcpState.SYN_RECEIVED and seg.seq == sender.isn
        ):
            # A synchronized receiver drops a segment without ACK unprocessed, and one at the
            # SYN's own sequence number is outside its window (RFC 9293 3.10.7.4): the sender
            # has closed, but the receiver never learns it from this FIN.
            return
        receiver.state = {
            TcpState.ESTABLISHED: TcpState.CLOSE_WAIT,
            TcpState.SYN_RECEIVED: TcpState.CLOSE_WAIT,
            TcpState.FIN_WAIT_1: TcpState.CLOSING,
            TcpState.FIN_WAIT_2: TcpState.TIME_WAIT,
        }.get(receiver.state, receiver.state)

    # -- RST ---------------------------------------------------------------------------------

    def _rst_verdict(self, seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> str:
        """The receiver's acceptance checks (RFC 9293 3.10.7, RFC 5961 3.2), as far as an
        observer on the wire can repeat them."""
        state = receiver.state
        if state == TcpState.SYN_SENT:
            if seg.flags & ACK and receiver.isn is not None:
                return "accepted" if seg.ack == seq_add(receiver.isn, 1) else "bad_ack"
            return "bad_ack"
        if state in (TcpState.TIME_WAIT, TcpState.CLOSED, TcpState.LISTEN):
            # A receiver that never had a synchronized connection here (no SYN of its own: a
            # lone RST, or a stale connection answering a SYN with a bare ACK, RFC 9293 figure
            # 9) is in a state the capture does not show.
            return "after_close" if receiver.isn is not None else "unverified"
        # The receiver's RCV.NXT lies between what it last acknowledged and what the sender sent.
        lo, hi = receiver.rcv_nxt, sender.snd_nxt
        if lo is None:
            # The receiver never acknowledged anything in this capture: its RCV.NXT and window
            # are unknown, so only a RST exactly at the sender's SND.NXT can be judged.
            if hi is None or seg.seq != hi:
                return "unverified"
            lo = hi
        if hi is None or seq_lt(hi, lo):
            hi = lo
        if seq_between(lo, seg.seq, hi):
            return "accepted"
        window = max(self._scaled_window(receiver), 1)
        if seq_between(lo, seg.seq, seq_add(lo, window - 1)):
            return "challenge"
        return "out_of_window"

    def _on_rst(
        self,
        seg: TcpSegment,
        sender: Endpoint,
        receiver: Endpoint,
        rst_log: RstLog,
        previous_time: float,
        answers_receiver: bool,
    ) -> None:
        role = sender.role
        ack_text = f", ack={self._relseq(receiver, seg.ack)}" if seg.flags & ACK else ", no ACK"
        what = f"RST from {role} (seq={self._relseq(sender, seg.seq)}{ack_text}, ttl={seg.ttl})"
        if seg.mptcp_options:
            what += f" with {_mptcp_names(seg.mptcp_options)}"
        if seg.rst_text:
            what += f' carrying the text "{seg.rst_text}"'
        if self.accepted_rst is not None:
            # The connection is already gone: later RSTs answer segments that were in flight.
            accepted = self.accepted_rst
            first = accepted.event
            first.further_rsts += 1
            if sender is accepted.sender:
                accepted.sender_reset_again = seg.time
            elif (
                seg.flags & ACK
                and seg.seq == sender.snd_nxt
                and seg.time - first.time <= self._crossing_allowance()
                and _from_usual_host(sender, seg.ttl)
            ):
                # The receiver's own abort, from a live socket at the end of its stream (a
                # stack answering a segment for a socket gone sends a bare RST at that
                # segment's ACK; an injector resetting both ends forges it with its own TTL):
                # it had closed before the RST could reach it, as with a FIN.
                accepted.receiver_closed_after = True
            _add_evidence(first, Evidence(seg.frame, seg.time, what))
            return
        self._unreceived_fin(sender, receiver)
        verdict = self._rst_verdict(seg, sender, receiver)
        syn_options = self.client.syn_options
        probes = sender.unanswered_probes or []
        # How far the receiver's data reached the sender: as far as the RST's own ACK, or, for
        # a RST without ACK, the sender's last ACK.
        acked = seg.ack if seg.flags & ACK else sender.rcv_nxt
        unanswered = 0 if acked is None else _unanswered_by(acked, receiver)
        response = receiver.role == "server" and receiver.run_is_reply
        after_fin = _after_fin(receiver, sender, self._crossing_allowance())
        usual_ttl, ttl_reference = _usual_ttl(sender)
        event = RstEvent(
            connection=self.ref,
            frame=seg.frame,
            time=seg.time,
            client_state=self.client.state.value,
            server_state=self.server.state.value,
            sender=role,
            receiver=receiver.role,
            rst_verdict=verdict,
            sender_state=sender.state.value,
            receiver_state=receiver.state.value,
            rst_has_ack=bool(seg.flags & ACK),
            rst_ttl=seg.ttl,
            ttl_delta=None if usual_ttl is None else abs(seg.ttl - usual_ttl),
            sender_ttl=usual_ttl,
            ttl_reference=ttl_reference,
            handshake_ttl_delta=(
                abs(seg.ttl - sender.ttl)
                if sender.ttl is not None and usual_ttl not in (None, sender.ttl)
                else None
            ),
            sender_keepalive_probes=len(probes),
            keepalive_idle_seconds=(
                round(probes[0].time - self.last_ordinary_time, 3) if probes else None
            ),
            keepalive_interval_seconds=(
                round((probes[-1].time - probes[0].time) / (len(probes) - 1), 3)
                if len(probes) > 1
                else None
            ),
            sender_unanswered_bytes=unanswered,
            sender_buffer_full=self._buffer_full(sender, receiver),
            receiver_window_closed_seconds=_window_closed_for(seg.time, receiver),
            receiver_data_in_flight=_in_flight(receiver, acked),
            rst_acks_stale_data=_acks_stale_data(seg, sender, receiver),
            unanswered_age_seconds=(
                round(max(seg.time - receiver.last_data_time, 0.0), 6) if unanswered else None
            ),
            sender_bytes_sent=sender.bytes_sent,
            receiver_bytes_sent=receiver.bytes_sent,
            receiver_stall_retransmissions=receiver.stall_retransmissions,
            sender_stall_retransmissions=_stall_on_silent_peer(sender, receiver),
            receiver_sent_after_fin=(
                sender.fin is not None and receiver.last_time >= sender.fin.time
            ),
            receiver_closing_write=_closing_write(receiver, sender, after_fin.answered),
            receiver_late_reply=_late_reply(receiver, sender),
            receiver_write_crossed_fin=after_fin.crossed,
            receiver_earlier_data_answered=after_fin.earlier_answered,
            receiver_idle_before_fin_seconds=after_fin.idle_before,
            receiver_write_after_fin_seconds=after_fin.seconds,
            receiver_new_request_after_fin=after_fin.new_request,
            sender_replies=sender.replies,
            unanswered_is_response=response,
            sender_owes_reply=unanswered > 0 and not response,
            idle_seconds=round(max(seg.time - previous_time, 0.0), 6),
            answers_receiver=answers_receiver,
            client_syn_options=bool(
                syn_options and (syn_options.sack_permitted or syn_options.timestamps)
            ),
            client_syn_window=self.client.syn_window,
            client_syn_seen=self.client.syn is not None,
            mptcp_subflow=_mptcp_subflow(syn_options, self.server.syn_options),
            mptcp_join=_mptcp_join(syn_options),
            rst_mptcp=_rst_mptcp(seg.mptcp_options),
            rst_text=seg.rst_text,
            receiver_fastclosed=receiver.fastclose is not None,
            sender_never_took_handshake=_handshake_not_taken(sender, receiver),
            aborter=role if receiver.fastclose is None else receiver.role,
            exchange_age_seconds=self._exchange_age(seg.time, sender, receiver),
            client_os=os_family(self.client.ttl),
            server_os=os_family(self.server.ttl),
        )
        # The receiver's last data was itself acknowledged (not beyond the RST's reach).
        last_acked = 0 < unanswered == receiver.unanswered_bytes
        for item in self._rst_context(
            sender,
            receiver,
            unanswered > 0,
            last_acked,
            event.sender_never_took_handshake,
            response,
        ):
            _add_evidence(event, item)
        if receiver.fastclose is not None:
            _add_evidence(event, receiver.fastclose)
        _add_evidence(event, Evidence(seg.frame, seg.time, what))
        pending = _PendingRst(event, sender, receiver, (self.tunnel, seg.src))
        if verdict == "accepted":
            # A dropped RST whose sender said nothing else before this one (only the receiver
            # answered: a challenge ACK, data) did not leave the connection alive: this RST is
            # the sender's next try. One followed by the sender's own segments (a forged RST
            # before the real handshake) stands on its own.
            for earlier in self.rsts:
                if (
                    earlier.event.rst_verdict in _DROPPED_VERDICTS
                    and earlier.sender is sender
                    and not earlier.sender_spoke_after
                ):
                    earlier.event.later_rst_accepted = True
        if len(self.rsts) < MAX_EVIDENCE:
            self.rsts.append(pending)
        if verdict in ("accepted", "unverified"):
            self.accepted_rst = pending
            if seg.flags & ACK and receiver.state in SYNCHRONIZED:
                age = event.exchange_age_seconds
                # (A sender in CLOSE-WAIT had its peer's FIN: its program closing on the end of
                # file, abortively.)
                app_closing = sender.state == TcpState.CLOSE_WAIT or (
                    age is not None and (age <= APP_CLOSE_SECONDS or age >= IDLE_TEARDOWN_SECONDS)
                )
                rst_log.record(pending.sender_host, seg.time, app_closing)
                pending.recorded = True
            sender.state = TcpState.CLOSED
            receiver.state = TcpState.CLOSED
            if self.closed_at is None:
                self.closed_at = seg.time

    def _unreceived_fin(self, fin_sender: Endpoint, receiver: Endpoint) -> None:
        """Puts the receiver back in its state before `fin_sender`'s FIN if its own segments
        show it never got that FIN. A FIN seen on the wire is not a FIN taken: one lost, or
        behind data that was lost (retransmitted, never acknowledged), leaves the receiver
        where it was. It shows so when a segment it sent too long after the FIN to have
        crossed it still acknowledges less than the FIN: a RST then finds it ESTABLISHED
        (ECONNRESET), not in CLOSE-WAIT (EPIPE)."""
        fin_seq, fin = fin_sender.fin_seq, fin_sender.fin
        before = _BEFORE_PEER_FIN.get(receiver.state)
        if fin_seq is None or fin is None or before is None:
            return
        acked = receiver.rcv_nxt
        if acked is not None and not seq_lt(acked, seq_add(fin_seq, 1)):
            return  # it acknowledged the FIN
        if receiver.last_time <= fin.time + self._crossing_allowance():
            return  # its segments may have been sent before the FIN reached it
        receiver.state = before

    def _buffer_full(self, sender: Endpoint, receiver: Endpoint) -> bool:
        """RstEvent.sender_buffer_full: the window the sender last offered, less what the
        receiver sent into it since, had no room for another full segment of the receiver's
        data (a zero window; otherwise only where the handshake gave the window scale, without
        which a scaled window looks small)."""
        if not receiver.bytes_sent or not sender.packets:
            return False
        if sender.window == 0:
            return True
        if sender.syn is None or receiver.syn is None:
            return False
        if sender.rcv_nxt is None or receiver.snd_nxt is None:
            return False
        edge = seq_add(sender.rcv_nxt, self._scaled_window(sender))
        return seq_diff(edge, receiver.snd_nxt) < receiver.max_payload

    def _crossing_allowance(self) -> float:
        """How long after a RST the receiver's segments may still have been sent before it
        arrived: two round trips of the handshake (whichever side the capture was taken on)
        and a margin; without a handshake, a generous second."""
        syn, done = self.client.syn, self.client.handshake_time
        if syn is None or done is None:
            return 1.0
        return 2 * max(done - syn.time, 0.0) + 0.2

    @staticmethod
    def _exchange_age(time: float, sender: Endpoint, receiver: Endpoint) -> float | None:
        """Seconds since the sender's application saw its last exchange complete (see
        RstEvent.exchange_age_seconds)."""
        if sender.unanswered_bytes:
            if sender.run_is_reply and sender.role == "server":
                # Its last data answered the client's request (a response): that exchange
                # ended with it, and the server waits for nothing.
                return round(max(time - sender.last_data_time, 0.0), 6)
            return None  # the sender still waits for a reply: no exchange has ended
        if receiver.bytes_sent:
            return round(max(time - receiver.last_data_time, 0.0), 6)
        if not sender.bytes_sent and sender.handshake_time is not None:
            return round(max(time - sender.handshake_time, 0.0), 6)
        return None

    def _rst_context(
        self,
        sender: Endpoint,
        receiver: Endpoint,
        unanswered: bool,
        last_acked: bool,
        handshake_not_taken: bool,
        response: bool,
    ) -> Iterator[Evidence]:
        """Frames that show what state the RST found: handshake, FINs, probes, unanswered data
        (and, where the sender never took the handshake, its late SYN-ACKs). `response`: that
        data was the receiver's response to the sender's request (RstEvent.unanswered_is_response),
        which asked for no answer."""
        if handshake_not_taken and sender.syn is not None:
            yield sender.syn
            yield from (sender.syn_repeats or [])[-2:]
            last = receiver.last_data
            if last is not None:
                yield Evidence(last.frame, last.time, last.what + ", never acknowledged")
            return
        if receiver.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            for ep in (self.client, self.server):
                if ep.syn is not None:
                    yield ep.syn
        for ep in (sender, receiver):
            if ep.fin is not None:
                yield ep.fin
        if (
            receiver.state == TcpState.ESTABLISHED
            and sender.last_data is not None
            and not unanswered
        ):
            yield sender.last_data  # what the RST sender said last, before it reset
        last = receiver.last_data
        if last_acked and last is not None:
            tail = (
                f", acknowledged by {sender.role}: the end of {receiver.role}'s response"
                if response
                else f", acknowledged, never answered by {sender.role}"
            )
            yield Evidence(last.frame, last.time, last.what + tail)
        elif last is not None and (
            unanswered or receiver.state == TcpState.CLOSE_WAIT or receiver.after_peer_fin
        ):
            yield last
        yield from (sender.unanswered_probes or [])[-3:]
        closed = probed_window(receiver)
        if closed is not None:
            probes = receiver.closed_window_probes
            yield Evidence(
                closed.frame, closed.time, f"{closed.what}; {sender.role} probed it {probes} times"
            )

    # -- retirement -------------------------------------------------------------------------

    def retire(self, rst_log: RstLog, now: float) -> TrackedConnection:
        """Complete the pending facts and hand the connection on, at capture clock `now` (the
        capture's end, or when the table retired it earlier: as idle, or for room)."""
        events: list[FlowEvent] = []
        for pending in self.rsts:
            event = pending.event
            event.carried_on = pending.sender_spoke_after and pending.receiver_spoke_after
            event.receiver_data_after_rst = pending.receiver_data_after
            fin = pending.sender.fin
            if (
                pending.receiver_wrote_after_fin
                and fin is not None
                and not event.receiver_sent_after_fin
                and event.receiver_state == TcpState.CLOSE_WAIT.value
            ):
                # (Its writes after taking the FIN came after the RST: see _PendingRst.)
                event.receiver_sent_after_fin = True
                event.receiver_write_after_fin_seconds = round(
                    max(pending.receiver_wrote_after_fin - fin.time, 0.0), 6
                )
            if pending.receiver_data_after:
                # More of its writing came after the RST (queued before it arrived): no
                # one-segment closing message or reply, but a writer whose next send() fails.
                event.receiver_closing_write = event.receiver_late_reply = False
            if event.carried_on and event.rst_verdict == "accepted":
                event.rst_verdict = "carried_on"  # both ends kept talking: nobody acted on it
            if pending.receiver_closed_after and event.rst_verdict == "accepted":
                event.rst_verdict = "receiver_closed"  # nobody was told: see _PendingRst
            elif (
                pending.receiver_data_after
                and event.rst_verdict == "accepted"
                and pending.receiver_data_last - event.time > self._crossing_allowance()
                and not self._reset_until_it_stopped(pending)
            ):
                event.rst_verdict = "carried_on"  # it kept sending long after: not accepted
            if pending is self.accepted_rst and event.rst_has_ack:
                size, after_exchange = rst_log.burst(pending.sender_host, event.time)
                event.burst_size = max(1, size)
                event.burst_after_exchange = after_exchange
            if pending.recorded:
                rst_log.settled(event.time)
            events.append(event)
        for icmp_event, affected, retransmissions_before, syn_retries_before in self.icmp_events:
            icmp_event.retransmissions_after = affected.retransmissions - retransmissions_before
            icmp_event.syn_retries_after = affected.syn_retries - syn_retries_before
            if icmp_event.syn_retries_after:
                for repeat in affected.syn_repeats or ():  # (the SYNs sent after the error)
                    if repeat.time > icmp_event.time:
                        _add_evidence(icmp_event, repeat)
            icmp_event.recovered = (
                affected.last_progress_time is not None
                and affected.last_progress_time > icmp_event.time
            )
            icmp_event.affected_closed = affected.fin is not None
            events.append(icmp_event)
        silence = self._silence(now)
        if silence is not None:
            events.append(silence)
        close = self._close_event()
        if close is not None:
            events.append(close)
        events.sort(key=lambda e: (e.time, e.frame))
        zeek = self.zeek
        conn_state = history = ""
        if zeek is not None:
            conn_state = zeek.conn_state()
            history = zeek.history_text
        return TrackedConnection(
            self.ref,
            self.client,
            self.server,
            self.last_time,
            events,
            conn_state=conn_state,
            history=history,
            zeek_flipped=zeek is not None and zeek.flipped,
            zeek_rows=zeek.rows() if zeek is not None and zeek.removed else [],
        )

    def _reset_after_closing(self, side: Endpoint) -> bool:
        """SilenceEvent.peer_reset_after_closing: `side` sent, after its FIN, a RST from its
        usual host that was not accepted (the accepted one ends the connection)."""
        fin = side.fin
        return fin is not None and any(
            pending.sender is side
            and pending is not self.accepted_rst
            and pending.event.time >= fin.time
            and _from_usual_host(side, pending.event.rst_ttl)
            for pending in self.rsts
        )

    def _reset_until_it_stopped(self, pending: _PendingRst) -> bool:
        """Whether the receiver's data after this RST was answered only by further RSTs of its
        sender, and stopped within a crossing allowance of the last: on a long or lossy path
        the first RST was lost or overtaken by data in flight, and a later one ended the
        connection (the sender had none left), so it was no connection that carried on."""
        return (
            pending.sender_reset_again > 0.0
            and not pending.sender_spoke_after
            and pending.receiver_data_last - pending.sender_reset_again
            <= self._crossing_allowance()
        )

    def _silence(self, now: float) -> SilenceEvent | None:
        """A side left waiting on data (or a SYN) that was never acknowledged, retransmitted;
        `now`, the capture clock at retirement, tells whether it was still retrying."""
        rst = self.accepted_rst
        if rst is not None and not self._own_rst_ended_stall(rst):
            return None
        synack = self._unanswered_synack()
        if synack is not None:
            return synack
        candidates = [
            ep
            for ep in (self.client, self.server)
            if (ep.syn_retries >= MIN_STALL_RETRANSMISSIONS and self.peer(ep).isn is None)
            or (
                (
                    # (something still unacknowledged: a stall that was acknowledged is none)
                    (ep.stall_retransmissions >= MIN_STALL_RETRANSMISSIONS and ep.unacknowledged)
                    or (
                        ep.window_probe_count >= MIN_WINDOW_PROBES
                        and (rst is None or rst.sender is ep)
                    )
                )
                and not probing_closed_window(ep, self.peer(ep))
            )
        ]
        if not candidates:
            return None
        stalled = max(
            candidates,
            key=lambda ep: ep.stall_retransmissions + ep.syn_retries + ep.window_probe_count,
        )
        peer = self.peer(stalled)
        # (a connect() its own side's RST ended was in SYN-SENT until then; a sender that gave
        # up on its data, in the state its RST found it)
        if rst is None or stalled is not rst.sender:
            stalled_state = stalled.state
        else:
            stalled_state = TcpState(rst.event.sender_state)
        syn_unanswered = stalled_state == TcpState.SYN_SENT and peer.isn is None
        # (A reader that went away with its window closed: the stall is the probes it left
        # unanswered, not the answered ones before.)
        probed, probes = (0, []) if syn_unanswered else unanswered_probes(stalled, peer)
        if syn_unanswered:
            retransmissions = stalled.syn_retries
            start = stalled.syn.time if stalled.syn else self.first_time
            frames = [stalled.syn, *(stalled.syn_repeats or ())] if stalled.syn else []
            times = [e.time for e in frames]
            if len(frames) <= retransmissions:
                del times[:1]  # (older repeats dropped: see below)
        elif probes:
            retransmissions, frames = probed, probes
            start = frames[0].time
            times = [e.time for e in frames]
        else:
            retransmissions = stalled.stall_retransmissions
            frames = stalled.stall_evidence()
            start = stalled.stall_start or (frames[0].time if frames else 0.0)
            times = [e.time for e in frames]
            if len(frames) == retransmissions:
                times.insert(0, start)
        # (With older retransmissions dropped (STALL_KEPT, MAX_EVIDENCE), the time from the
        # first transmission to the first kept spans several backoffs: no gap to compare with.)
        gaps = [b - a for a, b in pairwise(times)]
        last = stalled.last_time
        quiet_after = max(now - last, 0.0)
        # (The peer is silent if it sent nothing since the stalled side began retrying: see
        # Endpoint.retrying_since; a SYN's, or a stall without a start, since `start`.)
        retrying = stalled.retrying_since
        if syn_unanswered or retrying is None or probes:
            retrying = start
        on_schedule = False
        if rst is not None and stalled is rst.sender and gaps and gaps[-1] > 0:
            delay = rst.event.time - times[-1]
            on_schedule = RESET_SCHEDULE_MIN <= delay / gaps[-1] <= RESET_SCHEDULE_MAX
        event = SilenceEvent(
            connection=self.ref,
            frame=frames[-1].frame if frames else self.first_frame,
            time=last,
            client_state=self.client.state.value,
            server_state=self.server.state.value,
            stalled=stalled.role,
            stalled_state=stalled_state.value,
            peer_state=peer.state.value,
            syn_unanswered=syn_unanswered,
            ended_by_reset=rst is not None,
            reset_on_schedule=on_schedule,
            stall_retransmissions=retransmissions,
            # (Nothing acknowledged in the capture at all: all it sent in it is unacknowledged.)
            stall_payload_bytes=(
                0
                if syn_unanswered
                else _in_flight(
                    stalled, stalled.data_start if stalled.snd_una is None else stalled.snd_una
                )
            ),
            stall_seconds=round(max(last - start, 0.0), 6),
            quiet_after_seconds=round(quiet_after, 3),
            retries_stopped=bool(gaps)
            and gaps[-1] > 0
            and quiet_after > RETRY_DUE_FACTOR * gaps[-1],
            backoff_growing=all(b >= a * 0.9 for a, b in pairwise(gaps)),
            mean_retry_gap_seconds=(
                round(max(frames[-1].time - start, 0.0) / retransmissions, 6)
                if frames and retransmissions
                else None
            ),
            peer_silent=peer.last_time <= retrying,
            peer_window_closed=peer.window_closed is not None,
            peer_reset_after_closing=self._reset_after_closing(peer),
            peer_never_took_handshake=_handshake_not_taken(peer, stalled),
            stall_segment_bytes=0 if syn_unanswered else stalled.stall_segment_len,
            large_never_acked=not syn_unanswered and _large_never_acked(stalled),
            idle_before_stall_seconds=(
                None
                if syn_unanswered or stalled.first_unacked_time is None
                else round(stalled.idle_before_unacked, 3)
            ),
            other_direction_missed=peer.packets == 0 and stalled.acks_advanced,
            unanswered_keepalives=len(stalled.unanswered_probes or []),
            icmp_errors=sum(e.icmp_count for e, _, _, _ in self.icmp_events),
            mptcp_join=_mptcp_join(self.client.syn_options),
            client_os=os_family(self.client.ttl),
            server_os=os_family(self.server.ttl),
            stalled_os=os_family(stalled.ttl),
        )
        if probes and peer.window_closed is not None:
            _add_evidence(event, peer.window_closed)  # (what the probes were probing)
        kept = frames[:2] + frames[-4:] if len(frames) > 6 else frames
        if len(kept) < len(frames):
            # (the first two and the last four: say that more came between, so that the
            # evidence does not look like all of them)
            third = kept[2]
            between = len(frames) - len(kept)
            kept[2] = third._replace(what=f"{third.what} ({between} more before it, not listed)")
        for item in kept:
            _add_evidence(event, item)
        if event.peer_never_took_handshake:
            for item in (peer.syn_repeats or [])[-2:]:
                _add_evidence(event, item)  # (the SYN-ACKs repeated after the handshake's ACK)
        if rst is not None:
            _add_evidence(event, rst.event.evidence[-1])  # (the RST itself)
        return event

    def _close_event(self) -> CloseEvent | None:
        """The server's FIN, sent first, with data of the client's taken and left unanswered or
        followed by the client's writes (see CloseEvent); none on a connection with any RST
        (the RST's event tells it) or where nothing was left to answer."""
        early = self.early_fin
        client, server = self.client, self.server
        fin = server.fin
        if early is None or fin is None or self.rsts:
            return None
        unanswered = early.unanswered
        after = client.after_peer_fin
        if not unanswered and after is None:
            return None
        allowance = self._crossing_allowance()
        after_fin = _after_fin(client, server, allowance)
        wait = None
        if unanswered:
            # (the client's last write before the FIN: it may have written after it too)
            wrote_before = after.wrote_before if after is not None else None
            last_write = client.last_data_time if wrote_before is None else wrote_before
            wait = round(max(fin.time - last_write, 0.0), 3)
        fin_after = None if client.fin is None else round(max(client.fin.time - fin.time, 0.0), 3)
        eof_from = max(fin.time, client.last_data_time) if after is not None else fin.time
        event = CloseEvent(
            connection=self.ref,
            frame=fin.frame,
            time=fin.time,
            client_state=early.client_state,
            server_state=early.server_state,
            closer="server",
            peer_unanswered_bytes=unanswered,
            request_wait_seconds=wait,
            request_may_be_goodbye=(
                wait is not None and unanswered <= GOODBYE_BYTES and wait <= allowance
            ),
            peer_one_way_stream=bool(unanswered)
            and (
                (not server.bytes_sent and unanswered > ONE_WAY_STREAM_BYTES)
                or (early.writes >= STREAM_WRITES and early.spread > allowance)
            ),
            closer_bytes_sent=server.bytes_sent,
            closer_replies=server.replies,
            handshake_seen=client.syn is not None and server.syn is not None,
            fin_taken=server.fin_acked or client.fin is not None,
            peer_fin_after_seconds=fin_after,
            peer_closed_on_eof=(
                early.fin_answered
                and client.fin is not None
                and client.fin.time - eof_from <= allowance
            ),
            peer_data_after_fin=after.bytes if after is not None else 0,
            peer_write_after_fin_seconds=after_fin.seconds,
            peer_new_request_after_fin=after_fin.new_request,
            peer_write_crossed_fin=after_fin.crossed,
            peer_earlier_data_answered=after_fin.earlier_answered,
            peer_idle_before_fin_seconds=after_fin.idle_before,
            mptcp_subflow=_mptcp_subflow(client.syn_options, server.syn_options),
            client_os=os_family(client.ttl),
            server_os=os_family(server.ttl),
        )
        last = client.last_data
        items: tuple[Evidence | None, ...]
        if after is None:  # (its last data is the request the FIN left unanswered)
            if last is not None:
                last = Evidence(
                    last.frame, last.time, last.what + ", acknowledged, never answered by server"
                )
            items = (last, fin, client.fin)
        else:  # (its last data was written after the FIN)
            items = (fin, last, client.fin)
        for item in items:
            if item is not None:
                _add_evidence(event, item)
        return event

    def _own_rst_ended_stall(self, rst: _PendingRst) -> bool:
        """Whether this accepted RST is the stalled side's own: sent in SYN-SENT to a peer that
        never answered any of its SYNs (retransmitted), its connect() gave up (some stacks, or
        a firewall on its host, send one then); or sent by a side whose data a silent peer
        never acknowledged, retransmitted (see RstEvent.sender_stall_retransmissions). The
        stall it ends is the finding."""
        sender = rst.sender
        if rst.event.sender_stall_retransmissions >= MIN_STALL_RETRANSMISSIONS:
            return True
        return (
            rst.event.sender_state == TcpState.SYN_SENT
            and sender.syn_retries >= MIN_STALL_RETRANSMISSIONS
            and rst.receiver.packets == 0
        )

    def _unanswered_synack(self) -> SilenceEvent | None:
        """The server retransmitted its SYN-ACK and the client never answered it, neither ACK
        nor RST: no socket on the client's host took the reply (a raw SYN scan whose host
        drops SYN-ACKs). The half-open entry expires before any accept()."""
        client, server = self.client, self.server
        if (
            server.state != TcpState.SYN_RECEIVED
            or server.syn is None
            or server.syn_retries < 1
            or client.syn is None
            or client.last_time > server.syn.time
            or client.state != TcpState.SYN_SENT
        ):
            return None
        event = SilenceEvent(
            connection=self.ref,
            frame=server.syn.frame,
            time=server.last_time,
            client_state=client.state.value,
            server_state=server.state.value,
            stalled="server",
            stalled_state=server.state.value,
            peer_state=client.state.value,
            synack_unanswered=True,
            stall_retransmissions=server.syn_retries,
            stall_seconds=round(max(server.last_time - server.syn.time, 0.0), 6),
            backoff_growing=True,
            peer_silent=True,
            mptcp_join=_mptcp_join(client.syn_options),
            client_os=os_family(client.ttl),
            server_os=os_family(server.ttl),
        )
        for item in (client.syn, server.syn, *(server.syn_repeats or ())[-4:]):
            _add_evidence(event, item)
        return event


class FlowTable:
    """All live connections of one capture, keyed by 4-tuple, in order of last activity."""

    def __init__(
        self,
        close_grace: float = CLOSE_GRACE_SECONDS,
        idle_retire: float = IDLE_RETIRE_SECONDS,
        *,
        zeek_split: bool = False,
        max_live: int = MAX_LIVE_CONNECTIONS,
        zeek: bool = True,
        max_held_syns: int = MAX_HELD_SYNS,
        batch_held_syns: bool = False,
    ) -> None:
        # Zeek's view (conn_state, history) costs a third of the tracking: only when wanted.
        self.zeek = zeek
        self.zeek_split = zeek_split  # split 4-tuple reuse exactly where Zeek does
        self.max_live = max_live
        self.max_attempts = min(MAX_LIVE_ATTEMPTS, max_live)
        self.awake_in_memory = AWAKE_IN_MEMORY
        self.max_held_syns = max_held_syns
        # Retire the bare SYNs held compactly together, as RetiredSyns (a flood's million at
        # the end of the capture at once), not one TrackedConnection each (eviction aside).
        self.batch_held_syns = batch_held_syns
        self.evicted = 0  # retired early: max_live connections or max_held_syns bare SYNs live
        # Of those, attempts that were nothing but a client's SYN (see _attempts).
        self.evicted_attempts = 0
        self.close_grace = close_grace
        self.idle_retire = idle_retire
        # Closed connections waiting out the close grace period at most (see _cut_grace).
        self.max_closed = MAX_CLOSED_WAITING
        # Every live connection, by last activity; idle ones as a _Spilled or _Replayable
        # stand-in, those a front end follows in bulk as a FollowedConnection.
        self._live: OrderedDict[
            Key, Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection
        ] = OrderedDict()
        # The live connections held in memory, by last activity: the head is next to spill.
        self._awake: OrderedDict[Key, Connection] = OrderedDict()
        # The live connections that are so far nothing but a client's SYN (and its
        # retransmissions), oldest attempt first: when the table is full, these are retired
        # first, as a kernel under a SYN flood drops half-open attempts before established
        # connections. A flood of spoofed SYNs then pushes out other SYNs, never the
        # connections whose analysis matters.
        self._attempts: OrderedDict[Key, None] = OrderedDict()
        # Bare IPv4 SYNs, held compactly outside `_live` until anything else happens to their
        # 4-tuple (see tcpdiag.attempts); the rest of the bare SYNs wait in `_live` as HeldSyn.
        self._held_syns = HeldSyns()
        # The numbers of the last 4-tuple looked up there: (key, src, dst, hash).
        self._numbered: tuple[Key, int, int, int] | None = None
        self._address_numbers: dict[str, int] = {}  # of recent IPv4 addresses
        self._spill = ConnectionSpill()
        self.spill_failed = ""  # why idle connections could not go to disk (then: in memory)
        # Closed connections waiting out the close grace period, in order of closing. A float
        # stands for a run of entries whose connections were retired early: the latest time
        # they closed at (see _compact_closing).
        self._closing: deque[Closing] = deque()
        self._closed_awake = 0  # Connection entries of the closing queue (in memory)
        # Entries of `_live` that are closed connections waiting out the close grace period:
        # they do not count toward max_live (see _make_room).
        self._closed_live = 0
        self._closing_dead = 0  # entries retired early since the queue was last compacted
        self._stand_ins: list[_ClosedElsewhere] = []  # retired stand-ins, for reuse
        self._rst_log = RstLog()
        self._retired_early: list[TrackedConnection | _Evicted] = []
        # Closed connections whose grace period was cut short (see _cut_grace), given out at the
        # next retirement check point.
        self._cut_short: list[TrackedConnection] = []
        self.grace_cut = 0  # closed connections retired so, counted
        # Bare SYNs evicted from the full compact store (with batch_held_syns), in order; the
        # first `_evicted_ready` of them are due out next (see _in_order).
        self._evicted = EvictedSyns()
        self._evicted_ready = 0
        self._next_id = 1
        # The capture clock: stepped here by `track`, or by the front end that calls `advance`.
        self.clock = CaptureClock()
        self._now = float("-inf")
        self.connections_seen = 0
        # ICMP errors quoting a TCP connection the table does not hold, by their source.
        self.orphan_icmp = 0
        self.orphan_icmp_sources: Counter[str] = Counter()

    def track(self, packets: Iterable[Packet]) -> Iterator[Retired]:
        """Feed packets in capture order; yields connections as they are retired, then the rest."""
        step = self.clock.step
        for count, packet in enumerate(packets):
            self._now = step(packet.time)
            self.feed(packet)
            if count % RETIRE_CHECK_EVERY == 0 or self._retired_early:
                yield from self._retire_due()
        yield from self.flush()

    # The steps of `track`, for a front end that hands over only some packets (tcpdiag.fastpath):
    # it must call them exactly as `track` would have for the whole capture.

    def feed(self, packet: Packet) -> None:
        if isinstance(packet, TcpSegment):
            self._on_segment(packet)
        else:
            self._on_icmp(packet)

    def advance(self, now: float) -> None:
        """The capture clock (tcpdiag.clock) after the next packet."""
        if now > self._now:
            self._now = now

    def retire_due(self, check: bool) -> Iterable[Retired]:
        """After a packet: retire what is due if this is a check point or something is waiting.
        (Not a generator itself: after most packets there is nothing to do, and making a
        generator per packet would cost more than that.)"""
        if check or self._retired_early:
            return self._retire_due()
        return ()

    @property
    def spill_bytes(self) -> int:
        """Bytes of the idle-connection spill file (see ConnectionSpill)."""
        return self._spill.size

    def live_keys(self) -> Iterator[Key]:
        return iter(self._live)

    @property
    def live_count(self) -> int:
        """Live connections but the bare SYNs held compactly (see held_syns)."""
        return len(self._live)

    @property
    def open_count(self) -> int:
        """Live connections but the bare SYNs held compactly and the closed ones waiting out
        the close grace period: what max_live bounds (see _make_room)."""
        return len(self._live) - self._closed_live

    @property
    def attempt_count(self) -> int:
        """Live connections that are so far nothing but a client's SYN: what max_attempts
        bounds (see _make_room)."""
        return len(self._attempts)

    def room_needed(self, joining: int) -> bool:
        """Whether `joining` more connections, attempts or not, could make the table retire
        one early (see _make_room)."""
        return (
            self.open_count + joining > self.max_live
            or len(self._attempts) + joining > self.max_attempts
        )

    @property
    def held_syns(self) -> int:
        return len(self._held_syns)

    def syn_options_index(self, options: SynOptions | None) -> int | None:
        """How the compact store names this set of SYN options (None: it has no room for
        another set; such SYNs wait in `_live`)."""
        return self._held_syns.options_index(options)

    def hold_syns(self, rows: dict[str, npt.NDArray[Any]], since_frame: int) -> None:
        """Bare SYNs a front end found in bulk (tcpdiag.fastpath) among the packets from frame
        `since_frame` on, with their connection ids taken already (skip_connections): held
        compactly exactly as _hold_syn would have, the front end having checked the same
        conditions, and that no lookup in between could have found them and that the store has
        room for them. `rows` is emptied (each column freed once held)."""
        self._held_syns.extend(rows, since_frame)

    def hold_syns_evicting(self, rows: dict[str, npt.NDArray[Any]]) -> None:
        """hold_syns for bare SYNs that fill the store (fewer than it holds), each of the first
        ones that find it full evicting the entry held longest, as _hold_syn does one by one:
        the oldest entries are evicted, in order, then these are held. The front end checked
        that nothing else happens between these SYNs, and that no retiring could do anything
        before the last of them (quiet_until)."""
        held = self._held_syns
        overflow = len(held) + len(rows["conn_id"]) - self.max_held_syns
        if overflow > 0:
            held.evict(overflow, self._evicted)
            self._retired_early.extend([_EVICTED] * overflow)
            self.evicted += overflow
            self.evicted_attempts += overflow
        held.extend(rows, int(rows["frame"][0]))

    def quiet_until(self) -> float:
        """The capture clock before which retiring (_retire_due) can do nothing but give out
        what retired early: nothing in the closing queue, no idle connection, no bare SYN held
        and no connection to spill to disk comes due sooner."""
        due = float("inf")
        if self._closing:
            head = self._closing[0]
            if isinstance(head, float):
                due = head + self.close_grace
            elif head.closed_at is not None:
                due = head.closed_at + self.close_grace
        if self._live:
            due = min(due, next(iter(self._live.values())).last_time + self.idle_retire)
        if (oldest := self._held_syns.oldest()) is not None:
            due = min(due, oldest[1] + self.idle_retire)
        if self._awake:
            due = min(due, next(iter(self._awake.values())).last_time + IDLE_SPILL_SECONDS)
        return due

    def holds_syn_keys(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Which of these keys (tcpdiag.attempts.endpoints_hash) a bare SYN held compactly
        has (a collision may say yes for another 4-tuple)."""
        return self._held_syns.holds_keys(keys)

    def in_order_connection(
        self, src: str, sport: int, dst: str, dport: int, tunnel: str
    ) -> tuple[Key, Connection] | None:
        """The live connection of this 4-tuple (and its key) if it is in memory and its next
        segments could take the in-order path (Connection.in_order_start); nothing is woken
        or moved."""
        key = self._key(src, sport, dst, dport, tunnel)
        conn = self._live.get(key)
        if type(conn) is not Connection or conn.in_order_start() is None:
            return None
        return key, conn

    def untracked_key(self, src: str, sport: int, dst: str, dport: int, tunnel: str) -> Key | None:
        """The key of this 4-tuple if the table holds nothing of it (no connection, closed or
        not, and no bare SYN), else None."""
        key = self._key(src, sport, dst, dport, tunnel)
        if key in self._live:
            return None
        if self._held_syns and not key[4] and ":" not in key[0]:
            source, destination, hashed = self._numbers(key)
            if self._held_syns.find(hashed, source, key[1], destination, key[3]) >= 0:
                return None
        return key

    def in_order_start(self, key: Key) -> tuple[int, int, bool, bool] | None:
        """Connection.in_order_start of the live connection of this key, if it is in memory."""
        conn = self._live.get(key)
        return conn.in_order_start() if type(conn) is Connection else None

    def oldest_activity(self) -> float:
        """The earliest last-packet time of the live connections (inf if none): none can be
        retired as idle before the clock is `idle_retire` past it."""
        return min((held.last_time for held in self._live.values()), default=float("inf"))

    def continue_in_order(self, key: Key, run: InOrderRun) -> None:
        """Segments of the live connection of this 4-tuple that each take the in-order path
        (a front end checked it: see Connection.in_order_start), fed at the position of the
        last of them. The table does for them what _on_segment would: the connection is
        woken and becomes the most recently active."""
        conn = self._wake(key)
        assert conn is not None
        self._attempts.pop(key, None)  # (an established connection is no attempt anyway)
        self._live.move_to_end(key)
        self._awake[key] = conn
        self._awake.move_to_end(key)
        conn.history = None  # (its segments here are not kept)
        conn.continue_in_order(run)

    def attempt_ended(self, segments: list[TcpSegment], nows: list[float], conn_id: int) -> None:
        """A connection that ended at once, fed at its last segment: a client's bare SYN,
        which took `conn_id` at its place (skip_connections), then the rest of it up to the RST
        that ended it (the RST that answered the SYN; the SYN-ACK and the client's RST; a
        handshake, a little data and a RST), each but the last with the capture clock it came
        at (`nows`). The table held nothing of their 4-tuple before, nothing else of it came in
        between, and nothing but the last could close it or start another connection (a front
        end checked it: see tcpdiag.fastpath._ended_attempts). The connection is what
        _on_segment would have made of them, the SYN held until the next came (see _held),
        and waits out the close grace period as any."""
        syn, last = segments[0], segments[-1]
        key = self._key(last.src, last.sport, last.dst, last.dport, last.tunnel)
        self._make_room()
        if len(segments) == 2 and self._refused(
            key, syn, nows[0], last, max(self._now, last.time), conn_id
        ):
            return
        conn = self._connection(syn, conn_id)
        self._live[key] = self._awake[key] = conn
        # Its history is kept, as _on_segment keeps it, only if it will sleep once it closes
        # (see _queue_closed): most go to the closing queue in memory, which drops it.
        history: bytes | None = b"" if self._closed_awake >= CLOSED_IN_MEMORY else None
        for seg, now in zip(segments, [*nows, max(self._now, last.time)], strict=True):
            if history is not None:
                history = _recorded(history, seg, now, conn.client.addr, conn.client.port)
            conn.on_segment(seg, self._rst_log, now)
        conn.history = history
        if conn.closed_at is not None:
            self._queue_closed(key, conn)

    def skip_connections(self, count: int) -> int:
        """`count` connections were tracked elsewhere: they take their ids (the first is
        returned) and are counted."""
        first = self._next_id
        self._next_id += count
        self.connections_seen += count
        return first

    def closed_elsewhere(self, closed_at: float, last_time: float) -> None:
        """A connection tracked elsewhere closed now. It takes its place in the closing queue,
        so that the connections behind it are retired exactly when they would have been."""
        # Stand-ins are recycled: hundreds of thousands of short-lived small objects would
        # scatter across the allocator's pools and keep them from being freed.
        if self._stand_ins:
            stand_in = self._stand_ins.pop()
            stand_in.closed_at, stand_in.last_time = closed_at, last_time
        else:
            stand_in = _ClosedElsewhere(closed_at, last_time)
        self._wait_closed(stand_in)

    @staticmethod
    def key_of(src: str, sport: int, dst: str, dport: int, tunnel: str) -> Key:
        """The table's key of a 4-tuple (either way round) in a tunnel context."""
        return FlowTable._key(src, sport, dst, dport, tunnel)

    def follow(self, followed: FollowedConnection) -> None:
        """A connection a front end follows in bulk (see FollowedConnection) joins the live
        ones now, as the most recently active; its 4-tuple must not be live."""
        assert followed.key not in self._live
        self._live[followed.key] = followed

    def followed_active(self, followed: FollowedConnection, last_time: float) -> None:
        """A followed connection had segments, the last of them now: it becomes the most
        recently active, as _on_segment would have made it."""
        assert self._live.get(followed.key) is followed
        followed.last_time = last_time
        self._live.move_to_end(followed.key)

    def followed_done(self, followed: FollowedConnection) -> None:
        """A followed connection has nothing left that the table would do anything with: it
        closed (see closed_elsewhere, which the caller calls too) or the capture ended with it
        clean. It leaves the live ones without being retired, as a connection tracked
        elsewhere would."""
        if self._live.get(followed.key) is followed:
            del self._live[followed.key]
            followed.history = None
            if followed.closed_at is not None:
                self._closed_live -= 1

    def followed_closed(
        self, followed: FollowedConnection, closed_at: float, last_time: float
    ) -> None:
        """A followed connection closed cleanly now (its last segment): it waits out the close
        grace period in the closing queue as a Connection would, then leaves the table
        unretired, unless a late segment (or anything else) has it replayed before."""
        self.followed_active(followed, last_time)
        followed.closed_at = closed_at
        self._closed_live += 1
        self._wait_closed(followed)

    def flush(self) -> Iterator[Retired]:
        """End of capture: retire everything still live."""
        yield from self._in_order(self._flush())
        if self._evicted_ready:
            yield self._evicted_syns()

    def _flush(self) -> Iterator[Retired | _Evicted]:
        yield from self._retired_early
        self._retired_early.clear()
        yield from self._cut_short
        self._cut_short.clear()
        while self._live:
            key, held = self._live.popitem(last=False)
            self._awake.pop(key, None)
            if type(held) is HeldSyn:
                yield self._retire_attempt(held)
            else:
                yield self._retire_held(held)
        while self.batch_held_syns and (columns := self._held_syns.take_columns()) is not None:
            yield RetiredSyns(columns, self.zeek)
        for held_syn in self._held_syns.drain():
            yield self._retire_attempt(held_syn)
        self._attempts.clear()
        self._closing.clear()
        self._closed_awake = self._closing_dead = self._closed_live = 0
        self._spill.close()

    @staticmethod
    def _key(src: str, sport: int, dst: str, dport: int, tunnel: str) -> Key:
        # encap: the tunnel context ("" outside tunnels) is part of the key, so two tenants
        # with the same inner 4-tuple in different tunnels are two connections.
        if (src, sport) <= (dst, dport):
            return (src, sport, dst, dport, tunnel)
        return (dst, dport, src, sport, tunnel)

    def lookup(
        self, src: str, sport: int, dst: str, dport: int, tunnel: str = ""
    ) -> Connection | None:
        """The live connection of this 4-tuple (and tunnel), to read its state (tcpdiag show)."""
        return self._wake(self._key(src, sport, dst, dport, tunnel))

    def _on_segment(self, seg: TcpSegment) -> None:
        key = self._key(seg.src, seg.sport, seg.dst, seg.dport, seg.tunnel)
        held = self._entry(key)
        starts_new = seg.flags & SYN and not seg.flags & (RST | ACK)
        if (
            held is not None
            and starts_new
            and type(held) is not HeldSyn
            and getattr(held, "closed_at", None) is None
            and seg.time - held.last_time >= self.idle_retire
        ):
            # A new SYN on a 4-tuple whose connection went quiet for longer than idle_retire:
            # that one is over (the table retires it at its next check point, but those come
            # every RETIRE_CHECK_EVERY packets, and after hours of silence the capture clock
            # believes the jump only CONFIRM frames later: tcpdiag.clock), and this SYN starts
            # a new one, as it would after that retirement. Judged by the SYN's own time.
            self._retired_early.append(self._retire_idle(key, held))
            held = None
        if (
            type(held) is HeldSyn
            and seg.flags == RST | ACK
            and self._refused(key, held.syn, held.now, seg, max(self._now, seg.time), held.conn_id)
        ):
            self._attempts.pop(key, None)  # (as any segment but the SYN again ends one)
            self._live.move_to_end(key)
            return
        conn = self._woken(key, held)
        if conn is not None and starts_new and conn.accepts_new_syn(seg, self.zeek_split):
            self._retire_now(key, conn)
            conn = None
        if conn is None:
            if starts_new:
                # A bare SYN waits as a small stand-in until anything else happens to it.
                if self._hold_syn(key, seg):
                    return
                self._make_room()
                self._live[key] = HeldSyn(self._take_id(), seg, max(self._now, seg.time))
                self._attempts[key] = None
                return
            conn = self._new_connection(key, seg)
            if starts_new:
                self._attempts[key] = None
        else:
            if key in self._attempts:
                if (seg.flags & (SYN | ACK | RST | FIN)) == SYN and seg.seq == conn.client.isn:
                    self._attempts.move_to_end(key)  # the client retrying: not a spoofed SYN
                else:
                    del self._attempts[key]
            self._live.move_to_end(key)
            self._awake[key] = conn  # (a closed connection may have left _awake)
            self._awake.move_to_end(key)
        was_closed = conn.closed_at is not None
        now = max(self._now, seg.time)
        if conn.history is not None:
            conn.history = _recorded(conn.history, seg, now, conn.client.addr, conn.client.port)
        conn.on_segment(seg, self._rst_log, now)
        if not was_closed and conn.closed_at is not None:
            self._queue_closed(key, conn)

    def _numbers(self, key: Key) -> tuple[int, int, int]:
        """An IPv4 4-tuple's addresses as numbers, and its key in the held SYNs."""
        numbered = self._numbered
        if numbered is not None and numbered[0] is key:
            return numbered[1], numbered[2], numbered[3]
        numbers = self._address_numbers
        src, dst = ipv4_number(numbers, key[0]), ipv4_number(numbers, key[2])
        hashed = endpoints_hash(src, key[1], dst, key[3])
        self._numbered = (key, src, dst, hashed)
        return src, dst, hashed

    def _hold_syn(self, key: Key, seg: TcpSegment) -> bool:
        """Hold a bare SYN that starts a connection compactly, if it can be (see
        tcpdiag.attempts); False: it waits in `_live` as a HeldSyn."""
        if key[4] or seg.ip_version != 4 or seg.flags & FIN or seg.payload_len:
            return False
        now = max(self._now, seg.time)
        if now - seg.time >= INACTIVITY_SECONDS:  # (see _retire_attempt)
            return False
        held = self._held_syns
        options = held.options_index(seg.syn_options)
        if options is None:
            return False
        numbers = self._numbers(key)
        if held.holds_key(numbers[2]):
            return False  # another 4-tuple with the same hash is held
        if len(held) >= self.max_held_syns:
            if self.batch_held_syns:
                # (its place among what retires early is kept; see _in_order)
                held.evict_oldest(self._evicted)
                self._retired_early.append(_EVICTED)
            else:
                oldest = held.oldest()
                assert oldest is not None
                self._retired_early.append(self._retire_attempt(held.take(oldest[0])))
            self.evicted += 1
            self.evicted_attempts += 1
        # (the key orders the endpoints, the SYN may go either way)
        src, dst = (numbers[0], numbers[1]) if seg.src == key[0] else (numbers[1], numbers[0])
        held.add(numbers[2], seg, src, dst, options, self._take_id(), now)
        return True

    def _take_id(self) -> int:
        conn_id = self._next_id
        self._next_id += 1
        self.connections_seen += 1
        return conn_id

    def _new_connection(self, key: Key, seg: TcpSegment) -> Connection:
        conn = self._connection(seg, self._take_id())
        conn.history = b""  # (its first segment is recorded as it is fed: see _on_segment)
        self._make_room()
        self._live[key] = self._awake[key] = conn
        return conn

    def _connection(self, seg: TcpSegment, conn_id: int) -> Connection:
        """A new connection whose first packet is `seg` (not fed to it yet)."""
        src = Endpoint(seg.src, seg.sport)
        dst = Endpoint(seg.dst, seg.dport)
        syn, ack = seg.flags & SYN, seg.flags & ACK
        if syn and not ack:
            client, server, known = src, dst, True
        elif syn and ack:
            client, server, known = dst, src, True  # the SYN-ACK names the server
        else:
            client, server = _guess_roles(src, dst)
            known = False
        return Connection(
            conn_id,
            client,
            server,
            initiator_known=known,
            ip_version=seg.ip_version,
            first_frame=seg.frame,
            first_time=seg.time,
            zeek=ZeekTimeline(seg) if self.zeek else None,
            tunnel=seg.tunnel,
        )

    def _make_room(self) -> None:
        """Before a connection joins a full table: retire one early. Closed connections
        waiting out the close grace period do not fill it (small, most of them asleep: a storm
        of refusals holds hundreds of thousands at once; see MAX_CLOSED_WAITING) and are
        never retired for room: the least recently active open connection is, and the closed
        ones found less recently active than it move behind the others (the order of activity
        only picks whom to evict, and they leave with their grace period)."""
        if not self.room_needed(1):
            return
        self.evicted += 1
        # Retire the oldest bare SYN, else the least recently active open connection, now, with
        # what it has so far.
        if self._attempts:
            oldest = next(iter(self._attempts))
            self.evicted_attempts += 1
            held = self._live[oldest]
            if type(held) is HeldSyn:
                # The common case of a flood: a lone SYN, retired without a Connection.
                del self._live[oldest], self._attempts[oldest]
                self._retired_early.append(self._retire_attempt(held))
                return
        else:
            live = self._live
            for _ in range(len(live)):  # (an open one is there: at least max_live are open)
                oldest, held = next(iter(live.items()))
                if getattr(held, "closed_at", None) is None:
                    break
                live.move_to_end(oldest)
        conn_out = self._wake(oldest)
        assert conn_out is not None
        self._retire_now(oldest, conn_out)

    def _on_icmp(self, icmp: IcmpError) -> None:
        quoted = icmp.quoted
        if quoted is None:
            return
        key = self._key(quoted.src, quoted.sport, quoted.dst, quoted.dport, icmp.tunnel)
        conn = self._wake(key)
        if conn is None and _quotes_an_attempt(icmp, quoted):
            self._attempt_rejected(key, icmp, quoted)
            return
        if conn is None:
            self.orphan_icmp += 1
            sources = self.orphan_icmp_sources
            if icmp.src in sources or len(sources) < ORPHAN_ICMP_SOURCES:
                sources[icmp.src] += 1
            return
        self._attempts.pop(key, None)  # an attempt the network answered: worth keeping
        conn.history = None  # (what follows changes it: its segments no longer make it)
        if conn.on_icmp(icmp, quoted):
            self._queue_closed(key, conn)

    def _attempt_rejected(self, key: Key, icmp: IcmpError, quoted: QuotedTcp) -> None:
        """The connection attempt of a SYN that the capture holds only as an ICMP error's quote
        (see _quotes_an_attempt; a firewall on its own host rejected it before it reached the
        wire), with that error: it joins the table as the connection would whose SYN had been
        captured with the error (_quoted_attempt)."""
        conn_id = self._take_id()
        self._make_room()
        self._attempts.pop(key, None)
        if self._closed_awake >= CLOSED_IN_MEMORY and icmp_kind(icmp)[0] not in PMTU_KINDS:
            # The error ends the attempt (Connection.on_icmp), which would then sleep at once
            # on disk (see _queue_closed): it sleeps as the error instead, made into its
            # Connection when it retires or a late segment wakes it (_replay). A storm of them
            # (a host firewall rejecting every connect()) then makes each Connection once and
            # pickles none.
            client_first = key[0] == quoted.src and key[1] == quoted.sport
            asleep = _Replayable(b"", key, client_first, icmp.time, icmp.time, conn_id, icmp)
            self._closed_live += 1
            self._wait_asleep(key, asleep)
            return
        conn = self._live[key] = self._awake[key] = self._quoted_attempt(icmp, conn_id)
        if conn.closed_at is not None:  # (a PMTU message leaves the attempt open)
            self._queue_closed(key, conn)

    def _quoted_attempt(self, icmp: IcmpError, conn_id: int) -> Connection:
        """The connection _attempt_rejected makes of an ICMP error quoting a SYN not on the
        wire: the quoted SYN as if it had been captured with the error, then the error. It
        depends on nothing else (the capture clock only moves Zeek's timers, and Zeek makes no
        connection of it), so a sleeping one is made again from the error (_replay)."""
        quoted = icmp.quoted
        assert quoted is not None
        syn = TcpSegment(
            icmp.frame,
            icmp.time,
            quoted.src,
            quoted.dst,
            quoted.sport,
            quoted.dport,
            quoted.seq,
            0,
            SYN,
            0,
            0,
            icmp.ttl,  # (the error's: made on the SYN sender's host, whose firewall rejected it)
            icmp.ip_version,
            tunnel=icmp.tunnel,
        )
        conn = self._connection(syn, conn_id)
        conn.zeek = None  # (Zeek, as Wireshark, makes no TCP connection of an ICMP error)
        conn.on_segment(syn, self._rst_log, icmp.time)
        conn.client.syn = Evidence(icmp.frame, icmp.time, QUOTED_SYN_TEXT)
        conn.client.packets = 0  # none of its packets is on the wire
        conn.on_icmp(icmp, quoted)
        return conn

    def _queue_closed(self, key: Key, conn: Connection) -> None:
        """A connection just closed: it waits out the close grace period in the closing queue;
        asleep if many closed ones wait in memory already (see CLOSED_IN_MEMORY): as its few
        segments (_Replayable), else on disk. A late segment wakes it as it would an idle one;
        _retire_due then takes it as if it had never left memory."""
        self._closed_live += 1
        asleep: _Spilled | _Replayable
        if self._closed_awake >= CLOSED_IN_MEMORY and conn.history is not None:
            asleep = _Replayable.of(conn, key)
        elif self._closed_awake < CLOSED_IN_MEMORY or self.spill_failed:
            conn.history = None  # (it stays as it is: no need to make it again)
            self._closed_awake += 1
            self._wait_closed(conn)
            return
        else:
            try:
                asleep = self._spill.store(conn)
            except OSError as exc:  # a full temporary directory: keep them in memory
                self.spill_failed = f"closed connections kept in memory: {exc.strerror or exc}"
                self._closed_awake += 1
                self._wait_closed(conn)
                return
            asleep.key, asleep.conn_id, asleep.closed_at = key, conn.conn_id, conn.closed_at
        self._wait_asleep(key, asleep)

    def _plainly_refused(
        self, syn: TcpSegment, syn_now: float, rst: TcpSegment, rst_now: float
    ) -> bool:
        """Whether refused_connection makes this pair's connection (see _refused)."""
        return plain_refusal(syn, rst) and (not self.zeek or zeek_rejected(syn, syn_now, rst_now))

    def _refused(
        self,
        key: Key,
        syn: TcpSegment,
        syn_now: float,
        rst: TcpSegment,
        rst_now: float,
        conn_id: int,
    ) -> bool:
        """If these two segments of this 4-tuple, its SYN taken at the capture clock
        `syn_now` and its RST at `rst_now`, are a plain refusal that refused_connection makes
        (_plainly_refused): it waits out the close grace period as the _Replayable its
        Connection would sleep as (see _queue_closed), without being made (a late segment
        replays it; if none comes, refused_connection retires it). False (nothing done)
        otherwise, or if a value does not fit the packing of its segments."""
        if not self._plainly_refused(syn, syn_now, rst, rst_now):
            return False
        history = _recorded(b"", syn, syn_now, syn.src, syn.sport)
        if history is not None:
            history = _recorded(history, rst, rst_now, syn.src, syn.sport)
        if history is None:
            return False
        client_first = key[0] == syn.src and key[1] == syn.sport
        asleep = _Replayable(history, key, client_first, max(syn.time, rst.time), rst.time, conn_id)
        self._closed_live += 1
        self._wait_asleep(key, asleep)
        return True

    def _wait_asleep(self, key: Key, asleep: _Spilled | _Replayable) -> None:
        """A closed connection waits out the close grace period asleep: its stand-in in the
        live table (not among the awake ones) and in the closing queue."""
        self._live[key] = asleep
        self._awake.pop(key, None)
        self._wait_closed(asleep)

    def _wait_closed(self, entry: Closing) -> None:
        """A connection just closed joins the tail of the closing queue; beyond max_closed
        entries, the grace period of those at its head is cut short (see _cut_grace)."""
        self._closing.append(entry)
        if len(self._closing) > self.max_closed:
            self._cut_grace()

    def _retire_idle(
        self, key: Key, held: Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection
    ) -> TrackedConnection:
        """The live entry of this 4-tuple leaves the table: idle for idle_retire."""
        if getattr(held, "closed_at", None) is not None:
            self._closed_live -= 1
        del self._live[key]
        self._awake.pop(key, None)
        self._attempts.pop(key, None)
        if type(held) is HeldSyn:
            return self._retire_attempt(held)
        return self._retire_held(held)

    def _retire_now(self, key: Key, conn: Connection) -> None:
        del self._live[key]
        self._awake.pop(key, None)
        self._attempts.pop(key, None)
        self._retired_early.append(conn.retire(self._rst_log, self._now))
        if conn.closed_at is not None:
            self._closed_live -= 1
            # It is still in the closing queue, which cannot drop it from the middle: leave a
            # shell there (the queue skips it), so that its memory is freed now (4-tuples used
            # again and again within the grace period would hold one connection each).
            conn.client = conn.server = _RETIRED
            conn.rsts, conn.icmp_events, conn.accepted_rst, conn.zeek = [], [], None, None
            self._closing_dead += 1
            if self._closing_dead >= max(CLOSING_COMPACT_MIN, len(self._closing) // 2):
                self._compact_closing()

    def _compact_closing(self) -> None:
        """Rid the closing queue of the entries of connections retired early.

        A flood of refusals answered faster than the close grace period with a full table
        evicts closed connections long before their entries reach the head of the queue; kept
        there as shells, they would hold memory in proportion to the rate, not to the live
        connections. A run of such entries becomes one float, the latest time they closed at:
        the queue is read from its head only while the head is due, and the capture clock never
        goes back, so the entries behind the run are reached exactly when they would have been
        (the run's last entry due), and everything retires at the same packet as before."""
        compacted: deque[Closing] = deque()
        run: float | None = None  # the latest close of the current run of dead entries
        for entry in self._closing:
            if isinstance(entry, float):
                closed_at = entry
            elif self._retired_entry(entry):
                assert entry.closed_at is not None
                closed_at = entry.closed_at
                if type(entry) is Connection:
                    self._closed_awake -= 1
            else:
                if run is not None:
                    compacted.append(run)
                    run = None
                compacted.append(entry)
                continue
            run = closed_at if run is None else max(run, closed_at)
        if run is not None:
            compacted.append(run)
        self._closing = compacted
        self._closing_dead = 0

    def _retired_entry(
        self, entry: Connection | _ClosedElsewhere | _Spilled | _Replayable | FollowedConnection
    ) -> bool:
        """Whether this entry of the closing queue is of a connection already retired early
        (evicted, or its 4-tuple reused): _retire_due skips it when it reaches the head, and
        _compact_closing folds it before."""
        if isinstance(entry, _ClosedElsewhere):
            return False
        if isinstance(entry, (_Spilled, _Replayable, FollowedConnection)):
            # Still the stand-in (asleep, or followed), or woken or replayed by a late
            # segment: its Connection then has its id.
            assert entry.key is not None
            held = self._live.get(entry.key)
            if held is entry:
                return False
            return type(held) is not Connection or held.conn_id != entry.conn_id
        if entry.client is _RETIRED:
            return True
        key = self._key(
            entry.client.addr, entry.client.port, entry.server.addr, entry.server.port,
            entry.tunnel,
        )  # fmt: skip
        return self._live.get(key) is not entry

    def _wake(self, key: Key) -> Connection | None:
        """The live connection of this 4-tuple, brought back from disk if it was idle there
        (its place in the activity order is unchanged: the caller moves it if it is active), or
        made from its bare SYN if that was held compactly (it joins the live ones as the most
        recently active)."""
        return self._woken(key, self._entry(key))

    def _woken(
        self,
        key: Key,
        held: Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection | None,
    ) -> Connection | None:
        """The Connection of this 4-tuple's live entry `held` (see _entry), made and put in
        its place if the entry is a stand-in."""
        if held is None or type(held) is Connection:
            return held
        conn = self._live[key] = self._held(held)
        self._awake[key] = conn
        return conn

    def _entry(
        self, key: Key
    ) -> Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection | None:
        """The live table's entry of this 4-tuple, its bare SYN taken out of the compact store
        if it was held there (see _wake)."""
        held = self._live.get(key)
        if held is None:
            if not self._held_syns or key[4] or ":" in key[0]:
                return None
            src, dst, hashed = self._numbers(key)
            at = self._held_syns.find(hashed, src, key[1], dst, key[3])
            if at < 0:
                return None
            held = self._held_syns.take(at, {src: key[0], dst: key[2]}, hashed)
            self._make_room()
            self._live[key] = held
            self._attempts[key] = None
        return held

    def _retire_held(
        self, held: Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection
    ) -> TrackedConnection:
        """The retired connection behind an entry of the live table that leaves it now; a
        plain refusal asleep is made at once (refused_connection), not replayed."""
        if type(held) is _Replayable and len(held.history) == _REFUSAL_PACKED:
            (syn, syn_now), (rst, rst_now) = held.segments()
            if self._plainly_refused(syn, syn_now, rst, rst_now):
                return refused_connection(syn, rst, held.conn_id, self._rst_log, self.zeek)
        return self._held(held).retire(self._rst_log, self._now)

    def _held(
        self, held: Connection | _Spilled | _Replayable | HeldSyn | FollowedConnection
    ) -> Connection:
        """The connection behind an entry of the live table."""
        if isinstance(held, FollowedConnection):
            return self._replayed(held)
        if isinstance(held, HeldSyn):
            # Exactly the connection that its SYN would have made (with the capture clock it
            # came at, for Zeek's timers).
            conn = self._connection(held.syn, held.conn_id)
            conn.history = _recorded(b"", held.syn, held.now, held.syn.src, held.syn.sport)
            conn.on_segment(held.syn, self._rst_log, held.now)
            return conn
        if isinstance(held, _Replayable):
            return self._replay(held)
        return self._spill.restore(held)

    def _replay(self, asleep: _Replayable) -> Connection:
        """The connection a _Replayable stands for: its segments fed again, as _on_segment
        fed them (what the RSTs among them told the RST log was told when they came: see
        _ReplayLog), or, for an attempt that an ICMP error rejected, made of that error again."""
        if asleep.rejected is not None:
            return self._quoted_attempt(asleep.rejected, asleep.conn_id)
        conn = self._made_of(asleep, asleep.conn_id, _REPLAY_LOG)
        conn.history = asleep.history
        return conn

    def _replayed(self, followed: FollowedConnection) -> Connection:
        """The Connection a followed one's segments make, fed one by one with the capture
        clock each came at (as _on_segment feeds them: its first makes it, as the held SYN
        of a handshake would have)."""
        history = followed.history
        assert history is not None  # (replayed once: the table then holds the Connection)
        followed.history = None
        return self._made_of(history, followed.conn_id, self._rst_log)

    def _made_of(self, history: SegmentHistory, conn_id: int, rst_log: RstLog) -> Connection:
        """A new Connection fed a history's segments one by one, each with the capture clock
        it came at (its first makes it, as the held SYN of a handshake would have)."""
        conn: Connection | None = None
        for seg, now in history.segments():
            if conn is None:
                conn = self._connection(seg, conn_id)
            conn.on_segment(seg, rst_log, max(now, seg.time))
        assert conn is not None
        return conn

    def _retire_attempt(self, attempt: HeldSyn) -> TrackedConnection:
        """What `self._held(attempt).retire(...)` gives, built directly: under a SYN flood
        most connections retire this way, and a Connection with its SYN tracked costs several
        times more. Only for the plain SYN (no payload, no FIN); anything else takes the tracker.
        tests/test_bounds.py compares both ways field by field."""
        syn = attempt.syn
        flags = syn.flags
        if flags & FIN or syn.payload_len or attempt.now - syn.time >= INACTIVITY_SECONDS:
            # (The last: a SYN stamped long before the capture clock, whose Zeek inactivity
            # timer fires at once.)
            return self._held(attempt).retire(self._rst_log, self._now)
        return lone_syn_connection(attempt, self.zeek)

    def _spill_idle(self, now: float) -> None:
        awake = self._awake
        while awake:
            key, conn = next(iter(awake.items()))
            if now - conn.last_time < IDLE_SPILL_SECONDS and len(awake) <= self.awake_in_memory:
                break
            del awake[key]
            if conn.closed_at is not None:
                continue  # (closed ones are in the closing queue, by identity)
            if conn.history is not None:
                self._live[key] = _Replayable.of(conn, key)
            elif not self.spill_failed:
                try:
                    self._live[key] = self._spill.store(conn)
                except OSError as exc:  # a full temporary directory: keep them in memory
                    self.spill_failed = f"idle connections kept in memory: {exc.strerror or exc}"
        if self._spill.needs_compaction:
            self._spill.compact(h for h in self._live.values() if type(h) is _Spilled)

    def _retire_due(self) -> Iterator[Retired]:
        return self._in_order(self._due())

    def _in_order(self, retired: Iterable[Retired | _Evicted]) -> Iterator[Retired]:
        """What retires, in order, but with each run of bare SYNs evicted from the full store
        given together as one RetiredSyns (a flood evicts one per SYN it sends: one at a time,
        each would cost more than the rest of its packet). A run is given out when something
        else retires after it, when it is EVICTED_AT_ONCE long, or at the end (flush): never
        out of order, so a detector sees what it would have seen one by one."""
        for item in retired:
            if item is _EVICTED:
                self._evicted_ready += 1
                if self._evicted_ready >= EVICTED_AT_ONCE:
                    yield self._evicted_syns()
                continue
            if self._evicted_ready:
                yield self._evicted_syns()
            assert not isinstance(item, _Evicted)
            yield item

    def _evicted_syns(self) -> RetiredSyns:
        ready, self._evicted_ready = self._evicted_ready, 0
        return RetiredSyns(self._evicted.take(ready), self.zeek)

    def _leave_closing(
        self,
        entry: Connection | _ClosedElsewhere | _Spilled | _Replayable | FollowedConnection,
        now: float | None,
    ) -> TrackedConnection | None:
        """An entry just taken off the head of the closing queue, its grace period over: its
        connection retires (given back), or leaves unretired (one tracked elsewhere, or
        followed, that nothing came after), or the entry goes back to the tail if segments
        still came less than a grace period ago; not so with `now` None: its grace period is
        cut short (see _cut_grace)."""
        grace = self.close_grace
        if isinstance(entry, _ClosedElsewhere):
            if now is not None and now - entry.last_time < grace:
                self._closing.append(entry)
            else:
                self._stand_ins.append(entry)
            return None
        if type(entry) is Connection:
            self._closed_awake -= 1
        if self._retired_entry(entry):
            return None  # retired early (evicted, or a new SYN reused the 4-tuple)
        if isinstance(entry, FollowedConnection):
            held = self._live[entry.key]
            if held is entry:  # nothing came after it closed: it leaves unretired
                if now is not None and now - entry.last_time < grace:
                    # (a segment before its close stamped later than it: as for any)
                    self._closing.append(entry)
                    return None
                del self._live[entry.key]
                self._closed_live -= 1
                entry.history = None
                return None
            assert isinstance(held, Connection)
            conn = held  # replayed for a late segment: as if it had been fed all along
        elif isinstance(entry, (_Spilled, _Replayable)):
            # A closed connection that waited asleep (see _queue_closed).
            assert entry.key is not None
            held = self._live[entry.key]
            if held is entry:  # nothing came after it closed
                if now is not None and now - entry.last_time < grace:
                    self._closing.append(entry)
                    return None
                del self._live[entry.key]
                self._closed_live -= 1
                self._attempts.pop(entry.key, None)
                return self._retire_held(entry)
            assert isinstance(held, Connection)
            conn = held  # woken by a late segment: as if it had stayed in memory
        else:
            conn = entry
        if not conn.closed:
            # Open again (a refused SYN retried and answered: Connection._on_syn): it leaves
            # the closing queue and stays live, as an open connection, until it closes anew.
            conn.closed_at = None
            self._closed_live -= 1
            return None
        if now is not None and now - conn.last_time < grace:
            self._closing.append(conn)  # late segments still arriving: look again later
            self._closed_awake += 1
            return None
        key = self._key(
            conn.client.addr, conn.client.port, conn.server.addr, conn.server.port, conn.tunnel
        )
        del self._live[key]
        self._closed_live -= 1
        self._awake.pop(key, None)
        self._attempts.pop(key, None)
        return conn.retire(self._rst_log, self._now)

    def _cut_grace(self) -> None:
        """More than max_closed (MAX_CLOSED_WAITING) closed connections wait out the close
        grace period (a storm of refusals faster than that per grace period): those that closed
        first retire now, counted (`grace_cut`). They are given out at the next retirement
        check point, as the others (so that the check points are where they would have been),
        and a late segment of theirs starts a connection of its own."""
        while len(self._closing) > self.max_closed:
            entry = self._closing.popleft()
            if isinstance(entry, float):
                continue
            if isinstance(entry, _ClosedElsewhere) or not self._retired_entry(entry):
                self.grace_cut += 1
            retired = self._leave_closing(entry, None)
            if retired is not None:
                self._cut_short.append(retired)

    def _due(self) -> Iterator[Retired | _Evicted]:
        yield from self._retired_early
        self._retired_early.clear()
        yield from self._cut_short
        self._cut_short.clear()
        now = self._now
        for _ in range(len(self._closing)):
            entry = self._closing[0]
            if isinstance(entry, float):
                if now - entry < self.close_grace:
                    break
                self._closing.popleft()
                continue  # (a run of entries retired early: see _compact_closing)
            closed_at = entry.closed_at if entry.closed_at is not None else now
            if now - closed_at < self.close_grace:
                break  # the deque is in order of closing: nothing further is due either
            self._closing.popleft()
            retired = self._leave_closing(entry, now)
            if retired is not None:
                yield retired
        while self._live:
            key, held = next(iter(self._live.items()))
            if now - held.last_time < self.idle_retire:
                break
            yield self._retire_idle(key, held)
        held_syns = self._held_syns
        while self.batch_held_syns and (
            (columns := held_syns.take_columns(now, self.idle_retire)) is not None
        ):
            yield RetiredSyns(columns, self.zeek)
        while (oldest := held_syns.oldest()) is not None and now - oldest[1] >= self.idle_retire:
            yield self._retire_attempt(held_syns.take(oldest[0]))
        self._spill_idle(now)


def lone_syn_connection(attempt: HeldSyn, zeek: bool) -> TrackedConnection:
    """The retired connection of a plain bare SYN (no payload, no FIN, not stamped long before
    the capture clock), as tracking the SYN in a Connection would make it; see
    FlowTable._retire_attempt."""
    syn = attempt.syn
    flags = syn.flags
    time = syn.time
    options = syn.syn_options
    shift = options.window_scale if options is not None else None
    seq = syn.seq
    # (Set one by one: passing these as keywords to a 50-field __init__ costs twice as much,
    # once for every SYN of a flood.)
    client = Endpoint(syn.src, syn.sport)
    client.state = TcpState.SYN_SENT
    client.isn = seq
    client.snd_nxt = client.data_start = (seq + 1) & 0xFFFFFFFF
    client.window = client.syn_window = syn.window
    client.window_scale = min(shift, 14) if shift is not None else None  # RFC 7323 2.3
    client.syn_options = options
    client.syn = Evidence(syn.frame, time, "SYN from client")
    client.packets = 1
    client.ttl = syn.ttl
    client.last_time = time
    if syn.ip_id:
        client.last_segment = segment_identity(seq, syn.ack, flags, 0, syn.ip_id)
    server = Endpoint(syn.dst, syn.dport, state=TcpState.LISTEN, role="server")
    ref = ConnectionRef(
        conn_id=attempt.conn_id,
        client=client.text,
        server=server.text,
        initiator_known=True,
        ip_version=syn.ip_version,
        first_frame=syn.frame,
        first_time=time,
        tunnel=syn.tunnel,
    )
    if not zeek:
        return TrackedConnection(ref, client, server, time, [], "", "", False)
    # Zeek: an attempt of the originator's that nothing answered (tcpdiag.zeek).
    return TrackedConnection(ref, client, server, time, [], "S0", "S", False)


def plain_refusal(syn: TcpSegment, rst: TcpSegment) -> bool:
    """Whether these two segments, the first of a connection, are a bare SYN and the RST/ACK
    that refused it (acknowledging exactly the SYN, from the other end, neither carrying
    payload): a closed port's answer, to a connect() or to each probe of a port scan, whose
    connection refused_connection makes without tracking it."""
    return (
        syn.flags == SYN
        and rst.flags == RST | ACK
        and rst.ack == (syn.seq + 1) & 0xFFFFFFFF
        and not syn.payload_len
        and not rst.payload_len
        and rst.frame != syn.frame
        and rst.sport == syn.dport
        and rst.dport == syn.sport
        and rst.src == syn.dst
        and rst.dst == syn.src
        and rst.tunnel == syn.tunnel
    )


def zeek_rejected(syn: TcpSegment, syn_now: float, rst_now: float) -> bool:
    """Whether Zeek's view of a plain refusal, its SYN and RST taken at these capture clocks,
    is one conn.log row, REJ: none of its timers fired before either came (the SYN's attempt
    timer, ATTEMPT_DELAY_SECONDS, is the soonest: see ZeekTimeline._removal_due)."""
    due = syn.time + ATTEMPT_DELAY_SECONDS
    return syn_now < due and rst_now < due


def refused_connection(
    syn: TcpSegment, rst: TcpSegment, conn_id: int, rst_log: RstLog, zeek: bool = False
) -> TrackedConnection:
    """The retired connection of a plain refusal (plain_refusal), as tracking its SYN and RST
    in a Connection would make it; with Zeek's view (`zeek`), only where zeek_rejected.
    tests/test_spill.py compares the two slot by slot. About half the cost of tracking them
    (a quarter of tracking and then replaying them, as asleep ones were), for what a port
    scan answered with RSTs has hundreds of thousands of."""
    tracked = lone_syn_connection(HeldSyn(conn_id, syn, syn.time), zeek=False)
    client, server, ref = tracked.client, tracked.server, tracked.ref
    assert client.syn is not None
    time = rst.time
    server.packets = 1
    server.last_time = time
    if rst.ip_id:
        server.last_segment = segment_identity(
            rst.seq, rst.ack, rst.flags, rst.payload_len, rst.ip_id
        )
    options = syn.syn_options
    what = f"RST from server (seq={rst.seq}, ack=1, ttl={rst.ttl})"  # (the server's ISN unseen)
    # The RST met the client in SYN-SENT and the server in LISTEN (see Connection._on_rst):
    # acknowledging the SYN exactly, it is accepted; neither side had sent data or kept
    # anything unanswered, and the server had sent nothing else (no TTL to compare with).
    event = RstEvent(
        connection=ref,
        frame=rst.frame,
        time=time,
        client_state=TcpState.SYN_SENT.value,
        server_state=TcpState.LISTEN.value,
        evidence=[client.syn, Evidence(rst.frame, time, what)],  # (the context _on_rst adds)
        client_os=os_family(syn.ttl),
        server_os=os_family(None),
        sender="server",
        receiver="client",
        aborter="server",
        rst_verdict="accepted",
        sender_state=TcpState.LISTEN.value,
        receiver_state=TcpState.SYN_SENT.value,
        rst_has_ack=True,
        rst_ttl=rst.ttl,
        idle_seconds=round(max(time - syn.time, 0.0), 6),
        answers_receiver=time - syn.time <= RST_ANSWER_SECONDS,
        client_syn_options=bool(options and (options.sack_permitted or options.timestamps)),
        client_syn_window=syn.window,
        mptcp_join=_mptcp_join(options),
    )
    size, after_exchange = rst_log.burst((syn.tunnel, rst.src), time)
    event.burst_size = max(1, size)
    event.burst_after_exchange = after_exchange
    client.state = server.state = TcpState.CLOSED
    last_time = max(syn.time, time)
    if zeek:
        return TrackedConnection(ref, client, server, last_time, [event], "REJ", "Sr", False)
    return TrackedConnection(ref, client, server, last_time, [event], "", "", False)


@dataclass(slots=True)
class RetiredSyns:
    """Bare SYNs retired together from the compact store (FlowTable with batch_held_syns), in
    capture order: for a detector that can take a flood's worth of them as columns (its 4-tuples
    and times), and each as its TrackedConnection for one that cannot (`connections`)."""

    columns: SynColumns
    zeek: bool

    def __post_init__(self) -> None:
        rows = self.columns.rows
        frame = rows["frame"]
        if np.any(frame[1:] < frame[:-1]):  # (the store keeps them in order of arrival)
            order = np.argsort(frame, kind="stable")
            for name in rows:
                rows[name] = rows[name][order]

    def __len__(self) -> int:
        return len(self.columns)

    def connections(self) -> Iterator[TrackedConnection]:
        zeek = self.zeek
        for held in self.columns.held():
            yield lone_syn_connection(held, zeek)


# What a FlowTable retires: connections, one by one, and (batch_held_syns) bare SYNs together.
Retired = TrackedConnection | RetiredSyns


class _Evicted:
    """The place of a bare SYN evicted from the compact store among what retires early (its
    entry waits in FlowTable._evicted)."""


_EVICTED = _Evicted()


Key = tuple[str, int, str, int, str]  # encap: 4-tuple (smaller endpoint first) and tunnel
# The endpoints of a connection retired while still in the closing queue (FlowTable._retire_now).
_RETIRED = Endpoint("", 0)


@dataclass(slots=True)
class _Spilled:
    """Stand-in in the live table for a connection waiting on disk; for a closed one, also its
    entry in the closing queue."""

    offset: int
    size: int
    last_time: float
    closed_at: float | None = None
    key: Key | None = None  # (closed ones only)
    conn_id: int = 0


# One segment of a connection's history (Connection.history): frame, time, the capture clock
# at it, seq, ack, flags, window, payload length, TTL, IP id (-1: none), whether the server
# sent it, IP version, whether it has SYN options, and those: MSS and window scale (-1: none),
# SACK permitted, timestamps. The addresses, ports and tunnel are the connection's.
_PACKED_SEGMENT = struct.Struct("<qddIIHIIBiBBBihBB")
_REFUSAL_PACKED = 2 * _PACKED_SEGMENT.size  # a SYN and its RST


def _recorded(
    history: bytes, seg: TcpSegment, now: float, client_addr: str, client_port: int
) -> bytes | None:
    """A connection's history with one more segment; None once it has REPLAY_SEGMENTS (it is
    no longer worth replaying), or if a value does not fit the packing (a corrupt capture)."""
    if len(history) >= REPLAY_SEGMENTS * _PACKED_SEGMENT.size:
        return None
    options = seg.syn_options
    if seg.mptcp_options or (options is not None and options.mptcp) or seg.rst_text:
        return None  # (Multipath TCP options and RST texts are not packed: rare, kept whole)
    try:
        return history + _PACKED_SEGMENT.pack(
            seg.frame, seg.time, now, seg.seq, seg.ack, seg.flags, seg.window, seg.payload_len,
            seg.ttl, -1 if seg.ip_id is None else seg.ip_id,
            seg.sport != client_port or seg.src != client_addr, seg.ip_version,
            options is not None,
            -1 if options is None or options.mss is None else options.mss,
            -1 if options is None or options.window_scale is None else options.window_scale,
            options is not None and options.sack_permitted,
            options is not None and options.timestamps,
        )  # fmt: skip
    except (struct.error, TypeError):
        return None


def _mptcp_subflow(client: SynOptions | None, server: SynOptions | None) -> bool:
    """RstEvent.mptcp_subflow: both sides' SYNs carried a Multipath TCP option (a server that
    answers without one makes the connection plain TCP: RFC 8684 3.7's fallback)."""
    return client is not None and server is not None and bool(client.mptcp and server.mptcp)


def _mptcp_join(client: SynOptions | None) -> bool:
    """An event's mptcp_join: the client's SYN carried MP_JOIN."""
    return client is not None and bool(client.mptcp & 1 << MPTCP_JOIN)


def _rst_mptcp(options: int) -> str:
    """RstEvent.rst_mptcp from a RST's TcpSegment.mptcp_options."""
    if options & (1 << MPTCP_FASTCLOSE):
        return "fastclose"
    return "subflow" if options else "none"


# Multipath TCP option subtypes by number (RFC 8684 7, IANA "MPTCP Option Subtypes").
_MPTCP_SUBTYPES: Final = (
    "MP_CAPABLE", "MP_JOIN", "DSS", "ADD_ADDR", "REMOVE_ADDR", "MP_PRIO", "MP_FAIL",
    "MP_FASTCLOSE", "MP_TCPRST",
)  # fmt: skip


def _mptcp_names(options: int) -> str:
    """'MP_FASTCLOSE+MP_TCPRST' for a TcpSegment.mptcp_options."""
    return "+".join(
        _MPTCP_SUBTYPES[k] if k < len(_MPTCP_SUBTYPES) else f"MPTCP option {k}"
        for k in range(options.bit_length())
        if options >> k & 1
    )


# A replayed segment's options: one shared record per combination (records are never changed).
_options = functools.lru_cache(maxsize=256)(SynOptions)


class _ReplayLog(RstLog):
    """The RST log a replayed connection (FlowTable._replay) is fed with: its RSTs were
    recorded in the table's log when they came, in capture order, and only retirement reads
    that log."""

    def record(self, host: tuple[str, str], time: float, app_closing: bool) -> None:
        pass


_REPLAY_LOG = _ReplayLog()


@dataclass(slots=True)
class _Replayable:
    """Stand-in in the live table for a connection asleep (closed beyond CLOSED_IN_MEMORY, or
    idle) that was nothing but a few segments: those segments, packed (Connection.history),
    from which FlowTable._replay makes it again exactly; for a closed one, also its entry in
    the closing queue. About 180 bytes with its entries in the table, where the Connection
    takes 3 KB, and no file."""

    history: bytes
    key: Key
    client_first: bool  # the client is the key's first endpoint
    last_time: float
    closed_at: float | None
    conn_id: int
    # Instead of segments: the ICMP error that rejected a SYN the capture holds only as its
    # quote (FlowTable._attempt_rejected).
    rejected: IcmpError | None = None

    @staticmethod
    def of(conn: Connection, key: Key) -> _Replayable:
        assert conn.history is not None
        client = conn.client
        return _Replayable(
            conn.history,
            key,
            client.port == key[1] and client.addr == key[0],
            conn.last_time,
            conn.closed_at,
            conn.conn_id,
        )

    def segments(self) -> Iterator[tuple[TcpSegment, float]]:
        """Its segments, each with the capture clock it came at (tracker.SegmentHistory)."""
        first_addr, first_port, second_addr, second_port, tunnel = self.key
        if self.client_first:
            client_addr, client_port = first_addr, first_port
            server_addr, server_port = second_addr, second_port
        else:
            client_addr, client_port = second_addr, second_port
            server_addr, server_port = first_addr, first_port
        for (
            frame, time, now, seq, ack, flags, window, payload_len, ttl, ip_id, reverse,
            ip_version, has_options, mss, window_scale, sack_permitted, timestamps,
        ) in _PACKED_SEGMENT.iter_unpack(self.history):  # fmt: skip
            if reverse:
                src, sport, dst, dport = server_addr, server_port, client_addr, client_port
            else:
                src, sport, dst, dport = client_addr, client_port, server_addr, server_port
            seg = TcpSegment(
                frame, time, src, dst, sport, dport, seq, ack, flags, window, payload_len, ttl,
                ip_version, None if ip_id < 0 else ip_id,
                _options(
                    None if mss < 0 else mss, None if window_scale < 0 else window_scale,
                    bool(sack_permitted), bool(timestamps),
                ) if has_options else None,
                tunnel,
            )  # fmt: skip
            yield seg, now


def _slot_names(cls: type) -> tuple[str, ...]:
    mro = reversed(cls.__mro__)
    return tuple(name for klass in mro for name in getattr(klass, "__slots__", ()))


_REBUILDERS: dict[type, Callable[[tuple[Any, ...]], Any]] = {}


def _rebuilt(cls: type, values: tuple[Any, ...]) -> Any:
    return _REBUILDERS[cls](values)


def _rebuilder(cls: type, names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], Any]:
    """A function that makes an object of `cls` from the values of its slots, without
    __init__, in one straight line of stores: a loop of object.__setattr__ per slot took a
    tenth of a storm of refused connections (closed ones wait on disk, see CLOSED_IN_MEMORY).
    A frozen dataclass overrides __setattr__, so its slots are set through object's."""
    frozen = getattr(cls, "__setattr__", object.__setattr__) is not object.__setattr__
    lines = ["def rebuild(values):", "    obj = new(cls)"]
    if frozen:
        lines += [f"    setattr_(obj, {name!r}, values[{i}])" for i, name in enumerate(names)]
    elif names:
        lines.append("    " + "".join(f"obj.{name}, " for name in names) + "= values")
    lines.append("    return obj")
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, "setattr_": object.__setattr__}
    exec("\n".join(lines), namespace)  # (the names are the class's own slots)
    rebuild: Callable[[tuple[Any, ...]], Any] = namespace["rebuild"]
    return rebuild


def _reducer(
    cls: type, values: Callable[[Any], tuple[Any, ...]]
) -> Callable[[Any], tuple[Callable[..., Any], tuple[Any, ...]]]:
    """How pickle takes an object of `cls`: `_rebuilt` and the values of its slots."""

    def reduced(obj: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return _rebuilt, (cls, values(obj))

    return reduced


# A connection goes to disk as the values of its objects' slots: the generic pickling of a
# slotted object builds a dict of its state (and a frozen dataclass's looks each field up again),
# about twice the time and three times the bytes.
for _cls in (
    Connection, Endpoint, _PendingRst, ConnectionRef, RstEvent, IcmpErrorEvent,
    SilenceEvent, SynOptions, ZeekTimeline, ZeekConnection, ZeekEndpoint,
):  # fmt: skip
    _names = _slot_names(_cls)
    _REBUILDERS[_cls] = _rebuilder(_cls, _names)
    copyreg.pickle(_cls, _reducer(_cls, attrgetter(*_names)))


class ConnectionSpill:
    """Idle open connections (and closed ones beyond CLOSED_IN_MEMORY, while they wait out the
    close grace period) of more than REPLAY_SEGMENTS segments (a shorter one sleeps as its
    segments: _Replayable), pickled to an anonymous temporary file.

    A capture holds connections that never close (stalled, or quiet and kept alive); the table
    keeps each for hours of capture time in case it speaks again. Held in memory, they would
    make memory grow with the length of the capture. On disk they cost a few bytes each in
    memory, and one read when (if ever) they are needed again. A connection comes back exactly
    as it went: pickle keeps every value and the sharing between its objects.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._end = 0
        # Bytes of entries read back (their connections woke or retired): garbage in the file.
        # A connection that sleeps again is written again, so without compaction the file
        # grows with the capture, not with the idle connections.
        self._dead = 0

    @property
    def size(self) -> int:
        """Bytes in the file, garbage included."""
        return self._end

    @property
    def needs_compaction(self) -> bool:
        return self._dead >= SPILL_COMPACT_BYTES and self._dead * 2 >= self._end

    def compact(self, live: Iterable[_Spilled]) -> None:
        """Copy the entries still waiting into a fresh file (updating their offsets in place)
        and drop the old one."""
        if self._file is None:
            return
        fresh = tempfile.TemporaryFile(prefix="tcpdiag-idle-")  # noqa: SIM115
        end = 0
        for held in live:
            self._file.seek(held.offset)
            fresh.write(self._file.read(held.size))
            held.offset, end = end, end + held.size
        self._file.close()
        self._file, self._end, self._dead = fresh, end, 0

    def store(self, conn: Connection) -> _Spilled:
        if self._file is None:
            # Owned until close(): lives as long as the table.
            self._file = tempfile.TemporaryFile(prefix="tcpdiag-idle-")  # noqa: SIM115
        data = pickle.dumps(conn, pickle.HIGHEST_PROTOCOL)
        self._file.seek(self._end)
        self._file.write(data)
        spilled = _Spilled(self._end, len(data), conn.last_time)
        self._end += len(data)
        return spilled

    def restore(self, held: Connection | _Spilled) -> Connection:
        if type(held) is Connection:
            return held
        assert isinstance(held, _Spilled) and self._file is not None
        self._file.seek(held.offset)
        conn: Connection = pickle.loads(self._file.read(held.size))
        self._dead += held.size
        return conn

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._end = self._dead = 0


@dataclass(slots=True)
class _ClosedElsewhere:
    """Stand-in in the closing queue for a connection tracked elsewhere (tcpdiag.fastpath)."""

    closed_at: float
    last_time: float


class SegmentHistory(Protocol):
    """Every segment of a connection so far, in capture order, each with the capture clock
    at it: what a FollowedConnection or a _Replayable is rebuilt from (FlowTable._made_of)."""

    def segments(self) -> Iterator[tuple[TcpSegment, float]]: ...


class FollowedConnection:
    """Stand-in in the live table for a connection that a front end (tcpdiag.fastpath)
    follows in bulk across its windows: it has its id, its place in the order of activity and
    its last time like any live connection, but no Connection until the table needs one
    (a packet of its 4-tuple fed here, an ICMP error quoting it, eviction, idle retirement,
    the end of the capture). Then its segments are replayed into a new Connection, as they
    would have been fed one by one (FlowTable._held), so its state is exactly that. One that
    closed cleanly waits out the close grace period in the closing queue like a Connection,
    and then leaves the table unretired, as a connection tracked elsewhere does."""

    __slots__ = ("closed_at", "conn_id", "history", "key", "last_time")

    def __init__(self, key: Key, conn_id: int, last_time: float, history: SegmentHistory) -> None:
        self.key = key
        self.conn_id = conn_id
        self.last_time = last_time
        self.closed_at: float | None = None
        # None once replayed, or once it left the table unretired
        self.history: SegmentHistory | None = history

    @property
    def followed(self) -> bool:
        """Still a stand-in in the table (not replayed, not gone)."""
        return self.history is not None


# An entry of FlowTable's closing queue (a float: a run of entries retired early).
Closing = Connection | _ClosedElsewhere | _Spilled | _Replayable | FollowedConnection | float


# A side's state before its peer's FIN reached it, by its state after (see
# Connection._unreceived_fin); LAST-ACK: it closed in CLOSE-WAIT, so without that FIN it was
# the first to close.
_BEFORE_PEER_FIN: Final = {
    TcpState.CLOSE_WAIT: TcpState.ESTABLISHED,
    TcpState.CLOSING: TcpState.FIN_WAIT_1,
    TcpState.TIME_WAIT: TcpState.FIN_WAIT_2,
    TcpState.LAST_ACK: TcpState.FIN_WAIT_1,
}


def os_family(ttl: int | None) -> str:
    """A host's operating-system family from the TTL its packets arrive with: stacks start at
    64 (Linux, macOS, BSD), 128 (Windows) or 255 (routers, firewalls, load balancers), and each
    hop takes one off; a path is rarely longer than 32 hops."""
    if ttl is None:
        return "unknown"
    if 32 < ttl <= 64:
        return "linux"
    if 96 < ttl <= 128:
        return "windows"
    if 223 < ttl <= 255:
        return "network-device"
    return "unknown"


def _guess_roles(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    """Client and server of a connection whose handshake the capture missed.

    The lower port is taken as the service when it is below the usual ephemeral ranges (Linux
    32768-60999, IANA 49152-65535); otherwise the first packet's sender is taken as the client.
    Either way the connection is marked initiator_known = False.
    """
    if a.port >= 32768 > b.port or (a.port >= 1024 > b.port):
        return a, b
    if b.port >= 32768 > a.port or (b.port >= 1024 > a.port):
        return b, a
    return a, b


# ICMP (type, code) -> (kind, hard). Hard errors per RFC 1122 4.2.3.9 and RFC 5461: port and
# protocol unreachable, fragmentation needed with DF set.
_ICMP4_UNREACH = {
    0: ("net_unreachable", False),
    1: ("host_unreachable", False),
    2: ("protocol_unreachable", True),
    3: ("port_unreachable", True),
    4: ("frag_needed", True),
    5: ("source_route_failed", False),
    6: ("net_unknown", False),
    7: ("host_unknown", False),
    8: ("host_isolated", False),
    9: ("net_prohibited", False),
    10: ("host_prohibited", False),
    11: ("net_unreachable_tos", False),
    12: ("host_unreachable_tos", False),
    13: ("admin_filtered", False),
    14: ("host_precedence_violation", False),
    15: ("precedence_cutoff", False),
}
_ICMP6_UNREACH = {
    0: ("no_route", False),
    1: ("admin_prohibited", False),
    2: ("beyond_scope", False),
    3: ("address_unreachable", False),
    4: ("port_unreachable", True),
    5: ("policy_failed", False),
    6: ("reject_route", False),
}
PMTU_KINDS = frozenset({"frag_needed", "packet_too_big"})


def unanswered_probes(sender: Endpoint, receiver: Endpoint) -> tuple[int, list[Evidence]]:
    """The sender's probes of the receiver's closed window since the receiver last sent
    anything (none while its window is open): how many, and the latest STALL_KEPT of each kind
    oldest first. Linux probes with 0 bytes at SND.NXT-1 (Endpoint.window_probes); Windows,
    macOS and the BSDs with the next byte of data, again and again, which the receiver does
    not take while its window is closed (the stall's retransmissions after its last segment)."""
    if receiver.window_closed is None:
        return 0, []
    after = receiver.last_time
    what = f"zero-window probe from {sender.role} (the next byte again), unanswered"
    repeats = [Evidence(e.frame, e.time, what) for e in sender.stall_evidence() if e.time > after]
    probes = sender.window_probe_evidence()
    if repeats and probes:
        probes = sorted(probes + repeats, key=lambda e: e.time)
    return sender.window_probe_count + len(repeats), probes or repeats


def probing_closed_window(sender: Endpoint, receiver: Endpoint) -> bool:
    """Whether what the sender repeats is zero-window probes that the receiver is still there
    to answer: its window is still closed and fewer than MIN_WINDOW_PROBES of them went
    unanswered since its last segment, or they all came within WINDOW_PROBE_ANSWER_SECONDS of
    it (answers its kernel may have skipped, or that came after the capture stopped). Flow
    control, a receiver that stopped reading (tcpdiag.hangs), not data lost on the way; a
    receiver that left more probes unanswered went away with its window closed (rule
    zero-window-probe-timeout)."""
    if receiver.window_closed is None:
        return False
    return _still_answerable(receiver, *unanswered_probes(sender, receiver))


def _still_answerable(receiver: Endpoint, count: int, probes: list[Evidence]) -> bool:
    """probing_closed_window, from unanswered_probes' count and probes."""
    return (
        count < MIN_WINDOW_PROBES
        or probes[-1].time - receiver.last_time < WINDOW_PROBE_ANSWER_SECONDS
    )


def _stall_on_silent_peer(sender: Endpoint, receiver: Endpoint) -> int:
    """The sender's retransmissions of data still unacknowledged, if the receiver sent
    nothing since the sender began retransmitting it (Endpoint.retrying_since), or its probes
    of the receiver's closed window that the receiver stopped answering (see
    probing_closed_window); else 0 (RstEvent.sender_stall_retransmissions)."""
    # Only while the sender's application could still be waiting on it (ESTABLISHED, or
    # CLOSE-WAIT): a RST after a FIN retransmitted unanswered comes from a stack giving up on
    # an orphaned socket and tells nobody anything.
    if receiver.window_closed is not None:
        # (The probes a reader answered before it went away are no stall: those after are.)
        if sender.state not in _APP_WAITING:
            return 0
        count, probes = unanswered_probes(sender, receiver)
        return 0 if _still_answerable(receiver, count, probes) else count
    retrying = sender.retrying_since
    if (
        retrying is None
        or not sender.unacknowledged
        or receiver.last_time > retrying
        or sender.state not in _APP_WAITING
    ):
        return 0
    return sender.stall_retransmissions


def _closing_write(writer: Endpoint, closer: Endpoint, answered_fin: bool) -> bool:
    """Did `writer`, after the FIN of `closer`, write once and no more: one segment, sent after
    it had taken the FIN, with all it had sent before answered by the peer, to a peer that was
    waiting for nothing: a server whose last data was its reply, or a side that closed right
    after its own last write (or its handshake)? That is a closing message (a TLS close_notify
    after the server's reply and FIN) or a last short reply (to a QUIT that came with the FIN):
    the send() succeeded, recv() then returns 0 (the FIN is read before the error), so the
    program closes without learning of the RST. Only a further send() would fail with EPIPE; a
    writer that goes on streaming after the FIN makes one. (A client that closed long after its
    last request had given up waiting for the reply: that reply is no closing write, and the
    server that answers late is told by the RST on its next send().) A server's reply to the
    request that came with the client's FIN counts even if it crossed that FIN (sent before
    it arrived): a client that asks and closes at once gets its one-segment answer reset, and
    the server, whose send() succeeded, reads EOF next. A server whose reply the client had
    taken whole before closing, and that answers the client's FIN at once (`answered_fin`: its
    write came within what the capture point may see of a prompt answer) with one short
    message, says goodbye: a TLS server's close_notify to a client that closed without one
    (Node's and Python's clients do), then close()."""
    after = writer.after_peer_fin
    if after is None or after.segments != 1:
        return False
    if (
        writer.role == "server"
        and writer.run_is_reply
        and after.took_fin
        and after.all_acked_before
        and after.bytes <= CLOSING_MESSAGE_BYTES
        and answered_fin
    ):
        return True
    if not after.took_fin and not (writer.role == "server" and writer.run_is_reply):
        return False
    if writer.unanswered_bytes != after.bytes:
        return False
    if closer.role == "server" and closer.bytes_sent and closer.run_is_reply:
        return True
    idle = _idle_before_fin(closer)
    return idle is not None and idle <= CLOSE_AFTER_WRITE_SECONDS


class _EarlyFin(NamedTuple):
    """What the server's FIN, sent first, found (Connection.early_fin, for _close_event)."""

    unanswered: int  # the client's bytes it acknowledged and had not answered (0: none)
    client_state: str  # each side's state just before the FIN
    server_state: str
    # The client's data segments since the server's last data (of the recent ones kept), and
    # the seconds from the first of them to the last.
    writes: int
    spread: float
    fin_answered: bool = False  # the client's own FIN acknowledged the server's


def _writes_since(waiting: Endpoint, since: float | None) -> tuple[int, float]:
    """`waiting`'s recent data segments sent after `since` (None: all kept), and the seconds
    from the first of them to the last."""
    marks = waiting.recent_marks
    if marks is None:
        return 0, 0.0
    times = [t for t in marks[1::2] if since is None or t > since]
    return len(times), (max(times) - min(times) if times else 0.0)


def _unanswered_by(acked: int, waiting: Endpoint) -> int:
    """`waiting`'s unanswered bytes (Endpoint.unanswered_bytes) that an acknowledgement up to
    `acked` shows reached its peer."""
    if not waiting.unanswered_bytes or waiting.snd_nxt is None:
        return 0
    data_end = waiting.fin_seq if waiting.fin_seq is not None else waiting.snd_nxt
    not_received = max(seq_diff(data_end, acked), 0)
    return max(waiting.unanswered_bytes - not_received, 0)


def _in_flight(side: Endpoint, acked: int | None) -> int:
    """`side`'s bytes beyond `acked`, its FIN not counted: a RST's receiver's beyond what the
    RST acknowledges (RstEvent.receiver_data_in_flight), a stalled side's beyond what its peer
    acknowledged (SilenceEvent.stall_payload_bytes)."""
    if side.snd_nxt is None or acked is None:
        return 0
    return max(seq_diff(side.snd_nxt, acked) - (side.fin_seq is not None), 0)


def _usual_ttl(side: Endpoint) -> tuple[int | None, str]:
    """`side`'s usual TTL, and which of its segments it is taken from (RstEvent.sender_ttl and
    ttl_reference): that of its data segments when it sent any (the host that really spoke),
    else that of its acknowledgements (the host that took the peer's), else that of its other
    segments."""
    if side.data_ttl is not None:
        return side.data_ttl, "data segments"
    if side.ack_ttl is not None:
        return side.ack_ttl, "acknowledgements"
    return side.ttl, "other packets"


def _from_usual_host(side: Endpoint, ttl: int) -> bool:
    """Whether a segment of `side`'s with this TTL comes from the host that sent its others
    (within 1 of its usual TTL: injected-reset-ttl's ttl_delta starts at 2)."""
    usual, _ = _usual_ttl(side)
    return usual is None or abs(ttl - usual) <= 1


def _acks_stale_data(seg: TcpSegment, sender: Endpoint, receiver: Endpoint) -> bool:
    """RstEvent.rst_acks_stale_data: the RST acknowledges data of the receiver's beyond the
    sender's last ACK, and the receiver's newest data had arrived DELAYED_ACK_MAX_SECONDS or
    more before the RST."""
    if not seg.flags & ACK or sender.rcv_nxt is None or not seq_lt(sender.rcv_nxt, seg.ack):
        return False
    newly = seq_diff(seg.ack, sender.rcv_nxt)
    fin = receiver.fin_seq
    if fin is not None and seq_le(sender.rcv_nxt, fin) and seq_lt(fin, seg.ack):
        newly -= 1  # (the FIN takes one number, no data)
    return (
        newly > 0
        and receiver.last_data_frame > 0
        and seg.time - receiver.last_data_time >= DELAYED_ACK_MAX_SECONDS
    )


def _acknowledges_fin(seg: SegmentFields, fin_seq: int) -> bool:
    """`seg` acknowledges the peer's FIN, which took the number `fin_seq`."""
    return bool(seg.flags & ACK) and seq_le(seq_add(fin_seq, 1), seg.ack)


def _handshake_not_taken(server: Endpoint, client: Endpoint) -> bool:
    """RstEvent.sender_never_took_handshake / SilenceEvent.peer_never_took_handshake: `server`
    repeated its SYN-ACK more than SYNACK_AFTER_ACK_SECONDS after `client` had acknowledged it
    (no SYN-ACK sent before that ACK arrived comes so late), and acknowledged none of the data
    `client` sent: its kernel never took the handshake's ACK nor anything after it. A Linux
    listener whose accept queue is full drops them and keeps the half-open entry, repeating
    its SYN-ACK (net.ipv4.tcp_abort_on_overflow = 0, the default). An ACK merely lost on the
    way is answered by the next SYN-ACK and the data is acknowledged after it."""
    repeats, acked_at = server.syn_repeats, client.handshake_time
    if not repeats or acked_at is None or server.syn is None or server.role != "server":
        return False
    if repeats[-1].time - acked_at <= SYNACK_AFTER_ACK_SECONDS or not client.bytes_sent:
        return False
    return server.rcv_nxt is None or (
        client.data_start is not None and seq_le(server.rcv_nxt, client.data_start)
    )


def _large_never_acked(stalled: Endpoint) -> bool:
    """SilenceEvent.large_never_acked: the stall's retransmitted segment is large
    (LARGE_SEGMENT_BYTES or more) and nothing from the first large segment `stalled` sent on was
    ever acknowledged, while its smaller packets did reach the peer (its handshake was
    answered, or smaller data acknowledged): its big segments never got through."""
    first = stalled.first_large_seq
    if first is None or stalled.stall_segment_len < LARGE_SEGMENT_BYTES:
        return False
    if stalled.handshake_time is None and not stalled.bytes_acked:
        return False
    una = stalled.snd_una if stalled.snd_una is not None else stalled.data_start
    return una is not None and seq_le(una, first)


def _late_reply(writer: Endpoint, closer: Endpoint) -> bool:
    """RstEvent.receiver_late_reply: `writer`, a server, wrote its whole reply to the client's
    last data after the client's FIN, in one segment or one burst of them (REPLY_BURST_*), and
    the client had closed long after that data (it waited, then gave up or was killed: not a
    request sent together with its FIN, whose answer is a closing write)."""
    after = writer.after_peer_fin
    if after is None or writer.role != "server":
        return False
    if after.segments > 1 and (
        after.bytes > REPLY_BURST_BYTES
        or writer.last_data_time - after.first_time > REPLY_BURST_SECONDS
    ):
        return False
    if not writer.run_is_reply or writer.unanswered_bytes != after.bytes:
        return False
    idle = _idle_before_fin(closer)
    return closer.bytes_sent > 0 and idle is not None and idle > CLOSE_AFTER_WRITE_SECONDS


def _quiet_before_fin(writer: Endpoint, closer: Endpoint) -> float | None:
    """Seconds between `writer`'s last write before the FIN of `closer` and that FIN (None if
    it wrote nothing after the FIN, or nothing before)."""
    after, fin = writer.after_peer_fin, closer.fin
    if after is None or after.wrote_before is None or fin is None:
        return None
    return round(max(fin.time - after.wrote_before, 0.0), 3)


class _AfterFin(NamedTuple):
    """What `writer` wrote after the FIN of `closer` (_after_fin): the facts a RST's receiver
    (RstEvent.receiver_*) and a server FIN's peer (CloseEvent.peer_*) share."""

    # Seconds between the FIN and the first write after it (None: none; 0: it crossed it).
    seconds: float | None
    # It came within the crossing allowance: it may answer the FIN (a closing message).
    answered: bool
    # A client's write that did not answer the FIN: later than that, or to a closer that had
    # said nothing (no closing message is due to it).
    new_request: bool
    crossed: bool  # the first write did not acknowledge the FIN: it was sent before it came
    earlier_answered: bool  # everything the writer sent before was answered
    idle_before: float | None  # _quiet_before_fin


def _after_fin(writer: Endpoint, closer: Endpoint, allowance: float) -> _AfterFin:
    """What `writer` wrote after the FIN of `closer` (see _AfterFin); `allowance`, the
    connection's crossing allowance."""
    after, fin = writer.after_peer_fin, closer.fin
    if after is None or fin is None:
        seconds = None
    else:
        seconds = round(max(after.first_time - fin.time, 0.0), 6)
    answered = seconds is not None and seconds <= allowance
    return _AfterFin(
        seconds,
        answered,
        new_request=seconds is not None
        and writer.role == "client"
        and (not closer.bytes_sent or not answered),
        crossed=after is not None and not after.took_fin,
        earlier_answered=after is not None and writer.unanswered_bytes == after.bytes,
        idle_before=_quiet_before_fin(writer, closer),
    )


def _idle_before_fin(closer: Endpoint) -> float | None:
    """Seconds between a side's last write (or, without data, its handshake) and its FIN."""
    fin = closer.fin
    last = closer.last_data_time if closer.bytes_sent else closer.handshake_time
    return None if fin is None or last is None else round(max(fin.time - last, 0.0), 3)


def _quotes_an_attempt(icmp: IcmpError, quoted: QuotedTcp) -> bool:
    """An ICMP error about a SYN the capture does not hold, delivered to the SYN's sender from
    its own address or from the SYN's destination: what a firewall on the sender's host makes
    when it rejects the SYN before it reaches the wire (Linux's REJECT target answers in the
    destination's name; Android's firewall from the host itself, as nDPI's instagram capture
    shows). The SYN was real and connect() failed with the error's errno; other ICMP errors
    about connections the capture does not show prove nothing (tracker orphans)."""
    return (
        icmp.dst == quoted.src
        and icmp.src in (quoted.src, quoted.dst)
        and quoted.flags is not None
        and quoted.flags & (SYN | ACK | RST | FIN) == SYN
    )


def icmp_kind(icmp: IcmpError) -> tuple[str, bool]:
    """Name an ICMP error the way the rules do, and say whether RFC 1122 calls it hard."""
    t, c = icmp.icmp_type, icmp.icmp_code
    if icmp.ip_version == 4:
        if t == 3:
            return _ICMP4_UNREACH.get(c, ("other", False))
        return {11: ("time_exceeded", False), 12: ("parameter_problem", False)}.get(
            t, ("other", False)
        )
    if t == 1:
        return _ICMP6_UNREACH.get(c, ("other", False))
    return {
        2: ("packet_too_big", False),
        3: ("time_exceeded", False),
        4: ("parameter_problem", c == 1),
    }.get(t, ("other", False))


def _icmp_text(icmp: IcmpError, kind: str) -> str:
    text = f"ICMPv{'6' if icmp.ip_version == 6 else '4'} {kind.replace('_', ' ')} from {icmp.src}"
    return text + (f" (MTU {icmp.mtu})" if icmp.mtu else "")
