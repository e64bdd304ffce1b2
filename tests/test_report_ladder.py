"""Ladders: a long connection is condensed to its handshake, the finding's frames with the packet
before each, and its last packet, and every packet left out is counted."""

from __future__ import annotations

from pathlib import Path

from tcpdiag.ladder import Ladder, Step, collect_ladders
from tcpdiag.reporters.story import mermaid_ladder, text_ladder

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def ladder(packets: int, evidence: set[int], dropped: int = 0) -> Ladder:
    steps = [
        Step(frame, 100.0 + frame / 1000, frame % 2 == 1, "ACK", frame, frame, 0, 64)
        for frame in range(1, packets + 1)
    ]
    return Ladder("10.0.0.1:5000", "10.0.0.2:80", 100.0, steps, max(evidence),
                  frozenset(evidence), dropped)  # fmt: skip


def test_a_short_connection_is_shown_whole() -> None:
    condensed = ladder(5, {5}).condensed()
    assert [s.frame for s in condensed if isinstance(s, Step)] == [1, 2, 3, 4, 5]
    assert len(condensed) == 5


def test_a_long_connection_keeps_handshake_evidence_and_end_and_counts_the_rest() -> None:
    condensed = ladder(40, {20, 21}).condensed()
    frames = [item.frame for item in condensed if isinstance(item, Step)]
    assert frames == [1, 2, 3, 19, 20, 21, 40]
    gaps = [item for item in condensed if isinstance(item, int)]
    assert len(frames) + sum(gaps) == 40
    # Packets the collector dropped between head and tail are counted in the first gap.
    with_dropped = ladder(40, {20}, dropped=500).condensed()
    assert sum(i for i in with_dropped if isinstance(i, int)) == 40 - 6 + 500


def test_drawings_mark_the_verdict_and_the_gaps() -> None:
    long = ladder(40, {20})
    text = "\n".join(text_ladder(long))
    assert text.count("<< verdict") == 1 and "packets not shown" in text
    mermaid = mermaid_ladder(long)
    assert mermaid[0] == "sequenceDiagram"
    assert sum("(verdict)" in line for line in mermaid) == 1
    assert not any(";" in line or "#" in line for line in mermaid)  # Mermaid syntax characters


def test_collected_ladders_hold_each_finding_s_frames() -> None:
    from tcpdiag.analyze import analyze_capture
    from tcpdiag.detect import RuleEngine
    from tcpdiag.rules import load_rules

    report = analyze_capture(SAMPLES / "mixed.pcap", RuleEngine(load_rules()))
    findings = list(report.findings)
    ladders = collect_ladders(report.path, findings)
    for finding in findings:
        drawn = {s.frame for s in ladders[finding.id].steps}
        assert set(finding.frames) <= drawn
        assert ladders[finding.id].steps[0].flags == "SYN"  # from the connection's first packet
    assert collect_ladders("/nonexistent.pcap", findings) == {}
