"""Command line: `tcpdiag analyze`, `tcpdiag rules`.

Exit status: 0 no finding, 1 findings, 2 usage or input error (an unreadable capture among several
still lets the others be analysed and reported).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from tabulate import tabulate

from tcpdiag import __version__
from tcpdiag.analyze import CaptureReport, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.reporters.common import safe
from tcpdiag.reporters.json_report import render_json
from tcpdiag.reporters.markdown import render_markdown
from tcpdiag.reporters.text import render_text
from tcpdiag.rules import RuleError, RuleSet, load_rules

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


def _fail(message: str) -> typer.Exit:
    typer.echo(f"tcpdiag: error: {safe(message)}", err=True)
    return typer.Exit(EXIT_ERROR)


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(rules_dir)
    except RuleError as exc:
        raise _fail(str(exc)) from None


RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Directory of rule files (*.toml) to use instead of the built-in rules.",
        file_okay=False,
    ),
]


@app.command()
def analyze(
    captures: Annotated[
        list[Path],
        typer.Argument(
            help="Capture files: pcap or pcapng, optionally gzip-compressed (.gz).",
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
    rules_dir: RulesOption = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on internal errors.")
    ] = False,
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
    """
    engine = RuleEngine(_load(rules_dir))
    reports: list[CaptureReport] = []
    for path in captures:
        try:
            report = analyze_capture(path, engine)
        except Exception as exc:  # a bug, not bad input: still one line, and the other files go on
            if debug:
                raise
            report = CaptureReport(
                path=str(path),
                error=f"{path}: internal error ({type(exc).__name__}: {exc}); "
                "rerun with --debug and report it",
            )
        reports.append(report)
        for warning in report.warnings:
            typer.echo(f"tcpdiag: warning: {safe(warning)}", err=True)
        if report.error:
            typer.echo(f"tcpdiag: error: {safe(report.error)}", err=True)
    render = {
        OutputFormat.table: render_text,
        OutputFormat.json: render_json,
        OutputFormat.markdown: render_markdown,
    }[output_format]
    sys.stdout.write(render(reports))
    if any(r.error for r in reports):
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if any(r.findings for r in reports) else EXIT_CLEAN)


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
