"""The Markdown report: it answers, for every failed connection, when, who broke it and what each
program saw; it renders (code is code, capture text is escaped); it stays under 30,000
characters on a large capture; and one sample's report is kept as a reviewable snapshot.

Regenerate the snapshot after an intended change of the report's layout with

    TCPDIAG_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_report_markdown.py

and review the diff of tests/snapshots/ like code. The snapshot is of broken_pipe.pcap, whose
finding is the most settled one; if the rules' wording of that finding changes, regenerate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.analyze import CaptureReport, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.findings import AppView, EvidenceItem, Finding
from tcpdiag.reporters.common import code_span, markdown_text, prose
from tcpdiag.reporters.markdown import render_markdown
from tcpdiag.reporters.selection import RunInfo, Selection
from tcpdiag.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SNAPSHOT = ROOT / "tests" / "snapshots" / "broken_pipe.md"
ENGINE = RuleEngine(load_rules())
LIMIT = 30_000


def report_of(path: str) -> CaptureReport:
    return analyze_capture(path, ENGINE)


def test_snapshot_of_a_settled_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # relative paths, so the snapshot does not depend on the checkout
    command = ("tcpdiag", "analyze", "-f", "markdown", "samples/broken_pipe.pcap")
    text = render_markdown([report_of("samples/broken_pipe.pcap")], run=RunInfo(command, "0.1.0"))
    if os.environ.get("TCPDIAG_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8"), (
        "the Markdown report changed: review it, then regenerate with TCPDIAG_UPDATE_SNAPSHOTS=1"
    )


def test_who_broke_it_names_the_side_whose_abort_a_rst_answered() -> None:
    """An MPTCP v0 stack's MP_FASTCLOSE on an ACK ended the connection; the peer's RST only
    answered it (samples/mptcp_fastclose_ack.pcap: the server aborted, the client's stack
    sent the RST)."""
    report = report_of(str(SAMPLES / "mptcp_fastclose_ack.pcap"))
    text = render_markdown([report], run=RunInfo(("tcpdiag", "analyze", "x.pcap")))
    assert (
        "- **Who broke it:** the server 127.0.0.1:27340 ended it; the RST from the client "
        "127.0.0.1:60767 (frame 16, RST,ACK) answered" in text
    )


def test_every_failed_connection_says_when_who_and_what_each_program_saw() -> None:
    path = str(SAMPLES / "mixed.pcap")
    report = report_of(path)
    findings = [f.to_dict() for f in report.findings]
    text = render_markdown([report], run=RunInfo(("tcpdiag", "analyze", path)))
    assert text.startswith("# tcpdiag report\n\ntcpdiag ")
    span = "2026-11-25 16:59:27.962847 UTC to 2026-11-25 16:59:28.548517 UTC (586 ms)"
    assert markdown_text(span) in text
    sections = text.split('<a id="g-')[1:]
    want = json.loads((SAMPLES / "mixed.expected.json").read_text())["findings"]
    assert len(sections) == len(want) == len(findings)
    for section, finding, expected in zip(sections, findings, want, strict=True):
        when = finding["time"].replace("T", " ").replace("Z", " UTC")
        assert f"- **When:** {when}" in section
        assert "- **Who broke it:** " in section
        for role in ("client", "server"):
            line = next(x for x in section.splitlines() if x.startswith(f"- **{role.title()}:**"))
            errno = expected[f"{role}_errno"]
            assert (errno in line) if errno else line.endswith("saw nothing")
        assert section.count("```mermaid\nsequenceDiagram") == 1
        assert "```text\n" in section and "<< verdict" in section
        for frame in finding["frames"]:
            assert f"frame {frame}" in section
        assert code_span(finding_filter(finding)) in section


def finding_filter(finding: dict[str, Any]) -> str:
    from tcpdiag.reporters.common import wireshark_filter

    return wireshark_filter(_finding(finding["category"], finding["client"], finding["server"], 0))


@pytest.mark.parametrize(
    "name",
    [
        "![x](https:/evil.example/p.png).pcap",
        "[Full report](https://evil.example).pcap",
        "<img src=x onerror=alert(1)>.pcap",
        "a\u202egnp.pcap",
        "# heading|cell`code`.pcap",
    ],
)
def test_capture_names_never_render_as_markup(tmp_path: Path, name: str) -> None:
    target = tmp_path / name  # "/" in a name: directories, as a real path would have them
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "refused_no_listener.pcap", target)
    text = render_markdown([report_of(str(target))], run=RunInfo(("tcpdiag",)))
    outside_code = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.DOTALL)
    outside_code = re.sub(r"\[F\d+\]\(#g-f\d+\)", "", outside_code)  # the report's own anchors
    outside_code = re.sub(r"\\.", "", outside_code)  # a backslash-escaped character is literal
    assert "![" not in outside_code and "](" not in outside_code
    assert "<img" not in outside_code
    assert "\u202e" not in text  # bidi controls are shown as \u202e, never raw
    assert markdown_text(str(target)) in text


def test_commands_from_the_rules_are_code_and_text_is_escaped() -> None:
    assert prose("Check `ss -ltnp` on *10.0.0.1*") == "Check `ss -ltnp` on \\*10.0.0.1\\*"
    assert markdown_text("[a](b) ![c](d) <b> |x| _y_") == (
        "\\[a\\](b) \\!\\[c\\](d) &lt;b> \\|x\\| \\_y\\_"
    )
    assert code_span("a`b") == "``a`b``"


# -- a large capture's report, synthesized ----------------------------------------------------

CATEGORIES = (
    "refused", "half_open_scan", "peer_reset", "broken_pipe", "fin_wait_reset",
    "keepalive_timeout", "retransmission_timeout", "local_abort", "icmp_error", "ignored_reset",
    "injected_reset",
)  # fmt: skip


def _finding(
    category: str, client: str, server: str, time: float, sender: str = "server"
) -> Finding:
    return Finding(
        category=category, rule=f"{category}-rule", title=f"{category}: {client} to {server}",
        client=client, server=server, initiator_known=True, frames=[1, 2],
        time=1_795_000_000.0 + time,
        evidence=[EvidenceItem(1, 1_795_000_000.0 + time, "SYN from client"),
                  EvidenceItem(2, 1_795_000_000.0 + time, "RST from server")],
        client_state="SYN-SENT", server_state="LISTEN",
        client_sees=AppView("ECONNRESET", "Connection reset by peer", "WSAECONNRESET", "on recv()"),
        server_sees=AppView(None, when="nothing"), explanation="An explanation. " * 20,
        cause=None, confidence=0.7, alternatives=[], next_step="Look at `ss -tanp`. " * 5,
        references=[], conn_id=1, community_id="1:x", facts={"sender": sender},
        impact="error_seen",
    )  # fmt: skip


def synthesized_report(findings: int) -> CaptureReport:
    report = CaptureReport(path="synthetic-large.pcap", packets=10_000_000, flows=900_000)
    report.first_time, report.last_time = 1_795_000_000.0, 1_795_003_600.0
    batch = []
    for n in range(findings):
        category = CATEGORIES[n % len(CATEGORIES)]
        client = f"10.1.{n % 250}.{n % 200 + 1}:{40000 + n % 20000}"
        server = f"10.2.{n % 97}.{n % 13 + 1}:{443 + n % 7}"
        if category == "refused" and n % 2:
            server = "192.0.2.80:8080"  # the server that refuses most
        if category == "half_open_scan":
            client, server = f"198.51.100.66:{n}", f"10.9.0.1:{n % 60000 + 1}"  # one scanner
        batch.append(_finding(category, client, server, n * 3600 / findings))
    report.findings.extend(batch)
    return report


def test_a_large_capture_report_stays_short_and_names_everything_that_matters() -> None:
    report = synthesized_report(5_000)
    text = render_markdown([report], Selection(), RunInfo(("tcpdiag", "analyze", "big.pcap")))
    assert len(text) < LIMIT
    for category in CATEGORIES:
        assert markdown_text(category) in text
    assert "192.0.2.80:8080" in text.split("### Findings, grouped")[0]  # top refusing server
    assert "198.51.100.66" in text.split("### Findings, grouped")[0]  # the scanner
    assert "more groups of findings not detailed here" in text
    assert "5,000 findings" in text
    # A bigger --limit still stays bounded: the length budget stops the details.
    text = render_markdown([report], Selection(limit=10_000), RunInfo(("tcpdiag",)))
    assert len(text) < LIMIT
    links = set(re.findall(r"\]\(#(g-[fa]\d+)\)", text))
    assert links and links == set(re.findall(r'<a id="(g-[fa]\d+)"></a>', text))
    # The one scanner's half-open probes (over --aggregate-over) are one aggregated finding.
    table = text.split("### Findings, grouped")[1].split("<a id=")[0]
    (row,) = [line for line in table.splitlines() if "port\\_scan" in line]
    assert "scanner 198.51.100.66" in row and "half\\_open\\_scan" not in table
