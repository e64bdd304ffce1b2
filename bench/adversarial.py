#!/usr/bin/env python3
"""Adversarial captures: shapes that can make a packet-by-packet analyser slow or memory-hungry.

    python bench/adversarial.py                          # every shape at 1x and 2x of SIZES
    python bench/adversarial.py --scale 0.1 --timeout 120 --shapes refused_scan,zero_tail
    python bench/adversarial.py --generate-only --out-dir /tmp/adv

Each shape is written (numpy at computed offsets: a few million packets in seconds) and
`tcpdiag analyze --format jsonl` runs on it in a fresh process, once per size, under a timeout: a
shape that runs past it is killed and reported as "> N s", and its 2x size is skipped. The table
gives CPU and wall seconds, packets per CPU second, peak RSS of the process tree, the findings,
and the per-packet cost against ordinary traffic: (CPU - start-up CPU) / packets, divided by the
same figure for make_capture's default mix (start-up CPU: tcpdiag on a one-packet capture).

Sizes are the SIZES table just below ("1x"); `--scale` multiplies them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import groundtruth  # noqa: E402  (bench/ is not a package)
import make_capture  # noqa: E402
import run as bench_run  # noqa: E402

# -- sizes (1x) -----------------------------------------------------------------------------
SIZES: dict[str, int] = {
    "refused_scan": 300_000,  # refused connections: a port scan answered with RST/ACKs, 10 us apart
    "refused_150s": 150_000,  # refused connections from many clients, spread over 150 s
    "reset_10ms": 40_000,  # established connections a server resets, one every 10 ms
    "reset_1ms": 40_000,  # the same, one every 1 ms (one long burst)
    "syn_rst_cycles": 500_000,  # SYN, SYN-ACK, ACK, RST cycles on one 4-tuple
    "gz_big_blocks": 64,  # MB per packet block; BIG_BLOCKS of them in a gzip'd pcapng
    "zero_tail": 100,  # MiB of zeros after an ordinary capture of ZERO_TAIL_PACKETS
    "unique_syns": 2_000_000,  # SYNs from distinct 4-tuples, 10 us apart
    "icmp_orphans": 1_000_000,  # ICMP errors quoting connections never seen
    "icmp_rejects": 300_000,  # ICMP errors rejecting SYNs never on the wire (a host firewall)
    "long_conn": 2_000_000,  # packets of one connection, 5 % retransmitted + 5 % reordered
    "rst_one_tuple": 100_000,  # blind RSTs (random seq) on one established 4-tuple
    "close_storm": 100_000,  # requests a server closes on without answering, 400 us apart
}
BIG_BLOCKS = 3  # packet blocks of SIZES["gz_big_blocks"] MB each
ZERO_TAIL_PACKETS = 100_000  # the ordinary part of zero_tail (scaled too)
ORDINARY_PACKETS = 300_000  # make_capture's default mix, the per-packet cost reference
ORDINARY_MIN = 100_000  # ... never smaller: its CPU time must stand well above start-up
CHUNK = 250_000  # packets built at once

EPOCH = 1_732_536_000
ETH_V4 = bytes.fromhex("525400000001001b21a0c0010800")
LINUX_SLL = 113
TCP_FRAME = 54  # Ethernet + IPv4 + TCP, no options
FIN, SYN, RST, ACK, PSH = 0x01, 0x02, 0x04, 0x10, 0x08


def ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


# -- numpy frame builder ----------------------------------------------------------------------


def _put(frames: np.ndarray, offset: int, width: int, values: np.ndarray | int) -> None:
    """Write big-endian `width`-byte integers at `offset` of every frame (row)."""
    n = frames.shape[0]
    vals = np.broadcast_to(np.asarray(values, dtype=np.uint64), (n,)).astype(f">u{width}")
    frames[:, offset : offset + width] = vals.view(np.uint8).reshape(n, width)


def _sum16(frames: np.ndarray, start: int, stop: int) -> np.ndarray:
    return frames[:, start:stop].copy().view(">u2").astype(np.int64).sum(axis=1, dtype=np.int64)


def _fold(total: np.ndarray) -> np.ndarray:
    r = total % 0xFFFF
    return np.where(r == 0, 0, 0xFFFF - r)


def tcp_frames(
    src: np.ndarray | int,
    dst: np.ndarray | int,
    sport: np.ndarray | int,
    dport: np.ndarray | int,
    seq: np.ndarray | int,
    ack: np.ndarray | int,
    flags: np.ndarray | int,
    n: int,
    win: np.ndarray | int = 64240,
    ttl: int = 64,
    payload_len: np.ndarray | int = 0,
) -> np.ndarray:
    """`n` Ethernet/IPv4/TCP frames (54 bytes, no options) with correct IP checksums and TCP
    checksums over the header (the payload, `payload_len` bytes, is not captured)."""
    f = np.zeros((n, TCP_FRAME), dtype=np.uint8)
    f[:, :14] = np.frombuffer(ETH_V4, dtype=np.uint8)
    f[:, 14] = 0x45
    _put(f, 16, 2, 40 + np.asarray(payload_len, dtype=np.uint64))
    _put(f, 18, 2, np.arange(n, dtype=np.uint64) & 0xFFFF)
    f[:, 20] = 0x40  # DF
    f[:, 22] = ttl
    f[:, 23] = 6
    _put(f, 26, 4, src)
    _put(f, 30, 4, dst)
    _put(f, 24, 2, _fold(_sum16(f, 14, 34)))
    _put(f, 34, 2, sport)
    _put(f, 36, 2, dport)
    _put(f, 38, 4, np.asarray(seq, dtype=np.uint64) & 0xFFFFFFFF)
    _put(f, 42, 4, np.asarray(ack, dtype=np.uint64) & 0xFFFFFFFF)
    f[:, 46] = 0x50
    f[:, 47] = np.asarray(flags, dtype=np.uint8)
    _put(f, 48, 2, win)
    tcp_len = 20 + np.asarray(payload_len, dtype=np.int64)
    _put(f, 50, 2, _fold(_sum16(f, 26, 34) + 6 + tcp_len + _sum16(f, 34, 54)))
    return f


def icmp_frames(
    router: int | np.ndarray,
    host: np.ndarray,
    peer: np.ndarray,
    sport: np.ndarray,
    seq: np.ndarray,
    n: int,
    syn_header: bool = False,
) -> np.ndarray:
    """ICMP host unreachable from `router` to `host`, quoting a TCP segment host -> peer:80:
    its first 8 bytes, or with `syn_header` its whole header, a SYN's, as port unreachable."""
    tcp = 20 if syn_header else 8
    f = np.zeros((n, 14 + 20 + 8 + 20 + tcp), dtype=np.uint8)
    f[:, :14] = np.frombuffer(ETH_V4, dtype=np.uint8)
    f[:, 14], f[:, 15] = 0x45, 0xC0
    _put(f, 16, 2, 48 + tcp)
    _put(f, 18, 2, np.arange(n, dtype=np.uint64) & 0xFFFF)
    f[:, 22], f[:, 23] = 255, 1
    _put(f, 26, 4, router)
    _put(f, 30, 4, host)
    _put(f, 24, 2, _fold(_sum16(f, 14, 34)))
    f[:, 34], f[:, 35] = 3, 3 if syn_header else 1
    q = 42  # the quoted IPv4 header + the TCP bytes
    f[:, q] = 0x45
    _put(f, q + 2, 2, 40 if syn_header else 60)
    f[:, q + 6], f[:, q + 8], f[:, q + 9] = 0x40, 63, 6
    _put(f, q + 12, 4, host)
    _put(f, q + 16, 4, peer)
    _put(f, q + 10, 2, _fold(_sum16(f, q, q + 20)))
    _put(f, q + 20, 2, sport)
    _put(f, q + 22, 2, 80)
    _put(f, q + 24, 4, seq)
    if syn_header:
        f[:, q + 32], f[:, q + 33] = 5 << 4, SYN
        _put(f, q + 34, 2, 64_240)
    _put(f, 36, 2, _fold(_sum16(f, 34, 62 + tcp)))
    return f


Chunk = tuple[np.ndarray, np.ndarray, "np.ndarray | int"]


def write_pcap_chunks(path: Path, chunks: Iterator[Chunk]) -> int:
    """Classic pcap from (times in us, frames, bytes on the wire beyond the captured frame)."""
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1))
        for times, frames, extra in chunks:
            n, width = frames.shape
            rec = np.zeros((n, 16 + width), dtype=np.uint8)
            hdr = rec[:, :16].view("<u4")
            t = np.asarray(times, dtype=np.int64)
            hdr[:, 0] = EPOCH + t // 1_000_000
            hdr[:, 1] = t % 1_000_000
            hdr[:, 2] = width
            hdr[:, 3] = width + extra
            rec[:, 16:] = frames
            out.write(rec.tobytes())
            count += n
    return count


def _chunked(n: int, build: Callable[[np.ndarray], Chunk]) -> Iterator[Chunk]:
    for start in range(0, n, CHUNK):
        yield build(np.arange(start, min(n, start + CHUNK), dtype=np.int64))


def _isn(i: np.ndarray, salt: int) -> np.ndarray:
    return (i * 2_654_435_761 + salt) & 0xFFFFFFFF


# -- shapes ------------------------------------------------------------------------------------


def gen_refused(path: Path, n: int, spread_s: float | None) -> int:
    """SYN -> RST/ACK (ACK = ISN+1). A scan: one source, targets x ports, 10 us apart. With
    `spread_s`: clients all over 198.18/15, one refusal every spread_s/n seconds."""
    gap = 10 if spread_s is None else max(10, int(spread_s * 1e6 / n))

    def build(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        if spread_s is None:
            client = np.full(k, ip("203.0.113.7"))
            server = ip("10.30.0.0") + i // 1000
            cport = np.full(k, 41_234)
            sport = 1 + i % 1000
        else:
            client = ip("198.18.0.1") + i % 60_000
            server = ip("10.30.0.10") + i % 16
            cport = 32_768 + (i * 7) % 28_000
            sport = np.full(k, 8443)
        isn = _isn(i, 1)
        syn = tcp_frames(client, server, cport, sport, isn, 0, SYN, k, win=1024, ttl=48)
        rst = tcp_frames(server, client, sport, cport, 0, isn + 1, RST | ACK, k, win=0)
        times = np.empty(2 * k, dtype=np.int64)
        times[0::2] = i * gap
        times[1::2] = i * gap + min(gap // 2, 50)
        frames = np.empty((2 * k, TCP_FRAME), dtype=np.uint8)
        frames[0::2], frames[1::2] = syn, rst
        return times, frames, 0

    return write_pcap_chunks(path, _chunked(n, build))


def gen_reset_burst(path: Path, n: int, gap_us: int) -> int:
    """n connections to one server, established 30 us apart; 1 s later the server resets them
    one every `gap_us` (RST/ACK at SND.NXT)."""
    server = ip("10.40.0.1")
    start_rst = n * 30 + 1_000_000

    def handshakes(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        client, cport = ip("198.18.0.1") + i // 20_000, 32_768 + i % 20_000
        c_isn, s_isn = _isn(i, 7), _isn(i, 99)
        frames = np.empty((3 * k, TCP_FRAME), dtype=np.uint8)
        frames[0::3] = tcp_frames(client, server, cport, 443, c_isn, 0, SYN, k)
        frames[1::3] = tcp_frames(server, client, 443, cport, s_isn, c_isn + 1, SYN | ACK, k)
        frames[2::3] = tcp_frames(client, server, cport, 443, c_isn + 1, s_isn + 1, ACK, k)
        times = np.repeat(i * 30, 3) + np.tile(np.array([0, 5, 10]), k)
        return times, frames, 0

    def resets(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        client, cport = ip("198.18.0.1") + i // 20_000, 32_768 + i % 20_000
        c_isn, s_isn = _isn(i, 7), _isn(i, 99)
        frames = tcp_frames(server, client, 443, cport, s_isn + 1, c_isn + 1, RST | ACK, k, 509)
        return start_rst + i * gap_us, frames, 0

    def both() -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        yield from _chunked(n, handshakes)
        yield from _chunked(n, resets)

    return write_pcap_chunks(path, both())


def gen_syn_rst_cycles(path: Path, n: int) -> int:
    """One 4-tuple: SYN, SYN-ACK, ACK, then the client's RST/ACK, a new ISN every cycle."""
    c, s = ip("198.18.0.9"), ip("10.40.0.2")

    def build(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        c_isn, s_isn = _isn(i, 3), _isn(i, 5)
        frames = np.empty((4 * k, TCP_FRAME), dtype=np.uint8)
        frames[0::4] = tcp_frames(c, s, 50_000, 443, c_isn, 0, SYN, k)
        frames[1::4] = tcp_frames(s, c, 443, 50_000, s_isn, c_isn + 1, SYN | ACK, k)
        frames[2::4] = tcp_frames(c, s, 50_000, 443, c_isn + 1, s_isn + 1, ACK, k)
        frames[3::4] = tcp_frames(c, s, 50_000, 443, c_isn + 1, s_isn + 1, RST | ACK, k)
        times = np.repeat(i * 200, 4) + np.tile(np.array([0, 20, 40, 100]), k)
        return times, frames, 0

    return write_pcap_chunks(path, _chunked(n, build))


def gen_close_storm(path: Path, n: int) -> int:
    """n clients' connections to one server, one every 400 us: handshake, an 80-byte request
    (not captured) that the server acknowledges and, 200 us later, closes on with a FIN (no
    answer, no RST: nginx's `return 444`), the client's FIN acknowledging it, the last ACK."""
    server = ip("10.40.0.6")
    request = 80

    def build(i: np.ndarray) -> Chunk:
        k = len(i)
        client, cport = ip("198.18.0.1") + i // 20_000, 32_768 + i % 20_000
        c_isn, s_isn = _isn(i, 11), _isn(i, 13)
        c1, s1 = c_isn + 1, s_isn + 1
        frames = np.empty((8 * k, TCP_FRAME), dtype=np.uint8)
        frames[0::8] = tcp_frames(client, server, cport, 80, c_isn, 0, SYN, k)
        frames[1::8] = tcp_frames(server, client, 80, cport, s_isn, c1, SYN | ACK, k)
        frames[2::8] = tcp_frames(client, server, cport, 80, c1, s1, ACK, k)
        frames[3::8] = tcp_frames(client, server, cport, 80, c1, s1, PSH | ACK, k, 64240, 64, 80)
        c2 = c1 + request
        frames[4::8] = tcp_frames(server, client, 80, cport, s1, c2, ACK, k)
        frames[5::8] = tcp_frames(server, client, 80, cport, s1, c2, FIN | ACK, k)
        frames[6::8] = tcp_frames(client, server, cport, 80, c2, s1 + 1, FIN | ACK, k)
        frames[7::8] = tcp_frames(server, client, 80, cport, s1 + 1, c2 + 1, ACK, k)
        times = np.repeat(i * 400, 8) + np.tile(np.array([0, 20, 40, 60, 70, 270, 290, 310]), k)
        wire = np.tile(np.array([0, 0, 0, request, 0, 0, 0, 0]), k)  # (payload not captured)
        return times, frames, wire

    return write_pcap_chunks(path, _chunked(n, build))


def gen_unique_syns(path: Path, n: int) -> int:
    def build(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        src, sport = ip("100.64.0.0") + i // 50_000, 1024 + i % 50_000
        frames = tcp_frames(src, ip("10.40.0.3"), sport, 80, _isn(i, 11), 0, SYN, k, 1024)
        return i * 10, frames, 0

    return write_pcap_chunks(path, _chunked(n, build))


def gen_icmp_orphans(path: Path, n: int) -> int:
    def build(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        host, peer = ip("198.18.0.1") + i % 50_000, ip("203.0.113.0") + i % 200
        frames = icmp_frames(ip("10.99.0.1"), host, peer, 32_768 + i % 28_000, _isn(i, 13), k)
        return i * 10, frames, 0

    return write_pcap_chunks(path, _chunked(n, build))


def gen_icmp_rejects(path: Path, n: int) -> int:
    """A host whose firewall rejects its connection attempts in the destinations' names (as
    Linux's REJECT does): each ICMP port unreachable quotes a SYN never on the wire."""

    def build(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = len(i)
        host, peer = ip("198.18.0.1") + 0 * i, ip("203.0.113.0") + (i // 60_000) % 250
        sport = 1_024 + i % 60_000
        frames = icmp_frames(peer, host, peer, sport, _isn(i, 17), k, syn_header=True)
        return i * 10, frames, 0

    return write_pcap_chunks(path, _chunked(n, build))


def gen_long_conn(path: Path, n: int) -> int:
    """One download of n packets (headers only, 1448-byte segments not captured): an ACK for
    every second segment, 5 % of segments retransmitted 3 ms later, 5 % swapped with the next."""
    c, s = ip("198.18.0.10"), ip("10.40.0.4")
    c_isn, s_isn = 1_000, 7_000_000
    data = int(n / 1.55) & ~1  # even: the last ACK covers the last segment
    rng = np.random.default_rng(1)
    k = np.arange(data, dtype=np.int64)
    t_data = 100 + k * 10
    swap = np.flatnonzero(rng.random(data - 1) < 0.05)
    swap = swap[np.diff(np.concatenate([[-2], swap])) > 1]  # no overlapping swaps
    t_data[swap], t_data[swap + 1] = t_data[swap + 1], t_data[swap].copy()
    retx = np.flatnonzero(rng.random(data) < 0.05)
    j = np.arange(data // 2, dtype=np.int64)
    seg_seq = s_isn + 1 + k * 1448
    parts = [
        (np.array([0, 20, 40]), None),  # handshake, built below
        (t_data, k),
        (100 + (2 * j + 1) * 10 + 5, None),
        (100 + retx * 10 + 3_000, retx),
        (np.array([100 + data * 10 + 3_500]), None),  # the client's last ACK, after them all
    ]
    times = np.concatenate([p[0] for p in parts])
    hs = np.empty((3, TCP_FRAME), dtype=np.uint8)
    hs[0] = tcp_frames(c, s, 40_000, 443, c_isn, 0, SYN, 1)[0]
    hs[1] = tcp_frames(s, c, 443, 40_000, s_isn, c_isn + 1, SYN | ACK, 1)[0]
    hs[2] = tcp_frames(c, s, 40_000, 443, c_isn + 1, s_isn + 1, ACK, 1)[0]
    frames = np.concatenate(
        [
            hs,
            tcp_frames(s, c, 443, 40_000, seg_seq, c_isn + 1, ACK | PSH, data, 509, 64, 1448),
            tcp_frames(c, s, 40_000, 443, c_isn + 1, s_isn + 1 + (2 * j + 2) * 1448, ACK, len(j)),
            tcp_frames(s, c, 443, 40_000, seg_seq[retx], c_isn + 1, ACK, len(retx), 509, 64, 1448),
            tcp_frames(c, s, 40_000, 443, c_isn + 1, s_isn + 1 + data * 1448, ACK, 1),
        ]
    )
    # Data segments carry 1448 bytes on the wire that the capture does not hold.
    wire = np.concatenate(
        [np.zeros(3), np.full(data, 1448), np.zeros(len(j)), np.full(len(retx), 1448), [0]]
    ).astype(np.int64)
    order = np.argsort(times, kind="stable")
    times, frames, wire = times[order], frames[order], wire[order]
    chunks = (
        (times[a : a + CHUNK], frames[a : a + CHUNK], wire[a : a + CHUNK])
        for a in range(0, len(times), CHUNK)
    )
    return write_pcap_chunks(path, chunks)


def gen_rst_one_tuple(path: Path, n: int) -> int:
    """An established connection, then n blind RSTs "from the client" with random seq."""
    c, s = ip("198.18.0.11"), ip("10.40.0.5")
    hs = np.concatenate(
        [
            tcp_frames(c, s, 40_001, 443, 1_000, 0, SYN, 1),
            tcp_frames(s, c, 443, 40_001, 9_000, 1_001, SYN | ACK, 1),
            tcp_frames(c, s, 40_001, 443, 1_001, 9_001, ACK, 1),
        ]
    )
    seqs = np.random.default_rng(2).integers(0, 2**32, n, dtype=np.uint64)
    rsts = tcp_frames(c, s, 40_001, 443, seqs, 0, RST, n, win=0, ttl=57)
    times = np.concatenate([[0, 20, 40], 1_000 + np.arange(n, dtype=np.int64) * 10])
    return write_pcap_chunks(path, iter([(times, np.concatenate([hs, rsts]), 0)]))


def gen_gz_big_blocks(path: Path, mb: int) -> int:
    """gzip'd pcapng: 1000 handshakes, then BIG_BLOCKS Enhanced Packet Blocks of `mb` MB each
    (a TCP header, then zeros), then 1000 more handshakes."""

    def epb(t_us: int, frame: bytes, wire: int) -> bytes:
        pad = (-len(frame)) % 4
        length = 32 + len(frame) + pad
        head = struct.pack(
            "<IIIIIII", 6, length, 0, t_us >> 32, t_us & 0xFFFFFFFF, len(frame), wire
        )
        return head + frame + b"\0" * pad + struct.pack("<I", length)

    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    count = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(shb + idb)
        t = EPOCH * 1_000_000

        def handshakes(base: int) -> None:
            nonlocal t, count
            i = np.arange(base, base + 1000, dtype=np.int64)
            syn = tcp_frames(
                ip("198.18.0.1") + i, ip("10.40.0.6"), 40_000, 443, _isn(i, 1), 0, SYN, 1000
            )
            for row in syn:
                t += 100
                out.write(epb(t, row.tobytes(), TCP_FRAME))
                count += 1

        handshakes(0)
        header = tcp_frames(ip("198.18.9.9"), ip("10.40.0.6"), 40_001, 443, 1, 1, ACK, 1)[0]
        size = max(TCP_FRAME, mb * 1_000_000)
        for _ in range(BIG_BLOCKS):
            t += 1000
            frame = header.tobytes() + bytes(size - TCP_FRAME)
            out.write(epb(t, frame, len(frame)))
            count += 1
        handshakes(1000)
    return count


def gen_zero_tail(path: Path, mb: int, packets: int) -> int:
    """make_capture's default mix, then `mb` MiB of zero bytes. Returns the records a reader
    sees: the ordinary packets, then one empty record per 16 zero bytes (a zero record header
    says: 0 bytes captured), as Wireshark counts them."""
    summary = make_capture.generate(max(1000, packets), path)
    with path.open("ab") as out:
        block = bytes(1 << 20)
        for _ in range(mb):
            out.write(block)
    return int(summary["packets"]) + mb * (1 << 20) // 16


@dataclass
class Shape:
    name: str
    what: str
    make: Callable[[Path, float], int]  # writes the capture at a scale; returns its packets
    suffix: str = ".pcap"
    # The findings per category a right report holds, at a scale (None: no single right answer,
    # e.g. whether resets 1 ms apart are one host's burst or many peers' resets).
    expect: Callable[[Path, float], dict[str, int] | None] = lambda path, scale: None
    # The packets a right reading reports, given the records in the file (zero_tail: the
    # reader gives up on the zeros, so only the ordinary part).
    reads: Callable[[Path, int], int] = lambda path, records: records
    # How the report must sum the storm up, at a scale (None: not a storm): the aggregated
    # findings of a kind, a SYN flood summary, or a warning, and how many members it counts.
    storm: Callable[[float], Storm | None] = lambda scale: None


@dataclass(frozen=True)
class Storm:
    """What a report must say of a storm: `kind` is an aggregated finding's category (their
    counts summed), "flood" (the SYN flood summaries' attempts) or "warning" (a warning that
    names the count), and `count` the members."""

    kind: str
    count: int

    def found(self, cap: dict[str, Any]) -> int:
        if self.kind == "flood":
            return sum(int(f["attempts"]) for f in cap.get("floods", []))
        if self.kind == "warning":
            return self.count if any(f"{self.count:,} " in w for w in cap["warnings"]) else 0
        return sum(int(a["count"]) for a in cap["aggregates"] if a["category"] == self.kind)


def _manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads(make_capture.manifest_path(path).read_text()))


def _manifest_findings(path: Path) -> dict[str, int]:
    return {k: v for k, v in _manifest(path)["expected_findings"].items() if v}


def _n(name: str, scale: float, least: int = 10) -> int:
    return max(least, int(SIZES[name] * scale))


SHAPES: list[Shape] = [
    Shape(
        "refused_scan",
        "a port scan answered with RST/ACKs (refused), 10 us apart",
        lambda p, s: gen_refused(p, _n("refused_scan", s), None),
        expect=lambda p, s: {"refused": _n("refused_scan", s)},
        storm=lambda s: Storm("port_scan", _n("refused_scan", s)),
    ),
    Shape(
        "refused_150s",
        "refused connections from many clients, one per ms",
        lambda p, s: gen_refused(p, _n("refused_150s", s), _n("refused_150s", s) / 1000),
        expect=lambda p, s: {"refused": _n("refused_150s", s)},
        storm=lambda s: Storm("syn_flood", _n("refused_150s", s)),
    ),
    Shape(
        "reset_10ms",
        "one server resets its established connections, 10 ms apart",
        lambda p, s: gen_reset_burst(p, _n("reset_10ms", s), 10_000),
        storm=lambda s: Storm("reset_storm", _n("reset_10ms", s)),
    ),
    Shape(
        "reset_1ms",
        "one server resets its established connections, 1 ms apart",
        lambda p, s: gen_reset_burst(p, _n("reset_1ms", s), 1_000),
        storm=lambda s: Storm("reset_storm", _n("reset_1ms", s)),
    ),
    Shape(
        "syn_rst_cycles",
        "SYN, SYN-ACK, ACK, RST/ACK over and over on one 4-tuple",
        lambda p, s: gen_syn_rst_cycles(p, _n("syn_rst_cycles", s)),
        storm=lambda s: Storm("reset_storm", _n("syn_rst_cycles", s)),
    ),
    Shape(
        "gz_big_blocks",
        f"gzip'd pcapng with {BIG_BLOCKS} huge packet blocks between 2000 SYNs",
        lambda p, s: gen_gz_big_blocks(p, _n("gz_big_blocks", s, 1)),
        ".pcapng.gz",
        expect=lambda p, s: {},
    ),
    Shape(
        "zero_tail",
        "an ordinary capture followed by megabytes of zeros",
        lambda p, s: gen_zero_tail(p, _n("zero_tail", s, 1), int(ZERO_TAIL_PACKETS * s)),
        expect=lambda p, s: _manifest_findings(p),
        reads=lambda p, records: int(_manifest(p)["packets"]),
    ),
    Shape(
        "unique_syns",
        "SYNs from distinct 4-tuples (a SYN flood), 10 us apart",
        lambda p, s: gen_unique_syns(p, _n("unique_syns", s)),
        expect=lambda p, s: {},
        storm=lambda s: Storm("flood", _n("unique_syns", s)),
    ),
    Shape(
        "icmp_orphans",
        "ICMP host unreachable quoting connections never seen",
        lambda p, s: gen_icmp_orphans(p, _n("icmp_orphans", s)),
        expect=lambda p, s: {},
        storm=lambda s: Storm("warning", _n("icmp_orphans", s)),
    ),
    Shape(
        "close_storm",
        "a server closes on its clients' requests without answering (FIN, no RST), 400 us apart",
        lambda p, s: gen_close_storm(p, _n("close_storm", s)),
        expect=lambda p, s: {"premature_close": _n("close_storm", s)},
        storm=lambda s: Storm("close_storm", _n("close_storm", s)),
    ),
    Shape(
        "icmp_rejects",
        "ICMP port unreachable rejecting SYNs never on the wire (a host firewall's REJECT)",
        lambda p, s: gen_icmp_rejects(p, _n("icmp_rejects", s)),
        expect=lambda p, s: {"icmp_error": _n("icmp_rejects", s)},
        storm=lambda s: Storm("icmp_storm", _n("icmp_rejects", s)),
    ),
    Shape(
        "long_conn",
        "one connection, 5 % retransmitted + 5 % reordered segments (headers only)",
        lambda p, s: gen_long_conn(p, _n("long_conn", s, 100)),
        expect=lambda p, s: {},
    ),
    Shape(
        "rst_one_tuple",
        "blind RSTs with random seq on one established connection",
        lambda p, s: gen_rst_one_tuple(p, _n("rst_one_tuple", s)),
    ),
]
BY_NAME = {s.name: s for s in SHAPES}


# -- running ---------------------------------------------------------------------------------


@dataclass
class Run:
    shape: str
    size: str
    packets: int
    bytes: int
    timed: bench_run.Measurement | None = None
    timeout: float | None = None
    skipped: str = ""
    error: str = ""
    findings: str = ""


def capture(out_dir: Path, shape: Shape, scale: float) -> tuple[Path, int]:
    """Write (or reuse, when its note says the same generator and scale) the capture."""
    path = out_dir / f"adv-{shape.name}-x{scale:g}{shape.suffix}"
    note = path.with_name(path.name + ".adv.json")
    stamp = {"scale": scale, "size": SIZES[shape.name], "source": _source_stamp()}
    if path.exists() and note.exists():
        info = json.loads(note.read_text())
        if info.get("stamp") == stamp:
            return path, int(info["packets"])
    packets = shape.make(path, scale)
    note.write_text(json.dumps({"stamp": stamp, "packets": packets}) + "\n")
    return path, packets


def _source_stamp() -> str:
    import hashlib

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def tcpdiag_cmd(path: Path) -> list[str]:
    # JSON Lines: every finding (the JSON document folds floods into aggregated findings).
    return [sys.executable, "-m", "tcpdiag", "analyze", "--format", "jsonl", str(path)]


def measure(
    path: Path,
    packets: int,
    timeout: float,
    expected: dict[str, int] | None = None,
    reads: int | None = None,
    storm: Storm | None = None,
) -> tuple[bench_run.Measurement, str]:
    """tcpdiag analyze on `path` (exit 0, 1 or 2 all accepted): the measurement and a summary
    of its findings ("N: cat1 n1, cat2 n2", or the error), marked "as expected" or "NOT as
    expected" when `expected` (findings per category) is given. `reads`: the packets a right
    reading reports (default: `packets`); `storm`: how the report must sum the storm up (its
    absence, or another count, is "NOT as expected" too)."""
    reads = packets if reads is None else reads
    out = str(path) + ".tcpdiag.jsonl"
    bench_run.warm(str(path))
    m = bench_run.measure(
        "tcpdiag", tcpdiag_cmd(path), packets, out, timeout, (0, 1, 2), bench_run.tcpdiag_env()
    )
    try:
        cap = groundtruth.load_report(out)["captures"][0]
    except (ValueError, KeyError, IndexError, OSError) as exc:
        return m, f"unreadable report ({exc})"
    cats = Counter(f["category"] for f in cap.get("findings", []))
    text = f"{sum(cats.values()):,}"
    if cats:
        text += ": " + ", ".join(f"{c} {n:,}" for c, n in cats.most_common(3))
    if cap.get("error"):
        text += f"; error: {cap['error'][:60]}"
    if cap.get("evicted"):
        text += f"; evicted {cap['evicted']:,}"
    if cap.get("packets") != packets:
        text += f"; read {cap.get('packets', 0):,} packets"
    if storm is not None:
        text += f"; {storm.kind} {storm.found(cap):,}"
    if expected is not None or storm is not None:
        right = expected is None or (dict(cats) == expected and cap.get("packets") == reads)
        wanted = [f"{c} {n:,}" for c, n in (expected or {}).items()]
        if storm is not None:
            right = right and storm.found(cap) == storm.count
            wanted.append(f"{storm.kind} {storm.count:,}")
        want = ", ".join(wanted) or "none"
        text = ("as expected: " if right else f"NOT as expected ({want}): ") + text
    return m, text


def reference(out_dir: Path, scale: float, timeout: float) -> tuple[float, float]:
    """Start-up CPU (a one-packet capture) and CPU per packet of make_capture's default mix."""
    one = out_dir / "adv-one-packet.pcap"
    write_pcap_chunks(
        one, iter([(np.zeros(1, dtype=np.int64), tcp_frames(1, 2, 3, 4, 5, 0, SYN, 1), 0)])
    )
    startup = min(measure(one, 1, timeout)[0].cpu_seconds for _ in range(2))
    packets = max(ORDINARY_MIN, int(ORDINARY_PACKETS * scale))
    info = bench_run.capture_for(packets, 1, out_dir, timeout)
    ordinary = Path(info["path"])
    m, _ = measure(ordinary, info["packets"], timeout)
    per_packet = max(m.cpu_seconds - startup, 1e-9) / info["packets"]
    print(
        f"reference: start-up {startup:.2f} CPU s; ordinary traffic ({info['packets']:,} packets)"
        f" {m.cpu_seconds:.2f} CPU s = {per_packet * 1e6:.2f} us/packet after start-up",
        flush=True,
    )
    return startup, per_packet


def table(runs: list[Run], startup: float, per_packet: float) -> str:
    rows = []
    for r in runs:
        m = r.timed
        if r.skipped:
            cells = [r.skipped, "-", "-", "-", "-", "-"]
        elif r.timeout is not None:
            cells = [f"> {r.timeout:.0f} s (timeout)", "-", "-", "-", "-", "-"]
        elif m is None:
            cells = [f"error: {r.error[:50]}", "-", "-", "-", "-", "-"]
        else:
            cost = max(m.cpu_seconds - startup, 0.0) / max(r.packets, 1)
            cells = [
                f"{m.seconds:.2f}",
                f"{m.cpu_seconds:.2f}",
                f"{r.packets / max(m.cpu_seconds, 1e-9):,.0f}",
                f"{m.rss_mib:.0f}",
                f"{cost / per_packet:.1f}x",
                r.findings,
            ]
        rows.append([r.shape, r.size, f"{r.packets:,}", f"{r.bytes / 1e6:,.0f}", *cells])
    headers = [
        "shape",
        "size",
        "packets",
        "MB",
        "wall s",
        "CPU s",
        "packets/CPU s",
        "peak RSS MiB",
        "cost/packet vs ordinary",
        "findings",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="", help="comma-separated (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies SIZES")
    parser.add_argument("--sizes", default="1,2", help="multiples of the scaled size to run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = [s for s in args.shapes.split(",") if s] or [s.name for s in SHAPES]
    unknown = [s for s in names if s not in BY_NAME]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {', '.join(BY_NAME)}")
    sizes = [float(k) for k in args.sizes.split(",") if k]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        for name in names:
            for k in sizes:
                path, packets = capture(args.out_dir, BY_NAME[name], args.scale * k)
                print(f"{path}: {packets:,} packets, {path.stat().st_size / 1e6:,.1f} MB")
        return 0
    env = bench_run.environment()
    print("environment: " + "; ".join(f"{k}: {v}" for k, v in env.items()), flush=True)
    load = ", ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    print(f"load average before the run: {load}; timeout {args.timeout:.0f} s per run")
    startup, per_packet = reference(args.out_dir, args.scale, args.timeout)
    runs: list[Run] = []
    for name in names:
        shape = BY_NAME[name]
        gave_up = ""
        for k in sizes:
            path, packets = capture(args.out_dir, shape, args.scale * k)
            r = Run(name, f"{k:g}x", packets, path.stat().st_size)
            if gave_up:
                r.skipped = f"skipped ({gave_up})"
            else:
                try:
                    expected = shape.expect(path, args.scale * k)
                    reads = shape.reads(path, packets)
                    storm = shape.storm(args.scale * k)
                    r.timed, r.findings = measure(
                        path, packets, args.timeout, expected, reads, storm
                    )
                except bench_run.BenchTimeout:
                    r.timeout = args.timeout
                    gave_up = f"{k:g}x timed out"
                except bench_run.BenchError as exc:
                    r.error = str(exc).splitlines()[-1]
                    gave_up = f"{k:g}x failed"
            state = (
                r.skipped
                or (f"> {r.timeout:.0f} s" if r.timeout else "")
                or r.error
                or f"{r.timed.cpu_seconds:.2f} CPU s"  # type: ignore[union-attr]
            )
            print(f"  {name} {k:g}x ({packets:,} packets): {state}", flush=True)
            runs.append(r)
    print(f"\n## Adversarial shapes (scale {args.scale:g}, timeout {args.timeout:.0f} s)\n")
    print(table(runs, startup, per_packet))
    print(
        f"\ncost/packet vs ordinary: (CPU s - {startup:.2f} s start-up) / packets, against "
        f"{per_packet * 1e6:.2f} us/packet for make_capture's default mix"
    )
    if args.json:
        doc = {
            "environment": env,
            "scale": args.scale,
            "timeout": args.timeout,
            "startup_cpu_s": startup,
            "ordinary_us_per_packet": per_packet * 1e6,
            "runs": [
                {
                    "shape": r.shape,
                    "size": r.size,
                    "packets": r.packets,
                    "bytes": r.bytes,
                    "cpu_s": r.timed.cpu_seconds if r.timed else None,
                    "wall_s": r.timed.seconds if r.timed else None,
                    "rss_mib": r.timed.rss_mib if r.timed else None,
                    "timeout": r.timeout,
                    "skipped": r.skipped,
                    "error": r.error,
                    "findings": r.findings,
                }
                for r in runs
            ],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
