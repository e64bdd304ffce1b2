"""`tcpdiag analyze` over a batch: inputs -> runner (local workers or Dask) -> reports in input
order, as soon as each is known -> batch summary; progress and messages on stderr; exit status.

Exit status: 2 when any capture had an error (or the output could not be written), else 1 when
a finding the selection keeps is one that `fails` names (--fail-on), else 0. Ctrl-C ends the
workers, finishes the report with the captures that finished (a JSON document stays valid) and
exits 130.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import TextIO

from tcpdiag import __version__
from tcpdiag.batch import FileResult, InputOrder, WorkerSettings, default_jobs, run_local
from tcpdiag.batch_summary import BatchSummary
from tcpdiag.inputs import CaptureInput, expand_inputs
from tcpdiag.output import OutputError, guarded_write, silence_stdout
from tcpdiag.progress import BatchProgress
from tcpdiag.reporters.base import Reporter
from tcpdiag.reporters.jsontext import json_text
from tcpdiag.reporters.selection import FailOn, Selection
from tcpdiag.spool import digests_of

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class DaskUnavailable(RuntimeError):
    """--dask without the dask extra installed, or a scheduler that cannot be reached."""


@dataclass(frozen=True, slots=True)
class BatchRequest:
    arguments: list[str]
    settings: WorkerSettings
    output_format: str  # "table", "markdown" or "json"
    patterns: tuple[str, ...] = ()  # --glob
    join: bool = False
    jobs: int = 0  # 0: one per core
    dask: str | None = None  # scheduler address
    quiet: bool = False
    verbose: bool = False
    # Which findings the reports show (reporters apply it; the summary counts only those).
    selection: Selection = field(default_factory=Selection)
    # Which shown findings make the exit status 1, and whether a capture with a hang does.
    fails: FailOn = field(default_factory=FailOn)


def run_batch(request: BatchRequest, reporter: Reporter, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    inputs = expand_inputs(request.arguments, request.patterns, request.join)
    progress = BatchProgress(quiet=request.quiet, verbose=request.verbose)
    summary = BatchSummary(filters=request.selection.describe())
    progress.start(len(inputs), sum(item.size for item in inputs))
    results = _runner(request, inputs, progress)
    status = EXIT_CLEAN

    def finished(result: FileResult) -> None:
        # The findings travel in result.findings until into_report() spools them.
        found = len(result.findings) + len(result.report.findings)
        progress.file_done(
            result.index, result.report, found, result.size, result.seconds, result.peak_rss
        )

    def report_one(result: FileResult) -> None:
        nonlocal status
        report = result.into_report()
        for warning in report.warnings:
            progress.echo(f"tcpdiag: warning: {warning}")
        if report.error:
            progress.echo(f"tcpdiag: error: {report.error}")
            status = EXIT_ERROR
        elif not report.filter_matched:
            progress.echo(f"tcpdiag: warning: {report.path}: no connection matches the filters")
        shown, fails = request.selection.accepts, request.fails
        if status == EXIT_CLEAN and (
            (fails.hangs and report.hangs)
            or any(shown(f) and fails(f) for f in digests_of(report.findings))
        ):
            status = EXIT_FINDINGS
        guarded_write(out, partial(reporter.write, report, out))
        summary.add(report, shown)
        report.findings.close()

    ordered = InputOrder(results, len(inputs), finished)
    try:
        guarded_write(out, lambda: reporter.start(out))
        for result in ordered:
            report_one(result)
        _finish(request, reporter, summary, len(inputs), out)
    except KeyboardInterrupt:
        results.close()  # ends the workers before anything else
        progress.close()
        summary.interrupted = True
        with contextlib.suppress(OutputError):  # the interruption is the news
            # Captures that finished while an earlier one was still running: report them too.
            for result in ordered.finished_out_of_turn():
                report_one(result)
            _finish(request, reporter, summary, len(inputs), out)
        progress.echo(
            f"tcpdiag: interrupted: {len(summary.captures)} of {len(inputs)} captures reported"
        )
        return EXIT_INTERRUPTED
    except OutputError as exc:
        results.close()
        progress.close()
        progress.echo(f"tcpdiag: error: cannot write the report: {exc}")
        silence_stdout(out)
        return EXIT_ERROR
    except DaskUnavailable as exc:
        progress.close()
        progress.echo(f"tcpdiag: error: {exc}")
        return EXIT_ERROR
    except Exception as exc:  # a bug in the batch machinery: one line, unless --debug
        if request.settings.debug:
            raise
        results.close()
        progress.close()
        progress.echo(
            f"tcpdiag: error: internal error ({type(exc).__name__}: {exc}); "
            "rerun with --debug and report it"
        )
        return EXIT_ERROR
    finally:
        results.close()
        progress.close()
    return status


def _runner(
    request: BatchRequest, inputs: list[CaptureInput], progress: BatchProgress
) -> Generator[FileResult, None, None]:
    if request.dask:
        from tcpdiag.dask_runner import run_dask  # imports dask only when asked for

        return run_dask(inputs, request.settings, request.dask)
    on_bytes = progress.bytes_read if progress.live else None
    return run_local(inputs, request.settings, request.jobs or default_jobs(), on_bytes)


def _finish(
    request: BatchRequest, reporter: Reporter, summary: BatchSummary, inputs: int, out: TextIO
) -> None:
    """The reporter's end, with the batch summary when there were several captures (or parts:
    the summary says where each part's frames are), in the report's own format: a section of
    the table or Markdown report, a top-level "batch" key of the JSON document, a "batch" line
    of JSON Lines. CSV (one row per finding) and HTML (one page) have no place for it."""
    several = inputs > 1 or summary.interrupted or bool(summary.joined)
    fmt = request.output_format
    if fmt == "json" and several:
        # The reporter closes the document; the summary goes in as one more top-level key.
        closing = io.StringIO()
        reporter.finish(closing)
        text = closing.getvalue()
        end = text.rstrip().rfind("}")
        if end >= 0:
            batch = json_text(summary.to_dict())
            text = text[:end].rstrip("\n") + f',\n  "batch": {batch}\n}}\n'
        guarded_write(out, lambda: out.write(text))
        return
    guarded_write(out, lambda: reporter.finish(out))
    if not several:
        return
    if fmt == "table":
        guarded_write(out, lambda: out.write("\n" + summary.text()))
    elif fmt == "markdown":
        guarded_write(out, lambda: out.write("\n" + summary.markdown()))
    elif fmt == "jsonl":
        line = {"type": "batch", "tool": "tcpdiag", "version": __version__, **summary.to_dict()}
        guarded_write(out, lambda: out.write(json_text(line) + "\n"))
