"""The shape matrix of `bench/run.py --matrix`: tcpdiag against tshark on many kinds of traffic.

For every shape of make_capture.SHAPES (or `--shapes a,b`), at `--scale` times its size, in
one run: generate the capture (or reuse it when its manifest matches), then measure

  tcpdiag analyze -f jsonl FILE   CPU s (user+sys of the child, from /usr/bin/time -v), peak
                                  RSS of its process tree; its findings are compared with the
                                  ground truth, connection by connection
  tcpdiag flows -f csv FILE       CPU s (the reference path: Zeek's view of every packet)
  tshark -q -z expert -r FILE     CPU s and peak RSS

and print one Markdown table, the worst shape (lowest tshark CPU / tcpdiag CPU) first.
`--linearity SHAPE` runs tcpdiag analyze on 1x, 2x and 4x of one shape. A command that runs
past `--timeout` is killed and shown as "> N s"; a report that does not match the ground truth
is shown as such (the run's exit status is then 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import groundtruth
import make_capture
import run as bench_run
from run import BenchError, BenchTimeout, Measurement
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent


@dataclass
class Timed:
    """One command's figures, or why there are none."""

    cpu: float | None = None
    wall: float | None = None
    rss_mib: float | None = None
    timeout: float | None = None  # set when it was killed at this many seconds
    error: str = ""

    @classmethod
    def of(cls, m: Measurement) -> Timed:
        return cls(cpu=m.cpu_seconds, wall=m.seconds, rss_mib=m.rss_mib)

    def cpu_text(self) -> str:
        if self.timeout is not None:
            return f"> {self.timeout:.0f} (timeout)"
        if self.cpu is None:
            return f"error: {self.error[:40]}" if self.error else "-"
        return f"{self.cpu:.2f}"

    def rss_text(self) -> str:
        return "-" if self.rss_mib is None else f"{self.rss_mib:.0f}"


@dataclass
class ShapeResult:
    shape: str
    info: dict[str, Any]
    analyze: Timed = field(default_factory=Timed)
    flows: Timed = field(default_factory=Timed)
    tshark: Timed = field(default_factory=Timed)
    check: dict[str, Any] | None = None

    def ratio(self) -> tuple[float, str]:
        """tshark CPU / tcpdiag CPU, for sorting, and as text ('<' when tcpdiag timed out)."""
        ts, td = self.tshark, self.analyze
        if ts.cpu is None:
            return float("inf"), "-"
        if td.timeout is not None:
            bound = ts.cpu / td.timeout
            return bound, f"< {bound:.2f}"
        if td.cpu is None:
            return 0.0, "-"
        value = ts.cpu / max(td.cpu, 1e-6)
        return value, f"{value:.2f}"


def capture_for_shape(shape: str, scale: float, seed: int, out_dir: Path, timeout: float) -> dict:
    """The capture of `shape` at `scale`: reused when its manifest and truth match."""
    packets, knobs, _ = make_capture.SHAPES[shape]
    packets = max(1000, int(packets * scale))
    path = out_dir / f"matrix-{shape}-{packets}-s{seed}.pcap"
    info = bench_run.reusable(path, make_capture.identity(packets, seed, knobs.rate, knobs))
    if info is not None and make_capture.truth_path(path).exists():
        return info
    print(f"  generating {path.name} ...", flush=True)
    options = ["--shape", shape, "--scale", str(scale), "--seed", str(seed)]
    bench_run.generate(options, path, timeout)
    return json.loads(make_capture.manifest_path(path).read_text())


def timed(args: argparse.Namespace, name: str, cmd: list[str], packets: int, out: str) -> Timed:
    """Measure `cmd` (--repeat times: median CPU); a timeout or failure becomes a Timed."""
    try:
        m = bench_run.measure_repeated(
            args.repeat,
            name,
            cmd,
            packets,
            out,
            args.timeout,
            ok_codes=(0, 1),
            env=bench_run.tcpdiag_env(),
        )
    except BenchTimeout:
        return Timed(timeout=args.timeout)
    except BenchError as exc:
        return Timed(error=str(exc).splitlines()[-1])
    return Timed.of(m)


def tcpdiag_cmd(args: argparse.Namespace, *rest: str) -> list[str]:
    base = args.tcpdiag.split() if args.tcpdiag else [sys.executable, "-m", "tcpdiag"]
    return [*base, *rest]


def run_shape(args: argparse.Namespace, shape: str, scale: float) -> ShapeResult:
    info = capture_for_shape(shape, scale, args.seed, args.out_dir, args.timeout)
    path, packets = info["path"], info["packets"]
    result = ShapeResult(shape, info)
    bench_run.warm(path)
    report = str(Path(path).with_suffix(".tcpdiag.jsonl"))  # every finding: groundtruth.py
    cmd = tcpdiag_cmd(args, "analyze", "--format", "jsonl", path)
    result.analyze = timed(args, "tcpdiag analyze", cmd, packets, report)
    if result.analyze.cpu is not None:
        try:
            doc = groundtruth.load_report(report)
            capture = doc["captures"][0]
        except (ValueError, KeyError, IndexError, OSError) as exc:
            result.check = {"exact": False, "problems": [f"unreadable JSON: {exc}"]}
        else:
            truth = groundtruth.load_truth(path)
            result.check = groundtruth.compare(truth, capture)
            if capture.get("packets") != packets:
                result.check["exact"] = False
                result.check["problems"].append(
                    f"read {capture.get('packets')} packets of {packets}"
                )
    if not args.skip_flows:
        flows_out = str(Path(path).with_suffix(".flows.csv"))
        cmd = tcpdiag_cmd(args, "flows", "--format", "csv", path)
        result.flows = timed(args, "tcpdiag flows", cmd, packets, flows_out)
    if not args.skip_tshark:
        cmd = ["tshark", "-q", "-z", "expert", "-r", path]
        result.tshark = timed(args, "tshark", cmd, packets, "/dev/null")
    return result


def check_text(r: ShapeResult) -> str:
    if r.check is None:
        return "not checked (tcpdiag failed)" if r.analyze.timeout is None else "timeout"
    if "categories" not in r.check:
        return "NO: " + "; ".join(r.check["problems"])
    text = groundtruth.summary(r.check)
    if not r.check["exact"] and text.startswith("exact"):
        text = "NO: " + "; ".join(r.check["problems"])
    return text


def matrix_table(results: list[ShapeResult]) -> str:
    rows = []
    for r in sorted(results, key=lambda r: r.ratio()[0]):
        td = r.analyze
        packets = r.info["packets"]
        pps = f"{packets / td.cpu:,.0f}" if td.cpu else "-"
        rows.append(
            [
                r.shape,
                f"{packets:,}",
                f"{r.info.get('peak_live_connections', 0):,}",
                td.cpu_text(),
                pps,
                td.rss_text(),
                r.flows.cpu_text(),
                r.tshark.cpu_text(),
                r.tshark.rss_text(),
                r.ratio()[1],
                check_text(r),
            ]
        )
    headers = [
        "shape",
        "packets",
        "peak live conns",
        "tcpdiag CPU s",
        "packets/CPU s",
        "tcpdiag RSS MiB",
        "flows CPU s",
        "tshark CPU s",
        "tshark RSS MiB",
        "tshark/tcpdiag CPU",
        "findings vs truth",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def linearity(args: argparse.Namespace, shape: str) -> tuple[str, list[dict]]:
    """tcpdiag analyze alone on 1x, 2x, 4x of `shape` (times --scale)."""
    rows, doc = [], []
    base_cpu = base_rss = None
    for k in (1, 2, 4):
        r = ShapeResult(shape, {})
        info = capture_for_shape(shape, args.scale * k, args.seed, args.out_dir, args.timeout)
        r.info = info
        bench_run.warm(info["path"])
        report = str(Path(info["path"]).with_suffix(".tcpdiag.jsonl"))
        cmd = tcpdiag_cmd(args, "analyze", "--format", "jsonl", info["path"])
        r.analyze = timed(args, "tcpdiag analyze", cmd, info["packets"], report)
        if r.analyze.cpu is not None:
            capture = groundtruth.load_report(report)["captures"][0]
            r.check = groundtruth.compare(groundtruth.load_truth(info["path"]), capture)
        td = r.analyze
        if k == 1:
            base_cpu, base_rss = td.cpu, td.rss_mib
        vs_linear = f"{100 * td.cpu / (k * base_cpu):.0f} %" if td.cpu and base_cpu else "-"
        rss_vs = (
            f"{100 * (td.rss_mib - base_rss) / base_rss:+.0f} %" if td.rss_mib and base_rss else "-"
        )
        rows.append(
            [
                f"{k}x",
                f"{info['packets']:,}",
                td.cpu_text(),
                f"{info['packets'] / td.cpu:,.0f}" if td.cpu else "-",
                td.rss_text(),
                vs_linear,
                rss_vs,
                check_text(r),
            ]
        )
        doc.append({"k": k, "packets": info["packets"], **td.__dict__, "check": r.check})
        print(f"  {shape} {k}x: {td.cpu_text()} CPU s", flush=True)
    headers = [
        "size",
        "packets",
        "CPU s",
        "packets/CPU s",
        "peak RSS MiB",
        "CPU / (k x 1x CPU)",
        "RSS vs 1x",
        "findings vs truth",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), doc


def run_matrix(args: argparse.Namespace, env_info: dict, rss_source: str) -> int:
    bench_run.FORCE_GETRUSAGE = args.rss_via_getrusage
    args.out_dir.mkdir(parents=True, exist_ok=True)
    shapes = [s for s in args.shapes.split(",") if s] or list(make_capture.SHAPES)
    unknown = [s for s in shapes if s not in make_capture.SHAPES]
    if unknown:
        raise BenchError(f"unknown shapes {unknown}; known: {', '.join(make_capture.SHAPES)}")
    results: list[ShapeResult] = []
    if args.generate_only:
        for shape in shapes:
            info = capture_for_shape(shape, args.scale, args.seed, args.out_dir, args.timeout)
            print(
                f"{shape}: {info['packets']:,} packets, {info['connections']:,} connections "
                f"(peak {info['peak_live_connections']:,} live), {info['bytes'] / 1e6:,.0f} MB, "
                f"{info['duration_s']} s, median gap {info['median_gap_us']} us, failures "
                f"{100 * info['failure_share']:.1f} %, {info['generation_seconds']} s to write",
                flush=True,
            )
        return 0
    if args.matrix:
        for shape in shapes:
            print(f"shape {shape} ...", flush=True)
            r = run_shape(args, shape, args.scale)
            print(
                f"  {r.info['packets']:,} packets: tcpdiag {r.analyze.cpu_text()} CPU s, "
                f"flows {r.flows.cpu_text()}, tshark {r.tshark.cpu_text()}; {check_text(r)}",
                flush=True,
            )
            results.append(r)
    doc: dict[str, Any] = {"environment": env_info, "rss_source": rss_source, "scale": args.scale}
    if results:
        worst = min(results, key=lambda r: r.ratio()[0])
        print(f"\n## Shape matrix (scale {args.scale:g}, CPU seconds, median of {args.repeat})\n")
        print(
            f"**Worst shape: {worst.shape}**: tshark/tcpdiag CPU {worst.ratio()[1]} "
            f"(tcpdiag {worst.analyze.cpu_text()} s, tshark {worst.tshark.cpu_text()} s, "
            f"{worst.info['packets']:,} packets); findings: {check_text(worst)}\n"
        )
        ratios = [r.ratio()[0] for r in results if 0 < r.ratio()[0] < float("inf")]
        if ratios:
            print(f"median ratio over {len(ratios)} shapes: {statistics.median(ratios):.2f}\n")
        print(matrix_table(results))
        for r in results:
            if r.check and not r.check.get("exact", False):
                for p in r.check["problems"]:
                    print(f"  {r.shape}: {p}")
        doc["matrix"] = [
            {
                "shape": r.shape,
                "capture": {k: v for k, v in r.info.items() if k != "scenarios"},
                "analyze": r.analyze.__dict__,
                "flows": r.flows.__dict__,
                "tshark": r.tshark.__dict__,
                "ratio": r.ratio()[1],
                "check": r.check,
            }
            for r in results
        ]
    if args.linearity:
        if args.linearity not in make_capture.SHAPES:
            raise BenchError(f"unknown shape {args.linearity!r}")
        print(f"\nlinearity series of {args.linearity} ...", flush=True)
        table, series = linearity(args, args.linearity)
        print(f"\n## Linearity: {args.linearity}, 1x/2x/4x of scale {args.scale:g}\n")
        print(table)
        doc["linearity"] = {"shape": args.linearity, "series": series}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    broken = [r.shape for r in results if r.check is not None and not r.check.get("exact")]
    if broken:
        print(f"\nfindings did not match the ground truth for: {', '.join(broken)}")
        return 1
    return 0
