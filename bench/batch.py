#!/usr/bin/env python3
"""Benchmark batch triage: many captures, mixed compression, at --jobs 1, --jobs 2 and on a
2-worker Dask LocalCluster.

    python bench/batch.py                          # 50 captures of 20,000 packets (~230 MB)
    python bench/batch.py --files 20 --packets 5000 # quick

The captures are made with bench/make_capture.py (one seed each) and stored, in turn, plain,
gzip, bzip2, xz, zstd and lz4-compressed in bench/out/batch-<files>x<packets>/ (reused when
present). Each mode runs `tcpdiag analyze -f json -q -v DIR` once and measures its wall time;
the -v lines give every capture's worker peak memory (ru_maxrss of the worker process: for
Dask, the whole Dask worker). The three JSON reports must be identical, and their findings
per category must equal what the generator injected; otherwise exit status 1.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import make_capture  # noqa: E402  (bench/ is not a package)

_PEAK = re.compile(r"worker peak (\d+) MiB")


def _spin(_: int) -> float:
    started = time.perf_counter()
    total = 0
    for number in range(3_000_000):
        total += number * number
    return time.perf_counter() - started


def parallel_capacity() -> float:
    """How much faster two CPU-bound processes finish together than one after the other, on
    this machine now: 2.0 on two idle cores; less when other work holds them. The most any
    2-worker speed-up measured at the same time can be."""
    from multiprocessing import Pool

    alone = sum(_spin(0) for _ in range(2))
    with Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_spin, [0, 1])
        together = time.perf_counter() - started
    return alone / together


def _compressors() -> list[tuple[str, Callable[[bytes], bytes]]]:
    import lz4.frame
    import zstandard

    return [
        ("", lambda data: data),
        (".gz", lambda data: gzip.compress(data, 6)),
        (".bz2", lambda data: bz2.compress(data, 9)),
        (".xz", lambda data: lzma.compress(data, preset=1)),
        (".zst", zstandard.ZstdCompressor(level=3).compress),
        (".lz4", lz4.frame.compress),
    ]


def make_batch(files: int, packets: int, out: Path) -> tuple[Counter[str], int]:
    """The batch's captures (made once), the findings per category they must produce, and
    their uncompressed size."""
    out.mkdir(parents=True, exist_ok=True)
    expected: Counter[str] = Counter()
    raw_bytes = 0
    compressors = _compressors()
    for number in range(files):
        suffix, compress = compressors[number % len(compressors)]
        final = out / f"capture-{number:03d}.pcap{suffix}"
        plain = out / f"capture-{number:03d}.tmp.pcap"
        manifest = out / f"capture-{number:03d}.manifest.json"
        if not (final.exists() and manifest.exists()):
            print(f"generating {final.name} ...", flush=True)
            info = make_capture.generate(packets, plain, seed=number + 1)
            data = plain.read_bytes()
            plain.unlink()
            make_capture.manifest_path(plain).unlink(missing_ok=True)
            final.write_bytes(compress(data))
            manifest.write_text(json.dumps({"bytes": len(data), **info}))
        info = json.loads(manifest.read_text())
        expected.update(info["expected_findings"])
        raw_bytes += info["bytes"]
    return expected, raw_bytes


def run_tcpdiag(args: list[str], directory: Path) -> tuple[float, str, list[int], int]:
    """Wall time, JSON report, per-capture worker peaks (MiB), exit status."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tcpdiag", "analyze", "-f", "json", "-q", "-v", *args]
    started = time.monotonic()
    proc = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, env=env, timeout=3600
    )
    seconds = time.monotonic() - started
    peaks = [int(m) for m in _PEAK.findall(proc.stderr)]
    return seconds, proc.stdout, peaks, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--packets", type=int, default=20_000, help="packets per capture")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args(argv)
    directory = BENCH / "out" / f"batch-{args.files}x{args.packets}"
    expected, raw_bytes = make_batch(args.files, args.packets, directory)
    disk = sum(p.stat().st_size for p in directory.glob("capture-*.pcap*"))
    print(
        f"{args.files} captures, {args.files * args.packets:,} packets, "
        f"{raw_bytes / 1e6:.0f} MB uncompressed, {disk / 1e6:.0f} MB on disk"
    )
    modes: list[tuple[str, list[str]]] = [("--jobs 1", ["-j", "1"]), ("--jobs 2", ["-j", "2"])]
    cluster = None
    if not args.skip_dask:
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        modes.append(("Dask LocalCluster, 2 workers", ["--dask", cluster.scheduler_address]))
    rows, reports, status = [], [], 0
    try:
        base = None
        for label, options in modes:
            seconds, report, peaks, code = run_tcpdiag(options, directory)
            if code not in (0, 1):
                print(f"{label}: tcpdiag exited with status {code}")
                status = 1
            base = base or seconds
            reports.append(report)
            rows.append(
                [label, f"{seconds:.1f}", f"{base / seconds:.2f}x", f"{max(peaks or [0])} MiB"]
            )
    finally:
        if cluster is not None:
            cluster.close()
    if any(r != reports[0] for r in reports):
        print("the reports differ between modes")
        status = 1
    found: Counter[str] = Counter()
    for capture in json.loads(reports[0])["captures"]:
        found.update(f["category"] for f in capture["findings"])
    if found != expected:
        print(f"findings {dict(found)} differ from the injected failures {dict(expected)}")
        status = 1
    headers = ["mode", "wall s", "speed-up", "peak RSS per worker"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    # On a shared machine the other load decides how much of a speed-up there can be.
    print(f"load average after the runs (1, 5, 15 min): {os.getloadavg()}, {os.cpu_count()} CPUs")
    print(f"parallel capacity now (2 CPU-bound processes vs 1): {parallel_capacity():.2f}x")
    print("reports identical, findings as injected" if status == 0 else "CHECK FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
