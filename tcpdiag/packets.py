"""What the decode stage hands to the tracker: one small record per TCP segment or ICMP error.

Only the header fields the tracker and the rules look at are kept; payload bytes never leave the
decoder. Lengths come from the IP header, not from the captured bytes, so snaplen-truncated
captures (headers only) are analysed exactly like full ones.

The records are treated as immutable but are not frozen dataclasses: a frozen dataclass's
__init__ costs about six times as much, and one is built for every packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

# TCP flag bits, as in the TCP header's flags byte.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80


@dataclass(slots=True)
class SynOptions:
    """TCP options that only matter on SYN and SYN-ACK segments."""

    mss: int | None = None
    window_scale: int | None = None  # shift count; None when the option is absent
    sack_permitted: bool = False
    timestamps: bool = False
    # The Multipath TCP options among them (RFC 8684), a bit (1 << subtype) each: MP_CAPABLE
    # on both the SYN and the SYN-ACK makes the connection the first subflow of an MPTCP
    # connection, which is the application's socket; MP_JOIN, a further subflow of one.
    mptcp: int = 0


# Multipath TCP option subtypes (RFC 8684 7): a SYN's that opens another subflow, and those a
# RST may carry: the MPTCP connection aborted as a whole, or why this one subflow was reset.
MPTCP_JOIN: Final = 1
MPTCP_FASTCLOSE: Final = 7
MPTCP_TCPRST: Final = 8


def segment_mptcp(flags: int, options: int) -> int:
    """TcpSegment.mptcp_options of a segment with these flags that carries these Multipath TCP
    options (a bit, 1 << subtype, each)."""
    if flags & RST:
        return options
    if flags & SYN:
        return 0  # (a SYN's are its SynOptions.mptcp)
    return options & (1 << MPTCP_FASTCLOSE)


@dataclass(slots=True)
class TcpSegment:
    frame: int  # 1-based, numbered exactly as Wireshark numbers the capture's packets
    time: float  # seconds since the epoch
    src: str  # IP address text, as ipaddress would print it
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int  # meaningful only when flags has ACK
    flags: int  # FIN | SYN | RST | PSH | ACK | URG | ECE | CWR
    window: int  # as on the wire, not yet scaled
    payload_len: int  # TCP payload bytes as the IP header states them (not the captured bytes)
    ttl: int  # IPv4 TTL or IPv6 hop limit
    ip_version: int  # 4 or 6
    ip_id: int | None = None  # IPv4 identification; None for IPv6
    syn_options: SynOptions | None = None  # parsed only when SYN is set
    # The tunnels the segment travelled in, outermost first (tcpdiag.tunnels.context_text);
    # "" outside tunnels. Part of the connection key: two tenants' equal 4-tuples stay apart.
    tunnel: str = ""
    # The Multipath TCP options that matter on this segment, a bit (1 << subtype) each: on a
    # RST, every one it carries (MPTCP_FASTCLOSE, MPTCP_TCPRST, DSS, ...); on any other segment
    # but a SYN, MP_FASTCLOSE alone (an ACK carrying it aborts the MPTCP connection, and its
    # peer answers with a RST: RFC 8684 3.5); 0 when none (segment_mptcp).
    mptcp_options: int = 0
    # The text a RST carries, its sender's reason (RFC 1122 4.2.2.12 lets a RST hold data; F5
    # BIG-IP load balancers, some firewalls and embedded stacks write why they reset), cleaned
    # up by tcpdiag.decode.reset_text; "" for any other segment, or a payload that is no text.
    rst_text: str = ""


class SegmentFields(Protocol):
    """What the tracker's in-order path and Zeek's view (tcpdiag.zeek) read of a segment: a
    TcpSegment, or a row of columns that the fast path continues a connection with
    (tcpdiag.tracker.Connection.continue_in_order)."""

    @property
    def frame(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dport(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def window(self) -> int: ...
    @property
    def payload_len(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def ip_id(self) -> int | None: ...
    @property
    def syn_options(self) -> SynOptions | None: ...


@dataclass(slots=True)
class QuotedTcp:
    """The invoking packet's IP+TCP header as quoted inside an ICMP error."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int  # the first 8 bytes of the TCP header are guaranteed to be quoted (RFC 792)
    # TCP payload bytes of the quoted packet, from its IP length (and TCP data offset when the
    # quote reaches it); None when the quote does not say.
    payload_len: int | None = None
    # The quoted TCP flags (byte 13): None when the quote stops short of them (RFC 792 only
    # promises 8 bytes; RFC 1812 routers and hosts quote more).
    flags: int | None = None


@dataclass(slots=True)
class IcmpError:
    frame: int
    time: float
    src: str  # the router or host that sent the ICMP error
    dst: str
    ip_version: int
    icmp_type: int  # ICMPv4 3/11/12 or ICMPv6 1/2/3/4
    icmp_code: int
    ttl: int
    quoted: QuotedTcp | None  # None when the quoted packet is not TCP or is cut short
    mtu: int | None = None  # next-hop MTU of frag-needed (v4) or Packet Too Big (v6)
    tunnel: str = ""  # the tunnels the ICMP error travelled in, as TcpSegment.tunnel


Packet = TcpSegment | IcmpError
