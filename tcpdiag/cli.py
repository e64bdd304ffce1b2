"""Command line: `tcpdiag analyze`, `flows`, `rules`, `show`, `explain`, `schema`.

Exit status of analyze: 0 nothing to fail on, 1 a finding in which an application saw an error
(or what --fail-on names), 2 usage or input error (an unreadable capture among several still lets
the others be analysed and reported).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, TextIO, cast

import typer

from tcpdiag import __version__, _process  # noqa: F401  (_process: before numpy)
from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER
from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.batch import WorkerSettings, keep_rules
from tcpdiag.detect import RuleEngine
from tcpdiag.driver import BatchRequest, run_batch
from tcpdiag.filters import ConnectionFilter, FilterError
from tcpdiag.findings import Finding
from tcpdiag.inputs import DEFAULT_GLOBS
from tcpdiag.output import OutputError, guarded_write, silence_stdout
from tcpdiag.reader import (
    FIFO_WAIT_SECONDS,
    STDIN,
    ZERO_RECORDS_GIVE_UP,
    CaptureError,
    ReadLimits,
)
from tcpdiag.reporters.base import Reporter
from tcpdiag.reporters.common import safe_line, tabulate
from tcpdiag.reporters.flows import (
    FlowsCsvReporter,
    ZeekConnLogReporter,
    flows_json_reporter,
    flows_table_reporter,
)
from tcpdiag.reporters.html import HtmlReporter
from tcpdiag.reporters.json_report import (
    AggregatingJsonLinesReporter,
    encode_finding,
    json_reporter,
)
from tcpdiag.reporters.machine import FindingsCsvReporter, JsonLinesReporter
from tcpdiag.reporters.markdown import MarkdownReporter
from tcpdiag.reporters.selection import DEFAULT_LIMIT, IMPACTS, FailOn, RunInfo, Selection
from tcpdiag.reporters.text import TextReporter
from tcpdiag.rules import RuleError, RuleSet, load_rules
from tcpdiag.selection import SelectionError, TimedSelection
from tcpdiag.tracker import MAX_HELD_SYNS, MAX_LIVE_CONNECTIONS

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
    jsonl = "jsonl"
    csv = "csv"
    html = "html"


# What -o/--output's file extension means when --format is not given.
_EXTENSION_FORMATS = {
    ".txt": "table", ".json": "json", ".md": "markdown", ".markdown": "markdown",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".html": "html", ".htm": "html",
    ".log": "zeek",
}  # fmt: skip


def _version(value: bool) -> None:
    if value:
        if sys.stdout is None:  # (an eager option: before main's check of standard output)
            raise _fail("cannot write the output: standard output is closed")
        _echo(f"tcpdiag {__version__}")
        raise typer.Exit(EXIT_CLEAN)


# Commands that can write elsewhere than standard output (-o/--output): they check for a closed
# standard output themselves, only when they need it (_open_output).
_WRITE_ELSEWHERE = frozenset({"analyze", "flows"})


@app.callback()
def main(
    ctx: typer.Context,
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
    if sys.stdout is None and ctx.invoked_subcommand not in _WRITE_ELSEWHERE:
        # Started with standard output closed (`tcpdiag rules >&-`): say so, not exit 0.
        raise _fail("cannot write the output: standard output is closed")
    _buffer_stdout()


def _buffer_stdout() -> None:
    """A report going to a file or a pipe is written in blocks, even under PYTHONUNBUFFERED
    (which many container images set): unbuffered, every line of a listing was a system call
    of its own, a million of them for a flood's `tcpdiag flows`. Each capture's report is
    still flushed as it is done; a terminal keeps its line buffering."""
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and not stdout.isatty():
        stdout.reconfigure(line_buffering=False, write_through=False)


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
        # The process's own symbols, the C library's among them (ctypes.util.find_library
        # would run ldconfig in a child process, on every start).
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError, TypeError):
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


class Engine(StrEnum):
    native = "native"
    pyshark = "pyshark"
    auto = "auto"


EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="native: tcpdiag's own decoder (fast); pyshark: Wireshark's dissectors through "
        "tshark (every link type and encapsulation Wireshark knows; slower); auto: native, "
        "and tshark for a file whose frames it mostly cannot decode (said in the report).",
    ),
]
VxlanPortOption = Annotated[
    list[int] | None,
    typer.Option(
        "--vxlan-port",
        min=1,
        max=65535,
        help="Also read this UDP port as VXLAN (4789 always is; e.g. 8472, Linux's old "
        "default; repeatable).",
    ),
]


def _vxlan_ports(ports: list[int] | None) -> frozenset[int]:
    return frozenset((4789, *(ports or ())))


MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        min=1,
        help="Open connections tracked at most (closed ones waiting out their grace period do "
        "not count; beyond 8,192 in memory the least recently active wait on disk); beyond it "
        "the least recently active is retired early (counted and reported), so floods cannot "
        "exhaust memory or disk.",
    ),
]
FifoWaitOption = Annotated[
    float,
    typer.Option(
        "--fifo-wait",
        min=0.0,
        metavar="SECONDS",
        help="How long a named pipe (mkfifo) given as a capture waits for a program to open it "
        "for writing (`tcpdump -w PIPE`) before it is an error and the other captures go on. "
        "0: no limit.",
    ),
]
ZeroRecordsOption = Annotated[
    int,
    typer.Option(
        "--zero-records",
        min=0,
        metavar="N",
        help="A run of this many all-zero pcap records (a preallocated or zeroed tail) ends "
        "the reading with a warning naming its byte offset; what came before is still "
        "reported. 0: read on to the end.",
    ),
]
MaxSynsOption = Annotated[
    int,
    typer.Option(
        "--max-syns",
        min=1,
        help="Connection attempts that are still nothing but a client's SYN (a SYN flood's), "
        "held at most apart from --max-connections (about 75 bytes each, IPv4); beyond it the "
        "oldest is retired early (counted and reported).",
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


def _run(
    captures: list[Path],
    options: AnalysisOptions,
    rules_dir: Path | None,
    debug: bool,
    reporter: Reporter,
    out: TextIO | None = None,
) -> int:
    """Analyse the captures one at a time: warnings and errors on stderr (one line each), the
    report on `out` (stdout) as each capture is done, so only one capture's findings are held.
    Returns how many captures could not be read. A report that cannot be written ends the run
    with one line and exit status 2 (as analyze's, tcpdiag.driver)."""
    engine = RuleEngine(_load(rules_dir))
    out = out or sys.stdout
    errors = 0
    with _output_errors(out, "report"):
        guarded_write(out, lambda: reporter.start(out))
        for path in captures:
            report = _analyzed(path, engine, options, debug)
            errors += report.error is not None
            guarded_write(out, partial(reporter.write, report, out))
        guarded_write(out, lambda: reporter.finish(out))
    return errors


@contextmanager
def _output_errors(out: TextIO, what: str) -> Iterator[None]:
    """A write to `out` inside that fails (tcpdiag.output.OutputError: closed pipe, full disk)
    ends the command with one line on stderr, "cannot write the <what>", and exit status 2."""
    try:
        yield
    except OutputError as exc:
        silence_stdout(out)
        raise _fail(f"cannot write the {what}: {exc}") from None


def _analyzed(
    path: Path, engine: RuleEngine, options: AnalysisOptions, debug: bool
) -> CaptureReport:
    """One capture's report, its warnings and error told on stderr."""
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
    if not report.filter_matched and not report.error:
        typer.echo(
            f"tcpdiag: warning: {safe_line(report.path)}: no connection matches the filters",
            err=True,
        )
    return report


def _echo(text: str, nl: bool = True) -> None:
    """typer.echo of a command's output; one that cannot be written (closed pipe, full disk)
    is one line on stderr and exit status 2."""
    out = sys.stdout
    with _output_errors(out, "output"):
        guarded_write(out, lambda: typer.echo(text, nl=nl))


DebugOption = Annotated[bool, typer.Option("--debug", help="Show a traceback on internal errors.")]
AggregateOverOption = Annotated[
    int,
    typer.Option(
        "--aggregate-over",
        min=0,
        metavar="N",
        help="Report a port scan, SYN flood, reset storm or ICMP storm of more than N "
        "findings as one aggregated finding (A1, A2, ...: counts, rate, time span, top "
        "sources and targets, what the programs saw, the first members) in table, Markdown, "
        "HTML and JSON; -f jsonl and csv still list every finding (jsonl adds a line per "
        "aggregate and marks its members). Groups: the refusals and half-open probes of one "
        "scanner or to one server endpoint, the RSTs one host sent, the ICMP errors one "
        "address sent. 0: never aggregate. (show: the same N as the report, so that A1 names "
        "the same aggregated finding.)",
    ),
]

RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Directory of rule files (*.toml) to use instead of the built-in rules.",
        readable=False,  # (load_rules says in one line what it cannot read, or is no folder)
    ),
]


LimitOption = Annotated[
    int,
    typer.Option(
        "--limit",
        min=0,
        help="Detailed sections (groups of alike findings) per capture in table, Markdown and "
        "HTML reports; the summary always counts every finding.",
    ),
]


def _output_path(value: str) -> Path:
    """-o's file. A name that ends in a slash names a directory: Path would drop the slash
    and write a file of that name."""
    if value.endswith(("/", os.sep)):
        raise typer.BadParameter(f"{value!r} names a directory: give a file name")
    return Path(value)


OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        parser=_output_path,
        metavar="FILE",  # (a parser's own name otherwise)
        help="Write the report to this file instead of stdout; without --format, the format "
        "comes from the extension (.txt .json .jsonl .md .csv .html).",
    ),
]


def _output_format(given: str | None, output: Path | None, choices: type[StrEnum]) -> str:
    """--format if given, else what -o's extension says, else a table."""
    if given is not None:
        return given
    if output is not None:
        inferred = _EXTENSION_FORMATS.get(output.suffix.lower())
        if inferred is None or inferred not in {str(choice) for choice in choices}:
            raise _fail(f"cannot tell the format from {str(output)!r}: give --format")
        return inferred
    return "table"


def _open_output(stack: ExitStack, output: Path | None) -> TextIO | None:
    if output is None:
        if sys.stdout is None:  # started with standard output closed (`tcpdiag ... >&-`)
            raise _fail("cannot write the report: standard output is closed")
        return None
    try:
        return stack.enter_context(output.open("w", encoding="utf-8", newline=""))
    except OSError as exc:
        raise _fail(f"{output}: cannot write ({exc.strerror})") from None


def _command_line(command: str, fmt: str, captures: list[Path]) -> tuple[str, ...]:
    """The command as typed when run as `tcpdiag`; rebuilt from the arguments otherwise (under
    a test runner sys.argv is the runner's)."""
    program = Path(sys.argv[0])
    if program.name == "tcpdiag" or program.parent.name == "tcpdiag":
        return ("tcpdiag", *sys.argv[1:])
    return ("tcpdiag", command, "-f", fmt, *map(str, captures))


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
        "numbers or times; or files whose time ranges chain, each starting at most 2 s after "
        "the previous one ended) as one continuous capture, in the order of their first packets. "
        "Frames are numbered continuously across the parts. Named pipes and standard input "
        "are read alone (their parts could not be ordered without reading them twice).",
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
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only findings at or after this ISO 8601 time (UTC unless it says)."
    ),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only findings before this ISO 8601 time.")
]


@app.command()
def analyze(
    captures: Annotated[
        list[Path],
        typer.Argument(
            help="Capture files, directories (searched recursively, see --glob), quoted globs "
            "('dumps/**/*.pcap.gz'), or - for standard input. pcap or pcapng, plain or "
            "compressed with gzip, bzip2, xz, zstd or lz4 (recognised by content, not name).",
            show_default=False,
            readable=False,  # (an unreadable one is its own one-line error; the others go on)
        ),
    ],
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table: for a terminal; markdown: for tickets; html: one self-contained page "
            "with diagrams; json: one document for programs; jsonl: one JSON object per line; "
            "csv: one row per finding. Default: table, or what -o's extension says.",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = None,
    host: HostOption = None,
    port: PortOption = None,
    net: NetOption = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="Only findings of this category (repeatable)."),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option("--min-confidence", min=0.0, max=1.0, help="Only findings this confident."),
    ] = 0.0,
    impact: Annotated[
        list[str] | None,
        typer.Option(
            "--impact", help="Only findings of this impact: error_seen, none, unknown (repeatable)."
        ),
    ] = None,
    limit: LimitOption = DEFAULT_LIMIT,
    aggregate_over: AggregateOverOption = DEFAULT_AGGREGATE_OVER,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Which findings make the exit status 1: error_seen (an application saw an "
            "error), any, never, or categories and impacts, comma-separated "
            "(refused,peer_reset); and hang: a capture with a connection hanging (a side "
            "that stopped reading, no finding).",
        ),
    ] = "error_seen",
    localtime: Annotated[
        bool, typer.Option("--localtime", help="Show clock times in the local time zone, not UTC.")
    ] = False,
    zeek_split: ZeekSplitOption = False,
    max_connections: MaxConnectionsOption = MAX_LIVE_CONNECTIONS,
    max_syns: MaxSynsOption = MAX_HELD_SYNS,
    fifo_wait: FifoWaitOption = FIFO_WAIT_SECONDS,
    zero_records: ZeroRecordsOption = ZERO_RECORDS_GIVE_UP,
    engine: EngineOption = Engine.auto,
    vxlan_port: VxlanPortOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
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

    For every finding: the category (refused, peer_reset, broken_pipe, ...), when it happened,
    client and server, the frames that prove it (Wireshark numbering), each side's TCP state,
    what each side's application saw (errno and message on Linux and Windows), the most likely
    cause with its confidence, the alternatives, and what to check next. Reports open with a
    summary; alike findings are grouped, and a port scan, SYN flood, reset storm or ICMP
    storm of more than --aggregate-over findings (default 100) is reported as one aggregated
    finding (A1, A2, ...); jsonl and csv keep every finding.

    Finding ids (F1, F2, ...) number every finding of the capture in time order, before any
    filter, so an id means the same finding in every report and in `tcpdiag flows`/`show`.

    Exit status: 0 no finding in which an application saw an error (or none of what --fail-on
    names); 1 at least one; 2 input or usage error.

    Examples:

      tcpdiag analyze capture.pcap

      tcpdiag analyze -o report.md capture.pcap

      tcpdiag analyze --format json rotated-*.pcap.gz > report.json

      tcpdiag analyze --fail-on any --category refused capture.pcap

      tcpdiag analyze -f jsonl scan.pcap | jq 'select(.aggregate == "A1")'   (A1's members)

    Batches (several captures, directories): captures are analysed in parallel (--jobs), a
    capture that cannot be read is an error row and the others go on, and a summary across
    the captures ends the report. Exit status 2 beats 1 beats 0.

      tcpdiag analyze -j 4 -f markdown /var/dumps/ --since 2024-11-25T12:00Z

      tcpdiag analyze --join 'ring/cap.pcap*'

      tcpdump -w - -i eth0 | tcpdiag analyze -
    """
    ruleset = _load(rules_dir)
    keep_rules(str(rules_dir) if rules_dir else None, ruleset)
    categories = frozenset(r.category for r in ruleset.rules)
    unknown = set(category or ()) - categories
    if unknown:
        raise _fail(
            f"--category {', '.join(sorted(unknown))}: not a category "
            f"(one of {', '.join(sorted(categories))})"
        )
    bad_impacts = set(impact or ()) - set(IMPACTS)
    if bad_impacts:
        raise _fail(f"--impact {', '.join(sorted(bad_impacts))}: one of {', '.join(IMPACTS)}")
    try:
        fails = FailOn.parse(fail_on, categories)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    connection_filter = _filter(host, port, net)
    options = AnalysisOptions(
        connection_filter=connection_filter,
        zeek_split=zeek_split,
        max_connections=max_connections,
        max_held_syns=max_syns,
        read_limits=ReadLimits(fifo_wait, zero_records),
        engine=engine.value,
        vxlan_ports=_vxlan_ports(vxlan_port),
    )
    selection = Selection(
        categories=frozenset(category or ()),
        min_confidence=min_confidence,
        impacts=frozenset(impact or ()),
        limit=limit,
        localtime=localtime,
        connection_filter=connection_filter,
    )
    try:
        selection = TimedSelection.with_window(selection, since, until)
    except SelectionError as exc:
        raise _fail(str(exc)) from None
    fmt = _output_format(output_format, output, OutputFormat)
    if fmt in (OutputFormat.json, OutputFormat.jsonl):
        # Findings wait for the report as the JSON they will be written as (made once).
        options = dataclasses.replace(options, finding_encoder=encode_finding)
    run = RunInfo(command=_command_line("analyze", fmt, captures))
    reporters: dict[str, Callable[[], Reporter]] = {
        OutputFormat.table: lambda: TextReporter(selection, aggregate_over),
        OutputFormat.json: lambda: json_reporter(selection, aggregate_over),
        OutputFormat.markdown: lambda: MarkdownReporter(selection, run, aggregate_over),
        OutputFormat.jsonl: lambda: AggregatingJsonLinesReporter(selection, aggregate_over),
        OutputFormat.csv: lambda: FindingsCsvReporter(selection),
        OutputFormat.html: lambda: HtmlReporter(selection, run, aggregate_over),
    }
    request = BatchRequest(
        arguments=[str(c) for c in captures],
        settings=WorkerSettings(options, str(rules_dir) if rules_dir else None, debug=debug),
        output_format=fmt,
        patterns=tuple(glob or ()),
        join=join,
        jobs=jobs,
        dask=dask,
        quiet=quiet,
        verbose=verbose,
        selection=selection,
        fails=fails,
    )
    with ExitStack() as stack:
        out = _open_output(stack, output)
        status = run_batch(request, reporters[fmt](), out)
    raise typer.Exit(status)


class FlowFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    jsonl = "jsonl"
    zeek = "zeek"


@app.command()
def flows(
    captures: Annotated[
        list[Path],
        typer.Argument(
            help="Capture files: pcap or pcapng, plain or compressed with gzip, bzip2, xz, zstd "
            "or lz4 (recognised by content, not name).",
            show_default=False,
            readable=False,  # (an unreadable one is its own one-line error; the others go on)
        ),
    ],
    output_format: Annotated[
        FlowFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table, json, jsonl, csv, markdown, or zeek (a Zeek conn.log that zeek-cut "
            "reads). Default: table, or what -o's extension says (.log: zeek).",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = None,
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
    max_syns: MaxSynsOption = MAX_HELD_SYNS,
    fifo_wait: FifoWaitOption = FIFO_WAIT_SECONDS,
    zero_records: ZeroRecordsOption = ZERO_RECORDS_GIVE_UP,
    engine: EngineOption = Engine.auto,
    vxlan_port: VxlanPortOption = None,
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
        max_held_syns=max_syns,
        read_limits=ReadLimits(fifo_wait, zero_records),
        engine=engine.value,
        vxlan_ports=_vxlan_ports(vxlan_port),
    )
    echo = Selection(connection_filter=options.connection_filter)
    reporters: dict[str, Callable[[], Reporter]] = {
        FlowFormat.table: lambda: flows_table_reporter(selection=echo),
        FlowFormat.json: lambda: flows_json_reporter(echo),
        FlowFormat.csv: FlowsCsvReporter,
        FlowFormat.markdown: lambda: flows_table_reporter(markdown=True, selection=echo),
        FlowFormat.jsonl: lambda: JsonLinesReporter(echo, flows=True),
        FlowFormat.zeek: ZeekConnLogReporter,
    }
    reporter = reporters[_output_format(output_format, output, FlowFormat)]()
    with ExitStack() as stack:
        errors = _run(
            captures, options, rules_dir, debug, reporter, out=_open_output(stack, output)
        )
    raise typer.Exit(EXIT_ERROR if errors else EXIT_CLEAN)


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
                "overrides": r.overrides,
                "title": r.title,
                "description": r.description,
                "sample": r.sample,
                "references": list(r.references),
                "file": r.path,
            }
            for r in ruleset.rules
        ]
        _echo(json.dumps({"tool": "tcpdiag", "version": __version__, "rules": rows}, indent=2))
        return
    table = [
        [r.category, r.id, r.event, " ".join(r.description.split())]
        for r in sorted(ruleset.rules, key=lambda r: (r.category, -r.priority))
    ]
    if output_format == OutputFormat.markdown:
        # A GFM table row must stay on one line: no wrapping, and the cells escaped.
        from tcpdiag.reporters.common import markdown_text

        cells = [[markdown_text(cell) for cell in row] for row in table]
        headers = ["category", "rule", "event", "description"]
        _echo(tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True))
        return
    _echo(
        tabulate(
            table,
            headers=["category", "rule", "event", "description"],
            tablefmt="simple",
            maxcolwidths=[None, None, None, 60],
        )
    )


@app.command()
def show(
    capture: Annotated[
        Path, typer.Argument(help="The capture file.", show_default=False, readable=False)
    ],
    finding_id: Annotated[
        str | None,
        typer.Argument(help="A finding id from analyze (F1, F2, ...).", show_default=False),
    ] = None,
    conn: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--conn",
            help="The connection by its CLIENT and SERVER endpoints (10.0.0.1:5000 10.0.0.2:80), "
            "instead of a finding id.",
            show_default=False,
        ),
    ] = None,
    zeek_split: ZeekSplitOption = False,
    rules_dir: RulesOption = None,
    aggregate_over: AggregateOverOption = DEFAULT_AGGREGATE_OVER,
    engine: EngineOption = Engine.auto,
) -> None:
    """Print one connection's packet ladder: relative time, direction, flags, relative seq/ack,
    length, TTL, each side's TCP state after the packet, and where the verdict was made; with a
    Wireshark display filter for the connection and for the finding's frames. For an
    aggregated finding (A1, ...): what it groups, and the ladder of its first member.

    Exit status: 0 shown, 2 when the capture, finding or connection cannot be found.
    """
    from tcpdiag.aggregate import aggregates_of
    from tcpdiag.ladder import finding_key
    from tcpdiag.show import ShowError, aggregate_text, parse_endpoint, show_text
    from tcpdiag.tshark_engine import TsharkFailed

    if (finding_id is None) == (conn is None):
        raise _fail("give a finding id or --conn CLIENT SERVER (one of them)")
    if capture.is_dir():
        raise _fail(f"{capture}: a directory: show takes one capture file")
    if str(capture) == STDIN or (capture.exists() and not capture.is_file()):
        # (A named pipe or standard input gives its packets once: the second read, for the
        # ladder, would wait for a writer that never comes, or get nothing.)
        raise _fail(
            f"{capture}: show reads the capture twice (its findings, then the connection's "
            "packets), so it needs a file, not standard input or a named pipe: save the "
            "capture to a file first"
        )
    finding: Finding | None = None
    try:
        # (The same engine as analyze, so that the findings and their ids are the same; the
        # ladder is read again with the engine that decoded the capture.)
        options = AnalysisOptions(zeek_split=zeek_split, engine=engine.value)
        report = analyze_capture(capture, RuleEngine(_load(rules_dir)), options)
        if report.error:
            raise _fail(report.error)
        used = str(report.decode.get("engine", "native"))
        if finding_id is not None and finding_id.strip().upper().startswith("A"):
            wanted = finding_id.strip().upper()
            groups = aggregates_of(report.findings, aggregate_over, len(report.findings))
            aggregate = next((a for a in groups if a.id == wanted), None)
            if aggregate is None or not aggregate.first:
                raise _fail(
                    f"{capture}: no aggregated finding {finding_id!r} with --aggregate-over "
                    f"{aggregate_over} (this capture has "
                    + (f"{len(groups)}: A1 to A{len(groups)})" if groups else "none)")
                )
            # (analyze_capture's spool keeps Finding objects, not their JSON)
            finding = cast(Finding, aggregate.first[0])
            text = show_text(capture, finding_key(finding), finding, used)
            _echo(aggregate_text(aggregate, capture) + text, nl=False)
            return
        if finding_id is not None:
            wanted = finding_id.strip().upper()
            finding = next((f for f in report.findings if f.id == wanted), None)
            if finding is None:
                count = len(report.findings)
                raise _fail(
                    f"{capture}: no finding {finding_id!r} (this capture has "
                    + (f"{count}: F1 to F{count})" if count else "none)")
                )
            key = finding_key(finding)
        else:
            assert conn is not None
            key = (*parse_endpoint(conn[0]), *parse_endpoint(conn[1]))
            # The connection's (first) finding, if it has one, marks where the verdict was made.
            finding = next((f for f in report.findings if finding_key(f) == key), None)
        _echo(show_text(capture, key, finding, used), nl=False)
    except (ShowError, CaptureError, TsharkFailed) as exc:
        raise _fail(str(exc)) from None


@app.command()
def explain(
    category: Annotated[
        str, typer.Argument(help="A category, e.g. refused or broken_pipe.", show_default=False)
    ],
    rules_dir: RulesOption = None,
) -> None:
    """What a category means: its wire signature, what each side's program sees, the causes
    tcpdiag ranks and the next steps, from the rules (no capture needed)."""
    from tcpdiag.reporters.explain import explain_text

    ruleset = _load(rules_dir)
    categories = sorted({r.category for r in ruleset.rules})
    if category not in categories:
        raise _fail(f"{category!r} is not a category (one of {', '.join(categories)})")
    _echo(explain_text(ruleset, category), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the JSON and JSON Lines outputs (analyze and flows)."""
    from tcpdiag.schema import schema_text

    _echo(schema_text(), nl=False)


if __name__ == "__main__":
    app()
