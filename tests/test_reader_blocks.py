"""Huge pcapng packet blocks and pcap records cost one bounded prefix, never their length.

A frame longer than reader._FRAME_PREFIX keeps its first _FRAME_PREFIX bytes (RawFrame.data)
and its true captured length (RawFrame.caplen); the rest is skipped in bounded pieces, for
compressed input by decompressing and dropping. Decoding such a frame gives what decoding it
whole gives, and damage in or after it gets the same one-line warning as before.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import lz4.frame
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpdiag import reader as reader_mod
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder, DecodeStats
from tcpdiag.packets import IcmpError, TcpSegment
from tcpdiag.reader import CaptureReader, PcapChunk, RawFrame

DATA = Path(__file__).parent / "data"
PREFIX = reader_mod._FRAME_PREFIX
MB = 1 << 20
BIG = 3 * MB  # captured bytes of each huge frame: well past the prefix
EPOCH_US = 1_700_000_000 * 1_000_000
STOP = "reading stopped"

# -- building frames and captures ----------------------------------------------------------------

ETH_V4 = bytes.fromhex("0011223344550066778899aa0800")
ETH_V6 = bytes.fromhex("0011223344550066778899aa86dd")


def tcp_header(
    sport: int, dport: int, seq: int, ack: int, flags: int, options: bytes = b""
) -> bytes:
    options += b"\0" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    return (
        struct.pack(">HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) + options
    )


def ipv4(proto: int, total: int, src: bytes, dst: bytes) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 7, 0, 64, proto, 0, src, dst)


def tcp4(payload: int, flags: int = 0x10, options: bytes = b"", seq: int = 1000) -> bytes:
    """Ethernet, IPv4 and TCP headers of a segment whose IP total length says `payload`
    bytes follow the headers (the bytes themselves are up to the caller)."""
    tcp = tcp_header(40000, 443, seq, 2000, flags, options)
    return ETH_V4 + ipv4(6, 20 + len(tcp) + payload, b"\x0a\0\0\x01", b"\x0a\0\0\x02") + tcp


def tcp6(payload: int) -> bytes:
    tcp = tcp_header(40001, 443, 5000, 6000, 0x18)
    v6 = struct.pack(">IHBB16s16s", 6 << 28, len(tcp) + payload, 6, 64, b"\x20" * 16, b"\x21" * 16)
    return ETH_V6 + v6 + tcp


def icmp_quote() -> bytes:
    """An ICMP port unreachable from a router quoting a TCP segment of 10.0.0.1 -> 10.0.0.2."""
    quoted = ipv4(6, 40 + 300, b"\x0a\0\0\x01", b"\x0a\0\0\x02") + tcp_header(
        40000, 443, 9, 0, 0x18
    )
    icmp = struct.pack(">BBHI", 3, 3, 0, 0) + quoted
    return ETH_V4 + ipv4(1, 20 + len(icmp), b"\xc0\0\x02\x01", b"\x0a\0\0\x01") + icmp


SYN = tcp4(0, 0x02, bytes.fromhex("020405b4010303070402"))

# (the bytes a small block would hold: headers and the payload the headers declare; the
# zeros after them in the huge frame; original bytes not captured (snaplen); block type)
EPB, SPB, PB = 6, 3, 2
FRAMES: list[tuple[bytes, int, int, int]] = [
    (SYN, 0, 0, EPB),
    (tcp4(1000) + b"x" * 1000, BIG, 0, EPB),  # an Ethernet frame padded to 3 MB
    (tcp6(500) + b"y" * 500, BIG, 0, SPB),
    (icmp_quote(), BIG, 0, PB),
    (tcp4(200, seq=3000) + b"z" * 200, BIG, 5000, EPB),  # snaplen-cut on top of that
    (SYN, 0, 0, SPB),
]


def block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def shb() -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int = 1, snaplen: int = 0) -> bytes:
    return block(1, struct.pack("<HHI", linktype, 0, snaplen))


def packet_block(btype: int, number: int, data: bytes, wire: int, iface: int = 0) -> bytes:
    t = EPOCH_US + number * 1000
    if btype == EPB:
        head = struct.pack("<IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), wire)
    elif btype == PB:
        head = struct.pack("<HHIIII", iface, 0, t >> 32, t & 0xFFFFFFFF, len(data), wire)
    else:
        head = struct.pack("<I", wire)
    return block(btype, head + data)


def pcapng(frames: list[tuple[bytes, int, int, int]], *, small: bool = False) -> Iterator[bytes]:
    """The capture in pieces (a huge block is a few MB; the pieces are joined or compressed by
    the caller). `small`: every frame holds only its meaningful bytes, caplen = original."""
    yield shb() + idb()
    for number, (head, zeros, extra, btype) in enumerate(frames, 1):
        data = head if small else head + bytes(zeros)
        yield packet_block(btype, number, data, len(data) if small else len(data) + extra)


def pcap(frames: list[tuple[bytes, int, int, int]], *, small: bool = False) -> Iterator[bytes]:
    yield struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 16 * MB, 1)
    for number, (head, zeros, extra, _btype) in enumerate(frames, 1):
        data = head if small else head + bytes(zeros)
        t = EPOCH_US + number * 1000
        wire = len(data) if small else len(data) + extra
        yield struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), wire)
        yield data


def write(path: Path, pieces: Iterator[bytes], compress: str = "") -> Path:
    if compress == "gzip":
        with gzip.open(path, "wb", compresslevel=1) as f:
            for piece in pieces:
                f.write(piece)
        return path
    data = b"".join(pieces)
    packers: dict[str, Callable[[bytes], bytes]] = {
        "": bytes,
        "bzip2": bz2.compress,
        "xz": lambda d: lzma.compress(d, preset=1),
        "zstd": lambda d: zstandard.ZstdCompressor(level=1).compress(d),
        "lz4": lz4.frame.compress,
    }
    path.write_bytes(packers[compress](data))
    return path


def read(path: Path) -> tuple[list[RawFrame], CaptureReader]:
    with CaptureReader(path) as r:
        return list(r), r


def decoded(frames: list[RawFrame]) -> tuple[list[TcpSegment | IcmpError | None], DecodeStats]:
    decoder = Decoder()
    return [decoder.decode(f) for f in frames], decoder.stats


def columns(path: Path) -> tuple[list[object], DecodeStats]:
    """What the fast path decodes from the reader's chunks (however they are grouped): every
    packet (the arrays' rows and those left to Decoder), and the counters."""
    decoder = ColumnDecoder()
    packets: list[object] = []
    with CaptureReader(path) as r:
        for chunk in r.chunks():
            c = decoder.decode(chunk)
            packets.extend(c.packets(np.arange(len(c)), {}))
    return packets, decoder.decoder.stats


# -- huge frames: a prefix, the true lengths, the same decoding ----------------------------------


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_a_huge_frame_keeps_its_first_bytes_and_its_true_lengths(tmp_path: Path, fmt: str) -> None:
    build = pcapng if fmt == "pcapng" else pcap
    frames, r = read(write(tmp_path / f"huge.{fmt}", build(FRAMES)))
    assert r.warnings == [] and r.truncated is False
    assert [f.number for f in frames] == [1, 2, 3, 4, 5, 6]
    for frame, (head, zeros, extra, _btype) in zip(frames, FRAMES, strict=True):
        whole = head + bytes(zeros)
        assert frame.caplen == len(whole)
        assert frame.wire_len == len(whole) + extra
        assert frame.data == whole[:PREFIX]
        assert len(frame.data) == min(len(whole), PREFIX)
        assert frame.skipped == max(len(whole) - PREFIX, 0)
    times = [(EPOCH_US + n * 1000) / 1e6 for n in range(1, 7)]
    if fmt == "pcapng":  # an SPB has no time of its own: it gets the previous packet's
        times = [times[n - 1] if FRAMES[n][3] == SPB else t for n, t in enumerate(times)]
    assert [f.time for f in frames] == times


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_a_huge_frame_decodes_as_its_small_equivalent(tmp_path: Path, fmt: str) -> None:
    """The reference decoder and the fast path both give, for the huge frames, exactly the
    packets and counters of the same frames holding only their meaningful bytes."""
    build = pcapng if fmt == "pcapng" else pcap
    huge = write(tmp_path / f"huge.{fmt}", build(FRAMES))
    small = write(tmp_path / f"small.{fmt}", build(FRAMES, small=True))
    packets, stats = decoded(read(huge)[0])
    assert (packets, stats) == decoded(read(small)[0])
    assert stats.tcp == 5 and stats.icmp_errors == 1 and stats.undecodable == 0
    assert [p.payload_len for p in packets if isinstance(p, TcpSegment)] == [0, 1000, 500, 200, 0]
    icmp = packets[3]
    assert isinstance(icmp, IcmpError) and icmp.quoted is not None
    assert icmp.quoted.payload_len == 300
    assert columns(huge) == columns(small)


def test_long_pcap_records_come_out_of_chunks_on_their_own(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.pcap", pcap(FRAMES))
    with CaptureReader(path) as r:
        chunks = list(r.chunks())
    kinds = [
        ("chunk", len(c.offsets)) if isinstance(c, PcapChunk) else ("long", len(c)) for c in chunks
    ]
    assert kinds == [("chunk", 1), ("long", 1), ("long", 1), ("long", 1), ("long", 1), ("chunk", 1)]
    # No chunk holds a long record's bytes: each holds at most the target and one record.
    assert all(len(c.data) < (1 << 19) + PREFIX for c in chunks if isinstance(c, PcapChunk))
    frames = [f for c in chunks if not isinstance(c, PcapChunk) for f in c]
    assert [(f.number, len(f.data), f.caplen) for f in frames] == [
        (n, PREFIX, len(FRAMES[n - 1][0]) + BIG) for n in range(2, 6)
    ]


def test_a_huge_block_that_is_not_a_packet_is_skipped_and_numbered(tmp_path: Path) -> None:
    """An EPB whose options make it huge (its packet is small and kept whole), a custom block
    (numbered, like Wireshark) and a name resolution block (not numbered), a few MB each."""
    t = EPOCH_US
    epb_body = struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(SYN), len(SYN)) + SYN
    epb_body += b"\0" * (-len(epb_body) % 4) + struct.pack("<HH", 2988, 0) + bytes(BIG)
    data = (
        shb()
        + idb()
        + block(EPB, epb_body)
        + block(0x40000BAD, struct.pack("<I", 32473) + bytes(BIG))
        + block(4, bytes(BIG))
        + packet_block(EPB, 3, SYN, len(SYN))
    )
    frames, r = read(write(tmp_path / "options.pcapng", iter([data])))
    assert r.warnings == []
    assert [(f.number, f.data, f.skipped) for f in frames] == [(1, SYN, 0), (3, SYN, 0)]


# -- memory: one prefix, whatever the block size --------------------------------------------------


@pytest.mark.parametrize("compress", ["gzip", "bzip2", "xz", "lz4", ""])
def test_reading_huge_blocks_holds_one_prefix_not_the_block(tmp_path: Path, compress: str) -> None:
    blocks = [(SYN, 0, 0, EPB)] + [(tcp4(0), 12 * MB, 0, EPB)] * 3
    path = write(tmp_path / "big.pcapng", pcapng(blocks), compress)
    tracemalloc.start()
    try:
        with CaptureReader(path) as r:
            groups = list(r.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.warnings == []
    frames = [f for g in groups for f in g]
    assert [(len(f.data), f.caplen) for f in frames[1:]] == [(PREFIX, 54 + 12 * MB)] * 3
    # A few read chunks and the kept prefixes; the blocks are 12 MB each.
    assert peak < 4 * reader_mod._CHUNK + 4 * PREFIX + 2 * MB  # (xz's own state: 1.3 MB)


def test_zstd_skips_a_huge_block_in_bounded_pieces(tmp_path: Path) -> None:
    """zstd's decompressobj has no output bound: it holds what one _ZSTD_PIECE of input
    expands to (up to about 43 MB for zeros), never the block; the frames are the plain
    capture's."""
    blocks = [(SYN, 0, 0, EPB), (tcp4(0), 100 * MB, 0, EPB), (SYN, 0, 0, SPB)]
    packed = tmp_path / "big.pcapng.zst"
    with packed.open("wb") as out, zstandard.ZstdCompressor(level=1).stream_writer(out) as z:
        for piece in pcapng(blocks):
            z.write(piece)
    tracemalloc.start()
    try:
        frames, r = read(packed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.warnings == []
    assert [f.caplen for f in frames] == [len(SYN), 54 + 100 * MB, len(SYN)]
    assert [f.data for f in frames] == [SYN, (tcp4(0) + bytes(PREFIX))[:PREFIX], SYN]
    assert peak < 48 * MB  # the block is 100 MB


def test_pcapng_groups_are_bounded_by_bytes_and_by_frames(tmp_path: Path) -> None:
    """chunks() groups pcapng frames by the chunk target, not thousands of records at a time
    whatever their size; tiny frames still make groups of at most _GROUP_FRAMES."""
    medium = [(tcp4(0), 100_000, 0, EPB)] * 40 + [(b"\0", 0, 0, EPB)] * 20_000
    path = write(tmp_path / "groups.pcapng", pcapng(medium))
    target = 1 << 19
    with CaptureReader(path) as r:
        groups = list(r.chunks(target))
    sizes = [sum(len(f.data) for f in g) for g in groups]
    assert all(size < target + PREFIX for size in sizes)
    assert max(len(g) for g in groups) == reader_mod._GROUP_FRAMES
    assert [f.number for g in groups for f in g] == list(range(1, 20_041))
    assert len(groups[0]) == 6  # 6 frames of 100 kB reach the 512 KiB target


# -- damage in a huge block: the same one-line warnings ----------------------------------------


def _huge_capture() -> tuple[bytes, int]:
    """SHB, IDB, a SYN, a 3 MB EPB, a SYN; and the offset of the huge block."""
    head = shb() + idb() + packet_block(EPB, 1, SYN, len(SYN))
    huge = packet_block(EPB, 2, tcp4(0) + bytes(BIG), 54 + BIG)
    return head + huge + packet_block(EPB, 3, SYN, len(SYN)), len(head)


@pytest.mark.parametrize("compress", ["", "gzip"])
@pytest.mark.parametrize("where", ["kept part", "end of the kept part", "skipped part", "trailer"])
def test_a_capture_cut_inside_a_huge_block(tmp_path: Path, compress: str, where: str) -> None:
    data, at = _huge_capture()
    (length,) = struct.unpack_from("<I", data, at + 4)
    left = {
        "kept part": 1000,
        "end of the kept part": 28 + PREFIX,
        "skipped part": 2 * MB,
        "trailer": length - 2,
    }[where]
    path = write(tmp_path / "cut.pcapng", iter([data[: at + left]]), compress)
    frames, r = read(path)
    assert [f.number for f in frames] == [1]
    assert r.warnings == [
        f"{path}: frame 2 at byte {at}: block truncated (length {length}, {left} bytes left); "
        f"{STOP}, 1 frame analysed"
    ]


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("trailer", "trailing block length 12 does not match {length}"),
        ("interface", "packet block references undeclared interface 12 (1 declared)"),
        ("caplen", "packet block caplen 12 exceeds its block length {length}"),
    ],
)
def test_a_huge_block_with_a_bad_field(tmp_path: Path, field: str, reason: str) -> None:
    data, at = _huge_capture()
    (length,) = struct.unpack_from("<I", data, at + 4)
    patched = bytearray(data)
    offset = {"trailer": length - 4, "interface": 8, "caplen": 20}[field]
    value = 12 if field != "caplen" else length
    struct.pack_into("<I", patched, at + offset, value)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(patched))
    frames, r = read(path)
    assert [f.number for f in frames] == [1]
    expected = reason.format(length=length).replace("caplen 12", f"caplen {length}")
    assert r.warnings == [f"{path}: frame 2 at byte {at}: {expected}; {STOP}, 1 frame analysed"]


@pytest.mark.parametrize("where", [16 + 100, 16 + PREFIX, 2 * MB])
def test_a_pcap_cut_inside_a_long_record(tmp_path: Path, where: int) -> None:
    pieces = list(pcap(FRAMES[:2]))
    head = b"".join(pieces[:3])  # global header, the SYN's record
    path = tmp_path / "cut.pcap"
    path.write_bytes(head + b"".join(pieces[3:])[:where])
    frames, r = read(path)
    assert [f.number for f in frames] == [1]
    caplen = len(FRAMES[1][0]) + BIG
    assert r.warnings == [
        f"{path}: frame 2 at byte {len(head)}: record body truncated (caplen {caplen}, "
        f"{where - 16} bytes left); {STOP}, 1 frame analysed"
    ]


# -- the skipping path is the whole-block path, whatever the damage ------------------------------

SMALL_PREFIX = 40  # with it, most blocks of the fixtures take the skipping path


def _frames_and_warnings(
    path: str, prefix: int, chunk: int
) -> tuple[list[tuple[int, float, int, bytes, int, int]], list[str], bool] | str:
    """(number, time, linktype, first SMALL_PREFIX bytes, original and captured length) of
    every frame, the warnings and truncation, with these constants; or the CaptureError."""
    saved = reader_mod._FRAME_PREFIX, reader_mod._CHUNK
    reader_mod._FRAME_PREFIX, reader_mod._CHUNK = prefix, chunk
    try:
        with CaptureReader(path) as r:
            frames = list(r)
    except reader_mod.CaptureError as e:
        return str(e)
    finally:
        reader_mod._FRAME_PREFIX, reader_mod._CHUNK = saved
    assert all(len(f.data) <= prefix for f in frames)
    summary = [
        (f.number, f.time, f.linktype, f.data[:SMALL_PREFIX], f.wire_len, f.caplen) for f in frames
    ]
    return summary, r.warnings, r.truncated


FIXTURES = ["multi.pcapng", "multi.pcapng.gz", "pcap_be_nsec_fcs.pcap", "cut.pcap.gz"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(FIXTURES),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=3),
    chunk=st.sampled_from([1, 7, 64, 1 << 18]),
)
def test_skipping_reads_what_reading_whole_reads(
    name: str, cut: float, flips: list[tuple[float, int]], chunk: int
) -> None:
    """With a prefix of 40 bytes (blocks and records longer than it are skipped) a damaged or
    cut capture gives the same frames, warnings and errors as with the real prefix (every
    block of these fixtures read whole), for any read size."""
    data = bytearray((DATA / name).read_bytes())
    if not name.endswith(".gz"):  # flipped gzip bytes only break the stream
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
    fd, path = tempfile.mkstemp(suffix=".cap")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[: max(int(len(data) * cut), 1)])
        skipping = _frames_and_warnings(path, SMALL_PREFIX, chunk)
        assert skipping == _frames_and_warnings(path, PREFIX, chunk)
    finally:
        os.unlink(path)


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_a_huge_super_packet_takes_its_payload_from_the_true_captured_length(
    tmp_path: Path, fmt: str
) -> None:
    """A TSO super-packet (IPv4 total length 0) longer than the prefix the reader keeps: its
    payload is what was captured after the headers, as if the reader had kept it whole, on
    both decoding paths."""
    head = tcp4(0, 0x18)
    super_packet = ETH_V4 + ipv4(6, 0, b"\x0a\0\0\x01", b"\x0a\0\0\x02") + head[34:]
    frames = [(SYN, 0, 0, EPB), (super_packet, BIG, 0, EPB)]
    build = pcapng if fmt == "pcapng" else pcap
    path = write(tmp_path / f"tso.{fmt}", build(frames))
    packets, stats = decoded(read(path)[0])
    segment = packets[1]
    assert isinstance(segment, TcpSegment) and segment.payload_len == BIG
    assert stats.tcp == 2 and stats.truncated == 0
    column_packets, column_stats = columns(path)
    assert column_packets == packets and column_stats == stats
