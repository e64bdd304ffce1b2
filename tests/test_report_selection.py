"""Stable finding ids, the finding filters and --limit, the exit status (--fail-on), filters
echoed in headers and reported on stderr when they match nothing, and `tcpdiag show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowbuilder import LINUX_SYN, Capture, Conversation, write_pcap
from typer.testing import CliRunner

from tcpdiag.cli import app
from tcpdiag.packets import SYN

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MIXED = SAMPLES / "mixed.pcap"
runner = CliRunner()


def ids_by_category(*args: str) -> dict[str, str]:
    result = runner.invoke(app, ["analyze", "-f", "json", *args, str(MIXED)])
    findings: list[dict[str, Any]] = json.loads(result.stdout)["captures"][0]["findings"]
    return {f["category"]: f["id"] for f in findings}


def test_ids_do_not_change_with_filters_or_limit() -> None:
    everything = ids_by_category()
    assert len(everything) == 3
    broken_pipe_port = json.loads((SAMPLES / "mixed.expected.json").read_text())["findings"][2][
        "server"
    ].rsplit(":", 1)[1]
    assert ids_by_category("--port", broken_pipe_port) == {"broken_pipe": everything["broken_pipe"]}
    assert ids_by_category("--category", "peer_reset") == {"peer_reset": everything["peer_reset"]}
    assert ids_by_category("--limit", "1") == everything
    # The same ids in the table, the Markdown, and tcpdiag flows.
    table = runner.invoke(app, ["analyze", "--port", broken_pipe_port, str(MIXED)]).stdout
    assert f"\n{everything['broken_pipe']} " in table
    flows = json.loads(runner.invoke(app, ["flows", "-f", "json", str(MIXED)]).stdout)
    listed = {i for c in flows["captures"][0]["connections"] for i in c["findings"]}
    assert listed == set(everything.values())


def test_selection_options_select_findings() -> None:
    assert set(ids_by_category("--category", "refused", "--category", "broken_pipe")) == {
        "refused",
        "broken_pipe",
    }
    assert ids_by_category("--impact", "none") == {}
    assert ids_by_category("--min-confidence", "1") == {}
    bad = runner.invoke(app, ["analyze", "--category", "bogus", str(MIXED)])
    assert bad.exit_code == 2 and "not a category" in bad.stderr


def test_exit_1_means_an_application_saw_an_error() -> None:
    scan = str(SAMPLES / "syn_scan.pcap")  # findings, but nobody's program was told anything
    assert runner.invoke(app, ["analyze", scan]).exit_code == 0
    assert runner.invoke(app, ["analyze", "--fail-on", "any", scan]).exit_code == 1
    assert runner.invoke(app, ["analyze", "--fail-on", "half_open_scan", scan]).exit_code == 1
    assert runner.invoke(app, ["analyze", str(MIXED)]).exit_code == 1
    assert runner.invoke(app, ["analyze", "--fail-on", "never", str(MIXED)]).exit_code == 0
    assert (
        runner.invoke(app, ["analyze", "--fail-on", "refused,peer_reset", str(MIXED)]).exit_code
        == 1
    )
    assert runner.invoke(app, ["analyze", "--fail-on", "half_open_scan", str(MIXED)]).exit_code == 0
    # Only selected findings count: with the refusal filtered out, nothing fails on refused.
    args = ["analyze", "--fail-on", "refused", "--category", "peer_reset", str(MIXED)]
    assert runner.invoke(app, args).exit_code == 0
    bad = runner.invoke(app, ["analyze", "--fail-on", "sometimes", str(MIXED)])
    assert bad.exit_code == 2 and "--fail-on" in bad.stderr
    assert "Exit status" in runner.invoke(app, ["analyze", "--help"]).stdout


def test_fail_on_hang_exits_1_for_a_capture_with_a_hang() -> None:
    """A hang is no finding (exit 0 by default), but a watch job may want to hear of it: `hang`
    among --fail-on's words, with the others or alone; `never` still wins."""
    hung = str(SAMPLES / "reader_stopped_hang.pcap")
    codes = {
        words: runner.invoke(app, ["analyze", *(["--fail-on", words] if words else []), hung])
        for words in ("", "any", "hang", "error_seen,hang", "never,hang")
    }
    assert {words: result.exit_code for words, result in codes.items()} == {
        "": 0,
        "any": 0,
        "hang": 1,
        "error_seen,hang": 1,
        "never,hang": 0,
    }
    # (hang alone names no finding: a capture whose findings an application saw exits 0)
    assert runner.invoke(app, ["analyze", "--fail-on", "hang", str(MIXED)]).exit_code == 0


def test_filters_are_echoed_and_a_filter_matching_nothing_says_so() -> None:
    for fmt in ("table", "markdown", "html", "json", "jsonl"):
        result = runner.invoke(app, ["analyze", "-f", fmt, "--port", "9", "--impact", "none",
                                     str(MIXED)])  # fmt: skip
        assert "--port 9" in result.stdout and "--impact none" in result.stdout, fmt
        assert "no connection matches the filters" in result.stderr
        assert result.exit_code == 0
    matching = runner.invoke(app, ["analyze", "--host", "127.0.0.1", str(MIXED)])
    assert "no connection matches" not in matching.stderr


def test_limit_bounds_detailed_sections_and_says_how_many_more() -> None:
    result = runner.invoke(app, ["analyze", "-f", "markdown", "--limit", "1", str(MIXED)])
    assert result.stdout.count("```mermaid") == 1
    assert "2 more groups of findings not detailed here" in result.stdout
    assert "tcpdiag analyze -f json" in result.stdout


def test_show_prints_the_ladder_states_and_verdict_frame() -> None:
    capture = json.loads(runner.invoke(app, ["analyze", "-f", "json", str(MIXED)]).stdout)
    finding = next(f for f in capture["captures"][0]["findings"] if f["category"] == "broken_pipe")
    verdict = next(e["frame"] for e in finding["evidence"] if e["time"] == finding["time"])
    result = runner.invoke(app, ["show", str(MIXED), finding["id"]])
    assert result.exit_code == 0, result.output
    rows = {int(line.split()[0]): line for line in result.stdout.splitlines() if line[:1].isdigit()}
    assert set(finding["frames"]) <= set(rows)
    assert "VERDICT" in rows[verdict]
    assert "CLOSE-WAIT" in rows[finding["frames"][0]]  # the server, after the client's FIN
    assert "SYN" in rows[min(rows)] and rows[min(rows)].split()[1] == "+0"
    assert finding["wireshark_filter"] in result.stdout
    by_conn = runner.invoke(
        app, ["show", str(MIXED), "--conn", finding["client"], finding["server"]]
    )
    assert by_conn.stdout == result.stdout
    for bad in (["show", str(MIXED), "F99"], ["show", str(MIXED)],
                ["show", str(MIXED), "--conn", "1.2.3.4:1", "5.6.7.8:2"],
                ["show", "/nonexistent.pcap", "F1"]):  # fmt: skip
        failed = runner.invoke(app, bad)
        assert failed.exit_code == 2 and failed.stderr.startswith("tcpdiag: error: ")
        assert "Traceback" not in failed.output


def test_show_an_aggregated_finding_names_it_and_shows_its_first_member(tmp_path: Path) -> None:
    """`tcpdiag show CAPTURE A1`: the aggregate analyze reports under that id (with the same
    --aggregate-over), and the ladder of its first member."""
    cap = Capture()
    for port in range(20, 32):  # one scanner, twelve closed ports: a port scan
        probe = Conversation(cap, client=("10.8.0.1", 41000 + port), server=("10.8.0.2", port))
        probe.send("c", SYN, options=LINUX_SYN)
        probe.rst("s")
    path = tmp_path / "scan.pcap"
    write_pcap(cap, path)
    report = json.loads(
        runner.invoke(app, ["analyze", "-f", "json", "--aggregate-over", "5", str(path)]).stdout
    )["captures"][0]
    [aggregate] = report["aggregates"]
    result = runner.invoke(app, ["show", str(path), "a1", "--aggregate-over", "5"])
    assert result.exit_code == 0, result.output
    first = aggregate["first_members"][0]
    assert f"aggregated finding A1 {aggregate['category']}: {aggregate['title']}" in result.stdout
    assert f"the ladder below is its first member, {first}" in result.stdout
    assert f"finding {first} refused" in result.stdout and "VERDICT" in result.stdout
    assert aggregate["wireshark_filter"] in result.stdout
    for bad in (["show", str(path), "A2", "--aggregate-over", "5"], ["show", str(path), "A1"]):
        failed = runner.invoke(app, bad)  # no A2; and with the default 100, no aggregate at all
        assert failed.exit_code == 2 and failed.stderr.startswith("tcpdiag: error: ")
        assert "no aggregated finding" in failed.stderr and "\n" not in failed.stderr.strip()
