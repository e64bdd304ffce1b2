"""SYN flood: memory stays bounded and time linear however many half-open connections a capture
holds (tcpdiag retires the least recently active connection beyond --max-connections).

    python bench/synflood.py                      # 250k and 1M distinct 4-tuples
    python bench/synflood.py --sizes 100000,400000

Writes the floods to bench/out/ (git-ignored) and prints, for each size, the time, packets/s,
peak RSS of `tcpdiag analyze --format json`, and how many connections it evicted.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

OUT = Path(__file__).resolve().parent / "out"
TIMEOUT_SECONDS = 900


def write_flood(path: Path, count: int) -> None:
    """`count` SYNs from distinct (address, port) pairs to 192.0.2.1:80, 10 us apart."""
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    options = b"\x02\x04\x05\xb4"  # MSS 1460, as a flood tool sends
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(count):
            src = struct.pack("!I", 0x0A000000 + (i // 50000))  # 10.0.0.0/8 sources
            sport = 1024 + i % 50000
            tcp = struct.pack("!HHIIBBHHH", sport, 80, i * 2654435761 & 0xFFFFFFFF, 0,
                              6 << 4, 0x02, 1024, 0, 0) + options  # fmt: skip
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0,
                             src, b"\xc0\x00\x02\x01")  # fmt: skip
            frame = eth + ip + tcp
            usec = 10 * i
            out.write(struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000, usec % 1_000_000,
                                  len(frame), len(frame)) + frame)  # fmt: skip


def measure(path: Path) -> tuple[float, int, dict]:
    """Wall time, peak RSS (KiB) and JSON report of one tcpdiag run in a fresh process."""
    script = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
        "sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
        "sys.stdout.buffer.write(p.stdout)\n"
    )
    command = [sys.executable, "-m", "tcpdiag", "analyze", "--format", "json", str(path)]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *command],
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.perf_counter() - started
    rss_kib = int(proc.stderr.decode().strip().splitlines()[-1])
    return elapsed, rss_kib, json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,1000000")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        path = OUT / f"synflood-{size}.pcap"
        if not path.exists():
            write_flood(path, size)
        elapsed, rss_kib, report = measure(path)
        capture = report["captures"][0]
        rows.append(
            [size, f"{elapsed:.1f}", f"{size / elapsed:,.0f}", f"{rss_kib / 1024:.0f}",
             capture["flows"], capture["evicted"], len(capture["findings"])]
        )  # fmt: skip
    print(tabulate(rows, headers=["SYNs", "seconds", "packets/s", "peak RSS MiB", "connections",
                                  "evicted", "findings"]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
