"""Batch decoding: many frames at once into columns of header fields (numpy arrays).

The common frame of a large capture is IPv4 TCP on Ethernet, Linux cooked (SLL, SLL2) or raw IP,
without VLAN tags, fragments or TSO. Such frames are decoded with array operations at computed
offsets, with no Python object per frame. Every other frame (IPv6, VLAN, ICMP, anything odd or
damaged) goes through `Decoder`, one by one, so the two paths decode the same frame to the same
fields and count it in the same `DecodeStats` bucket.

The result is `Columns`: one row per decoded packet (what `Decoder.decode` would not have
returned None for), in frame order. Rows the arrays cannot describe carry their `Packet` in
`Columns.objects`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tcpdiag.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    Decoder,
    syn_options,
)
from tcpdiag.packets import SYN, IcmpError, Packet, TcpSegment
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
    LINKTYPE_RAW: (-1, 0),  # no ethertype: the version nibble says IPv4
    12: (-1, 0),
    14: (-1, 0),
    228: (-1, 0),
}


@dataclass(slots=True)
class Columns:
    """Decoded packets in frame order, one row each. For IPv4 TCP rows the address, port and
    header columns hold the segment's fields; a row the arrays do not describe (`simple` is
    False) has its Packet in `objects` (and, unless it is IPv4 TCP, zero addresses and ports).
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
    simple: Bools  # decoded by the arrays; False: see objects
    objects: npt.NDArray[np.object_]  # Packet for rows that are not simple, else None
    syn_option_bytes: npt.NDArray[np.object_]  # TCP option bytes of simple SYN rows, else None

    def __len__(self) -> int:
        return len(self.number)

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        return Columns(
            **{name: np.concatenate([getattr(part, name) for part in parts]) for name in _ARRAYS}
        )

    def tail(self, start: int) -> Columns:
        """Rows from `start` on, as a copy that does not keep the rest alive."""
        return Columns(**{name: getattr(self, name)[start:].copy() for name in _ARRAYS})

    def segment(self, row: int, addr_text: dict[int, str]) -> Packet:
        """The Packet record of one row, exactly as Decoder would have made it."""
        packet: Packet | None = self.objects[row]
        if packet is not None:
            return packet
        src, dst = int(self.src[row]), int(self.dst[row])
        flags = int(self.flags[row])
        options = None
        if flags & SYN:
            raw = self.syn_option_bytes[row]
            options = syn_options(raw, 0, len(raw))
        return TcpSegment(
            int(self.number[row]),
            float(self.time[row]),
            addr_text.get(src) or _remember(addr_text, src),
            addr_text.get(dst) or _remember(addr_text, dst),
            int(self.sport[row]),
            int(self.dport[row]),
            int(self.seq[row]),
            int(self.ack[row]),
            flags,
            int(self.window[row]),
            int(self.payload_len[row]),
            int(self.ttl[row]),
            4,
            int(self.ip_id[row]),
            options,
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
    "objects",
    "syn_option_bytes",
)


def _remember(cache: dict[int, str], addr: int) -> str:
    if len(cache) >= 1 << 16:
        cache.clear()
    text = cache[addr] = socket.inet_ntoa(addr.to_bytes(4, "big"))
    return text


def ipv4_int(text: str) -> int:
    return int.from_bytes(socket.inet_aton(text), "big")


class ColumnDecoder:
    """Decodes PcapChunks (or lists of RawFrames) into Columns; counts into `decoder.stats`."""

    def __init__(self, decoder: Decoder | None = None) -> None:
        self.decoder = decoder or Decoder()

    def decode(self, chunk: PcapChunk | list[RawFrame]) -> Columns:
        if isinstance(chunk, PcapChunk):
            return self._decode_pcap(chunk)
        return self._decode_frames(chunk)

    def _decode_pcap(self, chunk: PcapChunk) -> Columns:
        data = _padded(chunk.data)
        heads = np.array(chunk.offsets, np.int64)
        big = chunk.endian == ">"
        sec = _u32(data, heads, big)
        frac = _u32(data, heads + 4, big)
        caplen = _u32(data, heads + 8, big)
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
        wire = _u32(data, heads + 12, big)
        return self._decode(chunk.data, data, starts, caplen, time, number, linktypes, wire)

    def _decode_frames(self, frames: list[RawFrame]) -> Columns:
        raw = b"".join(f.data for f in frames)
        caplen = np.array([len(f.data) for f in frames], np.int64)
        starts = np.zeros(len(frames), np.int64)
        if len(frames) > 1:
            np.cumsum(caplen[:-1], out=starts[1:])
        return self._decode(
            raw,
            _padded(raw),
            starts,
            caplen,
            np.array([f.time for f in frames], np.float64),
            np.array([f.number for f in frames], np.int64),
            np.array([f.linktype for f in frames], np.int64),
            np.array([f.wire_len for f in frames], np.int64),
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
    ) -> Columns:
        # ip: offset of the IPv4 header; ok: the frame is one the arrays decode.
        ip = np.zeros(len(starts), np.int64)
        ok = np.zeros(len(starts), np.bool_)
        for linktype in np.unique(linktypes).tolist():
            layout = _LINK_LAYOUT.get(linktype)
            if layout is None:
                continue
            type_at, ip_at = layout
            these = (linktypes == linktype) & (caplen >= ip_at + 40)
            if type_at >= 0:
                these &= _u16(data, _clip(starts + type_at, data), True) == 0x0800
            ip[these] = starts[these] + ip_at
            ok |= these
        vihl = _u8(data, _clip(ip, data))
        ihl = (vihl & 0x0F) * 4
        ok &= (vihl >> 4 == 4) & (ihl >= 20)
        tcp = ip + ihl
        ok &= tcp + 20 <= starts + caplen
        ipc = _clip(ip, data)
        total = _u16(data, ipc + 2, True)
        frag = _u16(data, ipc + 6, True)
        proto = _u8(data, ipc + 9)
        # total == 0 is a TSO super-packet whose length is the captured one: left to Decoder.
        ok &= ((frag & 0x1FFF) == 0) & (proto == 6) & (total >= ihl) & (total != 0)
        tcpc = _clip(tcp, data)
        doff = (_u8(data, tcpc + 12) >> 4) * 4
        payload_len = total - ihl - doff
        ok &= (doff >= 20) & (payload_len >= 0)

        rows = np.flatnonzero(ok)
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
            for k, index in enumerate(others):
                s = o_starts[k]
                packet = decoder.decode(
                    RawFrame(o_number[k], o_time[k], o_link[k], raw[s : s + o_caplen[k]], o_wire[k])
                )
                if packet is not None:
                    kept.append(index)
                    kept_packets.append(packet)
        stats.frames += len(rows)
        stats.tcp += len(rows)
        order = rows
        if kept:
            order = np.sort(np.concatenate([rows, np.array(kept, np.int64)]))
        simple = ok[order]
        objects = np.full(len(order), None, object)
        for row, packet in zip(np.searchsorted(order, kept).tolist(), kept_packets, strict=True):
            objects[row] = packet
        ipo, tcpo = _clip(ip[order], data), _clip(tcp[order], data)
        flags = _u8(data, tcpo + 13)
        syn_option_bytes = np.full(len(order), None, object)
        syn_rows = np.flatnonzero(simple & (flags & SYN != 0))
        if len(syn_rows):
            begin = tcp[order][syn_rows] + 20
            stop = np.minimum(
                tcp[order][syn_rows] + doff[order][syn_rows], (starts + caplen)[order][syn_rows]
            )
            # One by one: a list assigned whole would pass through a bytes dtype, which drops
            # trailing zero bytes.
            for row, a, b in zip(syn_rows.tolist(), begin.tolist(), stop.tolist(), strict=True):
                syn_option_bytes[row] = raw[a:b]
        src = _u32(data, ipo + 12, True)
        dst = _u32(data, ipo + 16, True)
        sport = _u16(data, tcpo, True)
        dport = _u16(data, tcpo + 2, True)
        # Rows decoded by Decoder: their 4-tuple goes into the columns when it is an IPv4 TCP
        # one (so their connection is recognised), else zeros.
        for row, packet in zip(np.flatnonzero(~simple).tolist(), kept_packets, strict=True):
            if type(packet) is TcpSegment and packet.ip_version == 4:
                src[row] = ipv4_int(packet.src)
                dst[row] = ipv4_int(packet.dst)
                sport[row] = packet.sport
                dport[row] = packet.dport
            else:
                src[row] = dst[row] = sport[row] = dport[row] = 0
        return Columns(
            number=number[order],
            time=time[order],
            src=src.astype(np.uint32),
            dst=dst.astype(np.uint32),
            sport=sport.astype(np.uint16),
            dport=dport.astype(np.uint16),
            seq=_u32(data, tcpo + 4, True).astype(np.uint32),
            ack=_u32(data, tcpo + 8, True).astype(np.uint32),
            flags=flags.astype(np.uint8),
            window=_u16(data, tcpo + 14, True).astype(np.uint16),
            payload_len=payload_len[order].astype(np.int32),
            ttl=_u8(data, ipo + 8).astype(np.uint8),
            ip_id=_u16(data, ipo + 4, True).astype(np.uint16),
            simple=simple,
            objects=objects,
            syn_option_bytes=syn_option_bytes,
        )


def quoted_ipv4_key(packet: Packet) -> tuple[int, int, int, int] | None:
    """The IPv4 4-tuple an ICMP error quotes, as integers (src, sport, dst, dport)."""
    if type(packet) is IcmpError and packet.quoted is not None and packet.ip_version == 4:
        q = packet.quoted
        return ipv4_int(q.src), q.sport, ipv4_int(q.dst), q.dport
    return None


_PAD = 128  # beyond the deepest read from a clipped offset (IPv4 60 + TCP 16 bytes)


def _padded(raw: bytes) -> U8:
    return np.frombuffer(raw + bytes(_PAD), np.uint8)


def _clip(offsets: I64, data: U8) -> I64:
    # Frames the arrays do not decode may be shorter than the offsets read; keep every read
    # inside the buffer (their values are discarded).
    return np.minimum(offsets, len(data) - _PAD)


def _u8(data: U8, at: I64) -> I64:
    return data[at].astype(np.int64)


def _u16(data: U8, at: I64, big: bool) -> I64:
    hi, lo = (at, at + 1) if big else (at + 1, at)
    return (data[hi].astype(np.int64) << 8) | data[lo]


def _u32(data: U8, at: I64, big: bool) -> I64:
    b = [data[at + k].astype(np.int64) for k in range(4)]
    if not big:
        b.reverse()
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
