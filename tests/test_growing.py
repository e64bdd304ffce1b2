"""A capture analysed while it is still being written (tcpdump still running): tcpdiag reports what
is there and exits cleanly, and reading again later sees the rest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tcpdiag.analyze import analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.rules import load_rules

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "mixed.pcap"
ENGINE = RuleEngine(load_rules())


def test_analysing_a_growing_capture_reports_what_is_there(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    target = tmp_path / "live.pcap"
    target.write_bytes(b"")
    done = threading.Event()

    def writer() -> None:
        # Append in odd-sized pieces so reads land in the middle of headers and records.
        with target.open("ab") as out:
            for start in range(0, len(data), 97):
                out.write(data[start : start + 97])
                out.flush()
                time.sleep(0.002)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reports = []
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        reports.append(analyze_capture(target, ENGINE))
    thread.join(timeout=30)
    assert done.is_set() and len(reports) >= 3
    full = {(f.category, f.client) for f in analyze_capture(target, ENGINE).findings}
    assert len(full) == 3
    for report in reports:
        if report.error is not None:  # only before the file header was complete
            assert report.packets == 0 and "\n" not in report.error
            continue
        partial = {(f.category, f.client) for f in report.findings}
        if report.truncated:
            assert len(report.warnings) >= 1
        # What was already written is judged as in the full capture; only the rest is missing.
        assert partial <= full
    assert any(r.error is None and r.packets > 0 for r in reports)
