"""What the tracker reports about a connection: events, each with the facts rules match on.

An event is plain data. Its *fact* fields (everything but the bookkeeping in `FlowEvent`) are the
vocabulary of the conditions in `rules/*.toml`; the rule loader checks every condition against
`fact_names()` so a typo in a rule fails at load time, not silently at match time.

Roles: each event names two roles (for a RST, `sender` and `receiver`; for an ICMP error, the
`affected` endpoint whose packet was quoted and the `other`; for a silence, the `stalled` side
and its `peer`; for a server's FIN on a waiting client, the `closer` and the `peer`), and says
which of them is the client (the SYN's sender) so a rule can say what each role's application
saw.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, NamedTuple

Role = Literal["client", "server"]


class Evidence(NamedTuple):
    """One packet that shows what an event says; a finding lists its event's evidence as it is.
    (A named tuple, not a frozen dataclass: the tracker makes one for every SYN, FIN and
    retransmission it keeps, and a frozen dataclass's __init__ costs several times more.)"""

    frame: int
    time: float
    what: str  # e.g. "SYN from client", "RST from server (seq=1 ack=0)"

    def __reduce__(self) -> tuple[type[Evidence], tuple[object, ...]]:
        # (Evidence is pickled with the connections spilled to disk (tcpdiag.tracker) and the
        # findings a batch worker hands back (tcpdiag.batch): a named tuple's generic pickling
        # calls its __getnewargs__ for every item, about twice the time of this. The findings
        # spool lays evidence out flat instead, tcpdiag.spool._finding_to_disk.)
        return (Evidence, tuple(self))


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    """Which connection an event belongs to: enough for a report, nothing of the tracker's state."""

    conn_id: int  # unique within one capture, in order of first packet
    client: str  # "ip:port" of the SYN's sender ("[v6]:port" for IPv6)
    server: str
    initiator_known: bool  # False when the capture missed the handshake and roles were guessed
    ip_version: int
    first_frame: int
    first_time: float
    # The tunnel the connection was carried in ("vxlan 192.0.2.1<->192.0.2.2 vni 42"), "" if none.
    tunnel: str = ""


_FACT_NAMES: dict[type, tuple[str, ...]] = {}
# Per event type: its fact names, and a getter of their values (as a tuple) in that order.
_FACT_GETTERS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


@dataclass(slots=True)
class FlowEvent:
    """Bookkeeping common to every event; subclasses add the facts."""

    KIND: ClassVar[str] = ""
    ROLES: ClassVar[tuple[str, str]] = ("", "")

    connection: ConnectionRef
    frame: int  # the frame the event is about (the RST, the ICMP error, the last retransmission)
    time: float
    client_state: str  # RFC 9293 state of each side just before the event
    server_state: str
    evidence: list[Evidence] = field(default_factory=list)
    # Each side's operating-system family as its initial TTL suggests ("linux" for 64: Linux,
    # macOS, BSD; "windows" for 128; "network-device" for 255; "unknown"), for the wording of
    # what its application saw.
    client_os: str = "unknown"
    server_os: str = "unknown"

    @classmethod
    def fact_names(cls) -> tuple[str, ...]:
        """The fields rules may test, in declaration order (so reports list them stably)."""
        names = _FACT_NAMES.get(cls)
        if names is None:
            base = {f.name for f in fields(FlowEvent)}
            names = _FACT_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name not in base)
        return names

    def facts(self) -> dict[str, Any]:
        # (Once per event that reaches the rules: one attrgetter call, not a getattr per fact.)
        names_getter = _FACT_GETTERS.get(type(self))
        if names_getter is None:
            names = self.fact_names()
            if not names:
                return {}
            values_of: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
            if len(names) == 1:  # (attrgetter of one name gives the value, not a tuple)
                one = operator.attrgetter(names[0])
                values_of = lambda event: (one(event),)  # noqa: E731
            names_getter = _FACT_GETTERS[type(self)] = (names, values_of)
        names, values_of = names_getter
        return dict(zip(names, values_of(self), strict=True))

    def role_of(self, role: str) -> Role:
        """Map one of this event's roles ("sender", "receiver", ...) to "client" or "server"."""
        raise NotImplementedError


def _other(side: Role) -> Role:
    return "server" if side == "client" else "client"


@dataclass(slots=True)
class RstEvent(FlowEvent):
    """A RST segment, judged by the receiver's RFC 9293 / RFC 5961 checks."""

    KIND: ClassVar[str] = "rst"
    ROLES: ClassVar[tuple[str, str]] = ("sender", "receiver")

    sender: Role = "client"
    receiver: Role = "server"
    # accepted: the receiver must have acted on it; challenge: in window but not RCV.NXT (RFC 5961
    # challenge ACK); out_of_window; bad_ack: in SYN-SENT without ACK = ISS+1; after_close: the
    # receiver had already closed gracefully; unverified: the capture holds too little to check;
    # retried: it refused a SYN that the client sent again and that was then answered.
    rst_verdict: str = "unverified"
    sender_state: str = "UNKNOWN"
    receiver_state: str = "UNKNOWN"
    rst_has_ack: bool = False
    rst_ttl: int = 0
    # |RST TTL - the sender's usual TTL|; None when the sender sent nothing else to compare with.
    # Usual: that of its data segments when it sent any (the host that really speaks for it),
    # else that of its acknowledgements of the peer's data, else that of its other segments
    # (`ttl_reference` says which, `sender_ttl` gives it).
    ttl_delta: int | None = None
    sender_ttl: int | None = None
    ttl_reference: str = "other packets"
    # |RST TTL - the TTL of the sender's handshake|, only when its data came with another TTL:
    # a front end (load balancer, SYN proxy, split-TCP proxy) made the handshake for the host
    # that sent the data, and a RST with the front end's TTL is the front end's.
    handshake_ttl_delta: int | None = None
    # Keepalive probes the sender sent since it last heard from the receiver.
    sender_keepalive_probes: int = 0
    # Idle time before the first of those probes, and the mean gap between them (Linux defaults:
    # tcp_keepalive_time 7200 s, tcp_keepalive_intvl 75 s, tcp_keepalive_probes 9).
    keepalive_idle_seconds: float | None = None
    keepalive_interval_seconds: float | None = None
    # Payload the receiver sent (and the sender acknowledged) since the sender last sent payload:
    # data that reached the sender's socket and was never answered, e.g. left unread at close.
    sender_unanswered_bytes: int = 0
    # The window the sender last offered, less what the receiver sent into it since, had no
    # room for another full segment of the receiver's (a zero window, most often): its receive
    # buffer held data its application had not read, so a response was still coming when it
    # closed, whatever the unanswered bytes' age (flow control had stopped it).
    sender_buffer_full: bool = False
    # How long the receiver's window had been closed (0) when the RST came, while the sender
    # went on probing it (two segments or more: zero-window probes, or the byte Windows and
    # the BSDs probe with): the receiver's application had stopped reading and the sender's
    # writes were blocked on it. 0: the window was open, or not probed.
    receiver_window_closed_seconds: float = 0.0
    # Bytes the receiver had sent beyond what the RST acknowledges (for a RST without ACK,
    # beyond the sender's last acknowledgement): its data was still arriving when the sender
    # reset, so no exchange of theirs had ended.
    receiver_data_in_flight: int = 0
    # The RST is the first acknowledgement of data of the receiver's that had arrived
    # DELAYED_ACK_MAX_SECONDS or more before it (tracker): a live stack acknowledges what it
    # takes within that (RFC 1122 4.2.3.2), so the sender's host was not taking its segments
    # as a running socket does, or the capture missed its ACKs, and the RST's timing says
    # little of what ended the connection (a program closing with that data unread, most often).
    rst_acks_stale_data: bool = False
    # Seconds between the last of those bytes arriving and the RST (None: none unanswered). An
    # application that reads does so at once: data that sat a minute was read, not left unread.
    unanswered_age_seconds: float | None = None
    sender_bytes_sent: int = 0
    receiver_bytes_sent: int = 0
    # Times the receiver retransmitted data that was still unacknowledged when the RST came: a
    # side whose data stalled that long and then sent its FIN most likely closed because it
    # gave up (a close, not a shutdown of its writing half to wait for a reply).
    receiver_stall_retransmissions: int = 0
    # Times the sender had retransmitted data still unacknowledged at the RST, with nothing
    # from the receiver since it began retransmitting, in ESTABLISHED or CLOSE-WAIT (its
    # application still there; 0 otherwise): a sender that gave up on a silent peer. Linux
    # sends no RST when its retransmission limit runs out, Windows does (after 5 by default),
    # and so does an application that gives up and aborts: the stall is what happened, and
    # the RST, to a peer not answering, most likely tells nobody.
    sender_stall_retransmissions: int = 0
    # The receiver sent something after the sender's FIN: it was there to take the FIN (or to
    # keep writing). A receiver silent since is in a state the capture cannot show.
    receiver_sent_after_fin: bool = False
    # ... and wrote once only, after it had taken the FIN, everything before answered, to a
    # sender that waited for nothing (a server whose last data was its reply, or a side that
    # closed right after its last write): a closing message or a last short reply, after which
    # its program closes (tracker._closing_write).
    receiver_closing_write: bool = False
    # The receiver, a server, wrote its whole reply to the sender's last data after the
    # sender's FIN (one segment), the sender having closed long after that data: it waited,
    # then gave up or was killed. The server's send() succeeded; a request-response server
    # then reads the next request and gets end of file.
    receiver_late_reply: bool = False
    # The receiver's first write after the sender's FIN did not acknowledge it: it was sent
    # before the FIN arrived (the two crossed).
    receiver_write_crossed_fin: bool = False
    # Everything the receiver had sent before that write was answered by the sender: the write
    # began something new (a new request on a kept-alive connection).
    receiver_earlier_data_answered: bool = False
    # Seconds between the receiver's last write before the sender's FIN (its last request) and
    # that FIN: a long one is the sender closing a connection its peer had left idle (a
    # keep-alive timeout; the sender may have written just before, a TLS close_notify). None
    # unless the receiver wrote both before and after the FIN.
    receiver_idle_before_fin_seconds: float | None = None
    # Seconds between the sender's FIN and the receiver's first write after it (None: it wrote
    # nothing after the FIN). A closing message answers the end of file at once; a write long
    # after it is the receiver's next request on a connection it had not noticed was closed.
    receiver_write_after_fin_seconds: float | None = None
    # The receiver, a client, wrote after the sender's FIN, and not in answer to it: later than
    # an answer can come (two round trips of the handshake and 0.2 s), or to a server that had
    # sent nothing (no closing message is due to a peer that said nothing). Its next request,
    # on a connection it had not noticed was closed.
    receiver_new_request_after_fin: bool = False
    # Times the sender's data answered the receiver's (came after it and acknowledged it).
    sender_replies: int = 0
    # The unanswered bytes are the server's response to the client's request: the client asked
    # for them and was waiting, so it most likely read them, unless more of the response was
    # still arriving after the RST (it quit mid-response).
    unanswered_is_response: bool = False
    # The unanswered bytes are not such a response: the receiver asked something of the sender
    # (a request, or a client's reply to a server's greeting) and the sender still owed it an
    # answer, so the exchange was not over when the RST came.
    sender_owes_reply: bool = False
    receiver_data_after_rst: bool = False
    # Seconds between the previous segment of this connection and the RST.
    idle_seconds: float = 0.0
    # The receiver's segment came last before the RST, shortly before it (RST_ANSWER_SECONDS):
    # the RST may answer it, as a kernel that no longer knows the connection does. One that
    # answers nothing (on an idle connection) is the sender's own abort.
    answers_receiver: bool = False
    # Seconds since the sender's application finished an exchange, when nothing it sent is left
    # unanswered: since the receiver's reply to its last data, since a server's own last data
    # when that was its response, or since the handshake if no data flowed at all (a connect
    # probe). None when the sender's data is unanswered.
    exchange_age_seconds: float | None = None
    # Connections whose RST came from the same host within burst window, this one included.
    burst_size: int = 1
    # Some RST of that burst came right after an application exchange ended (or right after a
    # handshake), or on a connection idle for seconds since its exchange ended (its owner
    # dropping kept-alive connections: tracker.IDLE_TEARDOWN_SECONDS): the burst is an
    # application closing its connections, not a kill from outside.
    burst_after_exchange: bool = False
    # Both ends kept sending ordinary segments afterwards: the connection carried on.
    carried_on: bool = False
    further_rsts: int = 0
    # The sender's next segment was a RST that the receiver accepted: this one, dropped, did not
    # leave the connection alive after all (typically the sender, which had lost the connection,
    # answered the receiver's challenge ACK with a RST at the right number: RFC 5961 3.2).
    later_rst_accepted: bool = False
    # Both the SYN and the SYN-ACK carried a Multipath TCP option: the connection is one
    # subflow of an MPTCP connection, which is the applications' socket and outlives it.
    mptcp_subflow: bool = False
    # The client's SYN carried MP_JOIN: an MPTCP stack's path manager opened this connection
    # as a further subflow of an MPTCP connection, no application's connect().
    mptcp_join: bool = False
    # The Multipath TCP options the RST carried: "fastclose" (MP_FASTCLOSE: the MPTCP
    # connection was aborted as a whole, RFC 8684 3.5), "subflow" (others, such as
    # MP_TCPRST with the reason: the MPTCP stack reset this subflow alone, 3.6), or "none".
    rst_mptcp: str = "none"
    # The text the RST carries, its sender's reason (TcpSegment.rst_text; "" for none): what a
    # load balancer or firewall says of why it reset, F5 BIG-IP's "No pool member available".
    rst_text: str = ""
    # The receiver had sent MP_FASTCLOSE on an ACK of this subflow: its MPTCP stack aborted the
    # MPTCP connection, and this RST is the sender's stack answering (RFC 8684 3.5).
    receiver_fastclosed: bool = False
    # The sender, a server, repeated its SYN-ACK well after the receiver had acknowledged it
    # and acknowledged none of the data the receiver sent: its kernel never took the
    # handshake's ACK (a listener whose accept queue was full), so no program there ever had
    # the connection, and the RST is its listener's answer to a segment of a connection it
    # does not know (tracker._handshake_not_taken).
    sender_never_took_handshake: bool = False
    # The side that ended the connection: the sender, but the receiver where the RST only
    # answers its MP_FASTCLOSE (what reports count as the host aborting connections). (Every
    # RstEvent is made with it given, as with `sender`: tests/fuzzing.py compares the paths.)
    aborter: Role = "client"
    # Handshake tell-tales of the client's SYN (for scans): options a normal stack sends.
    client_syn_options: bool = True
    # The client's SYN is in the capture: without it, what its options say is unknown, and a
    # SYN-ACK it reset may have been no answer to it at all (backscatter of a SYN flood that
    # forged its address, a SYN-ACK scan).
    client_syn_seen: bool = True
    client_syn_window: int = 0

    def role_of(self, role: str) -> Role:
        return {"sender": self.sender, "receiver": self.receiver}[role]


@dataclass(slots=True)
class IcmpErrorEvent(FlowEvent):
    """An ICMP error whose quoted IP+TCP header matches this connection."""

    KIND: ClassVar[str] = "icmp"
    ROLES: ClassVar[tuple[str, str]] = ("affected", "other")

    affected: Role = "client"  # the endpoint whose packet the ICMP error quotes
    affected_state: str = "UNKNOWN"
    # port_unreachable, host_unreachable, net_unreachable, protocol_unreachable,
    # admin_prohibited, frag_needed, packet_too_big, time_exceeded, parameter_problem, other
    icmp_kind: str = "other"
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_version: int = 4
    # RFC 1122 4.2.3.9 hard errors: port/protocol unreachable, frag-needed with DF.
    icmp_hard: bool = False
    icmp_count: int = 1
    icmp_source: str = ""
    from_peer: bool = False  # the ICMP came from the peer's own address, not a router
    # The ICMP came from the affected side's own address: a firewall on its host rejected the
    # packet before it left.
    from_own_host: bool = False
    # The affected side's SYN is not in the capture, only quoted by the error: it never reached
    # the wire (a firewall on its own host rejected it).
    quoted_only: bool = False
    mtu: int | None = None
    # The quoted packet carries more payload than any segment the affected side put on the wire:
    # segments were merged after the capture point (GRO/LRO on the peer), not a smaller link.
    quoted_oversize: bool = False
    quoted_payload: int | None = None
    affected_max_payload: int = 0
    # The affected side's data was acknowledged after the ICMP: the path recovered.
    recovered: bool = False
    retransmissions_after: int = 0
    # The affected side sent its SYN again this many times after the first error: its stack
    # took the error as soft during the handshake (Windows, macOS and the BSDs do; Linux aborts
    # connect() on the first), and its connect() fails only when its SYN retries run out.
    syn_retries_after: int = 0
    # The affected side sent its FIN (before or after the error): its application had closed,
    # so no call of it is left to fail with a soft error stored on the socket.
    affected_closed: bool = False
    # The client's SYN carried MP_JOIN: a subflow that a Multipath TCP stack tried to add to a
    # connection it had (RFC 8684 3.2), which no application's connect() opened.
    mptcp_join: bool = False

    def role_of(self, role: str) -> Role:
        return {"affected": self.affected, "other": _other(self.affected)}[role]


@dataclass(slots=True)
class SilenceEvent(FlowEvent):
    """The connection went quiet with something unfinished (judged when it is retired)."""

    KIND: ClassVar[str] = "silence"
    ROLES: ClassVar[tuple[str, str]] = ("stalled", "peer")

    stalled: Role = "client"  # the side that was waiting: data or SYN never acknowledged
    stalled_state: str = "UNKNOWN"
    peer_state: str = "UNKNOWN"
    syn_unanswered: bool = False  # the stall is the handshake itself
    # The server's SYN-ACK was retransmitted and never answered (no ACK, no RST): the client's
    # SYN came from a raw-socket scanner whose host dropped the reply.
    synack_unanswered: bool = False
    stall_retransmissions: int = 0
    # Payload bytes of the stalled side's never acknowledged (its FIN not counted; all it sent in
    # the capture if its peer acknowledged nothing there): 0 when only its FIN was left, a few
    # dozen when it was a goodbye (a TLS close_notify, an HTTP/2 GOAWAY) sent with its FIN.
    stall_payload_bytes: int = 0
    stall_seconds: float = 0.0  # first transmission of the oldest unacknowledged byte to the last
    # How long the capture went on after the stalled side's last packet (to the capture clock
    # when the connection was retired: the capture's end, or when the table retired it as idle
    # or for room); None where not judged.
    quiet_after_seconds: float | None = None
    # That was more than tracker.RETRY_DUE_FACTOR times its last retransmission gap: its next
    # retransmission was due long before and never came, so it was done retrying: its stack's
    # retry limit ran out, or its program gave up first (a connect() abandoned on the program's
    # own timeout sends nothing: a socket closed in SYN-SENT just goes away).
    retries_stopped: bool = False
    backoff_growing: bool = False  # retransmission gaps did not shrink (exponential backoff)
    # The mean time between the first transmission and each retransmission after it (None
    # without retransmissions): no stack retransmits a SYN or data within 150 ms of the last
    # (RTO floor 200 ms; a SYN's first RTO 1 s or more), so faster repeats are copies.
    mean_retry_gap_seconds: float | None = None
    # The peer sent nothing since the stalled side began retransmitting (the first one kept):
    # a peer that answered early probes or acknowledged earlier data, then fell silent, is
    # gone (or its path is), not a path losing one way.
    peer_silent: bool = True
    # The peer's receive window was closed (0) when it fell silent: the stall is the stalled
    # side's probes of that window (Linux's, 0 bytes at SND.NXT-1; Windows' and the BSDs', the
    # next byte) that a reader which had stopped reading answered until it went away.
    peer_window_closed: bool = False
    # The peer, after its own FIN, sent a RST from its usual host that the stalled side did not
    # accept (a bare RST at a stale sequence number: a stack answering data that came for a
    # socket it had already closed and dropped): no program there was left to read what the
    # stalled side kept retransmitting.
    peer_reset_after_closing: bool = False
    # The peer, a server, repeated its SYN-ACK well after the stalled client had acknowledged
    # it and acknowledged none of its data: the data went to a kernel that never took the
    # handshake (a listener whose accept queue was full: RstEvent.sender_never_took_handshake).
    peer_never_took_handshake: bool = False
    # The payload of the stalled side's latest retransmission (0: none, or a SYN).
    stall_segment_bytes: int = 0
    # That segment is large (tracker.LARGE_SEGMENT_BYTES or more) and nothing from the first
    # large segment the stalled side sent on was acknowledged, while its smaller packets
    # reached the peer (its handshake was answered, or smaller data acknowledged): its big
    # segments never got through (tracker._large_never_acked). A path MTU black hole.
    large_never_acked: bool = False
    # Seconds the connection had been quiet (nothing either way) when the stalled data was
    # first sent (None for a SYN): a stateful firewall, NAT or load balancer on the path forgets
    # a connection idle longer than its timeout and drops what comes after.
    idle_before_stall_seconds: float | None = None
    # Nothing of the peer's is in the capture, yet the stalled side acknowledged new data or a
    # FIN from it: the peer was sending, and the capture missed that direction (a one-way tap,
    # asymmetric routing), so what looks unacknowledged proves nothing.
    other_direction_missed: bool = False
    unanswered_keepalives: int = 0
    icmp_errors: int = 0
    # The stalled side's own RST ended it (a connect() that gave up, or a sender that gave up
    # on its data: see the tracker's Connection._own_rst_ended_stall); the stall is the
    # finding, the RST most likely tells nobody.
    ended_by_reset: bool = False
    # That RST came when the stalled side's next retransmission was due (after its last one, at
    # least RESET_SCHEDULE_MIN and at most RESET_SCHEDULE_MAX times the gap before it): its
    # stack's retransmission limit ran out. Windows (5 retransmissions), macOS and the BSDs (12)
    # abort with a RST then and their program gets ETIMEDOUT; an application giving up on a
    # timer of its own strikes at any moment of the backoff.
    reset_on_schedule: bool = False
    # The stalled side's operating-system family as its TTL suggests (FlowEvent's client_os
    # or server_os): a data stall ended by a RST is the stack's doing on Windows (its
    # retransmission limit aborts with a RST), the application's on Linux (whose limit sends
    # none), so what its program saw differs.
    stalled_os: str = "unknown"
    # The client's SYN carried MP_JOIN (IcmpErrorEvent.mptcp_join): a Multipath TCP subflow.
    mptcp_join: bool = False

    def role_of(self, role: str) -> Role:
        return {"stalled": self.stalled, "peer": _other(self.stalled)}[role]


@dataclass(slots=True)
class CloseEvent(FlowEvent):
    """The server's FIN while the client still expected something of the connection: the
    client's data had reached the server (its FIN acknowledged it) and was never answered, or
    the client wrote after the FIN. Judged when the connection is retired, and only for one
    without any RST (a RST's event tells that story). A client's FIN after the server's data
    is how a client ends a connection; a server's FIN is the end of file the client reads where
    it waited for an answer."""

    KIND: ClassVar[str] = "fin"
    ROLES: ClassVar[tuple[str, str]] = ("closer", "peer")

    closer: Role = "server"  # the side whose FIN came first
    # The peer's payload that the FIN acknowledged and that the closer had not answered (sent
    # since the closer last sent payload): a request the closer took and left unanswered.
    peer_unanswered_bytes: int = 0
    # Seconds between the peer's last write before the FIN and the FIN (None: nothing
    # unanswered): a server turning a request away closes at once, one killed or timing out
    # while it worked on the request later.
    request_wait_seconds: float | None = None
    # The unanswered data may be a goodbye that expects no answer, sent by a client that then
    # closes (or waits for the server to): a short message (tracker.GOODBYE_BYTES: a TLS
    # close_notify, PostgreSQL's Terminate, MySQL's COM_QUIT, memcached's `quit`) that the
    # server closed on at once (within two handshake round trips and 0.2 s). Both FINs then
    # follow at once in either order, as they do for a request turned away.
    request_may_be_goodbye: bool = False
    # The unanswered data is a one-way stream, not a request waiting for its answer: more than
    # a whole unscaled window (64 KiB) to a closer that had sent nothing (iperf3's data
    # connections, a backup upload), or data in three segments or more spread over longer than
    # two handshake round trips and 0.2 s (a log shipper's messages; one request goes out in
    # one burst). Its sender may watch the socket and close at the end of file, as a waiting
    # client does, but waited for nothing.
    peer_one_way_stream: bool = False
    # What the closer had sent on the connection: a server that had said nothing at all turned
    # the request away; one that had talked may have been the side that asks (OpenFlow's
    # controller) or have taken a longer goodbye (a device's sign-off message) than the
    # capture can tell from a request.
    closer_bytes_sent: int = 0
    # Times the closer's data answered the peer's before.
    closer_replies: int = 0
    # The capture holds both SYNs: all that either side sent is in it (one that starts
    # mid-connection may have missed everything the closer said).
    handshake_seen: bool = False
    # The peer acknowledged the FIN (or sent its own FIN after it): the end of file reached it.
    fin_taken: bool = False
    # Seconds between the FIN and the peer's own FIN (None: it sent none in the capture).
    peer_fin_after_seconds: float | None = None
    # The peer closed as soon as its program could have read the end of file: its FIN
    # acknowledged the closer's (it was sent after that FIN had reached it, not crossing it)
    # and came within two handshake round trips and 0.2 s of it, or of the peer's own last
    # write after it. A program blocked in recv() for an answer reads the end of file at once
    # and closes; one that was not reading (a sender of a one-way stream) closes later or not,
    # and one whose FIN crossed the closer's closed on its own account.
    peer_closed_on_eof: bool = False
    # What the peer wrote after the FIN, as RstEvent's receiver facts of the same names say.
    peer_data_after_fin: int = 0
    peer_write_after_fin_seconds: float | None = None
    peer_new_request_after_fin: bool = False
    peer_write_crossed_fin: bool = False
    peer_earlier_data_answered: bool = False
    peer_idle_before_fin_seconds: float | None = None
    # A Multipath TCP subflow (RstEvent.mptcp_subflow): the applications' socket is the MPTCP
    # connection, whose data may be answered on another subflow, and a subflow's FIN is no
    # end of file for them.
    mptcp_subflow: bool = False

    def role_of(self, role: str) -> Role:
        return {"closer": self.closer, "peer": _other(self.closer)}[role]


EVENT_TYPES: dict[str, type[FlowEvent]] = {
    cls.KIND: cls for cls in (RstEvent, IcmpErrorEvent, SilenceEvent, CloseEvent)
}
