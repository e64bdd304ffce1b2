"""What the capture arguments name (files, directories, globs, stdin, rotated parts) and how
compressed captures are read (by magic bytes, cut streams handled like gzip's)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from tcpdiag.analyze import analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.inputs import expand_inputs, group_rotated
from tcpdiag.reader import CaptureReader
from tcpdiag.reporters.json_report import finding_dict
from tcpdiag.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ENGINE = RuleEngine(load_rules(None))

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": lambda data: bz2.compress(data, 1),  # 100 kB blocks: a cut leaves whole blocks
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "lz4": lz4.frame.compress,
}


def findings_of(path: Path | str) -> list[dict[str, object]]:
    report = analyze_capture(path, ENGINE)
    assert report.error is None, report.error
    return [finding_dict(f) for f in report.findings]


# -- compression ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_each_compression_gives_the_findings_of_the_plain_file(tmp_path: Path, codec: str) -> None:
    plain = SAMPLES / "mixed.pcap"
    # A misleading name: the format is recognised by its content.
    packed = tmp_path / "mixed.pcap"
    packed.write_bytes(COMPRESSORS[codec](plain.read_bytes()))
    assert findings_of(packed) == findings_of(plain)
    assert len(findings_of(plain)) == 3


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_concatenated_streams_read_as_one(tmp_path: Path, codec: str) -> None:
    data = (SAMPLES / "mixed.pcap").read_bytes()
    packed = tmp_path / "two-streams"
    packed.write_bytes(COMPRESSORS[codec](data[:1000]) + COMPRESSORS[codec](data[1000:]))
    assert findings_of(packed) == findings_of(SAMPLES / "mixed.pcap")


def _random_pcap(records: int = 4000) -> bytes:
    """A classic pcap of incompressible records (the reader does not decode them), so a cut in
    the compressed stream falls in the middle of the frames."""
    rng = random.Random(7)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for number in range(records):
        payload = rng.randbytes(100)
        out.append(struct.pack("<IIII", 1_700_000_000 + number, 0, 100, 100) + payload)
    return b"".join(out)


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_cut_stream_warns_and_keeps_the_frames_before_the_cut(tmp_path: Path, codec: str) -> None:
    data = _random_pcap()
    packed = COMPRESSORS[codec](data)
    cut = tmp_path / "cut"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    whole = tmp_path / "whole"
    whole.write_bytes(packed)
    with CaptureReader(whole) as reader:
        expected = [(f.number, f.time, f.data) for f in reader]
    with CaptureReader(cut) as reader:
        frames = [(f.number, f.time, f.data) for f in reader]
        assert reader.truncated
        (warning,) = reader.warnings
    assert len(expected) == 4000
    assert 0 < len(frames) < len(expected)
    assert frames == expected[: len(frames)]
    assert f"{codec} stream cut short" in warning and warning.startswith(str(cut))


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_corrupt_compressed_data_is_one_error(tmp_path: Path, codec: str) -> None:
    packed = COMPRESSORS[codec]((SAMPLES / "mixed.pcap").read_bytes())
    bad = tmp_path / "bad"
    bad.write_bytes(packed[:8] + b"\xff" * 64)  # the magic, then garbage
    report = analyze_capture(bad, ENGINE)
    if report.error is None:  # some formats decode garbage to garbage: then it is a warning
        assert report.warnings
    else:
        assert "\n" not in report.error and str(bad) in report.error


# -- standard input -------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["plain", "gzip"])
def test_stdin_gives_the_findings_of_the_file(codec: str) -> None:
    data = (SAMPLES / "mixed.pcap").read_bytes()
    if codec == "gzip":
        data = gzip.compress(data)
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "analyze", "-f", "json", "-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    (capture,) = json.loads(proc.stdout)["captures"]
    assert capture["path"] == "<stdin>"
    assert capture["findings"] == findings_of(SAMPLES / "mixed.pcap")


# -- expansion ------------------------------------------------------------------------------------


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_directories_are_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    for name in ["b.pcap", "a.pcapng.gz", "sub/z.cap", "sub/deeper/c.pcap1", "notes.txt"]:
        _touch(tmp_path / name)
    os.mkfifo(tmp_path / "sub" / "fifo.pcap")  # would block whoever opens it: left out
    (tmp_path / "sub" / "dir.pcap").mkdir()  # a directory is searched, not read
    names = [i.name for i in expand_inputs([str(tmp_path)])]
    assert names == [
        str(tmp_path / "a.pcapng.gz"),
        str(tmp_path / "b.pcap"),
        str(tmp_path / "sub/deeper/c.pcap1"),
        str(tmp_path / "sub/z.cap"),
    ]
    only = expand_inputs([str(tmp_path)], patterns=["*.txt"])
    assert [i.name for i in only] == [str(tmp_path / "notes.txt")]


def test_quoted_globs_and_arguments_that_name_nothing(tmp_path: Path) -> None:
    for name in ["x1.pcap", "x2.pcap", "y.pcap"]:
        _touch(tmp_path / name)
    (tmp_path / "empty").mkdir()
    inputs = expand_inputs(
        [str(tmp_path / "x*.pcap"), str(tmp_path / "nothing*.pcap"), str(tmp_path / "empty"), "-"]
    )
    assert [i.name for i in inputs[:2]] == [str(tmp_path / "x1.pcap"), str(tmp_path / "x2.pcap")]
    assert inputs[2].error is not None and "no file matches" in inputs[2].error
    assert inputs[3].error is not None and "no file matching" in inputs[3].error
    assert inputs[4].is_stdin and inputs[4].name == "<stdin>"
    assert inputs[0].size == 1


def test_rotated_parts_are_grouped_by_name_in_capture_order(tmp_path: Path) -> None:
    header = (SAMPLES / "mixed.pcap").read_bytes()[:24]

    def capture(name: str, start: int) -> str:
        record = struct.pack("<IIII", start, 0, 4, 4) + b"abcd"
        return str(_touch(tmp_path / name, header + record))

    # tcpdump -C: x.pcap, x.pcap1, x.pcap2 ... (the first has no number); a ring buffer that
    # wrapped around: the oldest part has the highest number.
    ring = [capture("x.pcap1", 200), capture("x.pcap2", 100), capture("x.pcap", 150)]
    timed = [capture("t-20240101-1200.pcap.gz", 10), capture("t-20240101-1100.pcap.gz", 5)]
    other = capture("other.pcap", 1)
    groups = group_rotated([*ring, other, *timed])
    assert groups == [[ring[1], ring[2], ring[0]], [other], [timed[1], timed[0]]]
    joined = expand_inputs([str(tmp_path)], join=True)
    assert [len(i.parts) for i in joined] == [1, 2, 3]
    assert os.path.basename(joined[2].name) == "x.pcap2 (+2 joined parts)"


def test_a_named_pipe_named_for_join_is_read_alone_and_once(tmp_path: Path) -> None:
    """Ordering rotated parts reads each part's first packet before the part: a named pipe
    (tcpdump -w to a FIFO) would be read twice, the second read waiting for a writer that
    never comes. It is an input of its own, never read while the inputs are made."""
    header = (SAMPLES / "mixed.pcap").read_bytes()[:24]
    for name, start in (("x.pcap1", 100), ("x.pcap2", 200)):
        _touch(tmp_path / name, header + struct.pack("<IIII", start, 0, 4, 4) + b"abcd")
    fifo = tmp_path / "x.pcap3"
    os.mkfifo(fifo)  # (nobody writes it: opening it here would block)
    inputs = expand_inputs(
        [str(tmp_path / "x.pcap1"), str(tmp_path / "x.pcap2"), str(fifo)], join=True
    )
    assert [i.parts for i in inputs] == [
        (str(tmp_path / "x.pcap1"), str(tmp_path / "x.pcap2")),
        (str(fifo),),
    ]
