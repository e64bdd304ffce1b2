"""Batches: every capture reported as a single-file run reports it, in input order, whatever
the number of workers; bad inputs are error rows; rotated parts joined; isolation from dying
workers, closed outputs and Ctrl-C; the batch summary and the finding selection.

Expected findings are always computed in the same test run by analysing each file alone."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard
from typer.testing import CliRunner

from tcpdiag import batch as batch_mod
from tcpdiag.analyze import analyze_capture
from tcpdiag.batch import WorkerSettings, run_local
from tcpdiag.cli import app
from tcpdiag.detect import RuleEngine
from tcpdiag.inputs import CaptureInput
from tcpdiag.reader import CaptureReader
from tcpdiag.reporters.json_report import finding_dict, render_json
from tcpdiag.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ENGINE = RuleEngine(load_rules(None))
runner = CliRunner()


def single(path: Path | str) -> dict[str, Any]:
    """What analysing the file alone reports: its capture in the JSON report."""
    (capture,) = json.loads(render_json([analyze_capture(path, ENGINE)]))["captures"]
    return dict(capture)


def without_path(capture: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in capture.items() if k not in ("path", "warnings")}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples, a corrupt and an empty capture, a sub-directory tree, and a copy of one
    sample in each compression format."""
    root = tmp_path_factory.mktemp("batch")
    for sample in sorted(SAMPLES.glob("*.pcap")):
        (root / sample.name).write_bytes(sample.read_bytes())
    (root / "corrupt.pcap").write_bytes(b"this is not a capture at all")
    (root / "empty.pcap").write_bytes(b"")
    mixed = (SAMPLES / "mixed.pcap").read_bytes()
    packers = {
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zst": zstandard.ZstdCompressor().compress,
        "lz4": lz4.frame.compress,
    }
    for suffix, pack in packers.items():
        path = root / "compressed" / suffix / f"mixed.pcap.{suffix}"
        path.parent.mkdir(parents=True)
        path.write_bytes(pack(mixed))
    return root


def test_a_batch_reports_each_file_as_a_single_run_does(tree: Path) -> None:
    result = runner.invoke(app, ["analyze", "-f", "json", "-j", "2", "-q", str(tree)])
    assert result.exit_code == 2  # error rows beat findings
    doc = json.loads(result.stdout)
    paths = [c["path"] for c in doc["captures"]]
    assert paths == sorted(paths)  # input order: the directory's files, sorted
    expected_files = len(list(SAMPLES.glob("*.pcap"))) + 2 + 5
    assert len(paths) == expected_files
    for capture in doc["captures"]:
        name = Path(capture["path"]).name
        if name in ("corrupt.pcap", "empty.pcap"):
            assert capture["error"] and "\n" not in capture["error"]
            continue
        alone = single(capture["path"])
        assert without_path(capture) == without_path(alone), name
        if "compressed" in capture["path"]:
            assert capture["findings"] == single(SAMPLES / "mixed.pcap")["findings"]
    errors = {Path(e["path"]).name for e in doc["batch"]["errors"]}
    assert errors == {"corrupt.pcap", "empty.pcap"}
    assert result.stderr.count("tcpdiag: error: ") == 2


def test_any_number_of_jobs_gives_the_same_output(tree: Path) -> None:
    outputs = []
    for jobs in ("1", "2", "3"):
        result = runner.invoke(app, ["analyze", "-j", jobs, "-q", str(tree)])
        assert result.exit_code == 2
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "== batch summary: " in outputs[0]


def test_exit_status_2_beats_1_beats_0() -> None:
    clean, finding = str(SAMPLES / "graceful_close.pcap"), str(SAMPLES / "broken_pipe.pcap")
    assert runner.invoke(app, ["analyze", "-q", clean, clean]).exit_code == 0
    assert runner.invoke(app, ["analyze", "-q", clean, finding]).exit_code == 1
    assert runner.invoke(app, ["analyze", "-q", finding, "/vanished.pcap", clean]).exit_code == 2


def test_a_directory_as_a_file_and_a_vanished_file_are_error_rows(tmp_path: Path) -> None:
    inputs = [
        CaptureInput((str(SAMPLES / "broken_pipe.pcap"),)),
        CaptureInput((str(tmp_path),)),  # e.g. a glob matched a directory named *.pcap
        CaptureInput((str(tmp_path / "gone.pcap"),)),
    ]
    results = sorted(run_local(inputs, WorkerSettings(), jobs=2), key=lambda r: r.index)
    assert [r.index for r in results] == [0, 1, 2]
    assert results[0].report.error is None and len(results[0].findings) == 1
    assert "Is a directory" in (results[1].report.error or "")
    assert "No such file" in (results[2].report.error or "")


def _crash_on_purpose(path: Any, engine: Any, options: Any = None) -> Any:
    if "crash" in str(path):
        os._exit(70)  # as if the OOM killer had struck: no exception, the process is gone
    return analyze_capture(path, engine, options)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dying_worker_costs_only_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    crash = tmp_path / "crash.pcap"
    crash.write_bytes((SAMPLES / "mixed.pcap").read_bytes())
    names = ["broken_pipe.pcap", "refused_no_listener.pcap", "mixed.pcap", "graceful_close.pcap"]
    files = [SAMPLES / n for n in names]
    files.insert(2, crash)
    # Workers are forked from this process, so they run the patched function.
    monkeypatch.setattr(batch_mod, "analyze_capture", _crash_on_purpose)
    pools: list[int] = []  # the size of each pool made
    make_pool = batch_mod._Pool._executor

    def counted(pool: Any, workers: int) -> Any:
        pools.append(workers)
        return make_pool(pool, workers)

    monkeypatch.setattr(batch_mod._Pool, "_executor", counted)
    inputs = [CaptureInput((str(f),)) for f in files]
    results = sorted(run_local(inputs, WorkerSettings(), jobs=jobs), key=lambda r: r.index)
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert "worker process analysing it died" in (results[2].report.error or "")
    if jobs == 2:
        # Only the captures the 2 workers were on when one died are run alone; the rest, if
        # any were left, in a fresh shared pool.
        assert pools[0] == 2 and 1 <= pools.count(1) <= 2 and len(pools) <= 4
    for result, path in zip(results, files, strict=True):
        if path != crash:
            assert result.report.error is None
            assert [finding_dict(f) for f in result.findings] == single(path)["findings"]


def _split(sample: Path, directory: Path, cuts: list[int], names: list[str]) -> list[Path]:
    """The sample's records in consecutive files (pcap header repeated), cut before the given
    0-based record numbers."""
    data = sample.read_bytes()
    header, pos, offsets = data[:24], 24, []
    while pos < len(data):
        offsets.append(pos)
        (caplen,) = struct.unpack_from("<I", data, pos + 8)
        pos += 16 + caplen
    offsets.append(len(data))
    bounds = [0, *cuts, len(offsets) - 1]
    paths = []
    for name, start, end in zip(names, bounds, bounds[1:], strict=False):
        path = directory / name
        path.write_bytes(header + data[offsets[start] : offsets[end]])
        paths.append(path)
    return paths


@pytest.mark.parametrize("parts", [2, 3])
def test_join_reads_rotated_parts_as_the_whole_capture(tmp_path: Path, parts: int) -> None:
    sample = SAMPLES / "keepalive_timeout.pcap"
    with CaptureReader(sample) as reader:
        frames = list(reader)
    # Frames 1-7: handshake and data; 8-10: keepalive probes; 11: the prober's RST. Cut after
    # the first probe (and after the first data segment), so the probes and the RST that make
    # one keepalive_timeout are in different parts.
    assert len(frames) == 11
    cuts = [8] if parts == 2 else [4, 8]
    names = ["ka.pcap", "ka.pcap1", "ka.pcap2"][:parts]  # tcpdump -C names
    _split(sample, tmp_path, cuts, names)
    result = runner.invoke(app, ["analyze", "-f", "json", "-q", "--join", str(tmp_path)])
    (capture,) = json.loads(result.stdout)["captures"]
    whole = single(sample)
    assert capture["findings"] == whole["findings"]
    assert [f["category"] for f in whole["findings"]] == ["keepalive_timeout"]
    assert capture["packets"] == whole["packets"]
    assert [p["first_frame"] for p in capture["parts"]] == [1, *(c + 1 for c in cuts)]
    assert sum(p["frames"] for p in capture["parts"]) == len(frames)
    table = runner.invoke(app, ["analyze", "-q", "--join", str(tmp_path)]).stdout
    starts, ends = [1, *(c + 1 for c in cuts)], [*cuts, len(frames)]
    spans = ", ".join(
        f"{tmp_path / n} = frames {a}-{b}" for n, a, b in zip(names, starts, ends, strict=True)
    )
    assert f": {spans}\n" in table  # the summary says where each part's frames are
    # Without --join the last part starts mid-connection, and says so.
    apart = runner.invoke(app, ["analyze", "-f", "json", "-q", str(tmp_path)])
    last = json.loads(apart.stdout)["captures"][-1]
    assert any("(no handshake)" in w for w in last["warnings"])


def test_joined_parts_that_overlap_in_time_get_a_warning(tmp_path: Path) -> None:
    sample = (SAMPLES / "keepalive_timeout.pcap").read_bytes()  # 4 s long
    for name in ("copy.pcap", "copy.pcap1"):  # named as rotated parts, but the same capture
        (tmp_path / name).write_bytes(sample)
    result = runner.invoke(app, ["analyze", "-f", "json", "-q", "--join", str(tmp_path)])
    (capture,) = json.loads(result.stdout)["captures"]
    assert any("really parts of one capture" in w for w in capture["warnings"])


def test_selection_and_its_header_in_every_format() -> None:
    files = [str(SAMPLES / n) for n in ("mixed.pcap", "refused_ipv6.pcap", "broken_pipe.pcap")]
    selection = ["--category", "refused", "--category", "broken_pipe"]
    result = runner.invoke(app, ["analyze", "-f", "json", "-q", *selection, *files])
    doc = json.loads(result.stdout)
    for capture, path in zip(doc["captures"], files, strict=True):
        kept = [f for f in single(path)["findings"] if f["category"] in ("refused", "broken_pipe")]
        assert capture["findings"] == kept  # ids as in the whole report: filters never renumber
    assert doc["batch"]["filters"] == ["--category broken_pipe", "--category refused"]
    counted = [sum(row["findings"].values()) for row in doc["batch"]["findings_per_capture"]]
    assert counted == [len(c["findings"]) for c in doc["captures"]]
    table = runner.invoke(app, ["analyze", "-q", "--min-confidence", "0.99", *files])
    assert "filters: --min-confidence 0.99" in table.stdout
    window = ["--since", "2000-01-01", "--until", "2000-01-02"]
    markdown = runner.invoke(app, ["analyze", "-q", "-f", "markdown", *window, *files])
    assert "--until 2000-01-02T00:00:00.000000Z" in markdown.stdout.replace("\\-", "-")
    assert "## Batch summary: 3 captures" in markdown.stdout
    assert markdown.exit_code == 0  # every sample is later than 2000: nothing kept
    later = json.loads(
        runner.invoke(app, ["analyze", "-f", "json", "-q", "--since", "2000-01-01", *files]).stdout
    )
    assert [c["findings"] for c in later["captures"]] == [single(p)["findings"] for p in files]


def test_bad_selection_values_are_one_line_errors() -> None:
    sample = str(SAMPLES / "mixed.pcap")
    for option in (["--since", "yesterday"], ["--until", "2000-13-01"], ["--category", "nonsense"]):
        result = runner.invoke(app, ["analyze", *option, sample])
        assert result.exit_code == 2
        assert result.stderr.startswith("tcpdiag: error: ") and result.stderr.count("\n") == 1


def test_the_summary_counts_findings_per_category_and_endpoints() -> None:
    files = [str(SAMPLES / "mixed.pcap"), str(SAMPLES / "broken_pipe.pcap")]
    doc = json.loads(runner.invoke(app, ["analyze", "-f", "json", "-q", *files]).stdout)
    summary = doc["batch"]
    for row, path in zip(summary["findings_per_capture"], files, strict=True):
        categories: dict[str, int] = {}
        for finding in single(path)["findings"]:
            categories[finding["category"]] = categories.get(finding["category"], 0) + 1
        assert row["findings"] == categories
    total = sum(len(single(p)["findings"]) for p in files)
    assert sum(s["findings"] for s in summary["top_servers"]) == total
    assert summary["first_time"] <= summary["last_time"]


def test_the_summary_fits_every_format() -> None:
    files = [str(SAMPLES / "mixed.pcap"), str(SAMPLES / "broken_pipe.pcap")]
    lines = runner.invoke(app, ["analyze", "-f", "jsonl", "-q", *files]).stdout.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert records[-1]["type"] == "batch" and records[-1]["captures"] == 2
    csv_text = runner.invoke(app, ["analyze", "-f", "csv", "-q", *files]).stdout
    assert "batch summary" not in csv_text.lower()
    single_capture = runner.invoke(app, ["analyze", "-f", "json", "-q", files[0]]).stdout
    assert "batch" not in json.loads(single_capture)


def _tcpdiag(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tcpdiag", "analyze", *args], **kwargs)


def test_a_full_disk_or_a_closed_pipe_is_one_line_and_exit_2() -> None:
    files = [str(SAMPLES / "mixed.pcap"), str(SAMPLES / "broken_pipe.pcap")]
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            proc = _tcpdiag(*files, stdout=full, stderr=subprocess.PIPE)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert err.decode() == "tcpdiag: error: cannot write the report: No space left on device\n"
        to_file = _tcpdiag("-f", "json", "-o", "/dev/full", *files, stderr=subprocess.PIPE)
        _, err = to_file.communicate(timeout=60)
        assert to_file.returncode == 2
        assert err.decode() == "tcpdiag: error: cannot write the report: No space left on device\n"
    proc = _tcpdiag("-f", "json", *files, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(5)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 2
    assert "Traceback" not in err and err.count("\n") <= 1


def test_ctrl_c_reports_what_finished_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # Standard input that never ends keeps the batch running while the file is analysed.
    temp = tmp_path / "tmp"
    temp.mkdir()
    # (SIGINT back to its default in the child: a test run in the background inherits it
    # ignored, and Python then never raises KeyboardInterrupt, as a user's Ctrl-C would.)
    proc = _tcpdiag(
        "-v", "-f", "json", "-", str(SAMPLES / "mixed.pcap"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(temp)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # -v: the file is done
    assert "mixed.pcap" in line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: 1 of 2 captures reported" in err.decode()
    doc = json.loads(out)
    assert [c["path"] for c in doc["captures"]] == [str(SAMPLES / "mixed.pcap")]
    assert doc["batch"]["interrupted"] is True
    assert list(temp.iterdir()) == []


def test_join_chains_parts_by_time_when_their_names_say_nothing(tmp_path: Path) -> None:
    """Parts named anyhow are still one capture when each starts right after the previous one
    ended; a file from another time stays apart."""
    sample = SAMPLES / "keepalive_timeout.pcap"
    _split(sample, tmp_path, [8], ["before-lunch.pcap", "afternoon.pcap"])  # 1 s apart
    # Another capture, from an hour later (its record timestamps moved on by 3600 s).
    data = bytearray((SAMPLES / "broken_pipe.pcap").read_bytes())
    pos = 24
    while pos < len(data):
        seconds, _, caplen = struct.unpack_from("<III", data, pos)
        struct.pack_into("<I", data, pos, seconds + 3600)
        pos += 16 + caplen
    (tmp_path / "unrelated.pcap").write_bytes(bytes(data))
    result = runner.invoke(app, ["analyze", "-f", "json", "-q", "--join", str(tmp_path)])
    captures = json.loads(result.stdout)["captures"]
    joined = next(c for c in captures if c.get("parts"))
    assert [os.path.basename(p["path"]) for p in joined["parts"]] == [
        "before-lunch.pcap",
        "afternoon.pcap",
    ]
    assert joined["findings"] == single(sample)["findings"]
    assert len(captures) == 2  # the unrelated capture is analysed on its own


def test_the_batch_summary_counts_a_bounded_number_of_endpoints_within_one_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A capture whose findings name more server endpoints than MAX_ENDPOINTS (a scan of every
    port) never has more than that counted at once; the most frequent stay on top."""
    from tcpdiag import batch_summary
    from tcpdiag.analyze import CaptureReport
    from tcpdiag.findings import AppView, Finding

    monkeypatch.setattr(batch_summary, "MAX_ENDPOINTS", 40)
    summary = batch_summary.BatchSummary()
    sizes: list[int] = []

    def finding(port: int) -> Finding:
        view = AppView(None)
        return Finding("refused", "r", "t", "10.0.0.1:40000", f"10.0.0.2:{port}", True, [1],
                       1.0, [], "", "", view, view, "", None, 0.5, [], "", [], 1, "")  # fmt: skip

    report = CaptureReport(path="scan.pcap")
    # Port 1 again and again among a thousand others: the one a summary must keep.
    report.findings.extend(finding(1 if k % 3 == 0 else 1000 + k) for k in range(1000))

    def shown(f: Finding) -> bool:
        sizes.append(len(summary.servers))  # as counted before this finding
        return True

    summary.add(report, shown)
    assert len(sizes) == 1000 and max(sizes) <= 40 + 1 and len(summary.servers) <= 40
    assert summary.servers.most_common(1) == [("10.0.0.2:1", 334)]


def test_a_closed_standard_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # `tcpdiag analyze x.pcap >&-`: Python starts with no sys.stdout at all.
    capture = str(SAMPLES / "broken_pipe.pcap")

    def run(*args: str) -> tuple[int, str]:
        proc = _tcpdiag(*args, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err.decode()

    assert run(capture) == (
        2,
        "tcpdiag: error: cannot write the report: standard output is closed\n",
    )
    report = tmp_path / "report.jsonl"
    status, err = run("-f", "jsonl", "-o", str(report), capture)  # no need of stdout
    assert (status, err) == (1, "")
    assert any(json.loads(line).get("rule", "").startswith("broken-pipe")
               for line in report.read_text().splitlines())  # fmt: skip
    # Commands whose output can only go there (not a silent exit 0).
    for command in (["rules"], ["--version"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tcpdiag", *command],
            stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1), timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.decode() == (
            "tcpdiag: error: cannot write the output: standard output is closed\n"
        )


def test_the_summary_counts_the_hangs_of_each_capture() -> None:
    """A capture an application hung in has no finding: the summary's hangs column (there
    only when a capture has one) and JSON's per-capture count point the team to it."""
    hung, other = str(SAMPLES / "reader_stopped_hang.pcap"), str(SAMPLES / "broken_pipe.pcap")
    doc = json.loads(runner.invoke(app, ["analyze", "-f", "json", "-q", hung, other]).stdout)
    rows = doc["batch"]["findings_per_capture"]
    assert [(row["hangs"], row["findings"]) for row in rows] == [(1, {}), (0, {"broken_pipe": 1})]
    table = runner.invoke(app, ["analyze", "-q", hung, other]).stdout
    header = next(line for line in table.splitlines() if line.startswith("capture "))
    assert header.split() == ["capture", "status", "packets", "broken_pipe", "hangs", "findings"]
    plain = runner.invoke(app, ["analyze", "-q", other, str(SAMPLES / "mixed.pcap")]).stdout
    assert " hangs " not in next(line for line in plain.splitlines() if line.startswith("capture "))
