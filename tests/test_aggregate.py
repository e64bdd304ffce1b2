"""Floods become one finding, not a million (tcpdiag.aggregate): a port scan, SYN flood, reset
storm or ICMP storm of more than --aggregate-over findings is one aggregated finding in the
table, Markdown, HTML and JSON reports; JSON Lines keeps every finding and adds the aggregate."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, findings, write_pcap
from typer.testing import CliRunner

from tcpdiag import aggregate
from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, Planner, aggregates_of, plan_aggregates
from tcpdiag.analyze import CaptureReport
from tcpdiag.cli import app
from tcpdiag.packets import ACK, FIN, PSH, RST, SYN
from tcpdiag.reporters.digest import digest
from tcpdiag.reporters.html import render_html
from tcpdiag.reporters.json_report import render_json
from tcpdiag.reporters.markdown import render_markdown
from tcpdiag.reporters.selection import Selection
from tcpdiag.reporters.text import render_text
from tcpdiag.schema import load_schema

runner = CliRunner()
VALIDATOR = jsonschema.Draft202012Validator(load_schema())
SCANNER = "10.0.0.9"


def scan(cap: Capture, probes: int, scanner: str = SCANNER, first_port: int = 1) -> None:
    """Raw-socket SYNs from one source port to `probes` closed ports, each answered by RST."""
    for i in range(probes):
        port = first_port + i % 1000
        conv = Conversation(
            cap, client=(scanner, 50000), server=(f"10.0.{1 + i // 1000}.2", port),
            client_isn=1000 + i,
        )  # fmt: skip
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", RST | ACK, advance=False)


def refused_from_many(cap: Capture, sources: int, server: tuple[str, int], first: int = 0) -> None:
    for i in range(first, first + sources):
        conv = Conversation(cap, client=(f"10.8.{i // 200}.{1 + i % 200}", 40000), server=server)
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", RST | ACK, advance=False)


def reset_by_server(cap: Capture, connections: int, server: str = "10.0.0.6") -> None:
    for i in range(connections):
        conv = Conversation(
            cap, client=(f"10.5.{i // 200}.{1 + i % 200}", 41000), server=(server, 80)
        )
        conv.handshake()
        conv.data("c", 100)
        conv.data("s", 1000)
        conv.rst("s", dt=0.5)


def icmp_unreachable(cap: Capture, connections: int, router: str = "10.0.0.254") -> None:
    for i in range(connections):
        conv = Conversation(
            cap, client=("10.0.0.1", 30000 + i), server=(f"10.7.0.{1 + i % 250}", 443)
        )
        syn = conv.send("c", SYN, options=LINUX_SYN)
        conv.icmp(syn, 3, 1, src=router)


def one_peer_reset(cap: Capture) -> None:
    """A reset the client's application saw (seconds after the response: not the abortive
    close right after it, whose impact is unknown)."""
    conv = Conversation(cap, client=("10.0.0.5", 40000), server=("10.0.0.6", 80))
    conv.handshake()
    conv.data("c", 100)
    conv.data("s", 1000)
    conv.rst("s", dt=2.0)


def report_of(cap: Capture, path: str = "crafted.pcap") -> CaptureReport:
    report = CaptureReport(path=path)
    report.findings.extend(findings(cap))
    return report


def capture_file(tmp_path: Path, name: str, probes: int) -> Path:
    cap = Capture()
    scan(cap, probes)
    one_peer_reset(cap)
    path = tmp_path / name
    write_pcap(cap, path)
    return path


@pytest.fixture(scope="module")
def scan500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture_file(tmp_path_factory.mktemp("agg"), "scan500.pcap", 500)


@pytest.fixture(scope="module")
def scan60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture_file(tmp_path_factory.mktemp("agg"), "scan60.pcap", 60)


def analyze(*args: str) -> str:
    result = runner.invoke(app, ["analyze", "-q", *args])
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def test_a_scan_of_500_refusals_is_one_aggregated_finding_in_table_markdown_html(
    scan500: Path,
) -> None:
    table = analyze(str(scan500))
    rows = [line for line in table.splitlines() if line.startswith(("A1 ", "F"))]
    assert [r.split()[0] for r in rows if "  " in r] == ["F501", "A1"]  # the table's rows
    assert "A1 port_scan: 500 probes from 10.0.0.9 to 500 server endpoints (500 refused)" in table
    assert "members: 500 refused" in table
    assert "client programs saw: nothing (500)" in table
    assert "wireshark: ip.addr==10.0.0.9 && (tcp.flags.syn==1 || tcp.flags.reset==1)" in table
    assert "first members: F1 (10.0.0.9:50000 to 10.0.1.2:1, frames 1, 2)" in table
    assert "501 findings: 500 refused, 1 peer_reset" in table  # the counts stay per finding
    assert "clients scanning: 10.0.0.9 (500 targets)" in table
    assert table.count("F2") == 1  # only in the first members, never a row or section
    markdown = analyze("-f", "markdown", str(scan500))
    assert '<a id="g-a1"></a>' in markdown and "[A1](#g-a1)" in markdown
    assert "### A1 port\\_scan: 500 probes from 10.0.0.9" in markdown
    assert "**Aggregated:** 500 findings in 1 aggregated finding" in markdown
    page = analyze("-f", "html", str(scan500))
    assert 'id="g-a1"' in page and "A1 port_scan: 500 probes" in page


def test_json_has_the_aggregate_and_jsonl_every_finding(scan500: Path) -> None:
    doc = json.loads(analyze("-f", "json", str(scan500)))
    VALIDATOR.validate(doc)
    capture = doc["captures"][0]
    assert [f["category"] for f in capture["findings"]] == ["peer_reset"]
    assert capture["aggregated_findings"] == 500
    assert capture["aggregate_over"] == DEFAULT_AGGREGATE_OVER
    (agg,) = capture["aggregates"]
    assert (agg["id"], agg["category"], agg["subject"], agg["count"]) == (
        "A1", "port_scan", SCANNER, 500,
    )  # fmt: skip
    assert agg["members"] == {"refused": 500}
    assert (agg["sources"], agg["targets"], agg["distinct_capped"]) == (1, 500, False)
    assert agg["top_sources"] == [{"host": SCANNER, "count": 500}]
    assert agg["client_sees"] == {"nothing": 500} and agg["server_sees"] == {"nothing": 500}
    assert agg["first_members"] == ["F1", "F2", "F3", "F4", "F5"]
    assert agg["first_frames"][:4] == [1, 2, 3, 4]
    assert agg["duration"] > 0 and agg["rate"] == pytest.approx(500 / agg["duration"], rel=1e-3)
    lines = [json.loads(line) for line in analyze("-f", "jsonl", str(scan500)).splitlines()]
    for line in lines:
        VALIDATOR.validate(line)
    kinds = Counter(line["type"] for line in lines)
    assert kinds == {"capture": 1, "finding": 501, "aggregate": 1}
    members = [line for line in lines if line.get("aggregate") == "A1"]
    assert len(members) == 500 and {m["category"] for m in members} == {"refused"}
    assert lines[-1]["type"] == "aggregate" and lines[-1]["count"] == 500


def test_csv_and_exit_status_still_count_every_finding(scan500: Path) -> None:
    rows = analyze("-f", "csv", str(scan500)).splitlines()
    assert len(rows) == 1 + 501
    result = runner.invoke(app, ["analyze", "-q", "--fail-on", "refused", str(scan500)])
    assert result.exit_code == 1


def test_fewer_than_the_threshold_stay_individual(scan60: Path) -> None:
    doc = json.loads(analyze("-f", "json", str(scan60)))
    capture = doc["captures"][0]
    assert len(capture["findings"]) == 61
    assert capture["aggregates"] == [] and capture["aggregated_findings"] == 0
    table = analyze(str(scan60))
    assert "port_scan" not in table and "aggregated" not in table
    lines = analyze("-f", "jsonl", str(scan60)).splitlines()
    assert "aggregate" not in {json.loads(line)["type"] for line in lines}
    # The threshold is an option: over 30, the 60 probes are one aggregated finding.
    doc = json.loads(analyze("--aggregate-over", "30", "-f", "json", str(scan60)))
    assert doc["captures"][0]["aggregates"][0]["count"] == 60


def test_aggregate_over_0_never_aggregates(scan500: Path) -> None:
    doc = json.loads(analyze("--aggregate-over", "0", "-f", "json", str(scan500)))
    assert len(doc["captures"][0]["findings"]) == 501
    assert doc["captures"][0]["aggregates"] == []
    assert "A1" not in analyze("--aggregate-over", "0", str(scan500))


def test_the_option_is_documented() -> None:
    result = runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "200"})
    assert "--aggregate-over" in result.stdout and "0: never aggregate" in result.stdout
    result = runner.invoke(app, ["analyze", "--aggregate-over", "-1", "x.pcap"])
    assert result.exit_code == 2


def kinds_of(report: CaptureReport, threshold: int = DEFAULT_AGGREGATE_OVER) -> list[tuple]:
    d = digest(report, Selection(), threshold)
    return [(a.id, a.category, a.subject, a.count, dict(a.members)) for a in d.aggregates]


def test_every_kind_of_flood() -> None:
    cap = Capture()
    reset_by_server(cap, 150)
    icmp_unreachable(cap, 120)
    refused_from_many(cap, 130, ("10.0.0.2", 8443))
    found = kinds_of(report_of(cap))
    by_category = {row[1]: row for row in found}
    assert set(by_category) == {"reset_storm", "icmp_storm", "syn_flood"}
    assert by_category["reset_storm"][2:4] == ("10.0.0.6", 150)
    assert by_category["icmp_storm"][2:] == ("10.0.0.254", 120, {"icmp_error": 120})
    assert by_category["syn_flood"][2:] == ("10.0.0.2:8443", 130, {"refused": 130})
    assert [row[0] for row in found] == ["A1", "A2", "A3"]  # by their first finding
    assert [row[1] for row in found] == ["reset_storm", "icmp_storm", "syn_flood"]
    aggregates = json.loads(render_json([report_of(cap)]))["captures"][0]["aggregates"]
    filters = {a["category"]: a["wireshark_filter"] for a in aggregates}
    assert filters == {
        "reset_storm": "ip.src==10.0.0.6 && tcp.flags.reset==1",
        "icmp_storm": "ip.src==10.0.0.254 && icmp",
        "syn_flood": "ip.addr==10.0.0.2 && tcp.port==8443 && (tcp.flags.syn==1 || "
        "tcp.flags.reset==1)",
    }
    storm = next(a for a in aggregates if a["category"] == "reset_storm")
    assert storm["client_sees"] == {"ECONNRESET": 150}


def test_a_flood_counts_only_what_no_scan_took() -> None:
    """The scanner's probes of the flooded port belong to the scan: without them the flood has
    90 findings, under the threshold, so it stays individual."""
    cap = Capture()
    scan(cap, 150)  # ports 1-150 of 10.0.1.2 ...
    for i in range(20):  # ... and port 80 again and again
        conv = Conversation(cap, client=(SCANNER, 51000 + i), server=("10.0.1.2", 80))
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", RST | ACK, advance=False)
    refused_from_many(cap, 90, ("10.0.1.2", 80))
    assert kinds_of(report_of(cap)) == [("A1", "port_scan", SCANNER, 170, {"refused": 170})]
    refused_from_many(cap, 20, ("10.0.1.2", 80), first=90)  # 110 sources: a flood as well
    assert [row[1:4] for row in kinds_of(report_of(cap))] == [
        ("port_scan", SCANNER, 170), ("syn_flood", "10.0.1.2:80", 110),
    ]  # fmt: skip


def test_ids_and_groups_do_not_depend_on_the_finding_filters() -> None:
    cap = Capture()
    reset_by_server(cap, 150)
    scan(cap, 200)
    report = report_of(cap)
    whole = kinds_of(report)
    assert [row[:2] for row in whole] == [("A1", "reset_storm"), ("A2", "port_scan")]
    only_refused = digest(report, Selection(categories=frozenset({"refused"})))
    assert [(a.id, a.category, a.count) for a in only_refused.aggregates] == [
        ("A2", "port_scan", 200)
    ]
    text = render_text([report], Selection(categories=frozenset({"refused"})))
    assert "A2 port_scan" in text and "A1" not in text


def test_few_per_group_stay_individual_even_when_the_capture_has_many() -> None:
    """Many findings, but no group over the threshold: the report is the one without
    aggregation, byte for byte."""
    cap = Capture()
    for n in range(6):
        scan(cap, 40, scanner=f"10.0.0.{20 + n}")
    report = report_of(cap)
    assert len(report.findings) == 240 and kinds_of(report) == []
    for render in (render_text, render_markdown, render_html):
        assert render([report]) == render([report], aggregate_over=0)  # type: ignore[operator]
    plain = json.loads(render_json([report], aggregate_over=0))["captures"][0]
    assert json.loads(render_json([report]))["captures"][0]["findings"] == plain["findings"]


def test_tallies_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tally per group, forgotten when too many: a flood of distinct sources cannot make
    the first pass grow with the findings; a group seen often is still recognised."""
    monkeypatch.setattr(aggregate, "MAX_TALLIES", 64)
    cap = Capture()
    refused_from_many(cap, 400, ("10.0.0.2", 8443))  # 400 source hosts, one finding each
    scan(cap, 150)
    found = list(report_of(cap).findings)
    planner = Planner(100)
    for finding in found:
        planner.observe(finding)
        assert all(len(t) <= 64 for t in planner._tallies)
    plan = planner.plan(found)
    assert sorted(key for _, key in plan.chosen) == ["10.0.0.2:8443", SCANNER]


def test_the_first_pass_is_skipped_when_no_group_can_pass() -> None:
    class Once(list[Any]):
        reads = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            Once.reads += 1
            return super().__iter__()

    few = Once(range(50))
    assert not plan_aggregates(few, 100, len(few)) and Once.reads == 0


def test_a_scanner_past_the_counted_targets_is_reported_as_at_least(
    scan500: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest counts a scanner's distinct targets up to a bound: a count that reached it
    says so ("N+ targets") instead of passing for the exact number."""
    monkeypatch.setattr("tcpdiag.reporters.digest.SCANNER_TARGETS_KEPT", 100)
    monkeypatch.setattr("tcpdiag.reporters.story.SCANNER_TARGETS_KEPT", 100)
    assert "clients scanning: 10.0.0.9 (100+ targets)" in analyze(str(scan500))


def test_every_report_counts_a_flood_without_what_a_scan_took() -> None:
    """The same groups in the JSON and JSON Lines reports and `tcpdiag show` as in the table:
    the recount of a flood without the scan's probes reads the findings (their digests) a
    second time."""
    cap = Capture()
    scan(cap, 150)
    for i in range(20):
        conv = Conversation(cap, client=(SCANNER, 51000 + i), server=("10.0.1.2", 80))
        conv.send("c", SYN, options=LINUX_SYN)
        conv.send("s", RST | ACK, advance=False)
    refused_from_many(cap, 110, ("10.0.1.2", 80))
    report = report_of(cap)
    table = [row[1:4] for row in kinds_of(report)]
    assert table == [("port_scan", SCANNER, 170), ("syn_flood", "10.0.1.2:80", 110)]
    shown = [(a.category, a.subject, a.count) for a in aggregates_of(report.findings, 100, 300)]
    assert shown == table
    document = json.loads(render_json([report]))["captures"][0]
    assert [(a["category"], a["subject"], a["count"]) for a in document["aggregates"]] == table


def test_a_storm_of_stale_connections_says_their_clients_got_eof() -> None:
    """A server that turned 150 connections away (its FIN right after the handshake, then a
    RST to each client's request: a server out of connections, s22's wrk run against nginx)
    is one reset storm whose clients' programs saw EOF, not nothing."""
    cap = Capture()
    for i in range(150):
        conv = Conversation(
            cap, client=(f"10.5.{i // 200}.{1 + i % 200}", 41000), server=("10.0.0.6", 80)
        )
        conv.handshake()
        conv.send("s", FIN | ACK)
        conv.send("c", ACK)
        conv.send("c", PSH | ACK, 80)
        conv.rst("s", with_ack=False)
    (storm,) = json.loads(render_json([report_of(cap)]))["captures"][0]["aggregates"]
    assert storm["category"] == "reset_storm" and storm["members"] == {"broken_pipe": 150}
    assert storm["client_sees"] == {"EOF": 150} and storm["server_sees"] == {"nothing": 150}
    assert "client programs saw: EOF (150)" in render_text([report_of(cap)])


def test_a_server_closing_on_many_waiting_clients_is_one_close_storm() -> None:
    """A server that closed 150 connections with each request unanswered (FIN, no RST: nginx
    `return 444` for a bot's requests, a restart with requests in flight) is one close storm,
    keyed by the server endpoint, whose clients' programs saw EOF."""
    cap = Capture()
    for i in range(150):
        conv = Conversation(
            cap, client=(f"10.5.{i // 200}.{1 + i % 200}", 41000), server=("10.0.0.6", 80)
        )
        conv.handshake()
        conv.data("c", 80)
        conv.send("s", FIN | ACK, dt=0.002)
        conv.send("c", FIN | ACK, dt=0.0002)
        conv.send("s", ACK)
    report = report_of(cap)
    (storm,) = json.loads(render_json([report]))["captures"][0]["aggregates"]
    assert storm["category"] == "close_storm" and storm["subject"] == "10.0.0.6:80"
    assert storm["members"] == {"premature_close": 150}
    assert storm["client_sees"] == {"EOF": 150} and storm["server_sees"] == {"nothing": 150}
    assert storm["wireshark_filter"] == "ip.src==10.0.0.6 && tcp.srcport==80 && tcp.flags.fin==1"
