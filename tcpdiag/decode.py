"""Link, IP, TCP and ICMP decoding of RawFrames into the small records of tcpdiag.packets.

Hot path: one struct call per header at computed offsets and one output record per frame; no
per-layer objects. Address text is cached per address because a capture holds few distinct
addresses but very many packets.

Tunnels are looked through (VXLAN, GENEVE, GRE with IP, MPLS, transparent Ethernet bridging or
ERSPAN I/II/III inside, MPLS label stacks, PPPoE sessions, L2TPv2, GTP-U, IP-in-IP and
IPv6-in-IPv4, Teredo; SRv6 is counted but names no context):
the record is the innermost TCP segment or ICMP error, with the tunnel named in its `tunnel`
context (tcpdiag.tunnels). Only frames that are not plain IP TCP ever reach those branches.

Every frame lands in exactly one DecodeStats bucket, so
frames == tcp + icmp_errors + other + undecodable + sum(unknown_linktypes.values())
          + sum(unsupported.values()).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from tcpdiag import tunnels
from tcpdiag.packets import (
    RST,
    SYN,
    IcmpError,
    QuotedTcp,
    SynOptions,
    TcpSegment,
    segment_mptcp,
)
from tcpdiag.reader import RawFrame

# Link types (LINKTYPE_* values as stored in pcap/pcapng).
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
# Serial links, as routers and PPP hosts capture them: PPP (RFC 1661), with or without the
# HDLC-like framing of RFC 1662 (its FF 03 address and control bytes); the same in that framing
# or as Cisco's PPP in HDLC framing; a PPPoE session (RFC 2516) without its Ethernet header;
# Cisco HDLC (an address byte, a control byte, then an ethertype).
LINKTYPE_PPP: Final = 9
LINKTYPE_PPP_HDLC: Final = 50
LINKTYPE_PPP_ETHER: Final = 51
LINKTYPE_C_HDLC: Final = 104
# IP over InfiniBand (RFC 4391), as Linux captures it: a 40-byte destination address (its QPN
# and GID), then RFC 4391's header (an ethertype, two reserved bytes), then the packet.
LINKTYPE_IPOIB: Final = 242
# DLT_RAW leaked into files as 12 (most systems) or 14 (OpenBSD) before LINKTYPE_RAW existed.
_RAW_LINKTYPES: Final = frozenset((LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6))

_ETH_IPV4: Final = 0x0800
_ETH_IPV6: Final = 0x86DD
VLAN_TPIDS: Final = frozenset((0x8100, 0x88A8, 0x9100))  # 802.1Q, 802.1ad, old QinQ
_ETH_MPLS: Final = frozenset((0x8847, 0x8848))  # unicast, multicast
_ETH_PPPOE_SESSION: Final = 0x8864
_ETH_BRIDGING: Final = 0x6558  # transparent Ethernet bridging (gretap, GENEVE, NVGRE)
_ETH_ERSPAN_1_2: Final = 0x88BE  # ERSPAN type II (type I: the same, without GRE sequence)
_ETH_ERSPAN_3: Final = 0x22EB
# Cisco FabricPath: the outer switch addresses, this ethertype, 2 bytes of FTag and TTL, then the
# host's own Ethernet frame. A fabric's framing, not a tunnel: both directions carry it.
_ETH_FABRICPATH: Final = 0x8903
_PPP_IPV4: Final = 0x0021
_PPP_IPV6: Final = 0x0057
_PPP_MPLS: Final = frozenset((0x0281, 0x0283))  # unicast, multicast (RFC 3032)
_GTP_G_PDU: Final = 0xFF  # a GTP-U message carrying a user's packet
# L2TPv2 header flags (RFC 2661 3.1): a control message; length, sequence numbers and an offset
# present.
_L2TP_CONTROL: Final = 0x8000
_L2TP_LENGTH: Final = 0x4000
_L2TP_SEQUENCE: Final = 0x0800
_L2TP_OFFSET: Final = 0x0200
_HDLC_FRAMING: Final = b"\xff\x03"  # RFC 1662's all-stations address and UI control
_CISCO_HDLC_ADDRESSES: Final = frozenset((0x0F, 0x8F))  # unicast, broadcast
_ETH_HEADER: Final = 14

_AF_INET: Final = 2
_AF_INET6: Final = frozenset((24, 28, 30))  # BSDs disagree: NetBSD/OpenBSD, FreeBSD, Darwin

_PROTO_ICMP: Final = 1
_PROTO_TCP: Final = 6
_PROTO_ICMPV6: Final = 58
_PROTO_IPIP: Final = 4
_PROTO_UDP: Final = 17
_PROTO_IPV6_IN_IP: Final = 41
_PROTO_GRE: Final = 47
_CARRIERS: Final = frozenset((_PROTO_IPIP, _PROTO_UDP, _PROTO_IPV6_IN_IP, _PROTO_GRE))
_GRE_CHECKSUM: Final = 0x8000
_GRE_ROUTING: Final = 0x4000
_GRE_KEY: Final = 0x2000
_GRE_SEQUENCE: Final = 0x1000
_EXT_FRAGMENT: Final = 44
_EXT_AH: Final = 51
_EXT_ROUTING: Final = 43
# (59, no next header, ends the chain)
_IPV6_EXTS: Final = frozenset((0, _EXT_ROUTING, _EXT_FRAGMENT, _EXT_AH, 60))
_NOT_TCP: Final = -1  # pseudo protocol: an IPv6 non-first fragment, no upper header here

_ICMP4_ERRORS: Final = frozenset((3, 11, 12))
_ICMP4_UNREACH: Final = 3
_ICMP4_FRAG_NEEDED: Final = 4
_ICMP6_ERRORS: Final = frozenset((1, 2, 3, 4))
_ICMP6_TOO_BIG: Final = 2

_IP4 = struct.Struct("!BxHHHBB2x4s4s")  # ver/ihl, total len, id, flags/frag, ttl, proto, src, dst
_IP6 = struct.Struct("!4xHBB16s16s")  # payload len, next header, hop limit, src, dst
_TCP = struct.Struct("!HHIIBBH")  # ports, seq, ack, data offset, flags, window
_TCP8 = struct.Struct("!HHI")  # the 8 TCP bytes an ICMP error is sure to quote
_U16 = struct.Struct("!H").unpack_from
_PORTS = struct.Struct("!HH").unpack_from  # also GRE's flags and protocol type
_U32 = struct.Struct("!I").unpack_from


_NO_OPTIONS: Final = SynOptions()
_ZERO80: Final = bytes(10)
_ADDR_CACHE_MAX: Final = 1 << 16  # a scan can show millions of addresses; bound the memory


class _Skip:
    """Marker type for frames that yield no record but are not undecodable."""


_OTHER: Final = _Skip()  # decoded fine, but nothing for the tracker
_UNKNOWN_LINKTYPE: Final = _Skip()  # already counted in stats.unknown_linktypes
_UNSUPPORTED: Final = _Skip()  # already counted in stats.unsupported
_MAX_CONTEXTS: Final = 1024  # distinct tunnel contexts counted by name; the rest as one


@dataclass(slots=True)
class DecodeStats:
    frames: int = 0
    tcp: int = 0
    icmp_errors: int = 0
    other: int = 0  # decoded fine but not TCP / not a TCP-quoting ICMP error: counted, skipped
    undecodable: int = 0  # malformed / too short to decode
    first_undecodable: int | None = None  # frame number of the first one, for the report
    unknown_linktypes: dict[int, int] = field(default_factory=dict)  # linktype -> frames
    # Encapsulations that may carry TCP but are not decoded (name -> frames), e.g. VXLAN-GPE.
    unsupported: dict[str, int] = field(default_factory=dict)
    # Of `undecodable`: frames the capture's snaplen cut short (the rest are malformed).
    truncated: int = 0
    # Frames that went through each kind of tunnel (a frame in nested tunnels counts in each).
    encapsulations: dict[str, int] = field(default_factory=dict)
    # Frames per tunnel context (tcpdiag.tunnels), up to _MAX_CONTEXTS names.
    tunnels: dict[str, int] = field(default_factory=dict)
    # SYNs and SYN-ACKs carrying a Multipath TCP option (MP_CAPABLE or MP_JOIN, RFC 8684):
    # each subflow is tracked as a TCP connection of its own (see describe_decode).
    mptcp_syns: int = 0

    def count_tunnel(self, context: str, frames: int = 1) -> None:
        """More frames in this tunnel context (the names are bounded, not the count)."""
        counts = self.tunnels
        if context not in counts and len(counts) >= _MAX_CONTEXTS:
            context = "(other tunnels)"
        counts[context] = counts.get(context, 0) + frames

    @property
    def not_decoded(self) -> int:
        """Frames that may have held TCP but could not be read: the diagnosis cannot see them."""
        return (
            self.undecodable + sum(self.unknown_linktypes.values()) + sum(self.unsupported.values())
        )


def _ip4_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def ip6_text(raw: bytes) -> str:
    """RFC 5952 text, the same on every Python version and platform.

    inet_ntop agrees with ipaddress except for addresses with 80 zero bits in front: it writes
    IPv4-compatible ones (::a.b.c.d) dotted, where ipaddress writes hex. IPv4-mapped ones are
    pinned to the dotted ::ffff:a.b.c.d of RFC 5952 section 5, as Wireshark, inet_ntop and
    ipaddress from Python 3.13 on write them (3.11 and 3.12 write hex).
    """
    if raw[:10] == _ZERO80:
        if raw[10:12] == b"\xff\xff":
            return "::ffff:" + socket.inet_ntop(socket.AF_INET, raw[12:])
        if raw[10:12] == b"\0\0":
            return str(ipaddress.IPv6Address(raw))
    return socket.inet_ntop(socket.AF_INET6, raw)


class Decoder:
    """Turns RawFrames into TcpSegment / IcmpError records; keeps counts of everything else."""

    def __init__(self, vxlan_ports: frozenset[int] = frozenset((tunnels.VXLAN_PORT,))) -> None:
        self.stats = DecodeStats()
        self._addrs: dict[bytes, str] = {}
        self.vxlan_ports = vxlan_ports

    def decode(self, frame: RawFrame) -> TcpSegment | IcmpError | None:
        """The record for one frame, or None (counted in stats). Never raises on any bytes."""
        stats = self.stats
        stats.frames += 1
        try:
            result = self._decode(frame)
        except (struct.error, IndexError):
            # Explicit length checks cover the usual cases; this is the net for the rest.
            result = None
        if type(result) is TcpSegment:
            stats.tcp += 1
            return result
        if type(result) is IcmpError:
            stats.icmp_errors += 1
            return result
        if result is None:
            stats.undecodable += 1
            if frame.wire_len > frame.caplen:
                stats.truncated += 1
            if stats.first_undecodable is None:
                stats.first_undecodable = frame.number
        elif result is _OTHER:
            stats.other += 1
        return None

    def _decode(self, frame: RawFrame) -> TcpSegment | IcmpError | _Skip | None:
        data = frame.data
        lt = frame.linktype
        # For the Ethernet-like link types, `off` is where the ethertype sits, two bytes before
        # the network header; VLAN tags (4 bytes each) push both along.
        if lt == LINKTYPE_ETHERNET:
            off = 12
            ethertype = (data[12] << 8) | data[13]
        elif lt == LINKTYPE_LINUX_SLL:
            off = 14
            ethertype = (data[14] << 8) | data[15]
        elif lt == LINKTYPE_LINUX_SLL2:
            if len(data) < 20:
                return None
            off = 18  # the protocol field is at 0, but the network header starts at 20
            ethertype = (data[0] << 8) | data[1]
        elif lt in _RAW_LINKTYPES:
            version = data[0] >> 4
            if version == 4:
                return self._ip4(frame, data, 0)
            if version == 6:
                return self._ip6(frame, data, 0)
            return None
        elif lt == LINKTYPE_IPOIB:
            off = 42  # (the network header starts at 44, as `off` + 2 says)
            ethertype = (data[40] << 8) | data[41]
        elif lt == LINKTYPE_C_HDLC or (
            # (Cisco HDLC under a PPP link type, as Wireshark reads it: no PPP protocol field
            # starts with 0x0F or 0x8F, and routers' captures labelled PPP hold such frames.)
            lt in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC) and data[0] in _CISCO_HDLC_ADDRESSES
        ):
            off = 2
            ethertype = (data[2] << 8) | data[3]
        elif lt in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC):
            return self._ppp(frame, data)
        elif lt == LINKTYPE_PPP_ETHER:
            return self._link_other(frame, data, 0, _ETH_PPPOE_SESSION, "")
        elif lt in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if len(data) < 4:
                return None
            if lt == LINKTYPE_LOOP:
                (family,) = _U32(data, 0)  # network byte order
            else:
                # Host byte order of the capturing machine; every AF_* value fits in a byte,
                # so it is in byte 0 (little-endian writer) or byte 3 (big-endian writer).
                family = data[0] or data[3]
            if family == _AF_INET:
                return self._ip4(frame, data, 4)
            if family in _AF_INET6:
                return self._ip6(frame, data, 4)
            return _OTHER
        else:
            unknown = self.stats.unknown_linktypes
            unknown[lt] = unknown.get(lt, 0) + 1
            return _UNKNOWN_LINKTYPE
        # Tags can follow the SLL headers too, when the kernel did not strip them.
        while ethertype in VLAN_TPIDS:
            off += 4
            ethertype = (data[off] << 8) | data[off + 1]
        if ethertype == _ETH_IPV4:
            return self._ip4(frame, data, off + 2)
        if ethertype == _ETH_IPV6:
            return self._ip6(frame, data, off + 2)
        return self._link_other(frame, data, off + 2, ethertype, "")

    # -- Link layers inside tunnels, and the rarer ethertypes ----------------------------------

    def _ethernet(
        self, frame: RawFrame, data: bytes, off: int, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        """The packet in the Ethernet frame whose ethertype is at data[off:off + 2]."""
        ethertype = (data[off] << 8) | data[off + 1]
        while ethertype in VLAN_TPIDS:
            off += 4
            ethertype = (data[off] << 8) | data[off + 1]
        if ethertype == _ETH_IPV4:
            return self._ip4(frame, data, off + 2, tunnel)
        if ethertype == _ETH_IPV6:
            return self._ip6(frame, data, off + 2, tunnel)
        return self._link_other(frame, data, off + 2, ethertype, tunnel)

    def _link_other(
        self, frame: RawFrame, data: bytes, p: int, ethertype: int, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        if ethertype in _ETH_MPLS:
            return self._mpls(frame, data, p, tunnel)
        if ethertype == _ETH_FABRICPATH:
            if len(data) < p + 16:
                return None
            return self._ethernet(frame, data, p + 14, tunnel)  # FTag/TTL, inner DA and SA
        if ethertype == _ETH_PPPOE_SESSION:
            # Version/type, code, session id, length, then the PPP frame (no HDLC framing:
            # RFC 2516 7).
            if len(data) < p + 8:
                return None
            self._count(tunnels.PPPOE)
            context = self._context(tunnels.pppoe_text(tunnel, _U16(data, p + 2)[0]))
            return self._ppp_protocol(frame, data, p + 6, context)
        return _OTHER

    def _ppp(
        self, frame: RawFrame, data: bytes, p: int = 0, tunnel: str = ""
    ) -> TcpSegment | IcmpError | _Skip | None:
        """A PPP frame at data[p:] (LINKTYPE_PPP, PPP in HDLC-like framing, in L2TP), after
        the framing's two bytes if it has them."""
        if data.startswith(_HDLC_FRAMING, p):
            p += 2
        return self._ppp_protocol(frame, data, p, tunnel)

    def _ppp_protocol(
        self, frame: RawFrame, data: bytes, p: int, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        """What the PPP frame whose protocol field is at data[p:] carries (a PPP link's, an
        L2TP tunnel's or a PPPoE session's): the field is two bytes long, or one if the link
        negotiated protocol field compression (RFC 1661 6.5: an odd first byte)."""
        if data[p] & 1:
            protocol, p = data[p], p + 1
        else:
            protocol, p = (data[p] << 8) | data[p + 1], p + 2
        if protocol == _PPP_IPV4:
            return self._ip4(frame, data, p, tunnel)
        if protocol == _PPP_IPV6:
            return self._ip6(frame, data, p, tunnel)
        if protocol in _PPP_MPLS:
            return self._mpls(frame, data, p, tunnel)
        return _OTHER  # LCP, IPCP, authentication: the link's own control traffic

    def _mpls(
        self, frame: RawFrame, data: bytes, p: int, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        self._count(tunnels.MPLS)
        while True:  # labels up to the bottom of the stack; each step moves on 4 bytes
            if len(data) < p + 4:
                return None
            bottom = data[p + 2] & 0x01
            p += 4
            if bottom:
                break
        if len(data) <= p:
            return None
        # MPLS does not say what it carries: the first nibble does, as in Wireshark.
        nibble = data[p] >> 4
        if nibble == 4:
            return self._ip4(frame, data, p, tunnel)
        if nibble == 6:
            return self._ip6(frame, data, p, tunnel)
        if nibble == 0:
            # A pseudowire control word (RFC 4385), then an Ethernet frame (RFC 4448).
            return self._ethernet(frame, data, p + 4 + 12, tunnel)
        return self._unsupported("MPLS payload that is neither IP nor Ethernet")

    # -- Tunnels carried by IP ----------------------------------------------------------------

    def _carried(
        self,
        frame: RawFrame,
        data: bytes,
        p: int,
        proto: int,
        src: bytes,
        dst: bytes,
        tunnel: str,
    ) -> TcpSegment | IcmpError | _Skip | None:
        """What IP protocol 4, 17, 41 or 47 at data[p:] carries."""
        if proto == _PROTO_UDP:
            return self._udp(frame, data, p, src, dst, tunnel)
        if proto == _PROTO_GRE:
            return self._gre(frame, data, p, src, dst, tunnel)
        self._count(tunnels.IPIP)
        context = self._tunnel(tunnel, tunnels.IPIP, src, dst)
        if proto == _PROTO_IPIP:
            return self._ip4(frame, data, p, context)
        return self._ip6(frame, data, p, context)

    def _udp(
        self, frame: RawFrame, data: bytes, p: int, src: bytes, dst: bytes, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        if len(data) < p + 8:
            return None
        sport, dport = _PORTS(data, p)
        q = p + 8
        if dport in self.vxlan_ports:
            # Flags (I bit: VNI valid), 3 reserved bytes, VNI (3 bytes), 1 reserved byte.
            if len(data) < q + 8:
                return None
            self._count(tunnels.VXLAN)
            vni = _U32(data, q + 4)[0] >> 8
            context = self._tunnel(tunnel, tunnels.VXLAN, src, dst, f"vni {vni}")
            return self._ethernet(frame, data, q + 8 + 12, context)
        if dport == tunnels.GENEVE_PORT:
            # Version and option length (4-byte words), flags, protocol type, VNI, options.
            if len(data) < q + 8:
                return None
            self._count(tunnels.GENEVE)
            inner = q + 8 + (data[q] & 0x3F) * 4
            protocol = _U16(data, q + 2)[0]
            vni = _U32(data, q + 4)[0] >> 8
            context = self._tunnel(tunnel, tunnels.GENEVE, src, dst, f"vni {vni}")
            return self._by_ethertype(frame, data, inner, protocol, context, "GENEVE")
        if tunnels.TEREDO_PORT in (sport, dport):
            return self._teredo(frame, data, q, src, dst, tunnel)
        if tunnels.L2TP_PORT in (sport, dport):
            return self._l2tp(frame, data, q, src, dst, tunnel)
        if dport == tunnels.GTP_U_PORT:
            return self._gtp_u(frame, data, q, src, dst, tunnel)
        name = tunnels.UNSUPPORTED_UDP.get(dport) or tunnels.UNSUPPORTED_UDP.get(sport)
        if name is not None:
            return self._unsupported(name)
        return _OTHER

    def _teredo(
        self, frame: RawFrame, data: bytes, q: int, src: bytes, dst: bytes, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        # RFC 4380 5.1.1: an optional authentication header (0x0001), then an optional
        # origin indication (0x0000), then the IPv6 packet.
        if len(data) < q + 2:
            return None
        if data[q] == 0 and data[q + 1] == 1:
            if len(data) < q + 4:
                return None
            q += 4 + data[q + 2] + data[q + 3] + 8 + 1  # ids, nonce, confirmation byte
        if len(data) >= q + 2 and data[q] == 0 and data[q + 1] == 0:
            q += 8
        if len(data) <= q or data[q] >> 4 != 6:
            return _OTHER  # something else on port 3544
        self._count(tunnels.TEREDO)
        return self._ip6(frame, data, q, self._tunnel(tunnel, tunnels.TEREDO, src, dst))

    def _l2tp(
        self, frame: RawFrame, data: bytes, q: int, src: bytes, dst: bytes, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        """An L2TPv2 data message (RFC 2661 3.1) and the PPP frame it carries. Its tunnel and
        session ids are the receiver's, so they differ per direction: the context names the
        access concentrator's and the server's addresses only."""
        if len(data) < q + 6:
            return None
        flags = _U16(data, q)[0]
        if flags & 0x000F == 3:
            return self._unsupported("L2TPv3 (UDP 1701)")
        if flags & _L2TP_CONTROL or flags & 0x000F != 2:
            return _OTHER  # its control channel, or not L2TP
        q += 2 + (2 if flags & _L2TP_LENGTH else 0) + 4  # (length), tunnel id, session id
        if flags & _L2TP_SEQUENCE:
            q += 4  # Ns, Nr
        if flags & _L2TP_OFFSET:
            q += 2 + _U16(data, q)[0]  # offset size, then that much padding
        self._count(tunnels.L2TP)
        return self._ppp(frame, data, q, self._tunnel(tunnel, tunnels.L2TP, src, dst))

    def _gtp_u(
        self, frame: RawFrame, data: bytes, q: int, src: bytes, dst: bytes, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        """A GTPv1-U G-PDU (3GPP TS 29.281 5.1) and the IP packet it carries. Its TEID is the
        receiver's, so it differs per direction: the context names the two nodes only."""
        if len(data) < q + 8:
            return None
        flags, message = data[q], data[q + 1]
        if flags >> 5 != 1 or not flags & 0x10 or message != _GTP_G_PDU:
            return _OTHER  # echo, error indication, end marker, or not GTPv1
        p = q + 8
        if flags & 0x07:  # E, S or PN: sequence number, N-PDU number, next extension type
            if len(data) < p + 4:
                return None
            next_type, p = data[p + 3], p + 4
            while next_type:  # extension headers: a length in 4-octet units, the last byte next
                if len(data) < p + 4 or not data[p]:
                    return None
                p += data[p] * 4
                next_type = data[p - 1]
        if len(data) <= p:
            return None
        context = self._tunnel(tunnel, tunnels.GTP_U, src, dst)
        self._count(tunnels.GTP_U)
        if data[p] >> 4 == 4:
            return self._ip4(frame, data, p, context)
        if data[p] >> 4 == 6:
            return self._ip6(frame, data, p, context)
        return _OTHER

    def _gre(
        self, frame: RawFrame, data: bytes, p: int, src: bytes, dst: bytes, tunnel: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        if len(data) < p + 4:
            return None
        flags, protocol = _PORTS(data, p)
        if flags & 0x07:
            return self._unsupported(f"GRE version {flags & 0x07} (PPTP)")
        if flags & _GRE_ROUTING:
            return self._unsupported("GRE with source routing (RFC 1701)")
        q = p + 4 + (4 if flags & _GRE_CHECKSUM else 0)
        key = ""
        if flags & _GRE_KEY:
            if len(data) < q + 4:
                return None
            key = f"key {_U32(data, q)[0]}"
            q += 4
        if flags & _GRE_SEQUENCE:
            q += 4
        if protocol in (_ETH_ERSPAN_1_2, _ETH_ERSPAN_3):
            return self._erspan(frame, data, q, protocol, flags, src, dst, tunnel)
        self._count(tunnels.GRE)
        context = self._tunnel(tunnel, tunnels.GRE, src, dst, key)
        return self._by_ethertype(frame, data, q, protocol, context, "GRE")

    def _erspan(
        self,
        frame: RawFrame,
        data: bytes,
        q: int,
        protocol: int,
        gre_flags: int,
        src: bytes,
        dst: bytes,
        tunnel: str,
    ) -> TcpSegment | IcmpError | _Skip | None:
        self._count(tunnels.ERSPAN)
        if protocol == _ETH_ERSPAN_1_2 and not gre_flags & _GRE_SEQUENCE:
            # Type I has no ERSPAN header (and no GRE sequence number): the frame follows.
            context = self._tunnel(tunnel, tunnels.ERSPAN, src, dst)
            return self._ethernet(frame, data, q + 12, context)
        if len(data) < q + 12:
            return None
        session = _U16(data, q + 2)[0] & 0x3FF
        context = self._tunnel(tunnel, tunnels.ERSPAN, src, dst, f"session {session}")
        if protocol == _ETH_ERSPAN_1_2:
            return self._ethernet(frame, data, q + 8 + 12, context)
        # Type III: 12 bytes, and an 8-byte platform subheader when the O flag is set.
        inner = q + 12 + (8 if data[q + 11] & 0x01 else 0)
        return self._ethernet(frame, data, inner + 12, context)

    def _by_ethertype(
        self, frame: RawFrame, data: bytes, p: int, protocol: int, tunnel: str, carrier: str
    ) -> TcpSegment | IcmpError | _Skip | None:
        """The packet at data[p:] whose type a tunnel header gave as an ethertype."""
        if protocol == _ETH_IPV4:
            return self._ip4(frame, data, p, tunnel)
        if protocol == _ETH_IPV6:
            return self._ip6(frame, data, p, tunnel)
        if protocol == _ETH_BRIDGING:
            return self._ethernet(frame, data, p + 12, tunnel)
        if protocol in _ETH_MPLS:
            return self._mpls(frame, data, p, tunnel)
        return self._unsupported(f"{carrier} protocol 0x{protocol:04x}")

    # -- Tunnel bookkeeping (only ever reached by tunnelled frames) ---------------------------

    def _count(self, kind: str) -> None:
        counts = self.stats.encapsulations
        counts[kind] = counts.get(kind, 0) + 1

    def _tunnel(self, outer: str, kind: str, src: bytes, dst: bytes, ident: str = "") -> str:
        return self._context(
            tunnels.context_text(outer, kind, self._addr(src), self._addr(dst), ident)
        )

    def _context(self, context: str) -> str:
        self.stats.count_tunnel(context)
        return context

    def _unsupported(self, name: str) -> _Skip:
        counts = self.stats.unsupported
        counts[name] = counts.get(name, 0) + 1
        return _UNSUPPORTED

    # -- IP -----------------------------------------------------------------------------------

    def _addr(self, raw: bytes) -> str:
        text = self._addrs.get(raw)
        if text is None:
            if len(self._addrs) >= _ADDR_CACHE_MAX:
                self._addrs.clear()
            text = self._addrs[raw] = _ip4_text(raw) if len(raw) == 4 else ip6_text(raw)
        return text

    def _ip4(
        self, frame: RawFrame, data: bytes, o: int, tunnel: str = ""
    ) -> TcpSegment | IcmpError | _Skip | None:
        if len(data) < o + 20:
            return None
        vihl, total, ip_id, frag, ttl, proto, src, dst = _IP4.unpack_from(data, o)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            return None
        if frag & 0x1FFF:
            return _OTHER  # a non-first fragment: no transport header in it
        p = o + ihl
        if total:
            # (A header claiming more than the frame held on the wire lies: a corrupted or
            # fuzzed packet. What the frame held is the packet, as Wireshark takes it.)
            l4_len = min(total, _wire_room(frame, o)) - ihl
            if l4_len < 0:
                return None
        else:
            # Linux captures TSO/GSO super-packets before segmentation with total length 0.
            # (The captured length: the reader may have kept only a prefix of a huge frame.)
            l4_len = frame.caplen - p
        if proto == _PROTO_TCP:
            return self._tcp(frame, data, p, l4_len, src, dst, ttl, 4, ip_id, tunnel)
        if proto == _PROTO_ICMP:
            if len(data) < p + 8:
                return None
            icmp_type = data[p]
            if icmp_type not in _ICMP4_ERRORS:
                return _OTHER
            code = data[p + 1]
            mtu = None
            if icmp_type == _ICMP4_UNREACH and code == _ICMP4_FRAG_NEEDED:
                # Routers predating RFC 1191 send 0 here: no MTU given.
                mtu = _U16(data, p + 6)[0] or None
            return IcmpError(
                frame.number,
                frame.time,
                self._addr(src),
                self._addr(dst),
                4,
                icmp_type,
                code,
                ttl,
                self._quoted4(data, p + 8),
                mtu,
                tunnel,
            )
        if proto in _CARRIERS:
            return self._carried(frame, data, p, proto, src, dst, tunnel)
        return _OTHER

    def _ip6(
        self, frame: RawFrame, data: bytes, o: int, tunnel: str = ""
    ) -> TcpSegment | IcmpError | _Skip | None:
        if len(data) < o + 40:
            return None
        if data[o] >> 4 != 6:
            return None
        plen, nh, hlim, src, dst = _IP6.unpack_from(data, o)
        chain = _skip_ext6(data, o + 40, nh)
        if chain is None:
            return None
        proto, p, routed = chain
        if plen:
            l4_len = min(plen + 40, _wire_room(frame, o)) - (p - o)  # (see _ip4)
            if l4_len < 0:
                return None
        else:
            # Jumbograms and Linux BIG TCP super-packets: the length is not in this field.
            l4_len = frame.caplen - p
        if proto == _PROTO_TCP:
            return self._tcp(frame, data, p, l4_len, src, dst, hlim, 6, None, tunnel)
        if proto == _PROTO_ICMPV6:
            if len(data) < p + 8:
                return None
            icmp_type = data[p]
            if icmp_type not in _ICMP6_ERRORS:
                return _OTHER
            mtu = _U32(data, p + 4)[0] if icmp_type == _ICMP6_TOO_BIG else None
            return IcmpError(
                frame.number,
                frame.time,
                self._addr(src),
                self._addr(dst),
                6,
                icmp_type,
                data[p + 1],
                hlim,
                self._quoted6(data, p + 8),
                mtu,
                tunnel,
            )
        if routed and proto in (_PROTO_IPIP, _PROTO_IPV6_IN_IP):
            # Segment routing (SRv6): the outer header steers the packet along its segment list,
            # which differs per direction, as MPLS labels do; the inner packet is the connection's.
            self._count(tunnels.SRV6)
            if proto == _PROTO_IPIP:
                return self._ip4(frame, data, p, tunnel)
            return self._ip6(frame, data, p, tunnel)
        if proto in _CARRIERS:
            return self._carried(frame, data, p, proto, src, dst, tunnel)
        return _OTHER

    # -- TCP ----------------------------------------------------------------------------------

    def _tcp(
        self,
        frame: RawFrame,
        data: bytes,
        p: int,
        l4_len: int,
        src: bytes,
        dst: bytes,
        ttl: int,
        version: int,
        ip_id: int | None,
        tunnel: str,
    ) -> TcpSegment | None:
        if len(data) < p + 20:
            return None
        sport, dport, seq, ack, doff, flags, window = _TCP.unpack_from(data, p)
        doff = (doff >> 4) * 4
        payload_len = l4_len - doff
        if doff < 20 or payload_len < 0:
            return None
        options = None
        mptcp = 0
        if flags & SYN:
            options = syn_options(data, p + 20, min(p + doff, len(data)))
            if options.mptcp:
                self.stats.mptcp_syns += 1
        elif doff > 20:
            end = min(p + doff, len(data))
            if flags & RST:
                mptcp = mptcp_subtypes(data, p + 20, end)
            elif data.find(_FASTCLOSE_START, p + 20, end) >= 0:
                # (A fast look first: an option walk on every segment with timestamps would
                # cost more than the rest of its decoding.)
                mptcp = segment_mptcp(flags, mptcp_subtypes(data, p + 20, end))
        text = ""
        if flags & RST and 0 < payload_len <= RST_TEXT_MAX_PAYLOAD:
            start = p + doff
            payload = data[start : min(start + payload_len, len(data))]
            text = reset_text(payload.split(b"\0", 1)[0].decode("latin-1"), payload_len)
        addrs = self._addrs
        return TcpSegment(
            frame.number,
            frame.time,
            addrs.get(src) or self._addr(src),
            addrs.get(dst) or self._addr(dst),
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            payload_len,
            ttl,
            version,
            ip_id,
            options,
            tunnel,
            mptcp,
            text,
        )

    # -- ICMP quotes --------------------------------------------------------------------------

    def _quoted4(self, data: bytes, q: int) -> QuotedTcp | None:
        if len(data) < q + 20:
            return None
        vihl, total, _id, frag, _ttl, proto, src, dst = _IP4.unpack_from(data, q)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or proto != _PROTO_TCP or frag & 0x1FFF:
            return None
        return self._quoted_tcp(data, q + ihl, src, dst, total - ihl)

    def _quoted6(self, data: bytes, q: int) -> QuotedTcp | None:
        if len(data) < q + 40 or data[q] >> 4 != 6:
            return None
        plen, nh, _hlim, src, dst = _IP6.unpack_from(data, q)
        chain = _skip_ext6(data, q + 40, nh)
        if chain is None or chain[0] != _PROTO_TCP:
            return None
        return self._quoted_tcp(data, chain[1], src, dst, plen - (chain[1] - q - 40))

    def _quoted_tcp(
        self, data: bytes, p: int, src: bytes, dst: bytes, segment_len: int
    ) -> QuotedTcp | None:
        """The quoted TCP header; `segment_len` is the TCP header + payload length its IP
        header states (the payload itself is rarely quoted whole)."""
        if len(data) < p + 8:
            return None
        sport, dport, seq = _TCP8.unpack_from(data, p)
        header = (data[p + 12] >> 4) * 4 if len(data) > p + 12 else 20
        payload = segment_len - max(header, 20)
        return QuotedTcp(
            self._addr(src),
            self._addr(dst),
            sport,
            dport,
            seq,
            payload if payload >= 0 else None,
            data[p + 13] if len(data) > p + 13 else None,
        )


def _skip_ext6(data: bytes, p: int, nh: int) -> tuple[int, int, bool] | None:
    """(upper-layer protocol, its offset, whether a routing header came before it) after IPv6
    extension headers; None if cut short.

    A non-first fragment yields _NOT_TCP: its upper-layer header is in another packet.
    """
    routed = False
    while nh in _IPV6_EXTS:
        if len(data) < p + 8:  # every extension header is at least 8 bytes
            return None
        if nh == _EXT_FRAGMENT:
            if _U16(data, p + 2)[0] & 0xFFF8:
                return _NOT_TCP, p, routed
            nh, p = data[p], p + 8
        elif nh == _EXT_AH:
            nh, p = data[p], p + (data[p + 1] + 2) * 4  # AH counts 4-octet units, less 2
        else:
            routed = routed or nh == _EXT_ROUTING
            nh, p = data[p], p + (data[p + 1] + 1) * 8  # 8-octet units, not counting the first
    return nh, p, routed


MPTCP_OPTION: Final = 30  # Multipath TCP (RFC 8684): MP_CAPABLE, MP_JOIN, DSS, ...
# The kind and length bytes an MP_FASTCLOSE option starts with (12 bytes long in MPTCP v0 and
# v1): a segment's options hold it only if they hold these two bytes.
_FASTCLOSE_START: Final = bytes((MPTCP_OPTION, 12))


def syn_options(data: bytes, p: int, end: int) -> SynOptions:
    """The SYN options present in data[p:end]; garbage or truncation ends the scan quietly."""
    mss = window_scale = None
    sack_permitted = timestamps = False
    mptcp = 0
    for kind, size, at in _options(data, p, end):
        # A known kind with the wrong size is ignored.
        if kind == 2 and size == 4:
            mss = _U16(data, at + 2)[0]
        elif kind == 3 and size == 3:
            window_scale = data[at + 2]  # as sent; RFC 7323 clamps > 14, the tracker may too
        elif kind == 4 and size == 2:
            sack_permitted = True
        elif kind == 8 and size == 10:
            timestamps = True
        elif kind == MPTCP_OPTION and size >= 3:
            mptcp |= 1 << (data[at + 2] >> 4)
    if not (sack_permitted or timestamps or mptcp) and mss is None and window_scale is None:
        return _NO_OPTIONS
    return SynOptions(mss, window_scale, sack_permitted, timestamps, mptcp)


# A RST's reason is a short text (RFC 1122 4.2.2.12; an F5 BIG-IP's "No pool member available");
# a longer payload is data (a stack that resends what was unacknowledged), not read as one.
RST_TEXT_MAX_PAYLOAD: Final = 256
RST_TEXT_SHOWN: Final = 100  # characters of it kept for reports
# How Wireshark writes the bytes of a string field such as tcp.reset_cause, which the tshark
# engine reads: CR, LF and TAB as \r, \n and \t, other control bytes as octal (\001).
_WIRESHARK_SPACE = re.compile(r"\\[rnt]|[\r\n\t]")
_WIRESHARK_CONTROL = re.compile(r"\\[0-7]{3}|[^\x20-\x7e]")
_TEXT_CHARACTER = re.compile(r"[A-Za-z0-9 .,:;_()\[\]/'\"!?@=#+%&*<>-]")
_LETTER = re.compile(r"[A-Za-z]")


def reset_text(text: str, payload_len: int) -> str:
    """TcpSegment.rst_text: the reason a RST's payload of `payload_len` bytes gives, from
    `text`, the payload up to its first NUL byte (where Wireshark's tcp.reset_cause stops) as
    Latin-1, or as Wireshark writes it. Line breaks and tabs become spaces; other control bytes
    and bytes beyond ASCII are dropped (either way they are written, so that both engines give
    the same text). "" unless it reads as text: a payload of at most RST_TEXT_MAX_PAYLOAD bytes
    of which at least half is kept, with three letters or more, nine characters in ten of it
    letters, digits, spaces or punctuation."""
    if not text or payload_len > RST_TEXT_MAX_PAYLOAD:
        return ""
    kept = " ".join(_WIRESHARK_CONTROL.sub("", _WIRESHARK_SPACE.sub(" ", text)).split())
    if (
        2 * len(kept) < payload_len
        or len(_LETTER.findall(kept)) < 3
        or 10 * len(_TEXT_CHARACTER.findall(kept)) < 9 * len(kept)
    ):
        return ""
    return kept if len(kept) <= RST_TEXT_SHOWN else kept[: RST_TEXT_SHOWN - 3] + "..."


def mptcp_subtypes(data: bytes, p: int, end: int) -> int:
    """The Multipath TCP options in data[p:end], a bit (1 << subtype) each, as
    SynOptions.mptcp holds them (and TcpSegment.mptcp_options, through segment_mptcp)."""
    bits = 0
    for kind, size, at in _options(data, p, end):
        if kind == MPTCP_OPTION and size >= 3:
            bits |= 1 << (data[at + 2] >> 4)
    return bits


def _options(data: bytes, p: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Each TCP option in data[p:end] but padding: its kind, its size and where it starts;
    the end-of-list option, garbage or truncation ends the walk quietly."""
    while p < end:
        kind = data[p]
        if kind == 0:  # end of option list
            return
        if kind == 1:  # no-operation padding
            p += 1
            continue
        if p + 1 >= end:
            return
        size = data[p + 1]
        if size < 2 or p + size > end:
            return
        yield kind, size, p
        p += size


def _wire_room(frame: RawFrame, at: int) -> int:
    """The bytes the frame held on the wire from offset `at` on (its original length; a record
    whose original length is below its captured one is taken at the captured one)."""
    return max(frame.wire_len, frame.caplen) - at
