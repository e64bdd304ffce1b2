"""Every output format of `analyze` and `flows` says what the capture shows: the verdicts, the
errno names, frame numbers and times, checked against samples/*.expected.json (never against
today's wording of explanations, which the rules own)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tcpdiag import __version__
from tcpdiag.cli import app
from tcpdiag.findings import _iso_time_slow, iso_time
from tcpdiag.reporters import units
from tcpdiag.reporters.common import csv_cell
from tcpdiag.reporters.jsontext import json_text

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MIXED = SAMPLES / "mixed.pcap"
runner = CliRunner()


def expected(name: str) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = json.loads((SAMPLES / f"{name}.expected.json").read_text())[
        "findings"
    ]
    return findings


def analyze_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["analyze", "-f", "json", *args])
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def mixed_findings() -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = analyze_json(str(MIXED))["captures"][0]["findings"]
    return findings


def test_table_opens_with_span_and_counts_then_each_finding_with_time_and_errno() -> None:
    result = runner.invoke(app, ["analyze", str(MIXED)])
    out = result.stdout
    assert result.exit_code == 1
    assert "41 packets, 5 TCP connections, 3 findings" in out
    assert "time span: 2026-11-25 16:59:27.962847 UTC to 2026-11-25 16:59:28.548517 UTC" in out
    for finding, want in zip(mixed_findings(), expected("mixed"), strict=True):
        assert finding["category"] == want["category"]
        row = next(line for line in out.splitlines() if line.startswith(finding["id"] + " "))
        assert want["category"] in row and want["client"] in row
        assert finding["time"].replace("T", " ").replace("Z", " UTC") in row
        for errno in (want["client_errno"], want["server_errno"]):
            assert (errno or "nothing") in row
    assert " - " not in out.split("\n\n")[1]  # no bare "-" cell: "nothing" or "unknown"


def test_plurals_and_human_units() -> None:
    assert units.plural(1, "finding") == "1 finding" and units.plural(2, "finding") == "2 findings"
    assert units.duration(3.3e-05) == "33 µs"
    assert units.duration(0.0485) == "48.5 ms"
    assert units.duration(4.05) == "4.05 s"
    assert units.duration(200) == "3 min 20 s"
    assert units.duration(7500) == "2 h 5 min"
    assert units.size(900) == "900 bytes" and units.size(1536) == "1.5 KiB"
    assert units.size(5 * 1024 * 1024) == "5.0 MiB"
    one = runner.invoke(app, ["analyze", str(SAMPLES / "broken_pipe.pcap")]).stdout
    assert "1 TCP connection, 1 finding" in one


def test_localtime_changes_the_clock_not_the_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XST-5:30")  # a POSIX zone string: needs no tz database
    import time

    time.tzset()
    try:
        out = runner.invoke(app, ["analyze", "--localtime", str(MIXED)]).stdout
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "2026-11-25 22:29:28.025082 XST" in out and "UTC" not in out


def test_json_findings_carry_wireshark_filters_and_split_endpoints() -> None:
    doc = analyze_json(str(MIXED))
    assert doc["schema_version"] and doc["version"] == __version__
    capture = doc["captures"][0]
    assert capture["first_time"] == "2026-11-25T16:59:27.962847Z"
    assert capture["duration"] == pytest.approx(0.58567)
    for finding, want in zip(capture["findings"], expected("mixed"), strict=True):
        ip, port = want["client"].rsplit(":", 1)
        assert (finding["client_ip"], finding["client_port"]) == (ip, int(port))
        assert finding["server_port"] == int(want["server"].rsplit(":", 1)[1])
        assert f"tcp.port=={port}" in finding["wireshark_filter"]
        assert finding["wireshark_frames"] == (
            "frame.number in {" + " ".join(map(str, finding["frames"])) + "}"
        )
        assert finding["impact"] == "error_seen"


def test_jsonl_lines_are_self_contained() -> None:
    result = runner.invoke(app, ["analyze", "-f", "jsonl", str(MIXED)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["capture", "finding", "finding", "finding"]
    for line in lines:
        assert line["tool"] == "tcpdiag" and line["version"] == __version__
        assert line["capture"] == str(MIXED)
    findings = lines[1:]
    assert [f["category"] for f in findings] == [w["category"] for w in expected("mixed")]
    assert [f["client_sees"]["errno"] for f in findings] == [
        w["client_errno"] for w in expected("mixed")
    ]
    flows = runner.invoke(app, ["flows", "-f", "jsonl", str(MIXED)]).stdout.splitlines()
    kinds = [json.loads(line)["type"] for line in flows]
    assert kinds == ["capture"] + ["flow"] * 5


def test_csv_has_a_row_per_finding_with_errnos_and_frames() -> None:
    result = runner.invoke(app, ["analyze", "-f", "csv", str(MIXED)])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    want = expected("mixed")
    assert [r["category"] for r in rows] == [w["category"] for w in want]
    assert [r["client_sees"] for r in rows] == [w["client_errno"] or "nothing" for w in want]
    assert [r["server_sees"] for r in rows] == [w["server_errno"] or "nothing" for w in want]
    json_frames = [" ".join(map(str, f["frames"])) for f in mixed_findings()]
    assert [r["frames"] for r in rows] == json_frames


@pytest.mark.parametrize("cell", ['=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)"])
def test_csv_cells_that_look_like_formulas_are_neutralised(cell: str) -> None:
    assert str(csv_cell(cell)).startswith("'")
    assert csv_cell("127.0.0.1") == "127.0.0.1" and csv_cell(3) == 3
    assert csv_cell("\t=1") == "\\x09=1"  # a leading tab is made visible, so no formula


def test_csv_neutralises_a_hostile_capture_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "=cmd.pcap").write_bytes((SAMPLES / "refused_no_listener.pcap").read_bytes())
    monkeypatch.chdir(tmp_path)
    for command in (["analyze", "-f", "csv"], ["flows", "-f", "csv"]):
        rows = list(csv.reader(io.StringIO(runner.invoke(app, [*command, "=cmd.pcap"]).stdout)))
        assert rows[1][0] == "'=cmd.pcap"


def test_zeek_conn_log_reads_like_zeek_cut_would() -> None:
    result = runner.invoke(app, ["flows", "-f", "zeek", str(MIXED)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "#separator \\x09"
    header = {line.split("\t", 1)[0]: line.split("\t")[1:] for line in lines if line[0] == "#"}
    fields, types = header["#fields"], header["#types"]
    assert len(fields) == len(types)
    assert {"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "conn_state",
            "history"} <= set(fields)  # fmt: skip
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in lines if line[0] != "#"]
    flows = json.loads(runner.invoke(app, ["flows", "-f", "json", str(MIXED)]).stdout)
    want = flows["captures"][0]["connections"]
    assert [r["conn_state"] for r in rows] == [w["conn_state"] for w in want]
    assert [f"{r['id.orig_h']}:{r['id.orig_p']}" for r in rows] == [w["client"] for w in want]
    assert [iso_time(float(r["ts"])) for r in rows] == [w["first_time"] for w in want]
    assert len({r["uid"] for r in rows}) == len(rows)


def test_output_file_format_follows_the_extension(tmp_path: Path) -> None:
    for name, marker in (("r.md", "# tcpdiag report"), ("r.html", "<!DOCTYPE html>"),
                         ("r.json", '"captures"'), ("r.jsonl", '"type":"capture"')):  # fmt: skip
        target = tmp_path / name
        result = runner.invoke(app, ["analyze", "-o", str(target), str(MIXED)])
        assert result.exit_code == 1 and result.stdout == ""
        assert marker in target.read_text(encoding="utf-8")
    first_line = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first_line)["type"] == "capture"
    bad = runner.invoke(app, ["analyze", "-o", str(tmp_path / "r.xyz"), str(MIXED)])
    assert bad.exit_code == 2 and bad.stderr.startswith("tcpdiag: error: ")


def test_rules_markdown_table_keeps_one_line_per_rule() -> None:
    out = runner.invoke(app, ["rules", "-f", "markdown"]).stdout.strip().splitlines()
    rules = json.loads(runner.invoke(app, ["rules", "-f", "json"]).stdout)["rules"]
    assert len(out) == 2 + len(rules)  # header, separator, a row each: no wrapped cells
    assert all(line.startswith("|") and line.endswith("|") for line in out)
    assert all(line.count("|") - line.count("\\|") == 5 for line in out)


def test_explain_prints_each_category_from_the_rules() -> None:
    rules = json.loads(runner.invoke(app, ["rules", "-f", "json"]).stdout)["rules"]
    for category in {r["category"] for r in rules}:
        result = runner.invoke(app, ["explain", category])
        assert result.exit_code == 0
        assert result.stdout.startswith(f"{category}: ")
        for rule in (r for r in rules if r["category"] == category):
            assert f"rule {rule['id']}" in result.stdout
    refused = runner.invoke(app, ["explain", "refused"]).stdout
    assert "ECONNREFUSED" in refused and "next step:" in refused
    # An errno chosen by a fact is shown with its map, not only the default.
    icmp = " ".join(runner.invoke(app, ["explain", "icmp_error"]).stdout.split())
    assert "by icmp_kind: net_unreachable: ENETUNREACH," in icmp
    assert "port_unreachable: ECONNREFUSED," in icmp
    bad = runner.invoke(app, ["explain", "nonsense"])
    assert bad.exit_code == 2 and "not a category" in bad.stderr


def test_iso_time_is_what_datetime_gives() -> None:
    """iso_time splits the epoch into seconds and microseconds itself (formatting each second's
    calendar part once): the same text as datetime's, rounding (half to even, into the next
    second), negative and out-of-calendar times included."""
    edges = [
        0.0, -0.5, -1e-7, 1e-7, 0.9999995, 0.9999994999, 1.0000005, 1732536000.9999995,
        1732536000.0000005, 1732536000.123456789, 2.0**31, -(2.0**31), 253402300799.9999,
        253402300800.0, 1e20, -1e20, -62135596800.0, -62135596801.0,
        float("nan"), float("inf"), float("-inf"),
    ]  # fmt: skip
    rng = np.random.default_rng(7)
    clustered = 1732536000 + rng.random(5_000) * 100
    wide = rng.uniform(-1e10, 1e11, 5_000)
    rounded = np.round(rng.uniform(0, 2e9, 5_000), 6) + rng.choice([0, 5e-7, -5e-7], 5_000)
    for epoch in [*edges, *clustered.tolist(), *wide.tolist(), *rounded.tolist()]:
        assert iso_time(epoch) == _iso_time_slow(epoch), epoch


# JSON values as reports hold them: any text (controls, bidi marks, astral characters), any
# integer (beyond 64 bits too), finite floats, nested lists and objects in a given key order.
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_json_text_is_the_same_json_as_the_json_module_in_ascii(value: Any) -> None:
    text = json_text(value)
    assert text.isascii() and "\n" not in text
    assert json.loads(text) == json.loads(json.dumps(value))
    # The same keys in the same order (a stable interface reads better in order).
    if isinstance(value, dict):
        assert list(json.loads(text)) == list(value)


def test_json_text_escapes_what_a_terminal_would_act_on() -> None:
    text = json_text({"capture": "evil\u202egpj.pcap", "what": "caf\u00e9\x1b[2J"})
    assert text == '{"capture":"evil\\u202egpj.pcap","what":"caf\\u00e9\\u001b[2J"}'
    assert json_text({"n": 2**70, 3: "key"}) == '{"n":1180591620717411303424,"3":"key"}'
    # A float JSON cannot hold is null, whichever encoder writes the line.
    nan = float("nan")
    assert json_text({"x": [nan, 1.5]}) == '{"x":[null,1.5]}'
    expected = '{"x":[null,null],"n":' + str(2**70) + "}"
    assert json_text({"x": (nan, float("inf")), "n": 2**70}) == expected


@pytest.mark.parametrize("sample", ["stale_connection_reuse", "keepalive_race"])
def test_a_program_that_read_end_of_file_is_said_to_have_got_eof(sample: str) -> None:
    """A client whose request was reset after the server's FIN saw no errno but an end of
    file: the table and CSV say EOF where an errno would be, JSON keeps errno null and names it
    in `label`, and no report says its program saw nothing."""
    path = str(SAMPLES / f"{sample}.pcap")
    (finding,) = analyze_json(path)["captures"][0]["findings"]
    assert finding["impact"] == "error_seen"
    assert finding["client_sees"]["errno"] is None and finding["client_sees"]["label"] == "EOF"
    assert finding["server_sees"]["label"] == ""
    table = runner.invoke(app, ["analyze", path]).stdout
    row = next(line for line in table.splitlines() if line.startswith("F1 "))
    assert row.split()[-3:-1] == ["EOF", "nothing"]
    rows = list(
        csv.DictReader(io.StringIO(runner.invoke(app, ["analyze", "-f", "csv", path]).stdout))
    )
    assert (rows[0]["client_sees"], rows[0]["server_sees"]) == ("EOF", "nothing")
    markdown = runner.invoke(app, ["analyze", "-f", "markdown", path]).stdout
    assert "got EOF" in markdown and f"({finding['client']}) saw nothing" not in markdown


def test_the_side_without_an_errno_saw_nothing_even_where_the_impact_is_unknown() -> None:
    """A connect probe's finding has impact unknown (the server's program sees ECONNRESET only
    if it had accept()ed the connection), but the prober closed on purpose: its side is
    "nothing" in every report, not "unknown"."""
    path = str(SAMPLES / "connect_probe_linger0.pcap")
    (finding,) = analyze_json(path)["captures"][0]["findings"]
    assert finding["impact"] == "unknown" and finding["server_sees"]["errno"] == "ECONNRESET"
    table = runner.invoke(app, ["analyze", path]).stdout
    row = next(line for line in table.splitlines() if line.startswith("F1 "))
    assert row.split()[-3:-1] == ["nothing", "ECONNRESET"]
    csv_text = runner.invoke(app, ["analyze", "-f", "csv", path]).stdout
    (record,) = csv.DictReader(io.StringIO(csv_text))
    assert (record["client_sees"], record["server_sees"]) == ("nothing", "ECONNRESET")
    markdown = runner.invoke(app, ["analyze", "-f", "markdown", path]).stdout
    assert (
        f"({finding['client']}) saw nothing" in markdown and "unknown (the capture" not in markdown
    )
