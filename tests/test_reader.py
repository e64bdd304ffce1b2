"""Tests for tcpdiag.reader against the committed fixtures in tests/data/.

Frame numbers and times of the good fixtures were cross-checked once with tshark 4.0.17
(`tshark -r FILE -T fields -e frame.number -e frame.time_epoch`) and are hard-coded here.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpdiag import reader as reader_mod
from tcpdiag.reader import CaptureError, CaptureReader, RawFrame, ReadLimits

DATA = Path(__file__).parent / "data"


def read_all(name: str) -> tuple[list[RawFrame], CaptureReader]:
    with CaptureReader(DATA / name) as r:
        return list(r), r


def summary(frames: list[RawFrame]) -> list[tuple[int, float, int, int, int]]:
    return [(f.number, f.time, f.linktype, len(f.data), f.wire_len) for f in frames]


# -- good captures ------------------------------------------------------------------------------

USEC_TIMES = [1700000000.123456, 1700000001.000005, 1700000002.999999]
NSEC_TIMES = [1700000000.123456789, 1700000001.000000005, 1700000002.999999999]


@pytest.mark.parametrize(
    ("name", "times", "fcs"),
    [
        ("pcap_le_usec.pcap", USEC_TIMES, 0),
        ("pcap_be_usec.pcap", USEC_TIMES, 0),
        ("pcap_le_nsec.pcap", NSEC_TIMES, 0),
        ("pcap_be_nsec_fcs.pcap", NSEC_TIMES, 4),  # link-type field 0x24000001: FCS bits masked
        ("pcap_le_usec.pcap.gz", USEC_TIMES, 0),
        # Two gzip members split mid-record, then zero padding (accepted by gzip -t; tshark
        # reads the same 3 frames but then misreads the padding as a record).
        ("multi_member.pcap.gz", USEC_TIMES, 0),
    ],
)
def test_pcap_variants(name: str, times: list[float], fcs: int) -> None:
    frames, r = read_all(name)
    assert r.format == "pcap"
    assert summary(frames) == [
        (1, times[0], 1, 74 + fcs, 74 + fcs),
        (2, times[1], 1, 54 + fcs, 54 + fcs),
        (3, times[2], 1, 54 + fcs, 54 + fcs),
    ]
    assert r.warnings == []
    assert r.truncated is False
    # Same packets in every variant: Ethernet to 00:11:22:33:44:55 carrying IPv4 10.0.0.1 -> .2
    assert frames[0].data[:6] == bytes.fromhex("001122334455")
    assert frames[0].data[12:14] == b"\x08\x00"
    assert frames[0].data[26:34] == bytes([10, 0, 0, 1, 10, 0, 0, 2])
    reference, _ = read_all("pcap_le_usec.pcap")
    assert [f.data[: len(f.data) - fcs] for f in frames] == [f.data for f in reference]


MULTI = [
    (1, 1700000000.25, 1, 74, 74),  # interface 0: Ethernet, microseconds
    (2, 1700000001.000000001, 101, 60, 60),  # interface 1: raw IP, nanoseconds
    # 3: custom block: Wireshark lists it as a frame, so it takes a number but is not yielded
    (4, 1700000001.000000001, 1, 54, 54),  # SPB: interface 0, previous packet's time
    (5, 1700000002.5, 101, 40, 40),  # obsolete Packet Block on interface 1
    # 6: systemd journal block (a frame in Wireshark too); a secrets block is not numbered
    (7, 1700000100.5, 113, 56, 56),  # 2nd section, big-endian: SLL, 2^-20 s ticks, +100 s
]


@pytest.mark.parametrize("name", ["multi.pcapng", "multi.pcapng.gz"])
def test_pcapng_interfaces_sections_and_skipped_blocks(name: str) -> None:
    frames, r = read_all(name)
    assert r.format == "pcapng"
    assert summary(frames) == MULTI
    assert r.warnings == []
    assert r.truncated is False
    assert frames[1].data[0] >> 4 == 6  # raw IPv6 starts at byte 0
    assert frames[4].data[14:16] == b"\x08\x00"  # SLL protocol field


def test_iteration_is_single_pass() -> None:
    with CaptureReader(DATA / "pcap_le_usec.pcap") as r:
        assert len(list(r)) == 3
        assert list(r) == []


@pytest.mark.parametrize("chunk", [1, 5, 13, 100])
@pytest.mark.parametrize(
    "name",
    ["pcap_be_usec.pcap", "multi.pcapng", "multi.pcapng.gz", "cut.pcap.gz", "multi_member.pcap.gz"],
)
def test_small_read_chunks_give_identical_results(
    monkeypatch: pytest.MonkeyPatch, name: str, chunk: int
) -> None:
    expected, r0 = read_all(name)
    monkeypatch.setattr(reader_mod, "_CHUNK", chunk)
    frames, r = read_all(name)
    assert frames == expected
    assert r.warnings == r0.warnings


def test_memory_stays_constant_on_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap.gz"
    one = (DATA / "pcap_le_usec.pcap").read_bytes()
    record = one[24 : 24 + 16 + 74]
    count = 60_000  # ~5 MiB of records
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(one[:24])
        for _ in range(count // 1000):
            f.write(record * 1000)
    tracemalloc.start()
    try:
        seen = 0
        with CaptureReader(path) as r:
            for frame in r:
                seen = frame.number
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 3 * reader_mod._CHUNK + (1 << 20)  # a few chunks, not the 5.6 MB stream


# -- unreadable input: CaptureError --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "offset"),
    [
        ("not_capture.txt", "not a pcap or pcapng capture", None),
        ("empty.pcap", "empty file", None),
        ("trunc_header.pcap", "pcap file header truncated (10 of 24 bytes)", 0),
        ("ng_trunc_shb.pcapng", "pcapng section header block truncated (20 of 28 bytes)", 0),
        ("ng_bad_bom.pcapng", "pcapng section header has bad byte-order magic 0x01020304", 0),
    ],
)
def test_capture_errors(name: str, reason: str, offset: int | None) -> None:
    path = str(DATA / name)
    with pytest.raises(CaptureError) as info:
        CaptureReader(path)
    e = info.value
    assert (e.path, e.offset, e.frame, e.reason) == (path, offset, None, reason)
    where = "" if offset is None else f"at byte {offset}: "
    assert str(e) == f"{path}: {where}{reason}"
    assert "\n" not in str(e)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcap"
    with pytest.raises(CaptureError) as info:
        CaptureReader(missing)
    assert str(info.value) == f"{missing}: cannot open: No such file or directory"
    with pytest.raises(CaptureError) as info:
        CaptureReader(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot open: Is a directory"


def test_a_named_pipe_nobody_writes_to_is_an_error_after_the_wait(tmp_path: Path) -> None:
    # (Opening a FIFO blocks until a writer comes: without the wait, forever.)
    fifo = tmp_path / "capture.pipe"
    os.mkfifo(fifo)
    with pytest.raises(CaptureError) as info:
        CaptureReader(fifo, ReadLimits(fifo_wait=0.2))
    assert str(info.value) == (
        f"{fifo}: a named pipe (FIFO) that no program opened for writing within 0.2 s (--fifo-wait)"
    )
    # The pipe is left as it was: a writer that comes later finds no reader, not a stale one.
    with pytest.raises(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO: nobody reads it


def test_a_named_pipe_is_read_as_the_file_written_into_it(tmp_path: Path) -> None:
    fifo = tmp_path / "capture.pipe"
    os.mkfifo(fifo)
    data = (DATA / "trunc_body.pcap").read_bytes()

    def write() -> None:
        with open(fifo, "wb") as pipe:  # (blocks until the reader opens it)
            pipe.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with CaptureReader(fifo, ReadLimits(fifo_wait=30)) as piped:
        from_pipe = [(f.number, f.data) for f in piped]
    writer.join(10)
    with CaptureReader(DATA / "trunc_body.pcap") as plain:
        assert from_pipe == [(f.number, f.data) for f in plain] and from_pipe


def test_gzip_of_nothing_and_gzip_cut_inside_the_header(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap.gz"
    empty.write_bytes(gzip.compress(b"", mtime=0))
    with pytest.raises(CaptureError, match=r"empty\.pcap\.gz: empty file$"):
        CaptureReader(empty)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes((DATA / "cut.pcap.gz").read_bytes()[:12])  # inside the gzip header
    with pytest.raises(CaptureError) as info:
        CaptureReader(cut)
    assert str(info.value) == f"{cut}: at byte 0: gzip stream cut short"


# -- damage after the header: warning, earlier frames kept ----------------------------------------

STOP = "reading stopped"


@pytest.mark.parametrize(
    ("name", "frames", "message"),
    [
        (
            "trunc_rec_header.pcap",
            2,
            "frame 3 at byte 184: record header truncated (10 of 16 bytes); "
            f"{STOP}, 2 frames analysed",
        ),
        (
            "trunc_body.pcap",
            2,
            "frame 3 at byte 184: record body truncated (caplen 54, 20 bytes left); "
            f"{STOP}, 2 frames analysed",
        ),
        (
            "absurd_caplen.pcap",
            1,
            "frame 2 at byte 114: absurd caplen 4294967295 (limit 262144); "
            f"{STOP}, 1 frame analysed",
        ),
        (
            "ng_blocklen0.pcapng",
            2,
            f"frame 3 at byte 244: bad block length 0 (less than 12); {STOP}, 2 frames analysed",
        ),
        (
            "ng_blocklen_odd.pcapng",
            2,
            "frame 3 at byte 244: bad block length 86 (not a multiple of 4); "
            f"{STOP}, 2 frames analysed",
        ),
        (
            "ng_past_end.pcapng",
            2,
            "frame 3 at byte 244: block truncated (length 88, 40 bytes left); "
            f"{STOP}, 2 frames analysed",
        ),
        (
            "ng_trailer_mismatch.pcapng",
            2,
            "frame 3 at byte 244: trailing block length 12 does not match 88; "
            f"{STOP}, 2 frames analysed",
        ),
        (
            "ng_undeclared_if.pcapng",
            2,
            "frame 3 at byte 244: packet block references undeclared interface 3 (1 declared); "
            f"{STOP}, 2 frames analysed",
        ),
        (
            # tshark also reads 19 frames, then reports the file cut short.
            "cut.pcap.gz",
            19,
            "frame 20 at byte 20494: gzip stream cut short: record body truncated "
            f"(caplen 1054, 959 bytes left); {STOP}, 19 frames analysed",
        ),
    ],
)
def test_damage_stops_with_one_warning(name: str, frames: int, message: str) -> None:
    got, r = read_all(name)
    assert [f.number for f in got] == list(range(1, frames + 1))
    assert r.warnings == [f"{DATA / name}: {message}"]
    assert r.truncated is True


def test_frames_before_damage_are_intact() -> None:
    good, _ = read_all("pcap_le_usec.pcap")
    assert read_all("trunc_body.pcap")[0] == good[:2]
    ng_good, _ = read_all("ng_past_end.pcapng")
    assert [f.data for f in ng_good] == [good[0].data, good[1].data]
    assert [f.time for f in ng_good] == [1700000000.0, 1700000001.0]


# -- robustness ---------------------------------------------------------------------------------


def _scan(data: bytes) -> tuple[list[RawFrame], list[str]] | CaptureError:
    """Read `data` as a capture file; CaptureError is returned, anything else propagates."""
    fd, name = tempfile.mkstemp(suffix=".cap")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            with CaptureReader(name) as r:
                frames = list(r)
            # One damage warning exactly when reading stopped early; other warnings (a pcap
            # file or pcapng section of an unknown major version) are notes about what was read,
            # not damage.
            damage = [w for w in r.warnings if "has major version" not in w]
            assert len(damage) == int(r.truncated)
            return frames, r.warnings
        except CaptureError as e:
            assert "\n" not in str(e)
            return e
    finally:
        os.unlink(name)


FIXTURES_FOR_CUTS = ["pcap_be_nsec_fcs.pcap", "multi.pcapng", "multi.pcapng.gz", "cut.pcap.gz"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(FIXTURES_FOR_CUTS), cut=st.floats(0, 1))
def test_any_truncation_yields_a_prefix(name: str, cut: float) -> None:
    whole = (DATA / name).read_bytes()
    full = _scan(whole)
    assert not isinstance(full, CaptureError)
    got = _scan(whole[: int(len(whole) * cut)])
    if isinstance(got, CaptureError):
        return
    frames, _ = got
    assert frames == full[0][: len(frames)]


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["pcap_le_usec.pcap", "multi.pcapng", "pcap_le_usec.pcap.gz"]),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_corrupt_bytes_never_raise_anything_but_capture_error(
    name: str, flips: list[tuple[float, int]]
) -> None:
    data = bytearray((DATA / name).read_bytes())
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    _scan(bytes(data))


@settings(max_examples=200, deadline=None)
@given(tail=st.binary(max_size=300))
def test_garbage_after_a_good_header_never_raises(tail: bytes) -> None:
    for name, header_len in (("pcap_le_usec.pcap", 24), ("multi.pcapng", 28)):
        header = (DATA / name).read_bytes()[:header_len]
        result = _scan(header + tail)
        assert not isinstance(result, CaptureError)


def test_a_pcapng_section_of_an_unknown_major_version_is_read_with_a_warning(
    tmp_path: Path,
) -> None:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    frame = b"\0" * 14
    data = (
        block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1))  # major version 2
        + block(1, struct.pack("<HHI", 1, 0, 0))
        + block(6, struct.pack("<IIIII", 0, 0, 1_000_000, len(frame), len(frame)) + frame)
    )
    path = tmp_path / "v2.pcapng"
    path.write_bytes(data)
    with CaptureReader(path) as reader:
        frames = list(reader)
    assert len(frames) == 1
    assert reader.warnings == [
        f"{path}: pcapng section at byte 0 has major version 2 (tcpdiag knows 1): read as "
        "version 1, so its blocks may be misread"
    ]


@pytest.mark.parametrize("major", [1, 2, 3])
def test_a_pcap_of_an_unknown_major_version_is_read_with_a_warning(
    tmp_path: Path, major: int
) -> None:
    """libpcap's test file pcap-invalid-version-1.pcap: Wireshark refuses it; read as 2.4 (its
    one frame), and said."""
    frame = b"\0" * 14
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, major, 4, 0, 0, 262144, 1)
    data += struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    path = tmp_path / f"v{major}.pcap"
    path.write_bytes(data)
    with CaptureReader(path) as reader:
        frames = list(reader)
    assert len(frames) == 1
    expected = (
        []
        if major == 2
        else [
            f"{path}: pcap file header has major version {major} (version {major}.4; tcpdiag "
            "knows 2): read as version 2.4, so its records may be misread"
        ]
    )
    assert reader.warnings == expected


def test_a_zeroed_tail_stops_reading_early_with_a_warning(tmp_path: Path) -> None:
    """A capture whose tail is zeros (preallocated, overwritten) is not millions of empty
    frames: reading stops at the run, naming its byte offset; a short run is still frames."""
    sample = (Path(__file__).parent.parent / "samples" / "broken_pipe.pcap").read_bytes()
    path = tmp_path / "zero-tail.pcap"
    path.write_bytes(sample + bytes(16 * 5000))
    with CaptureReader(path) as reader:
        frames = list(reader)
    assert len(frames) == 11
    assert reader.truncated
    assert reader.warnings == [
        f"{path}: frame 12 at byte {len(sample)}: 1024 or more empty all-zero records from "
        "here; reading stopped, 11 frames analysed"
    ]
    short = tmp_path / "short-zero-run.pcap"
    short.write_bytes(sample + bytes(16 * 10) + sample[24:])
    with CaptureReader(short) as reader:
        assert len(list(reader)) == 11 + 10 + 11 and not reader.warnings
    # The limit is an option (--zero-records): lower, the short run ends the reading; 0, never.
    with CaptureReader(short, ReadLimits(zero_records=10)) as reader:
        assert len(list(reader)) == 11 and reader.truncated
        assert "10 or more empty all-zero records" in reader.warnings[0]
    with CaptureReader(path, ReadLimits(zero_records=0)) as reader:
        assert sum(1 for _ in reader) == 11 + 5000 and not reader.truncated
