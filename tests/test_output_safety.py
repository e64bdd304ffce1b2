"""Text that comes from a capture (or a file name) never reaches the terminal with control
characters or escape sequences, and JSON stays valid whatever bytes the capture holds."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app
from tcpdiag.reporters import common

DATA = Path(__file__).resolve().parent / "data"
HOSTILE = DATA / "hostile_text.pcapng"  # comments and interface names full of escapes and HTML
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
runner = CliRunner()

COMMANDS = [
    ["analyze", "-f", "table"],
    ["analyze", "-f", "json"],
    ["analyze", "-f", "markdown"],
    ["flows", "-f", "table"],
    ["flows", "-f", "json"],
    ["flows", "-f", "csv"],
    ["flows", "-f", "markdown"],
    ["analyze", "-f", "html"],
    ["analyze", "-f", "jsonl"],
    ["analyze", "-f", "csv"],
    ["flows", "-f", "jsonl"],
    ["flows", "-f", "zeek"],
]


def hostile_copy(tmp_path: Path) -> Path:
    """The same capture under a file name that is itself hostile."""
    target = tmp_path / "cap\x1b[31m<b>\x07.pcapng"
    shutil.copy(HOSTILE, target)
    return target


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[::2]))
def test_every_format_is_free_of_control_characters(tmp_path: Path, command: list[str]) -> None:
    result = runner.invoke(app, [*command, str(HOSTILE), str(hostile_copy(tmp_path))])
    assert result.exit_code in (0, 1), result.output
    for stream in (result.stdout, result.stderr):
        assert not CONTROL.search(stream.replace("\n", "")), repr(stream[:300])
    assert "<script>" not in result.stdout  # the capture's comments are never echoed
    if "json" in command:
        doc = json.loads(result.stdout)
        assert len(doc["captures"]) == 2
    if "markdown" in command:
        # The hostile file name is escaped for Markdown; only code (the command line, shown
        # verbatim in a fenced block or code span, where no renderer reads HTML) may hold it.
        outside_code = re.sub(r"```.*?```|`[^`]*`", "", result.stdout, flags=re.DOTALL)
        assert "<b>" not in outside_code


def test_findings_are_still_reported_from_the_hostile_capture() -> None:
    result = runner.invoke(app, ["analyze", "-f", "json", str(HOSTILE)])
    (finding,) = json.loads(result.stdout)["captures"][0]["findings"]
    assert finding["category"] == "refused"


def test_errors_naming_a_hostile_file_stay_on_one_safe_line(tmp_path: Path) -> None:
    bad = tmp_path / "x\x1b[2J\nname.pcap"
    bad.write_bytes(b"not a capture at all")
    result = runner.invoke(app, ["analyze", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert not CONTROL.search(result.stderr.rstrip("\n"))


def test_every_character_made_visible_is_unprintable() -> None:
    """safe_line returns printable text as it is without searching it: that is right only while
    every character it makes visible is one str.isprintable() rejects."""
    hidden = [chr(c) for c in range(0x110000) if common._CONTROL.match(chr(c))]
    assert len(hidden) > 60 and "\u202e" in hidden
    assert not [c for c in hidden if c.isprintable()]
    assert common.safe_line("a\u202eb\x1b[31m") == "a\\u202eb\\x1b[31m"


RST_TEXT = DATA / "decode_rst_text.pcap"  # a load balancer's RST whose text holds markup


@pytest.mark.parametrize("fmt", ["table", "markdown", "html", "csv"])
def test_a_rsts_text_is_shown_and_never_rendered(fmt: str) -> None:
    """A RST's text comes from the capture: every report shows it (the evidence, the cause),
    as text only: no Markdown link, no HTML tag, no spreadsheet formula."""
    result = runner.invoke(app, ["analyze", "-f", fmt, "--port", "40004", str(RST_TEXT)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "evil.example" in out
    if fmt == "markdown":
        outside_code = re.sub(r"```.*?```|`[^`]*`", "", out, flags=re.DOTALL)
        assert "<b>" not in outside_code and "[x](" not in outside_code  # (escaped: \[x\](...))
    if fmt == "html":
        assert "<b>x</b>" not in out
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert not [cell for row in rows for cell in row if cell[:1] in common.FORMULA_START]
