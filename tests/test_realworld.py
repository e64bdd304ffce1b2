"""Real traffic is the judge: public captures from other projects, hand-checked per connection.

`../shared/realworld/expected.json` (beside the repository, never copied into it: some captures
have no stated licence) lists, for each capture, every connection worth a verdict: the
categories a correct diagnosis may give and the errno each side's application saw (null: nothing;
"?": the capture cannot tell). Scored as its README says:

- a listed connection is right when every finding on its endpoint pair has an expected category
  (or there is none and "none" is expected), and, for each side whose errno is not "?", some
  finding gives that side exactly that errno (null = nothing);
- a finding on a pair that is not listed is a false alarm.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tcpdiag import fastpath
from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.reporters.json_report import render_json
from tcpdiag.rules import load_rules

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"
EXPECTED = REALWORLD / "expected.json"
ENGINE = RuleEngine(load_rules())

pytestmark = pytest.mark.skipif(
    not EXPECTED.is_file(), reason=f"the real-world corpus is not beside the repository: {EXPECTED}"
)


def _files() -> list[dict[str, Any]]:
    if not EXPECTED.is_file():
        return []
    files: list[dict[str, Any]] = json.loads(EXPECTED.read_text())["files"]
    return files


def endpoint(text: str) -> str:
    """'ip:port' or '[v6]:port' with the address in compressed form, for comparison."""
    if text.startswith("["):
        addr, port = text[1:].split("]:")
    else:
        addr, port = text.rsplit(":", 1)
    return f"{ipaddress.ip_address(addr).compressed}:{port}"


@cache
def findings_by_pair(name: str, fast_path: bool) -> dict[frozenset[str], list[dict[str, Any]]]:
    report = analyze_capture(REALWORLD / name, ENGINE, AnalysisOptions(fast_path=fast_path))
    assert report.error is None, report.error
    pairs: dict[frozenset[str], list[dict[str, Any]]] = {}
    for finding in report.findings:
        item = finding.to_dict()
        pair = frozenset({endpoint(item["client"]), endpoint(item["server"])})
        pairs.setdefault(pair, []).append(item)
    return pairs


def misses(flow: dict[str, Any], findings: Iterable[dict[str, Any]]) -> list[str]:
    """Why a listed connection is not right (empty: it is right)."""
    findings = list(findings)
    client, server = endpoint(flow["client"]), endpoint(flow["server"])
    if not findings:
        return [] if "none" in flow["expect"] else ["no finding"]
    wrong = [
        f"{f['category']} ({f['rule']}) is not in {flow['expect']}"
        for f in findings
        if f["category"] not in flow["expect"]
    ]
    for side, key in ((client, "client_sees"), (server, "server_sees")):
        wanted = flow[key]
        if wanted == "?":
            continue
        seen = [
            (f["client_sees"] if endpoint(f["client"]) == side else f["server_sees"])["errno"]
            for f in findings
        ]
        if wanted not in seen:
            wrong.append(f"{side} should see {wanted}, findings say {seen}")
    return wrong


CASES = [
    pytest.param(entry["file"], flow, id=f"{entry['file']}:{flow['client']}->{flow['server']}")
    for entry in _files()
    for flow in entry["flows"]
]


@pytest.mark.parametrize(("name", "flow"), CASES)
def test_listed_connection_is_diagnosed_right(name: str, flow: dict[str, Any]) -> None:
    pair = frozenset({endpoint(flow["client"]), endpoint(flow["server"])})
    problems = misses(flow, findings_by_pair(name, True).get(pair, []))
    assert not problems, f"{'; '.join(problems)}\n  ground truth: {flow['why']}"


@pytest.mark.parametrize("name", [entry["file"] for entry in _files()])
def test_no_false_alarm_on_unlisted_connections(name: str) -> None:
    entry = next(e for e in _files() if e["file"] == name)
    listed = {frozenset({endpoint(f["client"]), endpoint(f["server"])}) for f in entry["flows"]}
    alarms = [
        f"{f['category']} ({f['rule']}) on {f['client']} -> {f['server']}"
        for pair, found in findings_by_pair(name, True).items()
        if pair not in listed
        for f in found
    ]
    assert not alarms


@pytest.mark.parametrize("name", [entry["file"] for entry in _files()])
def test_reference_path_agrees_on_real_traffic(name: str) -> None:
    """The per-packet reference path and the fast path give the same findings here too."""
    assert findings_by_pair(name, False) == findings_by_pair(name, True)


@pytest.mark.parametrize("name", [entry["file"] for entry in _files()])
def test_the_fast_path_in_tiny_windows_agrees_on_real_traffic(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real captures are small enough for one window of the fast path. In windows of 16
    packets, their connections straddle windows and are continued in bulk (in parts of 4
    packets, however short the run): the whole report and the listed connections must still
    be the reference path's."""
    path = REALWORLD / name
    listing = AnalysisOptions(fast_path=False, keep_flows=True)
    reference = analyze_capture(path, ENGINE, listing)
    monkeypatch.setattr(fastpath, "WINDOW_ROWS", 16)
    monkeypatch.setattr(fastpath, "WINDOW_MAX_ROWS", 64)
    monkeypatch.setattr(fastpath, "_CONTINUE_ROWS", 4)
    monkeypatch.setattr(fastpath, "_CONTINUE_MIN_ROWS", 1)
    fast = analyze_capture(path, ENGINE, AnalysisOptions(keep_flows=True))
    assert fast.to_dict() == reference.to_dict()
    flows = [[flow.to_dict() for flow in r.connections] for r in (fast, reference)]
    assert flows[0] == flows[1]
    plain = analyze_capture(path, ENGINE, AnalysisOptions())
    assert (
        plain.to_dict() == analyze_capture(path, ENGINE, AnalysisOptions(fast_path=False)).to_dict()
    )


@pytest.mark.parametrize("name", [entry["file"] for entry in _files()])
def test_the_json_report_lists_every_scored_finding(name: str) -> None:
    """The corpus README scores `tcpdiag analyze --format json` per connection, and this test
    file scores the findings themselves: the same thing as long as the JSON report folds none
    of them into an aggregated finding (a scan, flood or storm of more than --aggregate-over
    findings). At the default threshold none of these captures has one (9 findings at most),
    so the score stands for the JSON report too."""
    report = analyze_capture(REALWORLD / name, ENGINE)
    capture = json.loads(render_json([report]))["captures"][0]
    assert capture["aggregates"] == []
    assert [f["id"] for f in capture["findings"]] == [f.id for f in report.findings]


def test_the_corpus_is_scored_whole() -> None:
    """The corpus README promises 37 captures and 59 connections: none silently skipped."""
    assert len(_files()) == 37
    assert len(CASES) == 59


# Zeek's own conn.log baselines for these traces (testing/btest/Baseline in the Zeek repository:
# scripts.base.protocols.ssh.half-duplex-client and
# scripts.base.protocols.modbus.modbus_and_non_modbus_on_port_502): where Zeek's timers split one
# 4-tuple into two rows. Per row: conn_state, history, orig_pkts, resp_pkts, duration.
ZEEK_SPLIT_ROWS = {
    "zeek_ssh_ssh.client-side-half-duplex.pcap": {
        ("192.168.1.79:51880", "131.159.21.1:22"): [
            ("S0", "SAD", 19, 0, 3.435401), ("SH", "DAF", 6, 0, 1.0255)],
        ("192.168.2.1:57189", "192.168.2.158:22"): [
            ("S0", "SAD", 21, 0, 0.098697), ("SH", "DAF", 17, 0, 1.381169)],
        ("192.168.2.1:56594", "192.168.2.158:22"): [
            ("S0", "SAD", 13, 0, 4.320795), ("SH", "DAF", 4, 0, 1.689473)],
        ("192.168.2.1:56875", "192.168.2.158:22"): [
            ("S0", "SAD", 12, 0, 3.431977), ("SH", "ADF", 7, 0, 6.130941)],
        ("192.168.1.32:41164", "128.2.10.238:22"): [
            ("S0", "SAD", 20, 0, 4.616008), ("SH", "DAF", 12, 0, 1.029134)],
    },
    "zeek_modbus_modbus-and-non-modbus-p502.pcap": {
        ("198.74.56.135:60293", "192.168.10.111:502"): [
            ("RSTO", "ShR", 2, 1, 0.117322), ("RSTRH", "Dr", 1, 1, 0.000054)],
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ZEEK_SPLIT_ROWS))
def test_flows_split_where_zeeks_timers_split(name: str) -> None:
    """Zeek removes a connection 5 s after an unanswered attempt or a completed close; a later
    packet on the same 4-tuple starts a new conn.log row. `tcpdiag flows` writes the same rows."""
    report = analyze_capture(REALWORLD / name, ENGINE, AnalysisOptions(keep_flows=True))
    for (client, server), expected in ZEEK_SPLIT_ROWS[name].items():
        rows = [
            (r.conn_state, r.history, r.client_packets, r.server_packets, round(r.duration, 6))
            for r in report.connections
            if (r.client, r.server) == (client, server)
        ]
        assert rows == expected, f"{client} -> {server}"
