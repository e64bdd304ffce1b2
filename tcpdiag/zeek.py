"""Zeek's vocabulary for a TCP connection: `conn_state` and `history`, computed as Zeek does.

A faithful re-implementation of what Zeek writes in conn.log, so tcpdiag's flows can be joined to
(and compared with) Zeek's:

- endpoint states and their transitions follow Zeek's TCP session adapter
  (src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc: UpdateInactiveState,
  UpdateSYN_SentState, UpdateEstablishedState, UpdateClosedState);
- history letters follow its update_history() and the logarithmic ScaledHistoryEntry for
  'T' and 'W' (1, 10, 100, ... occurrences);
- `conn_state()` is scripts/base/protocols/conn/main.zeek's function, line for line;
- the originator is the first packet's sender, flipped ('^') when the connection starts without a
  SYN from a likely server port (TCPAnalyzer::WantConnection).

tcpdiag never checks TCP checksums (loopback and offloaded captures are full of "bad" ones), so it
matches `zeek -C`: no 'C' letters and no dropped packets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tcpdiag.packets import ACK, FIN, RST, SYN, SegmentFields
from tcpdiag.seqnum import seq_diff

# Ports Zeek's default scripts add to `likely_server_ports` (base/protocols/*): a connection that
# starts mid-stream from one of these is flipped so that the server is the responder.
LIKELY_SERVER_PORTS = frozenset(
    {
        21, 22, 25, 53, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 593,
        614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 2811, 3128, 3268, 3306, 3389, 5060,
        5222, 5223, 5269, 5432, 5900, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
    }
)  # fmt: skip


class ZeekState(IntEnum):
    """Zeek's TCP endpoint states (init-bare.zeek: TCP_INACTIVE ... TCP_RESET)."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


# update_history()'s masks, one bit set per direction.
_SYN, _FIN, _RST, _FIN_RST, _DATA, _ACK, _MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40


class ZeekEndpoint:
    __slots__ = (
        "addr",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "last_seq",
        "mask",
        "port",
        "prev_state",
        "rxmit",
        "rxmit_threshold",
        "start_seq",
        "state",
        "window_scale",
        "zero_window",
        "zero_window_threshold",
    )

    def __init__(self, addr: str, port: int) -> None:
        self.addr, self.port = addr, port
        self.state = self.prev_state = ZeekState.INACTIVE
        self.start_seq: int | None = None
        self.last_seq: int | None = None
        self.mask = 0
        self.hist_last_syn = self.hist_last_fin = self.hist_last_rst = 0
        self.rxmit = self.zero_window = 0
        self.rxmit_threshold = self.zero_window_threshold = 1
        self.window_scale = 0

    def set_state(self, state: ZeekState) -> None:
        if state != self.state:
            self.prev_state = self.state
            self.state = state


class ZeekConnection:
    """Zeek's view of one connection, fed every segment in capture order."""

    __slots__ = ("flipped", "history", "orig", "resp")

    def __init__(self, first: SegmentFields) -> None:
        src = ZeekEndpoint(first.src, first.sport)
        dst = ZeekEndpoint(first.dst, first.dport)
        self.orig, self.resp = src, dst
        self.history = ""  # (a str, not a list of letters: one per open connection in flows)
        self.flipped = False
        flags = first.flags
        partial_start = not flags & SYN or flags & ACK  # no SYN, or a SYN-ACK, came first
        if partial_start and first.sport in LIKELY_SERVER_PORTS:
            both_likely = first.dport in LIKELY_SERVER_PORTS
            if not both_likely or (not flags & SYN and first.sport < first.dport):
                self._flip()

    def _flip(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.flipped = not self.flipped
        self.history += "^"

    @property
    def history_text(self) -> str:
        return self.history

    def orig_is(self, addr: str, port: int) -> bool:
        return self.orig.addr == addr and self.orig.port == port

    # -- per segment ------------------------------------------------------------------------

    def update(self, seg: SegmentFields, is_orig: bool) -> None:
        """Take the next segment; `is_orig`: whether the originator sent it (orig_is)."""
        ep, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        flags = seg.flags
        if (
            not flags & (SYN | FIN | RST)
            and ep.start_seq is not None
            and ep.state is not ZeekState.INACTIVE
        ):
            # Most segments (no SYN, FIN or RST, from a side seen before and no longer
            # INACTIVE): what the four steps below do for them, without the calls. The state
            # machine leaves such a side's state as it is.
            plen = seg.payload_len
            if plen:
                if not ep.mask & _DATA:
                    ep.mask |= _DATA
                    self.history += "D" if is_orig else "d"
            elif flags & ACK and not ep.mask & _ACK:
                ep.mask |= _ACK
                self.history += "A" if is_orig else "a"
            if not seg.window:  # (a scaled window is zero only if it is)
                self._update_window(seg, ep, peer, is_orig)
            end = (seg.seq + plen) & 0xFFFFFFFF
            last = ep.last_seq
            if last is None or seq_diff(end, last) > 0:
                ep.last_seq = end
            elif plen > 0 and ep.state != ZeekState.RESET:
                ep.rxmit += 1
                ep.rxmit_threshold = self._scaled(ep.rxmit, ep.rxmit_threshold, "T", is_orig)
            return
        self._update_steps(seg, ep, peer, is_orig)

    def _update_steps(
        self, seg: SegmentFields, ep: ZeekEndpoint, peer: ZeekEndpoint, is_orig: bool
    ) -> None:
        """`update` for any segment, step by step (tests/test_zeek.py checks the short way
        against this)."""
        flags = seg.flags
        if flags & SYN and (ep.start_seq is None or ep.state == ZeekState.INACTIVE):
            ep.start_seq = seg.seq  # init_endpoint: a SYN sets the sequence origin
            if seg.syn_options and seg.syn_options.window_scale is not None:
                ep.window_scale = seg.syn_options.window_scale
        elif ep.start_seq is None:
            ep.start_seq = (seg.seq - 1) & 0xFFFFFFFF  # seen first without a SYN
        self._update_history(seg, ep, is_orig)
        self._update_window(seg, ep, peer, is_orig)
        self._update_state(seg, ep, peer, is_orig)
        self._update_last_seq(seg, ep, is_orig)

    def _add(self, code: str, is_orig: bool) -> None:
        self.history += code if is_orig else code.lower()

    def _check(self, ep: ZeekEndpoint, mask: int, code: str, is_orig: bool) -> bool:
        """Connection::CheckHistory: add the letter the first time; True if seen before."""
        if ep.mask & mask:
            return True
        ep.mask |= mask
        self._add(code, is_orig)
        return False

    def _update_history(self, seg: SegmentFields, ep: ZeekEndpoint, is_orig: bool) -> None:
        flags = seg.flags
        bits = bool(flags & SYN) + bool(flags & FIN) + bool(flags & RST)
        assert ep.start_seq is not None
        rel_seq = (seg.seq - ep.start_seq) & 0xFFFFFFFF
        if bits > 1:
            if flags & FIN and flags & RST:
                self._check(ep, _FIN_RST, "I", is_orig)
            else:
                self._check(ep, _MULTI, "Q", is_orig)
        elif bits == 1:
            if flags & SYN:
                code = "H" if flags & ACK else "S"
                if self._check(ep, _SYN, code, is_orig) and rel_seq != ep.hist_last_syn:
                    self._add(code, is_orig)
                ep.hist_last_syn = rel_seq
            elif flags & FIN:
                end = (rel_seq + seg.payload_len) & 0xFFFFFFFF
                if self._check(ep, _FIN, "F", is_orig) and end != ep.hist_last_fin:
                    self._add("F", is_orig)
                ep.hist_last_fin = end
            else:
                if self._check(ep, _RST, "R", is_orig) and rel_seq != ep.hist_last_rst:
                    self._add("R", is_orig)
                ep.hist_last_rst = rel_seq
        elif seg.payload_len:
            self._check(ep, _DATA, "D", is_orig)
        elif flags & ACK:
            self._check(ep, _ACK, "A", is_orig)

    def _scaled(self, counter: int, threshold: int, code: str, is_orig: bool) -> int:
        """Connection::ScaledHistoryEntry: add the letter at counts 1, 10, 100, ..."""
        if counter == threshold:
            self._add(code, is_orig)
            return threshold * 10
        return threshold

    def _update_window(
        self, seg: SegmentFields, ep: ZeekEndpoint, peer: ZeekEndpoint, is_orig: bool
    ) -> None:
        if seg.flags & (SYN | RST):
            return
        if (
            (seg.window << ep.window_scale) == 0
            and peer.state != ZeekState.CLOSED
            and ep.state != ZeekState.RESET
        ):
            ep.zero_window += 1
            ep.zero_window_threshold = self._scaled(
                ep.zero_window, ep.zero_window_threshold, "W", is_orig
            )

    def _update_last_seq(self, seg: SegmentFields, ep: ZeekEndpoint, is_orig: bool) -> None:
        flags = seg.flags
        seg_len = 0 if flags & RST else seg.payload_len + bool(flags & SYN) + bool(flags & FIN)
        end = (seg.seq + seg_len) & 0xFFFFFFFF
        if ep.last_seq is None:
            ep.last_seq = end
            return
        delta = seq_diff(end, ep.last_seq)
        if delta > 0:
            ep.last_seq = end
        elif seg.payload_len > 0 and not flags & RST and ep.state != ZeekState.RESET:
            ep.rxmit += 1
            ep.rxmit_threshold = self._scaled(ep.rxmit, ep.rxmit_threshold, "T", is_orig)

    def _update_state(
        self, seg: SegmentFields, ep: ZeekEndpoint, peer: ZeekEndpoint, is_orig: bool
    ) -> None:
        flags = seg.flags
        syn, fin, rst, ack = flags & SYN, flags & FIN, flags & RST, flags & ACK
        state = ep.state
        if state == ZeekState.INACTIVE:
            changed = False
            if syn:
                changed = True
                if is_orig:
                    ep.set_state(ZeekState.SYN_ACK_SENT if ack else ZeekState.SYN_SENT)
                else:
                    if (
                        not ack
                        and peer.state == ZeekState.SYN_ACK_SENT
                        and peer.start_seq is not None
                    ):
                        # Both ends opened: the SYN-ACK came first; Zeek flips the roles.
                        self._flip()
                        peer.set_state(ZeekState.ESTABLISHED)
                    if peer.state == ZeekState.SYN_SENT:
                        peer.set_state(ZeekState.ESTABLISHED)
                    ep.set_state(ZeekState.ESTABLISHED)
            if fin:
                changed = True
                ep.set_state(ZeekState.CLOSED)
            if rst:
                changed = True
                ep.set_state(ZeekState.RESET)
            answers_syn = not is_orig and ack and seg.payload_len == 0
            if not changed:
                if answers_syn and peer.state == ZeekState.SYN_SENT:
                    pass  # an ACK answering a SYN: Zeek leaves the responder inactive
                elif ack and peer.state == ZeekState.ESTABLISHED:
                    ep.set_state(ZeekState.ESTABLISHED)
                else:
                    ep.set_state(ZeekState.PARTIAL)
        elif state in (ZeekState.SYN_SENT, ZeekState.SYN_ACK_SENT):
            if fin:
                ep.set_state(ZeekState.CLOSED)
            if rst:
                ep.set_state(ZeekState.RESET)
        elif state in (ZeekState.ESTABLISHED, ZeekState.PARTIAL):
            if syn and not ack and state == ZeekState.PARTIAL and peer.state == ZeekState.INACTIVE:
                ep.set_state(ZeekState.SYN_SENT)
            if fin and not rst:
                ep.set_state(ZeekState.CLOSED)
                if peer.state == ZeekState.RESET and peer.prev_state == ZeekState.CLOSED:
                    peer.set_state(ZeekState.CLOSED)
            if rst:
                ep.set_state(ZeekState.RESET)
        elif state == ZeekState.CLOSED and rst and peer.state != ZeekState.CLOSED:
            ep.set_state(ZeekState.RESET)

    # -- summary ----------------------------------------------------------------------------

    def conn_state(self, orig_size: int, resp_size: int) -> str:
        """main.zeek's conn_state(), for TCP."""
        os_, rs = self.orig.state, self.resp.state
        inactive = (ZeekState.INACTIVE, ZeekState.PARTIAL)
        o_inactive, r_inactive = os_ in inactive, rs in inactive
        if rs == ZeekState.RESET:
            if os_ in (ZeekState.SYN_SENT, ZeekState.SYN_ACK_SENT) or (
                os_ == ZeekState.RESET and orig_size == 0 and resp_size == 0
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == ZeekState.RESET:
            if r_inactive:
                return "RSTOS0" if _syn_then_reset(self.history_text) else "OTH"
            return "RSTO"
        if rs == ZeekState.CLOSED and os_ == ZeekState.CLOSED:
            return "SF"
        if os_ == ZeekState.CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == ZeekState.CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == ZeekState.SYN_SENT and rs == ZeekState.INACTIVE:
            return "S0"
        if os_ == ZeekState.ESTABLISHED and rs == ZeekState.ESTABLISHED:
            return "S1"
        return "OTH"


def _syn_then_reset(history: str) -> bool:
    """main.zeek's `/\\^?S[^HAFGIQ]*R.*/ == c$history` (an anchored match)."""
    text = history[1:] if history.startswith("^") else history
    if not text.startswith("S"):
        return False
    for ch in text[1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


# Zeek's timers that remove a connection (scripts/base/init-bare.zeek defaults): a connection
# attempt nobody answered (tcp_attempt_delay), a completed close or reset (tcp_close_delay), and
# inactivity (tcp_inactivity_timeout; an hour for interactive services, as
# base/protocols/conn/inactivity.zeek sets). A packet after the removal starts a new connection
# in Zeek's conn.log, with its own originator, states and history.
ATTEMPT_DELAY_SECONDS = 5.0
CLOSE_DELAY_SECONDS = 5.0
INACTIVITY_SECONDS = 300.0
LONG_INACTIVITY_SECONDS = 3600.0
LONG_INACTIVITY_PORTS = frozenset({21, 22, 23, 513})


@dataclass(slots=True)
class ZeekRecord:
    """One conn.log row that Zeek's timers closed before the 4-tuple's last packet."""

    orig: str  # "ip:port" of Zeek's originator
    resp: str
    first_time: float
    last_time: float
    orig_packets: int
    resp_packets: int
    orig_bytes: int  # payload bytes (retransmissions included)
    resp_bytes: int
    conn_state: str
    history: str


class ZeekTimeline:
    """Zeek's view of one tcpdiag connection over time: the connection Zeek has now and the
    rows its removal timers already closed (TCPSessionAdapter::AttemptTimer and ConnDeleteTimer,
    Connection::InactivityTimer). Timers fire before the packet that reaches them is processed
    (RunState.cc dispatch_packet), against the capture clock, the latest time seen so far."""

    # (Counters as slots of their own, not lists by side: `tcpdiag flows` holds one of these
    # per open connection, and three small lists were a quarter of it.)
    __slots__ = (
        "attempt_at", "current", "delete_at", "first_time", "idle", "last_time", "orig_bytes",
        "orig_closed", "orig_packets", "removed", "resp_bytes", "resp_closed", "resp_packets",
    )  # fmt: skip

    def __init__(self, first: SegmentFields) -> None:
        self.removed: list[ZeekRecord] | None = None  # (a list once a timer closed a row)
        self._start(first)

    def _start(self, first: SegmentFields) -> None:
        self.current = ZeekConnection(first)
        self.first_time = self.last_time = first.time
        # The inactivity timeout: by the ports, which stay the connection's (a flip swaps them).
        long_lived = LONG_INACTIVITY_PORTS & {first.sport, first.dport}
        self.idle = LONG_INACTIVITY_SECONDS if long_lived else INACTIVITY_SECONDS
        self.attempt_at: float | None = None
        self.delete_at: float | None = None
        self.orig_closed = self.resp_closed = False  # did_close
        self.orig_packets = self.resp_packets = 0
        self.orig_bytes = self.resp_bytes = 0

    @property
    def flipped(self) -> bool:
        return self.current.flipped

    @property
    def history_text(self) -> str:
        return self.current.history_text

    def orig_is(self, addr: str, port: int) -> bool:
        return self.current.orig_is(addr, port)

    def conn_state(self) -> str:
        return self.current.conn_state(self.orig_bytes, self.resp_bytes)

    def _removal_due(self, now: float) -> bool:
        conn = self.current
        if self.attempt_at is not None and now >= self.attempt_at:
            self.attempt_at = None  # fires once
            if (
                conn.orig.state in (ZeekState.SYN_SENT, ZeekState.SYN_ACK_SENT)
                and conn.resp.state == ZeekState.INACTIVE
            ):
                return True
        if self.delete_at is not None and now >= self.delete_at:
            return True
        return now >= self.last_time + self.idle

    def update(self, seg: SegmentFields, now: float) -> None:
        if self._removal_due(now):
            if self.removed is None:
                self.removed = []
            self.removed.append(self.record())
            self._start(seg)
        conn = self.current
        # (The side as it was before this segment: a simultaneous open flips the roles.)
        is_orig = conn.orig_is(seg.src, seg.sport)
        ep, peer = (conn.orig, conn.resp) if is_orig else (conn.resp, conn.orig)
        before = ep.state
        conn.update(seg, is_orig)
        if is_orig:
            self.orig_packets += 1
            self.orig_bytes += seg.payload_len
        else:
            self.resp_packets += 1
            self.resp_bytes += seg.payload_len
        if not (self.orig_closed and self.resp_closed):
            self.last_time = seg.time
        flags = seg.flags
        if before == ZeekState.INACTIVE and flags & SYN and is_orig and self.attempt_at is None:
            self.attempt_at = seg.time + ATTEMPT_DELAY_SECONDS
        # UpdateStateMachine's do_close, then ConnectionClosed.
        if before in (
            ZeekState.INACTIVE, ZeekState.SYN_SENT, ZeekState.SYN_ACK_SENT,
            ZeekState.ESTABLISHED, ZeekState.PARTIAL,
        ):  # fmt: skip
            do_close = bool(flags & (FIN | RST))
        elif before == ZeekState.CLOSED:
            do_close = bool(flags & RST) and peer.state != ZeekState.CLOSED
        else:
            do_close = False
        if do_close and not (self.orig_closed if is_orig else self.resp_closed):
            if is_orig:
                self.orig_closed, other_closed = True, self.resp_closed
            else:
                self.resp_closed, other_closed = True, self.orig_closed
            complete = ep.state == ZeekState.RESET or other_closed
            if complete or peer.state == ZeekState.INACTIVE:
                self.attempt_at = None  # CancelTimers()
                self.delete_at = self.last_time + CLOSE_DELAY_SECONDS

    def rows(self) -> list[ZeekRecord]:
        """Every conn.log row of this connection: those already removed, then the current."""
        return [*(self.removed or ()), self.record()]

    def record(self) -> ZeekRecord:
        conn = self.current
        return ZeekRecord(
            orig=_endpoint_text(conn.orig.addr, conn.orig.port),
            resp=_endpoint_text(conn.resp.addr, conn.resp.port),
            first_time=self.first_time,
            last_time=self.last_time,
            orig_packets=self.orig_packets,
            resp_packets=self.resp_packets,
            orig_bytes=self.orig_bytes,
            resp_bytes=self.resp_bytes,
            conn_state=self.conn_state(),
            history=conn.history_text,
        )


def _endpoint_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
