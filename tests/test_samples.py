"""Every committed sample capture against the findings and errnos recorded when it was made.

The samples were made by the real Linux kernel (see samples/README.md); each `.expected.json`
holds what a correct analyser must report and what each application really got. Findings are
compared exactly: no missing and no extra (category, client, server), and the errno tcpdiag says
each application saw must be the one the application really saw.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.reader import CaptureReader
from tcpdiag.rules import load_rules

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED = sorted(SAMPLES.glob("*.expected.json"))
ENGINE = RuleEngine(load_rules())


def load_expected(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def capture_for(expected_path: Path) -> Path:
    stem = expected_path.name.removesuffix(".expected.json")
    for suffix in (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz"):
        candidate = SAMPLES / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    raise AssertionError(f"no capture for {expected_path.name}")


def test_there_are_samples() -> None:
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_sample_findings_match_exactly(expected_path: Path) -> None:
    expected = load_expected(expected_path)
    report = analyze_capture(capture_for(expected_path), ENGINE)
    assert report.error is None
    assert not report.truncated
    want = Counter((f["category"], f["client"], f["server"]) for f in expected["findings"])
    got = Counter((f.category, f.client, f.server) for f in report.findings)
    assert got == want


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_sample_errnos_are_what_the_apps_really_saw(expected_path: Path) -> None:
    expected = load_expected(expected_path)
    report = analyze_capture(capture_for(expected_path), ENGINE)
    by_key = {(f.category, f.client, f.server): f for f in report.findings}
    for item in expected["findings"]:
        finding = by_key.get((item["category"], item["client"], item["server"]))
        assert finding is not None, item
        assert finding.client_sees.errno == item["client_errno"], (item, finding.client_sees)
        assert finding.server_sees.errno == item["server_errno"], (item, finding.server_sees)


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_sample_zeek_conn_state_and_history(expected_path: Path) -> None:
    """conn_state and history per connection, as Zeek's conn_state() defines them (checked by
    hand against Zeek's TCP endpoint state machine; see tcpdiag/zeek.py)."""
    expected = load_expected(expected_path)
    report = analyze_capture(capture_for(expected_path), ENGINE, AnalysisOptions(keep_flows=True))
    got = [
        {"client": c.client, "server": c.server, "conn_state": c.conn_state, "history": c.history}
        for c in report.connections
    ]
    assert got == expected["zeek_flows"]


def _load_fixture_builders() -> ModuleType:
    """tests/data/make_fixtures.py, which builds pcapng blocks (it is a script, not a package)."""
    path = Path(__file__).resolve().parent / "data" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_findings_from_pcapng_and_gzip(tmp_path: Path) -> None:
    """The container does not matter: a sample rewritten as gzip'd pcapng (nanosecond
    timestamps) gives the same findings, frame numbers and times as the original pcap."""
    fixtures = _load_fixture_builders()
    original = SAMPLES / "mixed.pcap"
    with CaptureReader(original) as reader:
        frames = list(reader)
    if_tsresol_nanoseconds = fixtures.option(9, bytes([9]))
    body = fixtures.shb() + fixtures.idb(frames[0].linktype, options=if_tsresol_nanoseconds)
    for frame in frames:
        ticks = round(frame.time * 1_000_000_000)
        body += fixtures.epb(0, ticks, frame.data, frame.wire_len)
    converted = tmp_path / "mixed.pcapng.gz"
    converted.write_bytes(gzip.compress(body))

    def summary(path: Path) -> list[tuple[str, str, list[int], float]]:
        report = analyze_capture(path, ENGINE)
        assert report.error is None and not report.warnings
        return [(f.category, f.client, f.frames, round(f.time, 6)) for f in report.findings]

    assert summary(converted) == summary(original)
    assert len(summary(original)) == 3
