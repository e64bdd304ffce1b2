"""Fuzzing the reader and the whole analyse pipeline with mutated real captures.

Used two ways:
- by tests/test_fuzz.py (hypothesis picks the mutations; bounded, runs in CI);
- on demand for longer runs: `python tests/fuzzing.py --seconds 600` mutates at random until the
  time is up and saves every input that breaks an invariant to tests/data/fuzz_crashes/, where
  test_fuzz.py replays it forever after as a regression test.

Invariants checked for every input: analysis never raises (bad input becomes the report's
one-line `error` or a warning), finishes within a time bound, every output format renders
safely (valid JSON; no control characters in the terminal or Markdown text), and the fast path
(tcpdiag.fastpath) reports exactly what the reference path reports.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcpdiag import fastpath, reader  # noqa: E402
from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture  # noqa: E402
from tcpdiag.detect import RuleEngine  # noqa: E402
from tcpdiag.reporters.flows import render_flows_csv, render_flows_json  # noqa: E402
from tcpdiag.reporters.json_report import (  # noqa: E402
    AggregatingJsonLinesReporter,
    encode_finding,
    render_json,
)
from tcpdiag.reporters.markdown import render_markdown  # noqa: E402
from tcpdiag.reporters.text import render_text  # noqa: E402
from tcpdiag.rules import load_rules  # noqa: E402

CRASHES = ROOT / "tests" / "data" / "fuzz_crashes"
SECONDS_PER_INPUT = 5.0
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ENGINE = RuleEngine(load_rules())


def seeds() -> list[bytes]:
    """Every committed capture, uncompressed: real kernel samples and the decoder fixtures."""
    out = []
    for folder in (ROOT / "samples", ROOT / "tests" / "data"):
        for path in sorted(folder.glob("*.pcap*")):
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError):
                    continue
            if len(data) <= 65536:
                out.append(data)
    out.append(followed_seed())
    return out


def followed_seed() -> bytes:
    """A capture whose connections outlive the fuzzer's small windows, so that they are
    followed from one window to the next (tcpdiag.fastpath._Followed) and mutations meet
    them there: five talks of 24 s, one every 3 s, beside a ticker every 0.2 s."""
    from flowbuilder import Capture, Conversation, write_pcap  # (tests/, beside this file)

    from tcpdiag.packets import ACK, PSH

    cap = Capture()
    ticker = Conversation(cap, client=("10.7.1.1", 41000), server=("10.9.1.1", 443))
    talks = [
        Conversation(cap, client=("10.7.0.1", 42000 + n), server=("10.9.0.2", 8080))
        for n in range(5)
    ]
    ticker.handshake()
    for tick in range(200):
        ticker.send("c", PSH | ACK, 10, dt=0.2)
        for n, talk in enumerate(talks):
            step, due = divmod(tick - 15 * n, 15)
            if due or not 0 <= step <= 9:
                continue
            if step == 0:
                talk.handshake()
            elif step < 9:
                talk.data("c", 20)
                talk.data("s", 40)
            else:
                talk.close("c")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "followed.pcap"
        write_pcap(cap, path)
        return path.read_bytes()


# -- mutations ------------------------------------------------------------------------------------


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def poke_u32(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a 32-bit word (record lengths, block lengths, magic) with an edge value."""
    if len(data) < 4:
        return data
    at = rng.randrange(0, len(data) - 3)
    value = rng.choice([0, 1, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000, len(data), rng.getrandbits(32)])
    return data[:at] + struct.pack(rng.choice("<>") + "I", value) + data[at + 4 :]


def splice(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data
    a, b = sorted(rng.randrange(len(data)) for _ in range(2))
    chunk = data[a:b]
    at = rng.randrange(len(data))
    return data[:at] + chunk + data[at:]


def cut_gzip(data: bytes, rng: random.Random) -> bytes:
    packed = gzip.compress(data)
    return packed[: rng.randrange(10, len(packed) + 1)]


MUTATIONS = (flip_bytes, truncate, poke_u32, splice, cut_gzip)


def mutate(data: bytes, rng: random.Random, rounds: int) -> bytes:
    for _ in range(rounds):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


# -- invariants -----------------------------------------------------------------------------------


def check(data: bytes) -> CaptureReport:
    """Run the whole pipeline on `data`; raise AssertionError if an invariant breaks."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pcap"
        path.write_bytes(data)
        started = time.monotonic()
        report = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True))
        elapsed = time.monotonic() - started
        # The fast path must report exactly what the reference path does, with windows of the
        # normal size and with tiny ones (connections then straddle window boundaries), and
        # list the same connections (flows).
        listed = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, keep_flows=True))
        assert _flows(report) == _flows(listed), "fast path lists other flows"
        reference = listed.to_dict()
        fast = analyze_capture(path, ENGINE, AnalysisOptions()).to_dict()
        assert fast == reference, "fast path differs from the reference"
        # With tiny windows, read in small pieces too (how much of a damaged compressed file
        # can be read depends on them), half the inputs with Zeek's view (flows), by a bit of
        # the input's hash: connections are followed from window to window either way.
        flows = bool(hashlib.sha1(data).digest()[0] & 1)
        with _window_rows(64):
            # (The findings kept as the JSON reports keep them, as JSON: without flows.)
            keep_json = AnalysisOptions(keep_flows=flows, finding_encoder=encode_finding)
            small = analyze_capture(path, ENGINE, keep_json)
            tiny = analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False, keep_flows=flows))
        assert _json_lines(small) == _json_lines(tiny), "fast path differs (64-row windows)"
        assert _flows(small) == _flows(tiny), "fast path lists other flows (64-row windows)"
    assert elapsed < SECONDS_PER_INPUT, f"took {elapsed:.1f} s"
    if report.error is not None:
        assert "\n" not in report.error, "error message is not one line"
    for warning in report.warnings:
        assert "\n" not in warning, "warning is not one line"
    json.loads(render_json([report]))
    json.loads(render_flows_json([report]))
    render_flows_csv([report])
    for text in (render_text([report]), render_markdown([report])):
        assert not _CONTROL.search(text.replace("\n", "")), "control characters in output"
    return report


def _json_lines(report: CaptureReport) -> str:
    """The JSON Lines report: the capture's summary and every finding."""
    out = io.StringIO()
    AggregatingJsonLinesReporter().write(report, out)
    return out.getvalue()


def _flows(report: CaptureReport) -> list[dict[str, Any]]:
    return [flow.to_dict() for flow in report.connections]


@contextmanager
def _window_rows(rows: int) -> Iterator[None]:
    """Windows of `rows` rows; small ones continue live connections in small parts, however
    short the run (see fastpath._continuations), and are made of small reads (a window is
    at least what the reader hands over at once), so that connections are followed from one
    window to the next (see fastpath._Followed)."""
    names = ("WINDOW_ROWS", "WINDOW_MAX_ROWS", "_CONTINUE_ROWS", "_CONTINUE_MIN_ROWS")
    saved = [getattr(fastpath, name) for name in names]
    saved_read, saved_chunks = reader._CHUNK, reader.CaptureReader.chunks.__defaults__
    if rows < saved[0]:
        for name, value in zip(names, (rows, rows * 4, max(rows // 4, 1), 1), strict=True):
            setattr(fastpath, name, value)
        reader._CHUNK = 4096
        reader.CaptureReader.chunks.__defaults__ = (4096,)
    try:
        yield
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(fastpath, name, value)
        reader._CHUNK = saved_read
        reader.CaptureReader.chunks.__defaults__ = saved_chunks


def save_crash(data: bytes, problem: str) -> Path:
    CRASHES.mkdir(parents=True, exist_ok=True)
    path = CRASHES / f"{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(problem + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = seeds()
    deadline = time.monotonic() + args.seconds
    runs = failures = 0
    while time.monotonic() < deadline:
        data = mutate(rng.choice(corpus), rng, rng.randint(1, 4))
        runs += 1
        try:
            check(data)
        except Exception as exc:  # any failure, the pipeline's or an invariant's, is a finding
            failures += 1
            saved = save_crash(data, f"{type(exc).__name__}: {exc}")
            print(f"FAIL {saved.name}: {type(exc).__name__}: {exc}", flush=True)
    print(f"{runs} inputs, {failures} failures in {args.seconds:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
