"""Rules as data: each rule fires on the sample that proves it and on no negative control
(like Semgrep's rule tests), and broken rule files are refused with a clear message."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tcpdiag.analyze import analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.findings import Finding
from tcpdiag.rules import RuleError, default_rules_dir, load_rules

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RULESET = load_rules()
ENGINE = RuleEngine(RULESET)
CATEGORIES = {
    "refused", "half_open_scan", "peer_reset", "broken_pipe", "fin_wait_reset",
    "keepalive_timeout", "retransmission_timeout", "local_abort", "icmp_error",
    "ignored_reset", "injected_reset",
}  # fmt: skip


@cache
def sample_findings(stem: str) -> tuple[Finding, ...]:
    matches = sorted(SAMPLES.glob(f"{stem}.pcap*"))
    assert matches, f"sample {stem!r} has no capture in samples/"
    report = analyze_capture(matches[0], ENGINE)
    assert report.error is None
    return tuple(report.findings)


def negative_controls() -> list[str]:
    return sorted(
        p.name.removesuffix(".expected.json")
        for p in SAMPLES.glob("*.expected.json")
        if not json.loads(p.read_text())["findings"]
    )


def test_every_field_guide_category_has_a_rule() -> None:
    assert set(RULESET.categories) == CATEGORIES


@pytest.mark.parametrize("rule", RULESET.rules, ids=lambda r: r.id)
def test_rule_fires_on_its_sample(rule) -> None:  # type: ignore[no-untyped-def]
    fired = [f for f in sample_findings(rule.sample) if f.rule == rule.id]
    assert fired, f"{rule.id} did not fire on {rule.sample}"
    assert all(f.category == rule.category for f in fired)


def test_there_are_negative_controls() -> None:
    assert {"graceful_close", "sigkill_no_unread"} <= set(negative_controls())


@pytest.mark.parametrize("stem", negative_controls())
def test_no_rule_fires_on_a_negative_control(stem: str) -> None:
    assert sample_findings(stem) == ()


def test_rules_are_found_by_default() -> None:
    assert (default_rules_dir() / "refused.toml").is_file()


BASE_RULE = """
[[rule]]
id = "x"
category = "refused"
event = "rst"
title = "t"
description = "d"
explanation = "e"
sample = "refused_no_listener"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[rule.when]\nreceiver_stat = "SYN-SENT"\n', "condition on unknown fact 'receiver_stat'"),
        ('[rule.sees.receiver]\nerrno = "ENOSUCH"\n', "receiver sees unknown errno 'ENOSUCH'"),
        ('[rule.sees.client]\nerrno = "EPIPE"\n', "sees: unknown role 'client'"),
        ("[rule.when]\nburst_size = {above = 2}\n", "unknown operators ['above']"),
        ('[[rule.causes]]\nid = "c"\nconfidence = 1.5\ntext = "t"\n', "confidence must be"),
    ],
)
def test_broken_rule_is_refused_with_file_and_rule_named(
    tmp_path: Path, extra: str, message: str
) -> None:
    (tmp_path / "errnos.toml").write_text('[errno.EPIPE]\nlinux = "Broken pipe"\n')
    (tmp_path / "bad.toml").write_text(BASE_RULE + extra)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    assert message in str(info.value)
    assert "bad.toml" in str(info.value) and "rule 'x'" in str(info.value)


def test_template_naming_unknown_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(BASE_RULE.replace('"e"', '"{nonsense}"'))
    with pytest.raises(RuleError, match=r"template names unknown field \{nonsense\}"):
        load_rules(tmp_path)


def test_adding_a_rule_file_adds_a_category(tmp_path: Path) -> None:
    """Adding a category means adding a rule, not editing the tracker."""
    for path in default_rules_dir().glob("*.toml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "tiny_window.toml").write_text(
        BASE_RULE.replace('"refused"', '"reset_after_idle"').replace('id = "x"', 'id = "idle"')
        + 'priority = 200\n[rule.when]\nrst_verdict = "accepted"\nidle_seconds = {min = 0}\n'
    )
    ruleset = load_rules(tmp_path)
    assert "reset_after_idle" in ruleset.categories
    report = analyze_capture(SAMPLES / "peer_reset_linger0.pcap", RuleEngine(ruleset))
    assert [f.category for f in report.findings] == ["reset_after_idle"]


def test_a_bound_without_not_excludes_nothing() -> None:
    """`{min = 1}` is a bound only: no phantom exclusion (it once excluded the value `()`)."""
    rule = next(r for r in RULESET.rules if r.id == "fin-wait-reset")
    bound = next(c for c in rule.conditions if c.fact == "sender_unanswered_bytes")
    assert bound.minimum == 1 and bound.excluded == ()
