#!/usr/bin/env python3
"""Benchmark tcpdiag against tshark and a bare pcap-reading floor, and check how it scales.

    python bench/run.py                         # base 1.2M packets, scaling 1x 2x 4x
    python bench/run.py --packets 200000        # quick run
    python bench/run.py --sizes 1,2 --skip-tshark
    python bench/run.py --matrix [--shapes base,ipv6] [--scale 0.1] [--linearity SHAPE]

(--matrix: the shape matrix of bench/matrix.py, which says what it measures.)

One run generates (or reuses, when bench/out holds one made with the same parameters) the
captures with bench/make_capture.py, then measures wall-clock time and peak RSS of
  (a) tcpdiag analyze --format jsonl FILE      (stdout kept in bench/out to verify the report;
                                                JSON Lines keeps every finding, see groundtruth.py)
  (b) tshark -r FILE -q -z expert              (stdout to /dev/null)
  (c) a floor: a Python loop that only reads the records with dpkt.pcap.Reader and counts them
on the base capture, and of tcpdiag alone on each size of the scaling series. Every tcpdiag run's
JSON is checked against the capture's manifest: the number of findings per category must equal
the number of failures of that category the generator injected, or the run is reported as broken
(exit status 1). Peak RSS is the peak of the SUM of the resident set sizes (VmRSS in
/proc/<pid>/status) of the command's whole process tree, sampled every 10 ms by a thread of this
process: tcpdiag forks a child that reads and decodes while the parent tracks connections, so
its footprint is both processes at once. /usr/bin/time -v (or, without it, getrusage of a fresh
wrapper process) still supplies the CPU time and the largest single process's peak RSS, which
--json keeps as max_single_process_rss_kib for comparison. Linux only (/proc). Every command runs
under a timeout.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import groundtruth  # noqa: E402  (bench/ is not a package)
import make_capture  # noqa: E402

FLOOR_CODE = """
import sys
import dpkt
n = 0
with open(sys.argv[1], "rb") as f:
    for _ts, _buf in dpkt.pcap.Reader(f):
        n += 1
print(n)
"""

# Without /usr/bin/time: a fresh wrapper runs the command, so its RUSAGE_CHILDREN maximum is
# the command's own peak RSS (ru_maxrss is in KiB on Linux).
RUSAGE_WRAPPER = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as stdout:
    rc = subprocess.call(sys.argv[3:], stdout=stdout)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[2], "w") as report:
    report.write(f"Maximum resident set size (kbytes): {usage.ru_maxrss}\\n")
    report.write(f"User time (seconds): {usage.ru_utime}\\n")
    report.write(f"System time (seconds): {usage.ru_stime}\\n")
sys.exit(rc)
"""

GNU_TIME = "/usr/bin/time"
FORCE_GETRUSAGE = False  # --rss-via-getrusage

# Seconds between two samples of a process tree's RSS. Shorter peaks can be missed; each sample
# costs about 0.1 ms of this process's CPU, so the measured command hardly notices it.
RSS_SAMPLE_INTERVAL = 0.01


def use_gnu_time() -> bool:
    return not FORCE_GETRUSAGE and os.access(GNU_TIME, os.X_OK)


@dataclass
class Measurement:
    name: str
    command: list[str]
    seconds: float
    rss_kib: int  # peak of the summed RSS of the command's process tree
    returncode: int
    packets: int
    cpu_seconds: float = 0.0  # user + system
    times: list[float] | None = None  # every run's wall time, with --repeat
    # ru_maxrss from /usr/bin/time or getrusage: the largest single process's peak. It
    # understates a command that runs several processes at once (tcpdiag and its reader child).
    single_rss_kib: int = 0
    processes: int = 0  # the most processes seen in the tree in one sample

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


class BenchError(Exception):
    pass


class BenchTimeout(BenchError):
    """A command ran past its timeout (and was killed)."""


def shell_text(cmd: list[str]) -> str:
    return " ".join(a if re.fullmatch(r"[\w./:,=+-]+", a) else repr(a) for a in cmd)


def parent_pid(pid: int) -> int | None:
    """The ppid in /proc/<pid>/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        return int(stat[stat.rindex(b")") + 2 :].split(maxsplit=2)[1])
    except (OSError, ValueError, IndexError):
        return None


def resident_kib(pid: int) -> int:
    """VmRSS in /proc/<pid>/status (KiB): 0 for a zombie (no VmRSS line) or a process gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return 0
    match = re.search(rb"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


class TreeRssSampler:
    """The peak of the summed RSS of all descendants of `root`, sampled from /proc by a thread.

    ru_maxrss (what /usr/bin/time and getrusage report) is a maximum over single processes, not
    a sum, so it misses that tcpdiag's forked reader and its parent are resident at the same
    time. `root` is the wrapper that measure() spawns (/usr/bin/time or the getrusage wrapper),
    so only its descendants count: the command and everything it starts, not the wrapper. Pages
    that a forked child still shares copy-on-write with its parent count in both, as in any sum
    of RSS, so the figure is an upper bound of the physical memory for a forking command.
    """

    def __init__(self, root: int, interval: float = RSS_SAMPLE_INTERVAL) -> None:
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.processes = 0
        self.error: BaseException | None = None
        # pid -> ppid of every process on the machine. A ppid is read once per pid: it changes
        # only when the parent dies, and then the cached one names a pid that is gone, so the
        # orphan leaves the tree as it would with a fresh read.
        self._parents: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise BenchError(f"sampling RSS from /proc failed: {self.error!r}")

    def descendants(self) -> set[int]:
        """The pids below `root` now. Walking /proc/<pid>/task/*/children would be shorter, but
        it needs CONFIG_PROC_CHILDREN, which not every kernel has; this lists /proc and reads
        the stat of new pids only. Call it from one thread at a time."""
        live = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in self._parents.keys() - live:
            del self._parents[pid]
        for pid in live - self._parents.keys():
            ppid = parent_pid(pid)
            if ppid is not None:
                self._parents[pid] = ppid
        children: dict[int, list[int]] = {}
        for pid, ppid in self._parents.items():
            children.setdefault(ppid, []).append(pid)
        found: set[int] = set()
        todo = [self.root]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def sample(self) -> None:
        pids = self.descendants()
        self.peak_kib = max(self.peak_kib, sum(resident_kib(pid) for pid in pids))
        self.processes = max(self.processes, len(pids))

    def _run(self) -> None:
        try:
            while True:
                self.sample()
                if self._stop.wait(self.interval):
                    return
        except BaseException as exc:  # reported by stop(), in the measuring thread
            self.error = exc


def run_sampled(
    full: list[str],
    stdout: IO[bytes] | None,
    timeout: float,
    env: dict[str, str] | None,
) -> tuple[subprocess.CompletedProcess[bytes], float, TreeRssSampler]:
    """Run `full` under a timeout while sampling its tree's RSS: the result and wall seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(full, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=REPO)
    sampler = TreeRssSampler(proc.pid)
    sampler.start()
    try:
        _, stderr = proc.communicate(timeout=timeout)
        seconds = time.perf_counter() - start
    except subprocess.TimeoutExpired:
        # Killing only the wrapper, as subprocess.run would, leaves the command running.
        sampler.stop()
        for pid in sampler.descendants():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise
    sampler.stop()
    return subprocess.CompletedProcess(full, proc.returncode, None, stderr), seconds, sampler


def measure(
    name: str,
    cmd: list[str],
    packets: int,
    stdout_path: str,
    timeout: float,
    ok_codes: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
) -> Measurement:
    """Run `cmd` once under a timeout: wall-clock seconds, peak RSS of its process tree (KiB)
    and the largest single process's peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = tf.name
    try:
        if use_gnu_time():
            full = [GNU_TIME, "-v", "-o", time_file, *cmd]
            with open(stdout_path, "wb") as out:
                proc, seconds, sampler = run_sampled(full, out, timeout, env)
        else:
            # The wrapper writes the command's stdout to stdout_path itself.
            full = [sys.executable, "-c", RUSAGE_WRAPPER, stdout_path, time_file, *cmd]
            proc, seconds, sampler = run_sampled(full, None, timeout, env)
        text = Path(time_file).read_text()
    except subprocess.TimeoutExpired:
        raise BenchTimeout(f"{name}: timed out after {timeout:.0f} s: {shell_text(cmd)}") from None
    finally:
        Path(time_file).unlink(missing_ok=True)
    if proc.returncode not in ok_codes:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise BenchError(
            f"{name}: exit status {proc.returncode} ({shell_text(cmd)}):\n  " + "\n  ".join(tail)
        )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    single = int(match.group(1)) if match else 0
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    # At every instant the tree's sum is at least any one process's RSS, so the exact
    # single-process peak is also a lower bound of the tree's peak: it stands in when the
    # samples missed a peak shorter than the interval (likely only for a one-process command).
    tree = max(sampler.peak_kib, single)
    return Measurement(
        name,
        cmd,
        seconds,
        tree,
        proc.returncode,
        packets,
        cpu,
        single_rss_kib=single,
        processes=sampler.processes,
    )


def measure_repeated(repeat: int, *args, **kwargs) -> Measurement:
    """`measure` `repeat` times: the median wall time and the largest peak RSS figures."""
    runs = [measure(*args, **kwargs) for _ in range(repeat)]
    result = runs[0]
    result.times = [m.seconds for m in runs]
    result.seconds = statistics.median(result.times)
    result.cpu_seconds = statistics.median(m.cpu_seconds for m in runs)
    result.rss_kib = max(m.rss_kib for m in runs)
    result.single_rss_kib = max(m.single_rss_kib for m in runs)
    result.processes = max(m.processes for m in runs)
    return result


def reusable(path: Path, wanted: dict) -> dict | None:
    """The manifest of the capture at `path` if it was made with the `wanted` parameters and is
    whole (its size is the manifest's), else None."""
    manifest = make_capture.manifest_path(path)
    if not (path.exists() and manifest.exists()):
        return None
    try:
        info = json.loads(manifest.read_text())
    except ValueError:
        return None
    same = all(info.get(k) == v for k, v in wanted.items())
    return info if same and info.get("bytes") == path.stat().st_size else None


def generate(options: list[str], path: Path, timeout: float) -> str:
    """Run make_capture.py with `options` to write `path`; its output (BenchError if it fails)."""
    cmd = [sys.executable, str(BENCH / "make_capture.py"), *options, "--out", str(path)]
    try:
        proc = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"generating {path} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BenchError(f"generating {path} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def capture_for(packets: int, seed: int, out_dir: Path, timeout: float) -> dict:
    """The capture of `packets` packets for `seed`: reused when its manifest matches."""
    path = out_dir / f"capture-{packets}-s{seed}.pcap"
    info = reusable(path, make_capture.identity(packets, seed))
    if info is not None:
        print(f"reusing {path} ({info['packets']} packets, same parameters)")
        return info
    print(f"generating {path} ({packets} packets, seed {seed}) ...", flush=True)
    output = generate(["--packets", str(packets), "--seed", str(seed)], path, timeout)
    print("  " + "\n  ".join(output.strip().splitlines()[:2]))
    return json.loads(make_capture.manifest_path(path).read_text())


def warm(path: str) -> None:
    """Read the file once so that every tool starts with it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def tcpdiag_command(args: argparse.Namespace, path: str) -> list[str]:
    if args.tcpdiag:
        return [*args.tcpdiag.split(), "analyze", "--format", "jsonl", path]
    return [sys.executable, "-m", "tcpdiag", "analyze", "--format", "jsonl", path]


def tcpdiag_env() -> dict[str, str]:
    """Run the checkout under bench/.. (not some other installed tcpdiag)."""
    env = dict(os.environ)
    # Python's default output buffering, as a user's shell has it: PYTHONUNBUFFERED (set in
    # some development and CI shells) makes every report line a write of its own, a few
    # percent of a run with many findings.
    env.pop("PYTHONUNBUFFERED", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def run_tcpdiag(args: argparse.Namespace, info: dict) -> tuple[Measurement, dict]:
    path = info["path"]
    json_out = str(Path(path).with_suffix(".tcpdiag.jsonl"))
    cmd = tcpdiag_command(args, path)
    m = measure_repeated(
        args.repeat,
        "tcpdiag",
        cmd,
        info["packets"],
        json_out,
        args.timeout,
        ok_codes=(0, 1),
        env=tcpdiag_env(),
    )
    return m, verify(info, json_out)


def verify(info: dict, json_out: str) -> dict:
    """Findings per category in tcpdiag's JSON Lines against what the generator injected."""
    try:
        report = groundtruth.load_report(json_out)
        capture = report["captures"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise BenchError(f"tcpdiag's JSON ({json_out}) is unreadable: {exc}") from None
    found = Counter(f["category"] for f in capture.get("findings", []))
    expected = info["expected_findings"]
    rows, problems = [], []
    for cat in sorted(set(expected) | set(found)):
        exp, got = expected.get(cat, 0), found.get(cat, 0)
        status = "ok" if exp == got else ("MISSING" if got == 0 else "MISMATCH")
        if exp == 0:
            status = "UNEXPECTED"
        if status != "ok":
            problems.append(f"{cat}: expected {exp}, found {got}")
        rows.append([cat, exp, got, status])
    if capture.get("error"):
        problems.append(f"error: {capture['error']}")
    if capture.get("packets") != info["packets"]:
        problems.append(f"read {capture.get('packets')} packets of {info['packets']}")
    if capture.get("truncated"):
        problems.append("capture reported truncated")
    notes = [f"{k}={capture[k]}" for k in ("flows", "evicted") if k in capture]
    notes += [f"warning: {w}" for w in capture.get("warnings", [])]
    return {
        "rows": rows,
        "problems": problems,
        "findings": sum(found.values()),
        "notes": notes,
        "json": json_out,
    }


def print_verification(label: str, check: dict, full: bool) -> None:
    state = "OK" if not check["problems"] else "BROKEN RUN"
    print(
        f"\nverification of tcpdiag's JSON for {label}: {state} "
        f"({check['findings']} findings; {', '.join(check['notes'])})"
    )
    if full or check["problems"]:
        headers = ["category", "injected", "tcpdiag found", "status"]
        print(tabulate(check["rows"], headers=headers, tablefmt="github"))
    for p in check["problems"]:
        print(f"  PROBLEM: {p}")


def environment() -> dict[str, str]:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=30, cwd=REPO, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = out(["git", "describe", "--always", "--dirty"])
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "tshark": out(["tshark", "--version"]).splitlines()[0] if shutil.which("tshark") else "-",
        "tcpdiag": f"git {commit}",
    }


def wait_idle(limit: float) -> None:
    """Wait (at most `limit` s) until the 1-minute load average is below 0.5."""
    deadline = time.monotonic() + limit
    if limit > 0 and os.getloadavg()[0] >= 0.5:
        print(f"waiting up to {limit:.0f} s for the machine to go idle ...", flush=True)
    while limit > 0 and os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)


def fmt_rate(pps: float) -> str:
    return f"{pps:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark tcpdiag vs tshark vs a dpkt floor; scaling series."
    )
    parser.add_argument("--packets", type=int, default=1_200_000, help="base capture size")
    parser.add_argument("--sizes", default="1,2,4", help="scaling multipliers of the base size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds allowed per command (default 3600)"
    )
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument(
        "--tcpdiag",
        default="",
        help="command to run instead of 'python -m tcpdiag' from this checkout, e.g. 'tcpdiag'",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per measurement; report the median time"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait (at most this long) for the 1-minute load average to drop below 0.5",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    matrix_opts = parser.add_argument_group("shape matrix (bench/matrix.py)")
    matrix_opts.add_argument(
        "--matrix",
        action="store_true",
        help="run tcpdiag analyze, tcpdiag flows and tshark on every shape of "
        "make_capture.SHAPES (or --shapes) and check every injected failure",
    )
    matrix_opts.add_argument("--shapes", default="", help="comma-separated shapes (--matrix)")
    matrix_opts.add_argument(
        "--scale", type=float, default=1.0, help="size multiplier of the shapes (--matrix)"
    )
    matrix_opts.add_argument(
        "--linearity",
        metavar="SHAPE",
        default="",
        help="tcpdiag analyze on 1x, 2x and 4x of SHAPE (with --matrix: after the matrix)",
    )
    matrix_opts.add_argument(
        "--skip-flows", action="store_true", help="do not time tcpdiag flows (--matrix)"
    )
    matrix_opts.add_argument(
        "--generate-only", action="store_true", help="only write the shapes' captures (--matrix)"
    )
    parser.add_argument(
        "--rss-via-getrusage",
        action="store_true",
        help="measure peak RSS with getrusage even when /usr/bin/time is present",
    )
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | {1})
    except ValueError:
        parser.error("--sizes takes comma-separated integers, e.g. 1,2,4")
    if min(sizes) < 1:
        parser.error("--sizes must be positive")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not Path("/proc/self/status").is_file():
        parser.error("peak RSS is sampled from /proc/<pid>/status, which this system lacks")
    if not args.skip_tshark and not shutil.which("tshark"):
        parser.error("tshark is not on PATH (use --skip-tshark)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    wait_idle(args.wait_idle)
    env_info = environment()
    print("environment: " + "; ".join(f"{k}: {v}" for k, v in env_info.items()))
    global FORCE_GETRUSAGE
    FORCE_GETRUSAGE = args.rss_via_getrusage
    single_source = (
        "/usr/bin/time -v" if use_gnu_time() else "getrusage(RUSAGE_CHILDREN) of a wrapper"
    )
    rss_source = (
        f"peak of the summed VmRSS of the command's process tree, sampled every "
        f"{RSS_SAMPLE_INTERVAL * 1000:.0f} ms from /proc (largest single process and CPU time "
        f"from {single_source})"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    if os.getloadavg()[0] > 0.5:
        print(
            f"WARNING: the machine is busy (1-min load {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} cores): wall times will be inflated; compare the CPU s column"
        )
    print(
        f"peak RSS: {rss_source}; wall clock from time.perf_counter around each command, "
        f"median of {args.repeat}; load average before the run: {load}"
    )

    if not args.tcpdiag:
        # The checkout's modules byte-compiled, as `pip install` leaves them: otherwise each
        # run compiles them again (PYTHONDONTWRITEBYTECODE, or a fresh clone), about 0.1 s of
        # CPU that a user's installed tool never spends.
        compileall.compile_dir(REPO / "tcpdiag", quiet=1)
    try:
        if args.matrix or args.linearity:
            import matrix  # bench/matrix.py

            return matrix.run_matrix(args, env_info, rss_source)
        return run(args, sizes, env_info, rss_source)
    except BenchError as exc:
        print(f"\nbench: FAILED: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, sizes: list[int], env_info: dict, rss_source: str) -> int:
    captures = {
        k: capture_for(args.packets * k, args.seed, args.out_dir, args.timeout) for k in sizes
    }
    base = captures[1]
    path = base["path"]
    print(
        f"\nbase capture {path}: {base['packets']:,} packets, {base['connections']:,} "
        f"connections (peak {base['peak_live_connections']:,} live), "
        f"{base['bytes'] / 1e6:.0f} MB, {base['duration_s']} s of traffic"
    )

    # -- (a), (b), (c) on the base capture ----------------------------------------------------
    warm(path)
    results: list[Measurement] = []
    print("measuring tcpdiag ...", flush=True)
    td, check = run_tcpdiag(args, base)
    results.append(td)
    ts = None
    if not args.skip_tshark:
        print("measuring tshark ...", flush=True)
        ts = measure_repeated(
            args.repeat,
            "tshark",
            ["tshark", "-r", path, "-q", "-z", "expert"],
            base["packets"],
            os.devnull,
            args.timeout,
        )
        results.append(ts)
    print("measuring dpkt floor ...", flush=True)
    floor_out = str(Path(path).with_suffix(".floor.txt"))
    fl = measure_repeated(
        args.repeat,
        "floor (dpkt read loop)",
        [sys.executable, "-c", FLOOR_CODE.strip(), path],
        base["packets"],
        floor_out,
        args.timeout,
    )
    results.append(fl)
    counted = Path(floor_out).read_text().strip()
    if counted != str(base["packets"]):
        raise BenchError(f"the dpkt floor counted {counted} records, expected {base['packets']}")

    print(f"\n== base capture: {base['packets']:,} packets ({Path(path).name})")
    if args.repeat > 1:
        for m in results:
            print(f"{m.name}: wall times {', '.join(f'{t:.2f}' for t in m.times or [])} s")
    rows = []
    for m in results:
        cmd = m.command
        if m.name == "tcpdiag":
            cmd_text = shell_text(cmd).replace(sys.executable, "python") + " > JSON"
        elif m.name == "tshark":
            cmd_text = shell_text(cmd) + " > /dev/null"
        else:
            cmd_text = "python -c '<dpkt.pcap.Reader loop>' FILE"
        rows.append(
            [
                m.name,
                f"{m.seconds:.2f}",
                f"{m.cpu_seconds:.2f}",
                fmt_rate(m.pps),
                f"{m.rss_mib:.0f}",
                cmd_text.replace(path, "FILE"),
            ]
        )
    print(
        tabulate(
            rows,
            headers=["tool", "wall s", "CPU s", "packets/s", "peak RSS MiB", "command"],
            tablefmt="github",
        )
    )
    ratios = []
    if ts is not None:
        ratios.append(
            f"tcpdiag vs tshark: {td.seconds / ts.seconds:.2f}x the time "
            f"({td.pps / ts.pps:.2f}x the packets/s), "
            f"{td.rss_kib / max(ts.rss_kib, 1):.2f}x the RSS"
        )
    ratios.append(
        f"tcpdiag vs floor:  {td.seconds / fl.seconds:.2f}x the time "
        f"({td.pps / fl.pps:.2f}x the packets/s), {td.rss_kib / max(fl.rss_kib, 1):.2f}x the RSS"
    )
    for r in ratios:
        print(r)
    print_verification(Path(path).name, check, full=True)
    checks = {1: check}

    # -- scaling: tcpdiag alone on 1x, 2x, 4x -----------------------------------------------
    scaling = {1: td}
    for k in sizes:
        if k == 1:
            continue
        info = captures[k]
        warm(info["path"])
        print(f"\nmeasuring tcpdiag on {k}x ({info['packets']:,} packets) ...", flush=True)
        scaling[k], checks[k] = run_tcpdiag(args, info)
        m = scaling[k]
        print(f"  {m.seconds:.2f} s, {fmt_rate(m.pps)} packets/s, peak RSS {m.rss_mib:.0f} MiB")
        print_verification(Path(info["path"]).name, checks[k], full=False)
    t1, r1 = td.seconds, td.rss_kib
    rows = []
    for k in sizes:
        m, info = scaling[k], captures[k]
        rows.append(
            [
                f"{k}x",
                f"{info['packets']:,}",
                f"{info['connections']:,}",
                f"{info['bytes'] / 1e6:.0f}",
                f"{m.seconds:.2f}",
                f"{m.cpu_seconds:.2f}",
                fmt_rate(m.pps),
                f"{m.rss_mib:.0f}",
                f"{100 * m.seconds / (k * t1):.0f} %",
                f"{100 * (m.rss_kib - r1) / r1:+.0f} %",
            ]
        )
    print("\n== tcpdiag scaling")
    print(
        tabulate(
            rows,
            headers=[
                "size",
                "packets",
                "connections",
                "MB",
                "wall s",
                "CPU s",
                "packets/s",
                "peak RSS MiB",
                "time / (k x 1x time)",
                "RSS vs 1x",
            ],
            tablefmt="github",
        )
    )
    if len(sizes) > 1:
        k = sizes[-1]
        m = scaling[k]
        ratio = m.seconds / t1
        cpu_ratio = m.cpu_seconds / max(td.cpu_seconds, 1e-9)
        print(
            f"time: {k}x the packets took {ratio:.2f}x the 1x wall time "
            f"({100 * ratio / k:.0f} % of linear; CPU time {cpu_ratio:.2f}x, "
            f"{100 * cpu_ratio / k:.0f} % of linear); peak RSS {k}x vs 1x: "
            f"{100 * (m.rss_kib - r1) / r1:+.1f} % ({r1 / 1024:.0f} -> {m.rss_mib:.0f} MiB)"
        )

    broken = {k: c["problems"] for k, c in checks.items() if c["problems"]}
    if args.json:
        doc = {
            "environment": env_info,
            "rss_source": rss_source,
            "captures": captures,
            "base": [
                {
                    "name": m.name,
                    "command": m.command,
                    "seconds": m.seconds,
                    "cpu_seconds": m.cpu_seconds,
                    "times": m.times,
                    "pps": m.pps,
                    "rss_kib": m.rss_kib,
                    "max_single_process_rss_kib": m.single_rss_kib,
                    "processes": m.processes,
                }
                for m in results
            ],
            "scaling": {
                f"{k}x": {
                    "seconds": m.seconds,
                    "cpu_seconds": m.cpu_seconds,
                    "pps": m.pps,
                    "rss_kib": m.rss_kib,
                    "max_single_process_rss_kib": m.single_rss_kib,
                    "processes": m.processes,
                }
                for k, m in scaling.items()
            },
            "verification": {f"{k}x": c for k, c in checks.items()},
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if broken:
        print("\nbench: tcpdiag's report did not match the injected failures: the run is broken")
        return 1
    print("\nall tcpdiag runs verified: every injected failure category reported, counts exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
