"""Command line: `tcpdiag analyze`, `tcpdiag rules`.

Exit status: 0 no finding, 1 findings, 2 usage or input error (an unreadable capture among several
still lets the others be analysed and reported).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from tabulate import tabulate

from tcpdiag import __version__
from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.batch import WorkerSettings
from tcpdiag.detect import RuleEngine
from tcpdiag.driver import BatchRequest, run_batch
from tcpdiag.filters import ConnectionFilter, FilterError
from tcpdiag.inputs import DEFAULT_GLOBS
from tcpdiag.reporters.base import Reporter
from tcpdiag.reporters.common import safe_line
from tcpdiag.reporters.flows import FlowsCsvReporter, flows_json_reporter, flows_table_reporter
from tcpdiag.reporters.json_report import json_reporter
from tcpdiag.reporters.markdown import markdown_reporter
from tcpdiag.reporters.text import text_reporter
from tcpdiag.rules import RuleError, RuleSet, load_rules
from tcpdiag.selection import FindingSelection, SelectionError
from tcpdiag.tracker import MAX_LIVE_CONNECTIONS

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    help=(
        "Explain, in application terms, why TCP connections in a packet capture failed: who reset "
        "whom, in which TCP state, and what each side's program saw (ECONNREFUSED, connection "
        "reset by peer, EPIPE, ETIMEDOUT, ECONNABORTED, a hang)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tcpdiag {__version__}")
        raise typer.Exit(EXIT_CLEAN)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """tcpdiag: TCP failure diagnosis from packet captures."""
    # The pipeline makes no reference cycles (tests/test_bounds.py checks it): reference counting
    # frees everything, and the cyclic collector, run every 700 allocations by default, only
    # costs time, about a fifth of it on large captures. Run it rarely.
    gc.set_threshold(50_000, 50, 1000)
    _fix_mmap_threshold()


# glibc's mallopt parameter M_MMAP_THRESHOLD, and the value tcpdiag wants.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 2 << 20


def _fix_mmap_threshold() -> None:
    """Blocks above 2 MiB (the fast path's window arrays) come from mmap and go back to the OS
    when freed. By default glibc raises this threshold after the first such block is freed,
    so later windows come from the heap, where what is freed stays, in holes among long-lived
    objects: resident memory then crept up with the length of the capture (+18 % at 4x; +7 %
    with this). Lower thresholds cost time in page faults (256 KiB: a quarter slower).
    Other C libraries: nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _fail(message: str) -> typer.Exit:
    typer.echo(f"tcpdiag: error: {safe_line(message)}", err=True)
    return typer.Exit(EXIT_ERROR)


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(rules_dir)
    except RuleError as exc:
        raise _fail(str(exc)) from None


HostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--host", help="Only connections with this IP address at either end (repeatable)."
    ),
]
PortOption = Annotated[
    list[int] | None,
    typer.Option("--port", help="Only connections with this TCP port at either end (repeatable)."),
]
NetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--net", help="Only connections with an end in this CIDR network, e.g. 10.1.0.0/16."
    ),
]
ZeekSplitOption = Annotated[
    bool,
    typer.Option(
        "--zeek-split",
        help="Split reused 4-tuples as Zeek does: every SYN after a FIN or RST starts a new "
        "connection, so each retried refused SYN is its own (REJ) connection.",
    ),
]


MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        min=1,
        help="Live connections tracked at most; beyond it the least recently active is retired "
        "early (counted and reported), so floods cannot exhaust memory.",
    ),
]


def _filter(
    hosts: list[str] | None,
    ports: list[int] | None,
    nets: list[str] | None,
    states: list[str] | None = None,
) -> ConnectionFilter:
    try:
        return ConnectionFilter.build(hosts or (), ports or (), nets or (), states or ())
    except FilterError as exc:
        raise _fail(str(exc)) from None


@dataclass(slots=True)
class RunSummary:
    errors: int = 0  # captures that could not be read
    findings: int = 0


def _run(
    captures: list[Path],
    options: AnalysisOptions,
    rules_dir: Path | None,
    debug: bool,
    reporter: Reporter,
) -> RunSummary:
    """Analyse the captures one at a time: warnings and errors on stderr (one line each), the
    report on stdout as each capture is done, so only one capture's findings are held."""
    engine = RuleEngine(_load(rules_dir))
    summary = RunSummary()
    out = sys.stdout
    reporter.start(out)
    for path in captures:
        try:
            report = analyze_capture(path, engine, options)
        except Exception as exc:  # a bug, not bad input: still one line, and the other files go on
            if debug:
                raise
            report = CaptureReport(
                path=str(path),
                error=f"{path}: internal error ({type(exc).__name__}: {exc}); "
                "rerun with --debug and report it",
            )
        for warning in report.warnings:
            typer.echo(f"tcpdiag: warning: {safe_line(warning)}", err=True)
        if report.error:
            typer.echo(f"tcpdiag: error: {safe_line(report.error)}", err=True)
        summary.errors += report.error is not None
        summary.findings += len(report.findings)
        reporter.write(report, out)
        out.flush()
    reporter.finish(out)
    return summary


DebugOption = Annotated[bool, typer.Option("--debug", help="Show a traceback on internal errors.")]
RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Directory of rule files (*.toml) to use instead of the built-in rules.",
        file_okay=False,
    ),
]


JobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=0,
        help="Captures analysed at once, each in a worker process (0: one per CPU core). "
        "Reports still come in input order, identical to --jobs 1.",
    ),
]
GlobOption = Annotated[
    list[str] | None,
    typer.Option(
        "--glob",
        help="Which files of a directory argument to read (repeatable; default: "
        f"{', '.join(f'`{g}`' for g in DEFAULT_GLOBS)}). Directories are searched recursively.",
    ),
]
JoinOption = Annotated[
    bool,
    typer.Option(
        "--join",
        help="Read the rotated parts of one capture (tcpdump -C/-G/-W: same name but for "
        "numbers or times) as one continuous capture, in the order of their first packets. "
        "Frames are numbered continuously across the parts.",
    ),
]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        metavar="SCHEDULER",
        help="Send each capture as a task to this Dask distributed scheduler (e.g. "
        "tcp://10.0.0.5:8786); its workers must see the same paths. Needs "
        "pip install 'tcpdiag[dask]'.",
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (it shows only on a terminal).")
]
VerboseOption = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Each capture's time and its worker's peak memory."),
]
CategoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        help="Only findings of this category, e.g. refused, peer_reset (repeatable; "
        "`tcpdiag rules` lists them).",
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only findings at or after this ISO 8601 time (UTC unless it says)."
    ),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only findings before this ISO 8601 time.")
]
MinConfidenceOption = Annotated[
    float | None,
    typer.Option("--min-confidence", help="Only findings whose confidence is at least this (0-1)."),
]


def _selection(
    categories: list[str] | None,
    since: str | None,
    until: str | None,
    min_confidence: float | None,
    rules_dir: Path | None,
) -> FindingSelection:
    known = {rule.category for rule in _load(rules_dir).rules} if categories else set()
    try:
        return FindingSelection.build(categories or (), since, until, min_confidence, known)
    except SelectionError as exc:
        raise _fail(str(exc)) from None


def _shown_filters(
    host: list[str] | None, port: list[int] | None, net: list[str] | None
) -> list[str]:
    return (
        [f"--host {h}" for h in host or ()]
        + [f"--port {p}" for p in port or ()]
        + [f"--net {n}" for n in net or ()]
    )


@app.command()
def analyze(
    captures: Annotated[
        list[Path],
        typer.Argument(
            help="Capture files, directories (searched recursively, see --glob), quoted globs "
            "('dumps/**/*.pcap.gz'), or - for standard input. pcap or pcapng, plain or "
            "compressed with gzip, bzip2, xz, zstd or lz4 (recognised by content, not name).",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="table: for a terminal; json: one document for programs; markdown: for tickets.",
        ),
    ] = OutputFormat.table,
    host: HostOption = None,
    port: PortOption = None,
    net: NetOption = None,
    zeek_split: ZeekSplitOption = False,
    max_connections: MaxConnectionsOption = MAX_LIVE_CONNECTIONS,
    category: CategoryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    min_confidence: MinConfidenceOption = None,
    jobs: JobsOption = 0,
    glob: GlobOption = None,
    join: JoinOption = False,
    dask: DaskOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    rules_dir: RulesOption = None,
    debug: DebugOption = False,
) -> None:
    """Find the connections that ended abnormally and explain each.

    For every finding: the category (refused, peer_reset, broken_pipe, ...), client and server,
    the frames that prove it (Wireshark numbering), each side's TCP state, what each side's
    application saw (errno and message on Linux and Windows), the most likely cause with its
    confidence, the alternatives, and what to check next.

    Exit status: 0 no finding, 1 findings, 2 input or usage error.

    Examples:

      tcpdiag analyze capture.pcap

      tcpdiag analyze --format json rotated-*.pcap.gz > report.json

    Batches (several captures, directories): captures are analysed in parallel (--jobs), a
    capture that cannot be read is an error row and the others go on, and a summary across
    the captures ends the report. Exit status 2 beats 1 beats 0.

      tcpdiag analyze -j 4 -f markdown /var/dumps/ --since 2024-11-25T12:00Z

      tcpdiag analyze --join 'ring/cap.pcap*'

      tcpdump -w - -i eth0 | tcpdiag analyze -
    """
    options = AnalysisOptions(
        connection_filter=_filter(host, port, net),
        zeek_split=zeek_split,
        max_connections=max_connections,
    )
    selection = _selection(category, since, until, min_confidence, rules_dir)
    reporters: dict[OutputFormat, Callable[[], Reporter]] = {
        OutputFormat.table: text_reporter,
        OutputFormat.json: json_reporter,
        OutputFormat.markdown: markdown_reporter,
    }
    reporter = reporters[output_format]()
    _load(rules_dir)  # bad rules: one error line here, not one per capture in the workers
    request = BatchRequest(
        arguments=[str(c) for c in captures],
        settings=WorkerSettings(
            options, selection, str(rules_dir) if rules_dir else None, debug=debug
        ),
        output_format=output_format.value,
        patterns=tuple(glob or ()),
        join=join,
        jobs=jobs,
        dask=dask,
        quiet=quiet,
        verbose=verbose,
        filters=_shown_filters(host, port, net) + selection.describe(),
    )
    raise typer.Exit(run_batch(request, reporter))


class FlowFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@app.command()
def flows(
    captures: Annotated[
        list[Path],
        typer.Argument(help="Capture files: pcap or pcapng, optionally gzip-compressed (.gz)."),
    ],
    output_format: Annotated[
        FlowFormat, typer.Option("--format", "-f", help="table, json, csv or markdown.")
    ] = FlowFormat.table,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            help="Only connections in this Zeek conn_state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, "
            "RSTOS0, RSTRH, SH, SHR, OTH; repeatable).",
        ),
    ] = None,
    host: HostOption = None,
    port: PortOption = None,
    net: NetOption = None,
    zeek_split: ZeekSplitOption = False,
    max_connections: MaxConnectionsOption = MAX_LIVE_CONNECTIONS,
    rules_dir: RulesOption = None,
    debug: DebugOption = False,
) -> None:
    """List every TCP connection, healthy or not, in Zeek's conn.log vocabulary.

    For each: first time, duration, client and server, packets and payload bytes each way, each
    side's final TCP state, Zeek's conn_state and history (uppercase = originator, ^ = roles
    flipped because the capture missed the SYN), the Community ID that Zeek, Suricata and
    Arkime log for the same flow (join on it), and the ids of tcpdiag's findings about it.

    Unlike Zeek, tcpdiag keeps a refused SYN and its retries (same ISN) as one connection;
    --zeek-split splits them as Zeek does.

    Exit status: 0 when listed, 2 on input or usage errors.
    """
    options = AnalysisOptions(
        connection_filter=_filter(host, port, net, state),
        keep_flows=True,
        zeek_split=zeek_split,
        max_connections=max_connections,
    )
    reporters: dict[FlowFormat, Callable[[], Reporter]] = {
        FlowFormat.table: flows_table_reporter,
        FlowFormat.json: flows_json_reporter,
        FlowFormat.csv: FlowsCsvReporter,
        FlowFormat.markdown: lambda: flows_table_reporter(markdown=True),
    }
    reporter = reporters[output_format]()
    summary = _run(captures, options, rules_dir, debug, reporter)
    raise typer.Exit(EXIT_ERROR if summary.errors else EXIT_CLEAN)


@app.command("rules")
def list_rules(
    rules_dir: RulesOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, json or markdown.")
    ] = OutputFormat.table,
) -> None:
    """List the loaded detection rules: id, category, the event they match, and what they mean.

    Rules are TOML files in rules/ (see README, "Adding a rule").
    """
    ruleset = _load(rules_dir)
    if output_format == OutputFormat.json:
        rows = [
            {
                "id": r.id,
                "category": r.category,
                "event": r.event,
                "priority": r.priority,
                "title": r.title,
                "description": r.description,
                "sample": r.sample,
                "references": list(r.references),
                "file": r.path,
            }
            for r in ruleset.rules
        ]
        typer.echo(json.dumps({"tool": "tcpdiag", "version": __version__, "rules": rows}, indent=2))
        return
    table = [
        [r.category, r.id, r.event, " ".join(r.description.split())]
        for r in sorted(ruleset.rules, key=lambda r: (r.category, -r.priority))
    ]
    fmt = "github" if output_format == OutputFormat.markdown else "simple"
    typer.echo(
        tabulate(
            table,
            headers=["category", "rule", "event", "description"],
            tablefmt=fmt,
            maxcolwidths=[None, None, None, 60],
        )
    )


if __name__ == "__main__":
    app()
