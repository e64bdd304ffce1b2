#!/usr/bin/env python3
"""How fast the pyshark engine (tcpdiag.tshark_engine) reads a capture, and why it is built so.

    python bench/tshark_engine.py                      # 200k packets (bench/make_capture.py)
    python bench/tshark_engine.py --packets 50000 --pyshark-packets 1000

Measures, on one capture made by bench/make_capture.py (reused from bench/out when present):
  (a) pyshark.FileCapture's default per-packet objects (on the first --pyshark-packets packets);
  (b) the tshark command the engine runs, output to /dev/null: the floor for any tshark engine;
  (c) tcpdiag.tshark_engine.TsharkDecoder: tshark through a pipe into TcpSegment/IcmpError;
  (d) analyze_capture(engine="pyshark"): (c) plus tracking and rules;
  (e) analyze_capture(engine="native"), for comparison.
Each is run --repeat times (best kept). Wall-clock seconds and packets per second, and the CPU
seconds spent (this process and tshark) with packets per CPU second: on a shared machine the
wall clock depends on the neighbours, CPU time much less. The load average is printed alongside,
because tshark and the Python side run in parallel on two cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tabulate import tabulate  # noqa: E402

from tcpdiag.analyze import AnalysisOptions, analyze_capture  # noqa: E402
from tcpdiag.detect import RuleEngine  # noqa: E402
from tcpdiag.rules import load_rules  # noqa: E402
from tcpdiag.tshark_engine import TsharkDecoder, tshark_command, tshark_path  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (tshark)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(job: Callable[[], int]) -> tuple[float, float, int]:
    """Wall-clock seconds, CPU seconds (this process and tshark) and the packets counted."""
    start, cpu = time.perf_counter(), cpu_seconds()
    count = job()
    return time.perf_counter() - start, cpu_seconds() - cpu, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--pyshark-packets", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest kept")
    args = parser.parse_args()
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    capture = out / f"capture-{args.packets}-s{args.seed}.pcap"
    if not capture.exists():
        subprocess.run(
            [sys.executable, str(BENCH / "make_capture.py"), "--packets", str(args.packets),
             "--seed", str(args.seed), "--out", str(capture)],
            check=True,
            timeout=600,
        )  # fmt: skip
    tshark = tshark_path()
    rows = []

    def pyshark_objects() -> int:
        import pyshark

        cap = pyshark.FileCapture(str(capture), keep_packets=False)
        n = 0
        try:
            for packet in cap:
                _ = packet.number, getattr(packet, "tcp", None)
                n += 1
                if n >= args.pyshark_packets:
                    break
        finally:
            cap.close()
        return n

    def tshark_alone() -> int:
        command = tshark_command(tshark, str(capture), frozenset((4789,)))
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return args.packets

    def engine_records() -> int:
        decoder = TsharkDecoder(str(capture), tshark=tshark)
        for _ in decoder.packets():
            pass
        return decoder.stats.frames

    rules = RuleEngine(load_rules())

    def analyze(engine: str) -> Callable[[], int]:
        def job() -> int:
            report = analyze_capture(capture, rules, AnalysisOptions(engine=engine))
            return report.packets

        return job

    for name, job in (
        ("pyshark FileCapture, default objects", pyshark_objects),
        ("tshark alone, the engine's command (floor)", tshark_alone),
        ("TsharkDecoder records", engine_records),
        ("analyze --engine pyshark", analyze("pyshark")),
        ("analyze --engine native", analyze("native")),
    ):
        load = os.getloadavg()[0]
        runs = [timed(job) for _ in range(max(1, args.repeat))]
        seconds, count = min(r[0] for r in runs), runs[0][2]
        cpu = min(r[1] for r in runs)
        rows.append([name, count, f"{seconds:.2f}", f"{count / seconds:,.0f}", f"{cpu:.2f}",
                     f"{count / cpu:,.0f}", f"{load:.1f}"])  # fmt: skip
        print(rows[-1], flush=True)
    headers = ["what", "packets", "seconds", "packets/s", "CPU s", "packets/CPU s", "load"]
    print(tabulate(rows, headers=headers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
