#!/usr/bin/env python3
"""What one finding costs, stage by stage, in CPU microseconds (issue 11 asks for at most 30).

    python bench/findings.py                         # fail_50 at scale 0.2 (generated once)
    python bench/findings.py CAPTURE [--repeat 5] [--formats jsonl,json,table]

A capture is tracked once (not timed); then, on its connections that have events, each stage
is timed on its own, in CPU time of this process, taking the median of `--repeat` runs:

- rules:  the rule engine making the findings (RuleEngine.findings_for);
- spool:  keeping them in report order (FindingSpool.extend, then reading them back);
  "as JSON": a spool that keeps each finding as its JSON (encode_finding), which the command
  line uses for the JSON and JSON Lines reports;
- FORMAT: one reporter writing the capture's report to /dev/null (spool reading included),
  from the spool the command line would use for it.

"total FORMAT" is rules + spool in (of that spool) + FORMAT: what a finding costs from its
events to its line in that report. The per-packet work that found the events is not in it
(bench/run.py measures the whole run).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import make_capture  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tcpdiag.analyze import AnalysisOptions, CaptureReport, Pipeline  # noqa: E402
from tcpdiag.columns import ColumnDecoder  # noqa: E402
from tcpdiag.decode import Decoder  # noqa: E402
from tcpdiag.detect import RuleEngine  # noqa: E402
from tcpdiag.findings import Finding  # noqa: E402
from tcpdiag.reader import CaptureReader  # noqa: E402
from tcpdiag.reporters.base import Reporter  # noqa: E402
from tcpdiag.reporters.html import HtmlReporter  # noqa: E402
from tcpdiag.reporters.json_report import (  # noqa: E402
    AggregatingJsonLinesReporter,
    encode_finding,
    json_reporter,
)
from tcpdiag.reporters.machine import FindingsCsvReporter  # noqa: E402
from tcpdiag.reporters.markdown import MarkdownReporter  # noqa: E402
from tcpdiag.reporters.selection import RunInfo, Selection  # noqa: E402
from tcpdiag.reporters.text import TextReporter  # noqa: E402
from tcpdiag.rules import load_rules  # noqa: E402
from tcpdiag.spool import FindingSpool  # noqa: E402
from tcpdiag.tracker import TrackedConnection  # noqa: E402

DEFAULT_SHAPE, DEFAULT_SCALE = "fail_50", 0.2
JSON_FORMATS = ("jsonl", "json")  # the reports whose findings wait as JSON (tcpdiag.cli)

REPORTERS: dict[str, Callable[[], Reporter]] = {
    "jsonl": lambda: AggregatingJsonLinesReporter(Selection()),
    "json": lambda: json_reporter(Selection()),
    "table": lambda: TextReporter(Selection()),
    "markdown": lambda: MarkdownReporter(Selection(), RunInfo(command=("bench",))),
    "csv": lambda: FindingsCsvReporter(Selection()),
    "html": lambda: HtmlReporter(Selection(), RunInfo(command=("bench",))),
}


def eventful_connections(path: str) -> tuple[CaptureReport, list[TrackedConnection]]:
    """The capture's connections that have events, tracked as `tcpdiag analyze` tracks them."""
    options = AnalysisOptions()
    report = CaptureReport(path=path)
    pipeline = Pipeline(report, RuleEngine(load_rules()), options)
    kept: list[TrackedConnection] = []
    with CaptureReader(path) as reader:
        columns = map(ColumnDecoder(Decoder(options.vxlan_ports)).decode, reader.chunks())
        for conn in pipeline.track_columns(columns):
            if type(conn) is TrackedConnection and conn.events:
                kept.append(conn)
    return report, kept


def cpu(action: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of `repeat` runs of `action`."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", nargs="?", help=f"default: {DEFAULT_SHAPE} at {DEFAULT_SCALE}")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage (median)")
    parser.add_argument("--formats", default=",".join(REPORTERS), help="reporters to time")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if unknown := [f for f in formats if f not in REPORTERS]:
        parser.error(f"unknown format(s): {', '.join(unknown)}; known: {', '.join(REPORTERS)}")
    path = args.capture
    if path is None:
        out = BENCH / "out" / f"findings-{DEFAULT_SHAPE}-{DEFAULT_SCALE}.pcap"
        if not out.exists():
            out.parent.mkdir(exist_ok=True)
            make_capture.generate_shape(DEFAULT_SHAPE, out, DEFAULT_SCALE)
        path = str(out)
    # As the command line runs (tcpdiag.cli.main): the cyclic collector seldom.
    gc.set_threshold(50_000, 50, 1000)
    report, connections = eventful_connections(path)
    engine = RuleEngine(load_rules())
    found: list[list[Finding]] = []

    def rules() -> None:
        found[:] = [engine.findings_for(conn) for conn in connections]

    def spool_in(as_json: bool = False) -> None:
        report.findings.close()
        report.findings = FindingSpool(encode=encode_finding if as_json else None)
        for findings in found:
            report.findings.extend(findings)

    rules_s = cpu(rules, args.repeat)
    count = sum(map(len, found))
    if not count:
        print(f"{path}: no findings to time", file=sys.stderr)
        return 1
    spool_in_s = cpu(spool_in, args.repeat)
    spool_out_s = cpu(lambda: sum(1 for _ in report.findings), args.repeat)
    json_in_s = cpu(lambda: spool_in(as_json=True), args.repeat)
    json_out_s = cpu(lambda: sum(1 for _ in report.findings.encoded(encode_finding)), args.repeat)
    rows = [
        ("rules", rules_s),
        ("spool in", spool_in_s),
        ("spool out", spool_out_s),
        ("spool in, as JSON", json_in_s),
        ("spool out, as JSON", json_out_s),
    ]
    totals: list[tuple[str, float]] = []
    with open(os.devnull, "w") as sink:
        for as_json in (False, True):
            spool_in(as_json)  # (then as the command line has it for these formats)
            for name in formats:
                if (name in JSON_FORMATS) != as_json:
                    continue

                def write(name: str = name) -> None:
                    reporter = REPORTERS[name]()
                    reporter.start(sink)
                    reporter.write(report, sink)
                    reporter.finish(sink)

                seconds = cpu(write, args.repeat)
                rows.append((name, seconds))
                totals.append(
                    (f"total {name}", rules_s + (json_in_s if as_json else spool_in_s) + seconds)
                )
    print(f"{path}: {len(connections):,} connections with events, {count:,} findings")
    table = [(stage, f"{s / count * 1e6:.1f}", f"{s:.3f}") for stage, s in rows + totals]
    print(tabulate(table, headers=["stage", "CPU us / finding", "CPU s"], disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
