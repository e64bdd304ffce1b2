"""Batch decoding: many frames at once into columns of header fields (numpy arrays).

The common frame of a large capture is IPv4 TCP on Ethernet, Linux cooked (SLL, SLL2), Cisco HDLC
or raw IP, with at most two VLAN tags, without fragments or TSO. Such frames are decoded with array
operations at computed offsets, with no Python object per frame; so is IPv4 TCP in the tunnels
whose layout over Ethernet/IPv4 (no options) is just as fixed: VXLAN, GENEVE without options,
and GRE without checksum or sequence number carrying IPv4 or bridged Ethernet (gretap). Every
other frame (IPv6, deeper VLAN stacks, ICMP, other tunnels, anything odd or damaged) goes
through `Decoder`, one by one, so the two paths decode the same frame to the same fields and
count it in the same `DecodeStats` bucket.

The result is `Columns`: one row per decoded packet (what `Decoder.decode` would not have
returned None for), in frame order. Rows the arrays cannot describe carry their `Packet` in
`Columns.others`.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tcpdiag import tunnels
from tcpdiag.decode import (
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPOIB,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    MPTCP_OPTION,
    VLAN_TPIDS,
    Decoder,
    ip6_text,
)
from tcpdiag.packets import RST, SYN, IcmpError, Packet, SynOptions, TcpSegment
from tcpdiag.reader import PcapChunk, RawFrame

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

# Where the ethertype sits and where the IPv4 header starts, per link type the arrays handle.
_LINK_LAYOUT: dict[int, tuple[int, int]] = {
    LINKTYPE_ETHERNET: (12, 14),
    LINKTYPE_LINUX_SLL: (14, 16),
    LINKTYPE_LINUX_SLL2: (0, 20),
    LINKTYPE_C_HDLC: (2, 4),  # (an ethertype after the address and control bytes)
    LINKTYPE_IPOIB: (40, 44),  # (a 40-byte address, an ethertype, two reserved bytes)
    LINKTYPE_RAW: (-1, 0),  # no ethertype: the version nibble says IPv4
    12: (-1, 0),
    14: (-1, 0),
    228: (-1, 0),
}


@dataclass(slots=True)
class Columns:
    """Decoded packets in frame order, one row each. For IPv4 TCP rows the address, port and
    header columns hold the segment's fields; a row the arrays do not describe (`simple` is
    False) has its Packet in `others` (and, unless it is IPv4 TCP, zero addresses and ports).
    Narrow types: a window of a million rows takes about 60 MB."""

    number: npt.NDArray[np.int64]
    time: F64
    src: npt.NDArray[np.uint32]  # IPv4 address as an integer
    dst: npt.NDArray[np.uint32]
    sport: npt.NDArray[np.uint16]
    dport: npt.NDArray[np.uint16]
    seq: npt.NDArray[np.uint32]
    ack: npt.NDArray[np.uint32]
    flags: npt.NDArray[np.uint8]
    window: npt.NDArray[np.uint16]
    payload_len: npt.NDArray[np.int32]
    ttl: npt.NDArray[np.uint8]
    ip_id: npt.NDArray[np.uint16]
    simple: Bools  # decoded by the arrays; False: see others
    others: list[Packet]  # the Packets of the rows that are not simple, in row order
    # SYN options of simple SYN rows (see tcpdiag.decode.syn_options); -1: option absent.
    mss: npt.NDArray[np.int32]
    window_scale: npt.NDArray[np.int16]
    sack_permitted: Bools
    timestamps: Bools
    # Tunnel context of each row, as an index into `tunnel_names` (0: no tunnel). The names and
    # their index are the ColumnDecoder's, shared by all its Columns and only ever appended to.
    tunnel: npt.NDArray[np.int32]
    tunnel_names: list[str]
    tunnel_ids: dict[str, int]
    # IPv6 rows: their src and dst are not addresses but numbers of the ColumnDecoder's
    # IPv6 addresses (`addresses6`), so that the 4-tuple of every row fits the same columns.
    # A non-simple IPv6 TCP row has them too if its addresses have numbers, else zeros.
    v6: Bools
    addresses6: Addresses6
    # Rows that are not simple, in order (found once, on the first call of `packets`).
    _other_rows: I64 | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.number)

    @staticmethod
    def join(parts: list[Columns]) -> Columns:
        """The rows of all parts, in order. Consumes the parts: each column of theirs is
        released as soon as it is copied, so joining needs little more than the result."""
        if len(parts) == 1:
            return parts[0]
        others = [p for part in parts for p in part.others]
        first = parts[0]
        arrays = {}
        for name in _ARRAYS:
            arrays[name] = np.concatenate([getattr(part, name) for part in parts])
            for part in parts:
                setattr(part, name, np.empty(0, arrays[name].dtype))
        return first._with(arrays, others)

    def tail(self, start: int) -> Columns:
        """Rows from `start` on, as a copy that does not keep the rest alive."""
        skipped = int(np.count_nonzero(~self.simple[:start]))
        arrays = {name: getattr(self, name)[start:].copy() for name in _ARRAYS}
        return self._with(arrays, self.others[skipped:])

    def take(self, rows: I64) -> Columns:
        """These rows (all simple), in this order, as a copy that does not keep the rest
        alive."""
        assert bool(self.simple[rows].all())
        return self._with({name: getattr(self, name)[rows] for name in _ARRAYS}, [])

    def _with(self, arrays: dict[str, npt.NDArray[Any]], others: list[Packet]) -> Columns:
        """Columns of these arrays and objects, with this one's tunnel names and IPv6 texts."""
        return Columns(
            **arrays,
            others=others,
            tunnel_names=self.tunnel_names,
            tunnel_ids=self.tunnel_ids,
            addresses6=self.addresses6,
        )

    def address_texts(self, rows: I64, addr_text: dict[int, str]) -> tuple[list[str], list[str]]:
        """The source and destination addresses of these (simple) rows as text, as their
        packets would have them; `addr_text` caches IPv4 addresses' text across calls."""
        text6 = self.addresses6.text
        sources: list[str] = []
        destinations: list[str] = []
        for v6, src, dst in zip(
            self.v6[rows].tolist(), self.src[rows].tolist(), self.dst[rows].tolist(), strict=True
        ):
            if v6:
                sources.append(text6[src])
                destinations.append(text6[dst])
            else:
                sources.append(ipv4_text(addr_text, src))
                destinations.append(ipv4_text(addr_text, dst))
        return sources, destinations

    def packets(self, rows: I64, addr_text: dict[int, str]) -> list[Packet]:
        """The Packet records of these rows, exactly as Decoder would have made them.
        `addr_text` caches address text across calls."""
        objects: list[Packet | None] = [None] * len(rows)
        if self.others:
            if self._other_rows is None:
                self._other_rows = np.flatnonzero(~self.simple)
            wanted = np.flatnonzero(~self.simple[rows])
            for k, rank in zip(
                wanted.tolist(),
                np.searchsorted(self._other_rows, rows[wanted]).tolist(),
                strict=True,
            ):
                objects[k] = self.others[rank]
        src, dst = self.src[rows].tolist(), self.dst[rows].tolist()
        v6 = self.v6[rows].tolist() if self.addresses6.text else [False] * len(rows)
        text6 = self.addresses6.text
        flags = self.flags[rows].tolist()
        tunnel = self.tunnel[rows]
        names = self.tunnel_names
        # Per row, its context text; plain rows (the usual case) share one list of "".
        contexts = [names[t] for t in tunnel.tolist()] if tunnel.any() else [""] * len(rows)
        fields = zip(
            self.number[rows].tolist(),
            self.time[rows].tolist(),
            self.sport[rows].tolist(),
            self.dport[rows].tolist(),
            self.seq[rows].tolist(),
            self.ack[rows].tolist(),
            self.window[rows].tolist(),
            self.payload_len[rows].tolist(),
            self.ttl[rows].tolist(),
            self.ip_id[rows].tolist(),
            strict=True,
        )
        # SYN options, gathered for all the rows at once (one numpy call per column, not four
        # per SYN).
        syn = np.flatnonzero(self.flags[rows] & SYN)
        at = rows[syn]
        options_of = dict(
            zip(
                syn.tolist(),
                map(
                    _options_of,
                    self.mss[at].tolist(),
                    self.window_scale[at].tolist(),
                    self.sack_permitted[at].tolist(),
                    self.timestamps[at].tolist(),
                ),
                strict=True,
            )
        )
        out: list[Packet] = []
        for k, (number, time, sport, dport, seq, ack, window, plen, ttl, ip_id) in enumerate(
            fields
        ):
            packet = objects[k]
            if packet is None:
                options = options_of.get(k)
                if v6[k]:
                    a, b, version, ident = text6[src[k]], text6[dst[k]], 6, None
                else:
                    a = addr_text.get(src[k]) or _remember(addr_text, src[k])
                    b = addr_text.get(dst[k]) or _remember(addr_text, dst[k])
                    version, ident = 4, ip_id
                packet = TcpSegment(
                    number,
                    time,
                    a,
                    b,
                    sport,
                    dport,
                    seq,
                    ack,
                    flags[k],
                    window,
                    plen,
                    ttl,
                    version,
                    ident,
                    options,
                    contexts[k],
                )
            out.append(packet)
        return out


@functools.lru_cache(maxsize=1024)
def _options_of(mss: int, scale: int, sack_permitted: bool, timestamps: bool) -> SynOptions:
    """A SYN row's options from its columns (-1: the option is absent). One shared record per
    combination (records are never changed): most SYNs of a capture carry one of a few, and
    every live connection holds two."""
    return SynOptions(
        None if mss < 0 else mss, None if scale < 0 else scale, sack_permitted, timestamps
    )


_ARRAYS = (
    "number",
    "time",
    "src",
    "dst",
    "sport",
    "dport",
    "seq",
    "ack",
    "flags",
    "window",
    "payload_len",
    "ttl",
    "ip_id",
    "simple",
    "mss",
    "window_scale",
    "sack_permitted",
    "timestamps",
    "tunnel",
    "v6",
)


class Addresses6:
    """Numbers for the IPv6 addresses the arrays decode, so that an IPv6 4-tuple fits the
    same integer columns as an IPv4 one. Only ever appended to, up to MAX_ADDRESSES6: frames
    with addresses beyond that go through Decoder (memory stays bounded on a flood of random
    sources; the rows of an address without a number are never simple, so no connection is
    split between the arrays and Decoder)."""

    def __init__(self) -> None:
        self.text: list[str] = []  # number -> RFC 5952 text, as Decoder writes it
        self.number: dict[str, int] = {}  # text -> number
        self._by_bytes: dict[bytes, int] = {}

    def of_bytes(self, raw: bytes) -> int | None:
        found = self._by_bytes.get(raw)
        if found is None:
            found = self.of_text(ip6_text(raw))
            if found is not None:
                self._by_bytes[raw] = found
        return found

    def of_text(self, text: str) -> int | None:
        """The number of an address as a decoder wrote it (ColumnDecoder.from_packets)."""
        found = self.number.get(text)
        if found is None and len(self.text) < MAX_ADDRESSES6:
            found = self.number[text] = len(self.text)
            self.text.append(text)
        return found


# IPv6 addresses given numbers per capture (about 250 bytes each).
MAX_ADDRESSES6 = 1 << 16


def ipv4_text(cache: dict[int, str], addr: int) -> str:
    """The text of an IPv4 address (as an integer), through a cache of recent ones."""
    return cache.get(addr) or _remember(cache, addr)


# Addresses cached by ipv4_text and ipv4_number: enough for the busy ones; few long-lived strings.
_ADDRESSES_KEPT = 1 << 12


def _remember(cache: dict[int, str], addr: int) -> str:
    if len(cache) >= _ADDRESSES_KEPT:
        cache.clear()
    text = cache[addr] = socket.inet_ntoa(addr.to_bytes(4, "big"))
    return text


def ipv4_int(text: str) -> int:
    return int.from_bytes(socket.inet_aton(text), "big")


def ipv4_number(cache: dict[str, int], text: str) -> int:
    """ipv4_int through a cache of recent addresses (the reverse of ipv4_text)."""
    number = cache.get(text)
    if number is None:
        if len(cache) >= _ADDRESSES_KEPT:
            cache.clear()
        number = cache[text] = ipv4_int(text)
    return number


class ColumnDecoder:
    """Decodes PcapChunks (or lists of RawFrames) into Columns; counts into `decoder.stats`."""

    def __init__(self, decoder: Decoder | None = None) -> None:
        self.decoder = decoder or Decoder()
        self.tunnel_names: list[str] = [""]
        self.tunnel_ids: dict[str, int] = {"": 0}
        self.addresses6 = Addresses6()
        self._vxlan_ports = np.array(sorted(self.decoder.vxlan_ports), np.int64)

    def _tunnel_id(self, context: str) -> int:
        found = self.tunnel_ids.get(context)
        if found is None:
            found = self.tunnel_ids[context] = len(self.tunnel_names)
            self.tunnel_names.append(context)
        return found

    def from_packets(self, packets: list[Packet]) -> Columns:
        """Columns of packets another decoder made (the tshark engine), so that they take the
        fast path too. A row is simple when the columns give back exactly its packet (see
        Columns.packets): a TCP segment with an IP ID on IPv4, none on IPv6, and SYN options
        on SYNs only, no Multipath TCP option, no RST text; anything else is kept whole in
        `others` (with its 4-tuple, as in `decode`). Nothing is counted: the other decoder
        counted its frames."""
        n = len(packets)
        ints = {name: np.zeros(n, np.int64) for name in _FROM_PACKETS}
        time = np.zeros(n, np.float64)
        simple = np.zeros(n, np.bool_)
        v6 = np.zeros(n, np.bool_)
        sack = np.zeros(n, np.bool_)
        stamps = np.zeros(n, np.bool_)
        mss = np.full(n, -1, np.int64)
        scale = np.full(n, -1, np.int64)
        tunnel = np.zeros(n, np.int32)
        others: list[Packet] = []
        number6 = self.addresses6.of_text
        for row, packet in enumerate(packets):
            ints["number"][row] = packet.frame
            time[row] = packet.time
            if packet.tunnel:
                tunnel[row] = self._tunnel_id(packet.tunnel)
            if type(packet) is not TcpSegment:
                others.append(packet)
                continue
            numbers = _address_numbers(packet, number6)
            if numbers is not None:
                ints["src"][row], ints["dst"][row] = numbers
                ints["sport"][row], ints["dport"][row] = packet.sport, packet.dport
                v6[row] = packet.ip_version == 6
            options = packet.syn_options
            exact = (
                numbers is not None
                and (packet.ip_id is None) == (packet.ip_version == 6)
                and (options is not None) == bool(packet.flags & SYN)
                and packet.flags < 0x100
                and not (packet.mptcp_options or (options is not None and options.mptcp))
                and not packet.rst_text
            )
            if not exact:
                others.append(packet)
                continue
            simple[row] = True
            ints["seq"][row], ints["ack"][row] = packet.seq, packet.ack
            ints["flags"][row], ints["window"][row] = packet.flags, packet.window
            ints["payload_len"][row], ints["ttl"][row] = packet.payload_len, packet.ttl
            ints["ip_id"][row] = packet.ip_id or 0
            if options is not None:
                mss[row] = -1 if options.mss is None else options.mss
                scale[row] = -1 if options.window_scale is None else options.window_scale
                sack[row], stamps[row] = options.sack_permitted, options.timestamps
        return Columns(
            number=ints["number"],
            time=time,
            src=ints["src"].astype(np.uint32),
            dst=ints["dst"].astype(np.uint32),
            sport=ints["sport"].astype(np.uint16),
            dport=ints["dport"].astype(np.uint16),
            seq=ints["seq"].astype(np.uint32),
            ack=ints["ack"].astype(np.uint32),
            flags=ints["flags"].astype(np.uint8),
            window=ints["window"].astype(np.uint16),
            payload_len=ints["payload_len"].astype(np.int32),
            ttl=ints["ttl"].astype(np.uint8),
            ip_id=ints["ip_id"].astype(np.uint16),
            simple=simple,
            others=others,
            mss=mss.astype(np.int32),
            window_scale=scale.astype(np.int16),
            sack_permitted=sack,
            timestamps=stamps,
            tunnel=tunnel,
            tunnel_names=self.tunnel_names,
            tunnel_ids=self.tunnel_ids,
            v6=v6,
            addresses6=self.addresses6,
        )

    def decode(self, chunk: PcapChunk | list[RawFrame]) -> Columns:
        if isinstance(chunk, PcapChunk):
            return self._decode_pcap(chunk)
        return self._decode_frames(chunk)

    def _decode_pcap(self, chunk: PcapChunk) -> Columns:
        data = _byte_array(chunk.data)
        heads = np.array(chunk.offsets, np.int64)
        # Record headers: seconds, fraction, caplen, original length.
        fields = _block(data, heads, 16).view(chunk.endian + "u4").astype(np.int64)
        sec, frac, caplen, wire = fields[:, 0], fields[:, 1], fields[:, 2], fields[:, 3]
        if chunk.units == 1_000_000:
            # Below 2**53 the integer is exact as a float, so one division rounds exactly as
            # the reader's integer arithmetic does.
            time = (sec * 1_000_000 + frac) / 1_000_000.0
        else:
            units = chunk.units
            time = np.array(
                [(s * units + f) / units for s, f in zip(sec.tolist(), frac.tolist(), strict=True)]
            )
        starts = heads + 16
        linktypes = np.full(len(heads), chunk.linktype, np.int64)
        number = np.arange(chunk.first_number, chunk.first_number + len(heads), dtype=np.int64)
        return self._decode(chunk.data, data, starts, caplen, time, number, linktypes, wire)

    def _decode_frames(self, frames: list[RawFrame]) -> Columns:
        raw = b"".join(f.data for f in frames)
        caplen = np.array([len(f.data) for f in frames], np.int64)
        starts = np.zeros(len(frames), np.int64)
        if len(frames) > 1:
            np.cumsum(caplen[:-1], out=starts[1:])
        return self._decode(
            raw,
            _byte_array(raw),
            starts,
            caplen,
            np.array([f.time for f in frames], np.float64),
            np.array([f.number for f in frames], np.int64),
            np.array([f.linktype for f in frames], np.int64),
            np.array([f.wire_len for f in frames], np.int64),
            np.array([f.skipped for f in frames], np.int64),
        )

    def _decode(
        self,
        raw: bytes,
        data: U8,
        starts: I64,
        caplen: I64,
        time: F64,
        number: I64,
        linktypes: I64,
        wire: I64,
        skipped: I64 | None = None,
    ) -> Columns:
        """`skipped`: per frame, the captured bytes the reader dropped after the prefix it
        kept (RawFrame.skipped); such a frame goes through Decoder, which knows what to make
        of its true captured length."""
        n = len(starts)
        # ip: offset of the IP header; ok: an IPv4 frame the arrays decode; six: an IPv6 one.
        ip = np.zeros(n, np.int64)
        ok = np.zeros(n, np.bool_)
        six = np.zeros(n, np.bool_)
        kinds = [int(linktypes[0])] if (linktypes == linktypes[0]).all() else np.unique(linktypes)
        for linktype in kinds:
            layout = _LINK_LAYOUT.get(linktype)
            if layout is None:
                continue
            type_at, ip_at = layout
            these = caplen >= ip_at + 40
            if len(kinds) > 1:
                these &= linktypes == linktype
            tags = np.zeros(n, np.int64)
            if type_at >= 0:
                # VLAN tags (802.1Q, QinQ) push the IP header along by 4 bytes each, each
                # tag's ethertype sitting just before it, as in Decoder (after SLL2's header
                # too); deeper stacks are left to Decoder.
                ethertype = _u16(data, _clip(starts + type_at, data, 2))
                tag_type_at = starts + ip_at - 2
                for _ in range(_MAX_TAGS):
                    tagged = np.isin(ethertype, _VLAN_TPIDS)
                    if not tagged.any():
                        break
                    tags += tagged
                    ethertype = np.where(
                        tagged, _u16(data, _clip(tag_type_at + 4 * tags, data, 2)), ethertype
                    )
                fits = caplen >= ip_at + 4 * tags + 40
                four = these & fits & (ethertype == _ETH_IPV4)
                sixes = these & fits & (ethertype == _ETH_IPV6) & (caplen >= ip_at + 4 * tags + 60)
            else:
                version = data[_clip(starts + ip_at, data, 1)] >> 4
                four = these & (version == 4)
                sixes = these & (version == 6) & (caplen >= ip_at + 60)
            chosen = four | sixes
            ip[chosen] = starts[chosen] + ip_at + 4 * tags[chosen]
            ok |= four
            six |= sixes
        kind = None
        if LINKTYPE_ETHERNET in kinds and len(data) >= _TUNNEL_READ:
            kind, inner = self._tunnelled(data, starts, caplen, linktypes)
            these = kind > 0
            ip[these] = starts[these] + inner[these]
            ok |= these
            six &= ~these
        # The 20 bytes of the fixed IPv4 header and of the TCP header of every frame, as rows
        # of two small matrices: one gather each instead of one per field. (For IPv6 frames,
        # the first 20 bytes of the IPv6 header.)
        iph = _block(data, ip)
        vihl = iph[:, 0].astype(np.int64)
        ihl = np.where(six, 40, (vihl & 0x0F) * 4)
        ok &= (vihl >> 4 == 4) & (ihl >= 20)
        # IPv6: TCP right after the fixed header (extension headers are left to Decoder), and
        # a payload length (0 is a jumbogram or a BIG TCP super-packet: left to Decoder).
        total6 = _be(iph, 4, 2)
        six &= (vihl >> 4 == 6) & (iph[:, 6] == 6) & (total6 != 0)
        tcp = ip + ihl
        ends_ok = tcp + 20 <= starts + caplen
        ok &= ends_ok
        six &= ends_ok
        total = np.where(six, total6 + 40, _be(iph, 2, 2))
        frag = _be(iph, 6, 2)
        # total == 0 is a TSO super-packet whose length is the captured one: left to Decoder,
        # as is a header claiming more than the frame held on the wire (Decoder._ip4).
        ok &= ((frag & 0x1FFF) == 0) & (iph[:, 9] == 6) & (total >= ihl) & (total != 0)
        lies = total > np.maximum(wire, caplen) - (ip - starts)
        ok &= ~lies
        six &= ~lies
        tcph = _block(data, tcp)
        doff = (tcph[:, 12] >> 4).astype(np.int64) * 4
        payload_len = total - ihl - doff
        valid_tcp = (doff >= 20) & (payload_len >= 0)
        ok &= valid_tcp
        six &= valid_tcp
        src, dst = _be(iph, 12, 4), _be(iph, 16, 4)
        if six.any():
            six_rows = np.flatnonzero(six)
            numbered = self._number6(data, ip[six_rows], src, dst, six_rows)
            six[six_rows[~numbered]] = False
            ok |= six

        if skipped is not None and skipped.any():
            ok &= skipped == 0
            six &= ok
        # Options: those of SYNs matter, and a Multipath TCP option on a SYN or a RST, or what
        # may be an MP_FASTCLOSE on another segment (which the columns do not hold), sends the
        # frame to Decoder, which records it.
        flags = tcph[:, 13]
        options_end = np.minimum(tcp + doff, starts + caplen)
        plain = flags & (SYN | RST) == 0
        fastclose = _fastclose_start(data, tcp + 20, np.where(ok & plain, options_end, 0))
        options_end[~ok | plain] = 0
        options = _syn_options(data, tcp + 20, options_end)
        # So does a RST with payload, which may hold its reason as text (TcpSegment.rst_text).
        to_decoder = options[4] | fastclose | (((flags & RST) != 0) & (payload_len > 0))
        if to_decoder.any():
            ok &= ~to_decoder
            six &= ~to_decoder
        not_syn = flags & SYN == 0
        options[0][not_syn], options[1][not_syn] = -1, -1
        options[2][not_syn] = options[3][not_syn] = False
        rows = np.flatnonzero(ok)
        tunnel = np.zeros(n, np.int32)
        if kind is not None and kind.any():
            tunnelled = np.flatnonzero(ok & (kind > 0))
            tunnel[tunnelled] = self._contexts(data, starts[tunnelled], kind[tunnelled])
        decoder = self.decoder
        stats = decoder.stats
        # Everything else, one by one and in order, through the reference decoder.
        others = np.flatnonzero(~ok).tolist()
        kept: list[int] = []
        kept_packets: list[Packet] = []
        if others:
            o_starts, o_caplen = starts[others].tolist(), caplen[others].tolist()
            o_time, o_number = time[others].tolist(), number[others].tolist()
            o_link, o_wire = linktypes[others].tolist(), wire[others].tolist()
            o_skipped = skipped[others].tolist() if skipped is not None else [0] * len(others)
            for k, index in enumerate(others):
                s = o_starts[k]
                frame = RawFrame(
                    o_number[k], o_time[k], o_link[k], raw[s : s + o_caplen[k]], o_wire[k]
                )
                frame.skipped = o_skipped[k]
                packet = decoder.decode(frame)
                if packet is not None:
                    kept.append(index)
                    kept_packets.append(packet)
        stats.frames += len(rows)
        stats.tcp += len(rows)
        order = rows
        if kept:
            order = np.sort(np.concatenate([rows, np.array(kept, np.int64)]))
        simple = ok[order]
        v6 = six[order]
        iph, tcph = iph[order], tcph[order]
        flags = flags[order]
        mss, scale, sack, stamps = (
            options[0][order],
            options[1][order],
            options[2][order],
            options[3][order],
        )
        src, dst = src[order], dst[order]
        sport, dport = _be(tcph, 0, 2), _be(tcph, 2, 2)
        tunnel = tunnel[order]
        # Rows decoded by Decoder: their 4-tuple goes into the columns when it is a TCP one
        # whose addresses have numbers (so their connection is recognised), else zeros.
        # (Only addresses the arrays numbered: one without a number has no simple row.)
        number6 = self.addresses6.number.get
        for row, packet in zip(np.flatnonzero(~simple).tolist(), kept_packets, strict=True):
            tunnel[row] = self._tunnel_id(packet.tunnel) if packet.tunnel else 0
            if (
                type(packet) is TcpSegment
                and (numbers := _address_numbers(packet, number6)) is not None
            ):
                src[row], dst[row] = numbers
                sport[row], dport[row] = packet.sport, packet.dport
                v6[row] = packet.ip_version == 6
            else:
                src[row] = dst[row] = sport[row] = dport[row] = 0
        return Columns(
            number=number[order],
            time=time[order],
            src=src.astype(np.uint32),
            dst=dst.astype(np.uint32),
            sport=sport.astype(np.uint16),
            dport=dport.astype(np.uint16),
            seq=_be(tcph, 4, 4).astype(np.uint32),
            ack=_be(tcph, 8, 4).astype(np.uint32),
            flags=flags,
            window=_be(tcph, 14, 2).astype(np.uint16),
            payload_len=payload_len[order].astype(np.int32),
            # IPv4's TTL, or IPv6's hop limit; IPv6 has no identification (None in packets).
            ttl=np.where(v6, iph[:, 7], iph[:, 8]).astype(np.uint8),
            ip_id=np.where(v6, 0, _be(iph, 4, 2)).astype(np.uint16),
            simple=simple,
            others=kept_packets,
            mss=mss,
            window_scale=scale,
            sack_permitted=sack,
            timestamps=stamps,
            tunnel=tunnel,
            tunnel_names=self.tunnel_names,
            tunnel_ids=self.tunnel_ids,
            v6=v6,
            addresses6=self.addresses6,
        )

    def _number6(self, data: U8, ip: I64, src: I64, dst: I64, rows: I64) -> Bools:
        """Give the addresses of these IPv6 frames (IP header at `ip`) their numbers and put
        them in src and dst at `rows`; which frames have both (the others go to Decoder)."""
        pair = np.ascontiguousarray(_block(data, ip + 8, 32))
        addresses = pair.view("V16")  # (frames, 2): source, destination
        unique, inverse = np.unique(addresses.reshape(-1), return_inverse=True)
        of_bytes = self.addresses6.of_bytes
        numbers = np.array(
            [-1 if (k := of_bytes(u)) is None else k for u in unique.tolist()],
            np.int64,
        )[inverse.reshape(-1, 2)]
        src[rows], dst[rows] = numbers[:, 0], numbers[:, 1]
        return (numbers[:, 0] >= 0) & (numbers[:, 1] >= 0)

    def _tunnelled(
        self, data: U8, starts: I64, caplen: I64, linktypes: I64
    ) -> tuple[npt.NDArray[np.int8], I64]:
        """Per frame: the kind of fixed-layout tunnel it is (_VXLAN, _GENEVE, _GRE; 0: none,
        or a layout left to Decoder) and where its inner IPv4 header starts. Only Ethernet
        frames with an outer IPv4 header without options that is not a later fragment, and an
        inner IPv4 packet (no VLAN tag, no GENEVE options, no GRE checksum or sequence number),
        exactly the frames Decoder would decode through the same headers."""
        n = len(starts)
        kind = np.zeros(n, np.int8)
        inner = np.zeros(n, np.int64)
        outer = (linktypes == LINKTYPE_ETHERNET) & (caplen >= _TUNNEL_READ)
        at = _clip(starts, data, _TUNNEL_READ)
        outer &= _u16(data, at + 12) == 0x0800
        outer &= data[at + 14] == 0x45
        outer &= (_u16(data, at + 20) & 0x1FFF) == 0
        outer &= _u16(data, at + 16) >= 20  # outer total length; Decoder rejects less
        proto = data[at + 23]
        port = _u16(data, at + 36)
        # UDP: VXLAN on its ports (first, as in Decoder), else GENEVE carrying Ethernet.
        udp = outer & (proto == 17) & (_u16(data, at + 62) == 0x0800)
        vxlan = udp & np.isin(port, self._vxlan_ports)
        geneve = udp & ~vxlan & (port == tunnels.GENEVE_PORT) & ((data[at + 42] & 0x3F) == 0)
        geneve &= _u16(data, at + 44) == 0x6558
        kind[vxlan], kind[geneve] = _VXLAN, _GENEVE
        inner[vxlan | geneve] = _UDP_TUNNEL_IP
        # GRE version 0 with no flag but the key, carrying IPv4 or bridged Ethernet.
        flags = _u16(data, at + 34)
        gre = outer & (proto == 47) & ((flags == 0) | (flags == 0x2000))
        header = np.where(flags == 0x2000, 38 + 4, 38)  # where the payload starts
        payload_type = _u16(data, at + 36)
        direct = gre & (payload_type == 0x0800)
        bridged = gre & (payload_type == 0x6558) & (_u16(data, at + header + 12) == 0x0800)
        kind[direct | bridged] = _GRE
        inner[direct] = header[direct]
        inner[bridged] = header[bridged] + 14
        kind[caplen < inner + 40] = 0  # the arrays read 40 bytes of IPv4 and TCP header
        return kind, inner

    def _contexts(self, data: U8, starts: I64, kind: npt.NDArray[np.int8]) -> npt.NDArray[np.int32]:
        """The tunnel ids of these tunnelled frames, each counted in the stats as Decoder
        counts it (a capture has few distinct tunnels: one name is made per tunnel)."""
        outer = _block(data, starts + 26, 8)
        a, b = _be(outer, 0, 4), _be(outer, 4, 4)
        vni = _be(_block(data, starts + 46, 4), 0, 4) >> 8
        is_gre = kind == _GRE
        keyed = is_gre & (_u16(data, starts + 34) == 0x2000)
        key = _be(_block(data, starts + 38, 4), 0, 4)
        ident = np.where(is_gre, np.where(keyed, key, -1), vni)
        groups, inverse, counts = np.unique(
            np.stack([kind.astype(np.int64), np.minimum(a, b), np.maximum(a, b), ident], axis=1),
            axis=0,
            return_inverse=True,
            return_counts=True,
        )
        stats = self.decoder.stats
        kinds = stats.encapsulations
        ids = []
        for (k, lo, hi, v), frames in zip(groups.tolist(), counts.tolist(), strict=True):
            name = _KIND_NAMES[k]
            label = f"key {v}" if k == _GRE and v >= 0 else "" if k == _GRE else f"vni {v}"
            context = tunnels.context_text("", name, _ipv4_text(lo), _ipv4_text(hi), label)
            stats.count_tunnel(context, frames)
            kinds[name] = kinds.get(name, 0) + frames
            ids.append(self._tunnel_id(context))
        return np.array(ids, np.int32)[inverse.reshape(-1)]


def _address_numbers(
    packet: TcpSegment, number6: Callable[[str], int | None]
) -> tuple[int, int] | None:
    """A segment's two addresses as the columns hold them: IPv4 ones as integers, IPv6 ones
    by `number6`; None when either has no such form (then the row is in no group)."""
    if packet.ip_version == 4:
        try:
            return ipv4_int(packet.src), ipv4_int(packet.dst)
        except OSError:  # not one IPv4 address (another decoder's odd text)
            return None
    a, b = number6(packet.src), number6(packet.dst)
    return None if a is None or b is None else (a, b)


def quoted_key(packet: Packet, w: Columns) -> tuple[int, int, int, int, int, int] | None:
    """The 4-tuple an ICMP error quotes as the columns hold it (src, sport, dst, dport: IPv4
    addresses as integers, IPv6 ones by their numbers), the tunnel id (Columns.tunnel) of the
    ICMP error, and 1 for IPv6; None if the arrays cannot hold a row of that 4-tuple."""
    if type(packet) is not IcmpError or packet.quoted is None:
        return None
    q = packet.quoted
    tunnel = w.tunnel_ids.get(packet.tunnel, -1)
    if packet.ip_version == 4:
        return ipv4_int(q.src), q.sport, ipv4_int(q.dst), q.dport, tunnel, 0
    numbers = w.addresses6.number
    a, b = numbers.get(q.src), numbers.get(q.dst)
    if a is None or b is None:
        return None
    return a, q.sport, b, q.dport, tunnel, 1


def _ipv4_text(addr: int) -> str:
    return socket.inet_ntoa(addr.to_bytes(4, "big"))


_READ = 20  # the widest read at one offset (_block)
# VLAN tag protocol ids (as decode._VLAN_TPIDS) and the most tags the arrays step over.
_VLAN_TPIDS = np.array(sorted(VLAN_TPIDS), np.int64)
_MAX_TAGS = 2
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
# The integer columns ColumnDecoder.from_packets fills row by row.
_FROM_PACKETS = (
    "number", "src", "dst", "sport", "dport", "seq", "ack", "flags", "window", "payload_len",
    "ttl", "ip_id",
)  # fmt: skip
# Fixed-layout tunnels over Ethernet/IPv4 (ColumnDecoder._tunnelled).
_VXLAN, _GENEVE, _GRE = 1, 2, 3
_KIND_NAMES = {_VXLAN: tunnels.VXLAN, _GENEVE: tunnels.GENEVE, _GRE: tunnels.GRE}
_UDP_TUNNEL_IP = 14 + 20 + 8 + 8 + 14  # inner IPv4 of VXLAN or option-less GENEVE
_TUNNEL_READ = 64  # the bytes of outer headers looked at (the inner ones are read later)


def _byte_array(raw: bytes) -> U8:
    """The bytes as an array (no copy), at least _READ long. Reads at offsets clipped by _clip
    stay inside it; frames too short for a read fail the length checks, so what such a read
    returns is never used."""
    if len(raw) < _READ:
        raw += bytes(_READ - len(raw))
    return np.frombuffer(raw, np.uint8)


def _clip(offsets: I64, data: U8, size: int = _READ) -> I64:
    # Frames the arrays do not decode may be shorter than the offsets read; keep every read of
    # `size` bytes inside the buffer (their values are discarded). A read that belongs to the
    # frame is inside the buffer already and is not moved.
    return np.minimum(offsets, len(data) - size)


def _syn_options(
    data: U8, start: I64, end: I64
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int16], Bools, Bools, Bools]:
    """tcpdiag.decode.syn_options for many option areas at once: the same walk, one step of
    every walk at a time (at most 40 steps: each one moves on by at least a byte), SynOptions'
    fields as columns (mss, window scale, SACK permitted, timestamps, Multipath TCP)."""
    n = len(start)
    mss = np.full(n, -1, np.int32)
    scale = np.full(n, -1, np.int16)
    sack = np.zeros(n, np.bool_)
    stamps = np.zeros(n, np.bool_)
    mptcp = np.zeros(n, np.bool_)
    rows = np.flatnonzero(start < end)
    p, stop = start[rows], end[rows]
    while len(rows):
        kind = data[_clip(p, data, 1)].astype(np.int64)
        size = data[_clip(p + 1, data, 1)].astype(np.int64)
        nop = kind == 1
        # A walk ends at end-of-list, at a length byte past the end, or at a bad size.
        ends = (kind == 0) | (~nop & ((p + 1 >= stop) | (size < 2) | (p + size > stop)))
        value = ~nop & ~ends
        is_mss = value & (kind == 2) & (size == 4)
        at = _clip(p[is_mss] + 2, data, 2)
        mss[rows[is_mss]] = (data[at].astype(np.int32) << 8) | data[at + 1]
        is_scale = value & (kind == 3) & (size == 3)
        scale[rows[is_scale]] = data[_clip(p[is_scale] + 2, data, 1)]
        sack[rows[value & (kind == 4) & (size == 2)]] = True
        stamps[rows[value & (kind == 8) & (size == 10)]] = True
        mptcp[rows[value & (kind == MPTCP_OPTION)]] = True
        p = np.where(nop, p + 1, p + size)
        going = ~ends & (p < stop)
        rows, p, stop = rows[going], p[going], stop[going]
    return mss, scale, sack, stamps, mptcp


def _fastclose_start(data: U8, start: I64, end: I64) -> Bools:
    """Whether the option area data[start:end] of each row holds, where a 12-byte option
    fits, the two bytes an MP_FASTCLOSE option starts with (decode._FASTCLOSE_START): those
    rows may carry one, and Decoder walks their options. (Timestamps make most segments'
    options 12 bytes, as long as an MP_FASTCLOSE alone: one place each to look at.)"""
    found = np.zeros(len(start), np.bool_)
    rows = np.flatnonzero(end - start >= 12)
    at, room = start[rows], (end - start)[rows]
    while len(rows):
        found[rows[(data[at] == MPTCP_OPTION) & (data[at + 1] == 12)]] = True
        at, room = at + 1, room - 1
        longer = room >= 12
        rows, at, room = rows[longer], at[longer], room[longer]
    return found


def _block(data: U8, at: I64, size: int = 20) -> U8:
    """The `size` bytes at each offset, one row per offset (rows of a strided view: no index
    matrix is built)."""
    return sliding_window_view(data, size)[_clip(at, data, size)]


def _be(block: U8, start: int, size: int) -> I64:
    """The big-endian unsigned integer in columns [start, start + size) of each row."""
    raw = np.ascontiguousarray(block[:, start : start + size])
    return raw.view(">u2" if size == 2 else ">u4")[:, 0].astype(np.int64)


def _u16(data: U8, at: I64) -> I64:
    """Big-endian 16-bit integers at the offsets."""
    return (data[at].astype(np.int64) << 8) | data[at + 1]
