"""The command line as a user meets it: exit status, output formats, errors without tracebacks."""

from __future__ import annotations

import builtins
import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tcpdiag import __version__
from tcpdiag.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = ROOT / "tests" / "data"
runner = CliRunner()

FINDING_KEYS = {
    "category", "rule", "client", "server", "frames", "time", "confidence", "client_sees",
    "server_sees", "explanation", "client_state", "server_state", "cause", "alternatives",
    "next_step", "evidence", "initiator_known",
}  # fmt: skip


def test_table_output_and_exit_1_when_findings() -> None:
    result = runner.invoke(app, ["analyze", str(SAMPLES / "refused_no_listener.pcap")])
    assert result.exit_code == 1
    assert "refused" in result.stdout and "ECONNREFUSED" in result.stdout
    assert "Connection refused" in result.stdout  # the Linux message, under the table
    assert "next:" in result.stdout


def test_exit_0_when_no_finding() -> None:
    result = runner.invoke(app, ["analyze", str(SAMPLES / "graceful_close.pcap")])
    assert result.exit_code == 0
    assert "No abnormal TCP connection found." in result.stdout


def test_json_document_shape_is_stable() -> None:
    result = runner.invoke(app, ["analyze", "--format", "json", str(SAMPLES / "broken_pipe.pcap")])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["tool"] == "tcpdiag" and doc["version"] == __version__
    (capture,) = doc["captures"]
    assert capture["path"].endswith("broken_pipe.pcap")
    assert capture["packets"] > 0 and capture["flows"] >= 1
    (finding,) = capture["findings"]
    assert set(finding) >= FINDING_KEYS
    assert finding["category"] == "broken_pipe"
    assert finding["server_sees"]["errno"] == "EPIPE"
    assert finding["client_sees"]["errno"] is None
    assert 0.0 <= finding["confidence"] <= 1.0
    assert finding["time"].endswith("Z")
    assert all(isinstance(n, int) and n >= 1 for n in finding["frames"])


def test_markdown_output_for_tickets() -> None:
    result = runner.invoke(
        app, ["analyze", "-f", "markdown", str(SAMPLES / "peer_reset_linger0.pcap")]
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("# tcpdiag report")
    assert "## Capture " in result.stdout and "peer\\_reset\\_linger0.pcap" in result.stdout
    assert "| peer\\_reset" in result.stdout or "| peer\\_reset " in result.stdout


def test_many_files_in_one_run() -> None:
    files = [SAMPLES / "refused_no_listener.pcap", SAMPLES / "graceful_close.pcap"]
    result = runner.invoke(app, ["analyze", "-f", "json", *map(str, files)])
    doc = json.loads(result.stdout)
    assert [len(c["findings"]) for c in doc["captures"]] == [1, 0]
    assert result.exit_code == 1


def test_not_a_capture_is_one_line_error_exit_2() -> None:
    result = runner.invoke(app, ["analyze", str(DATA / "not_capture.txt")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpdiag: error: ")
    assert "not_capture.txt" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_file_is_one_line_error_and_other_files_still_analysed() -> None:
    result = runner.invoke(
        app, ["analyze", "-f", "json", "/nonexistent.pcap", str(SAMPLES / "graceful_close.pcap")]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "/nonexistent.pcap" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["captures"][0]["error"] and doc["captures"][1]["error"] is None


@pytest.mark.parametrize("command", [["analyze"], ["flows"], ["show", "--conn"]])
def test_an_unreadable_capture_is_one_line_error_and_other_files_still_analysed(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, whom file permissions do not stop: the file is made unreadable where
    # the command line's checks (os.access) and the reader (open) would find out.
    unreadable = tmp_path / "secret.pcap"
    unreadable.write_bytes((SAMPLES / "broken_pipe.pcap").read_bytes())
    real_access, real_open = os.access, builtins.open

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        return Path(path) != unreadable and real_access(path, mode, *args, **kwargs)

    def opener(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path) and Path(file) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(builtins, "open", opener)
    if command[0] == "show":
        arguments = [*command, "127.0.0.1:35309", "127.0.0.1:27320", str(unreadable)]
    else:
        arguments = [*command, str(unreadable), str(SAMPLES / "broken_pipe.pcap")]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert result.stderr == f"tcpdiag: error: {unreadable}: cannot open: Permission denied\n"
    if command[0] != "show":  # the other capture is still analysed
        assert "127.0.0.1:35309" in result.stdout


@pytest.mark.parametrize("command", ["analyze", "flows"])
def test_a_named_pipe_without_writer_is_one_line_error_after_fifo_wait(
    command: str, tmp_path: Path
) -> None:
    fifo = tmp_path / "from-tcpdump"
    os.mkfifo(fifo)
    result = runner.invoke(
        app, [command, "--fifo-wait", "0.2", str(fifo), str(SAMPLES / "broken_pipe.pcap")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"tcpdiag: error: {fifo}: a named pipe (FIFO) that no program opened for writing "
        "within 0.2 s (--fifo-wait)\n"
    )
    assert "127.0.0.1:35309" in result.stdout  # the other capture is still analysed


@pytest.mark.parametrize("source", ["named pipe", "stdin"])
def test_show_wants_a_file_it_can_read_twice(source: str, tmp_path: Path) -> None:
    """show analyses the capture, then reads the connection's packets again: a named pipe
    would make that second read wait for a writer (--fifo-wait) and standard input has nothing
    left, so either is a one-line error at once, before anything is read."""
    if source == "stdin":
        argument = "-"
    else:
        fifo = tmp_path / "from-tcpdump"
        os.mkfifo(fifo)  # (nobody writes it: reading would wait out --fifo-wait)
        argument = str(fifo)
    result = runner.invoke(app, ["show", argument, "F1"], input=b"")
    assert result.exit_code == 2
    assert result.stderr == (
        f"tcpdiag: error: {argument}: show reads the capture twice (its findings, then the "
        "connection's packets), so it needs a file, not standard input or a named pipe: save "
        "the capture to a file first\n"
    )


def test_zero_records_is_the_give_up_limit_of_a_zeroed_tail(tmp_path: Path) -> None:
    sample = (SAMPLES / "broken_pipe.pcap").read_bytes()
    capture = tmp_path / "zero-run.pcap"
    capture.write_bytes(sample + bytes(16 * 50))
    for limit, stopped in (("50", True), ("51", False), ("0", False)):
        arguments = ["analyze", "-f", "json", "--zero-records", limit, str(capture)]
        result = runner.invoke(app, arguments)
        report = json.loads(result.stdout)["captures"][0]
        assert report["truncated"] is stopped
        assert report["packets"] == (11 if stopped else 61)
        assert ("50 or more empty all-zero records" in result.stderr) is stopped


def test_truncated_capture_warns_and_still_reports() -> None:
    result = runner.invoke(app, ["analyze", str(DATA / "trunc_body.pcap")])
    assert result.exit_code in (0, 1)
    assert result.stderr.startswith("tcpdiag: warning: ")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "damage",
    ["a pcap cut inside its first record", "a pcapng block of a length no block has"],
)
def test_a_capture_damaged_before_its_first_frame_cannot_be_read(
    damage: str, tmp_path: Path
) -> None:
    """Nothing of it can be read: a one-line error naming the file and the damage, exit 2 (not
    an empty report that exits 0 as if the capture were clean), for analyze and flows; the
    other captures of the run are analysed all the same. Damaged after good frames, it is a
    warning and the report of those (test_truncated_capture_warns_and_still_reports)."""
    good = (SAMPLES / "broken_pipe.pcap").read_bytes()
    if damage.startswith("a pcap"):
        data = good[: 24 + 16 + 10]  # the header, then part of the first record
    else:
        shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
        epb = struct.pack("<II", 6, 139) + bytes(40)  # a total length not a multiple of 4
        data = shb + idb + epb
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(data)
    for command in ("analyze", "flows"):
        result = runner.invoke(app, [command, str(bad)])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith(f"tcpdiag: error: {bad}: frame 1")
        assert "Traceback" not in result.stdout + result.stderr
    both = runner.invoke(
        app, ["analyze", "-f", "jsonl", str(bad), str(SAMPLES / "broken_pipe.pcap")]
    )
    assert both.exit_code == 2
    assert '"category":"broken_pipe"' in both.stdout, "the other capture is analysed"


def test_rules_command_lists_every_rule() -> None:
    result = runner.invoke(app, ["rules", "-f", "json"])
    assert result.exit_code == 0
    ids = {r["id"] for r in json.loads(result.stdout)["rules"]}
    assert {"refused-rst-to-syn", "broken-pipe-rst-in-close-wait", "keepalive-timeout"} <= ids
    table = runner.invoke(app, ["rules"])
    assert table.exit_code == 0 and "half_open_scan" in table.stdout


def test_usage_error_exits_2() -> None:
    assert runner.invoke(app, ["analyze"]).exit_code == 2
    assert runner.invoke(app, ["analyze", "--format", "xml", "x.pcap"]).exit_code == 2


def test_installed_entry_point_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"tcpdiag {__version__}"


def test_unsupported_link_type_is_reported_and_skipped() -> None:
    result = runner.invoke(app, ["analyze", str(DATA / "decode_rawmix.pcapng")])
    assert result.exit_code in (0, 1)
    assert (
        f"tcpdiag: warning: {DATA / 'decode_rawmix.pcapng'}: 1 frame with unsupported link "
        "type 147 skipped"
    ) in result.stderr


def test_malformed_headers_are_counted_in_a_warning() -> None:
    result = runner.invoke(app, ["analyze", str(DATA / "decode_eth.pcap")])
    assert (
        f"tcpdiag: warning: {DATA / 'decode_eth.pcap'}: 2 frames with malformed or truncated "
        "headers skipped (first: frame 15)"
    ) in result.stderr


def test_max_syns_bounds_the_bare_syns_held_and_says_so(tmp_path: Path) -> None:
    """--max-syns: bare SYNs beyond it are retired early, counted, and the report says so;
    by default a few thousand are simply held."""
    sys.path.insert(0, str(ROOT / "tests"))
    from flowbuilder import LINUX_SYN, Capture, Conversation, write_pcap

    from tcpdiag.packets import SYN

    cap = Capture()
    for k in range(3000):
        conv = Conversation(
            cap, client=(f"100.64.{k >> 8}.{k & 255}", 2000), server=("10.9.0.1", 80)
        )
        conv.send("c", SYN, options=LINUX_SYN, dt=0.0001)
    path = tmp_path / "flood.pcap"
    write_pcap(cap, path)
    for extra, evicted in (([], 0), (["--max-syns", "1000"], 2000)):
        result = runner.invoke(app, ["flows", "--format", "json", *extra, str(path)])
        assert result.exit_code == 0, result.output
        (capture,) = json.loads(result.stdout)["captures"]
        assert capture["evicted"] == evicted
        assert len(capture["connections"]) == 3000  # every attempt is listed either way
        assert bool(capture["warnings"]) == bool(evicted)
    assert "2000 connection attempts that were nothing but a SYN" in capture["warnings"][0]


# Asks, in a fresh interpreter, what OPENBLAS_NUM_THREADS held when numpy was first imported.
_BLAS_AT_NUMPY_IMPORT = """
import importlib.abc, os, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
        return None
sys.meta_path.insert(0, Watch())
import {module}
import numpy
print(seen[0])
"""


def _blas_threads_at_numpy_import(module: str, env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", _BLAS_AT_NUMPY_IMPORT.format(module=module)],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def test_the_command_line_keeps_numpy_blas_to_one_thread_unless_the_user_chose() -> None:
    # OpenBLAS's threads spin at numpy's import: CPU the command line never needs.
    assert _blas_threads_at_numpy_import("tcpdiag.cli", None) == "1"
    assert _blas_threads_at_numpy_import("tcpdiag.cli", "3") == "3"
    # A program importing tcpdiag's modules as a library keeps its own BLAS threads.
    assert _blas_threads_at_numpy_import("tcpdiag.analyze", None) == "unset"


def test_analyze_reads_the_rule_files_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command line loads the rules to check them first; the analysis uses that load (a
    # second reading of every TOML file was a tenth of the start-up).
    from tcpdiag import batch, cli, rules

    reads: list[object] = []

    def counting_load(directory: Path | None = None) -> rules.RuleSet:
        reads.append(directory)
        return rules.load_rules(directory)

    monkeypatch.setattr(cli, "load_rules", counting_load)
    monkeypatch.setattr(batch, "load_rules", counting_load)
    monkeypatch.setattr(batch, "_engines", {})
    result = runner.invoke(app, ["analyze", "-f", "jsonl", str(SAMPLES / "broken_pipe.pcap")])
    assert result.exit_code == 1
    rule_ids = [json.loads(line).get("rule", "") for line in result.stdout.splitlines()]
    assert any(rule.startswith("broken-pipe") for rule in rule_ids)
    assert len(reads) == 1


def test_reports_to_a_file_or_pipe_are_block_buffered_even_under_pythonunbuffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PYTHONUNBUFFERED (many container images set it) made each line of a report its own
    # write(2): a million of them for a flood's flow listing.
    import io

    from tcpdiag import cli

    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    unbuffered = io.TextIOWrapper(io.BytesIO(), write_through=True, line_buffering=True)
    monkeypatch.setattr(sys, "stdout", unbuffered)
    cli._buffer_stdout()
    assert not unbuffered.write_through and not unbuffered.line_buffering
    unbuffered.write("a line\n")
    assert unbuffered.buffer.getvalue() == b""  # held until a flush
    unbuffered.flush()
    assert unbuffered.buffer.getvalue() == b"a line\n"
    terminal = io.TextIOWrapper(Terminal(), line_buffering=True)
    monkeypatch.setattr(sys, "stdout", terminal)
    cli._buffer_stdout()
    assert terminal.line_buffering  # what a person reads keeps coming a line at a time


def test_an_output_path_that_is_a_directory_is_the_one_line_error(tmp_path: Path) -> None:
    for command in ("analyze", "flows"):
        result = runner.invoke(
            app, [command, "-f", "json", "-o", str(tmp_path), str(SAMPLES / "broken_pipe.pcap")]
        )
        assert result.exit_code == 2
        assert result.stderr == f"tcpdiag: error: {tmp_path}: cannot write (Is a directory)\n"


@pytest.mark.parametrize("command", ["analyze", "flows", "show", "explain", "rules", "schema"])
def test_help_names_each_value_for_a_reader_not_by_its_code(command: str) -> None:
    """--help shows what each option takes (FILE, N, <int>...), never the name of the Python
    function that parses it (a parser's name is typer's metavar unless one is given)."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<_" not in result.stdout and "_path>" not in result.stdout
    if command in ("analyze", "flows"):
        output = next(line for line in result.stdout.splitlines() if "--output" in line)
        assert output.split()[3] == "FILE", output


def test_an_output_name_ending_in_a_slash_names_a_directory(tmp_path: Path) -> None:
    """`-o report.json/` is a directory that is not there, not a file called report.json
    (which Path, dropping the slash, would have written)."""
    for command in ("analyze", "flows"):
        named = f"{tmp_path}/report.json/"
        result = runner.invoke(app, [command, "-o", named, str(SAMPLES / "broken_pipe.pcap")])
        assert result.exit_code == 2
        said = " ".join(result.stderr.replace("│", " ").split())  # (the usage box wraps it)
        assert "names a directory: give a file name" in said
        assert not (tmp_path / "report.json").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["flows", str(SAMPLES / "broken_pipe.pcap")], "report"),
        (["flows", "-f", "jsonl", str(SAMPLES / "broken_pipe.pcap")], "report"),
        (["show", str(SAMPLES / "broken_pipe.pcap"), "F1"], "output"),
        (["rules"], "output"),
        (["explain", "refused"], "output"),
        (["schema"], "output"),
        (["--version"], "output"),
    ],
)
def test_every_command_says_in_one_line_that_its_output_cannot_be_written(
    command: list[str], message: str
) -> None:
    # `tcpdiag flows x.pcap > /dev/full`: a full disk, as analyze's (tests/test_batch.py).
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "tcpdiag", *command],
            stdout=full, stderr=subprocess.PIPE, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        f"tcpdiag: error: cannot write the {message}: No space left on device\n"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_flows_to_an_output_file_that_cannot_be_written_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "flows", "-f", "csv", "-o", "/dev/full",
         str(SAMPLES / "broken_pipe.pcap")],
        stderr=subprocess.PIPE, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "tcpdiag: error: cannot write the report: No space left on device\n"
    )
