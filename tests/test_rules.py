"""Rules as data: each rule fires on the sample that proves it and on no negative control
(like Semgrep's rule tests), and broken rule files are refused with a clear message."""

from __future__ import annotations

import json
import string
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tcpdiag.analyze import analyze_capture
from tcpdiag.cli import app
from tcpdiag.decode import Decoder
from tcpdiag.detect import RuleEngine
from tcpdiag.events import FlowEvent
from tcpdiag.findings import Finding
from tcpdiag.reader import CaptureReader
from tcpdiag.rules import RuleError, default_rules_dir, load_rules, render
from tcpdiag.tracker import FlowTable, TrackedConnection

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RULESET = load_rules()
ENGINE = RuleEngine(RULESET)
CATEGORIES = {
    "refused", "half_open_scan", "peer_reset", "broken_pipe", "fin_wait_reset",
    "keepalive_timeout", "retransmission_timeout", "local_abort", "icmp_error",
    "ignored_reset", "injected_reset", "subflow_reset", "subflow_failed", "premature_close",
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


@cache
def sample_events(stem: str) -> tuple[FlowEvent, ...]:
    """Every event of the sample's connections, tracked packet by packet."""
    (path,) = sorted(SAMPLES.glob(f"{stem}.pcap*"))
    decoder = Decoder()
    with CaptureReader(path) as reader:
        packets = (p for p in map(decoder.decode, reader) if p is not None)
        return tuple(
            event
            for conn in FlowTable().track(packets)
            if isinstance(conn, TrackedConnection)
            for event in conn.events
        )


@pytest.mark.parametrize("rule", RULESET.rules, ids=lambda r: r.id)
def test_rule_fires_on_its_sample(rule) -> None:  # type: ignore[no-untyped-def]
    findings = sample_findings(rule.sample)
    fired = [f for f in findings if f.rule == rule.id]
    if not fired:
        # A rule may decide an event that joins an earlier event's finding of the same
        # category (the RST that ends a stall joins the stall's): then that finding holds the
        # event's frame.
        frames = {e.frame for e in sample_events(rule.sample) if ENGINE.match(e) is rule}
        fired = [f for f in findings if frames & set(f.frames)]
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
        ('overrides = "yes"\n', "overrides must be true or false"),
        (
            '[rule.sees.receiver]\nerrno = "EPIPE"\nlabel = "EOF"\n',
            "sees.receiver: label must be a short text",
        ),
        (
            '[rule.sees.receiver]\nerrno = "EPIPE"\nwindows = "ENOSUCH"\n',
            "receiver sees unknown errno 'ENOSUCH'",
        ),
        (
            '[rule.sees.receiver]\nwindows = "EPIPE"\n',
            "sees.receiver: windows names what a Windows program gets for its errno",
        ),
        ('shared_causes = ["nowhere"]\n', "shared_causes: no [[cause]] ['nowhere'] in this file"),
        ('shared_causes = "c"\n', "shared_causes must be a list"),
        (  # a shared cause is checked against the rule's event as its own causes are
            'shared_causes = ["c"]\n[[cause]]\nid = "c"\ntext = "t"\nconfidence = 0.5\n'
            "[cause.when]\nstall_seconds = 1\n",
            "condition on unknown fact 'stall_seconds'",
        ),
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


def test_a_cause_written_once_is_given_by_every_rule_that_names_it(tmp_path: Path) -> None:
    """A file's [[cause]] tables serve each rule that lists them in `shared_causes`, ahead of
    its own causes; a rule that does not name one does not have it, and an id is one cause."""
    second = BASE_RULE.replace('id = "x"', 'id = "y"')
    shared = '[[cause]]\nid = "c"\ntext = "shared"\nconfidence = 0.4\n'
    own = '[[rule.causes]]\nid = "own"\ntext = "own"\nconfidence = 0.4\n'
    (tmp_path / "ok.toml").write_text(BASE_RULE + 'shared_causes = ["c"]\n' + own + second + shared)
    rules = {rule.id: rule for rule in load_rules(tmp_path).rules}
    assert [c.id for c in rules["x"].causes] == ["c", "own"]
    assert rules["y"].causes == ()
    (tmp_path / "ok.toml").write_text(BASE_RULE + shared + shared)
    with pytest.raises(RuleError, match=r"ok.toml: \[\[cause\]\] 'c': needs an id of its own"):
        load_rules(tmp_path)


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


@pytest.mark.parametrize(
    ("sample", "finding"),
    [("peer_reset_linger0", "reset_after_idle"), ("closing_write_teardown", None)],
)
def test_an_overriding_rule_rereads_a_finding_but_never_adds_one(
    tmp_path: Path, sample: str, finding: str | None
) -> None:
    """A rule with `overrides = true` decides an event only where a lower-priority rule matches
    it too: it changes what a finding says, never whether there is one."""
    for path in default_rules_dir().glob("*.toml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "any_rst.toml").write_text(
        BASE_RULE.replace('"refused"', '"reset_after_idle"').replace('id = "x"', 'id = "any"')
        + "priority = 200\noverrides = true\n"  # (no conditions: every RST matches it)
    )
    engine = RuleEngine(load_rules(tmp_path))
    report = analyze_capture(SAMPLES / f"{sample}.pcap", engine)
    assert [f.category for f in report.findings] == ([finding] if finding else [])
    if finding is None:  # (the sample has a RST: without `overrides` the rule would fire)
        text = (tmp_path / "any_rst.toml").read_text()
        (tmp_path / "any_rst.toml").write_text(text.replace("overrides = true", ""))
        plain = analyze_capture(SAMPLES / f"{sample}.pcap", RuleEngine(load_rules(tmp_path)))
        assert [f.category for f in plain.findings] == ["reset_after_idle"]


def test_a_bound_without_not_excludes_nothing() -> None:
    """`{min = 1}` is a bound only: no phantom exclusion (it once excluded the value `()`)."""
    rule = next(r for r in RULESET.rules if r.id == "fin-wait-reset")
    bound = next(c for c in rule.conditions if c.fact == "sender_unanswered_bytes")
    assert bound.minimum == 1 and bound.excluded == ()


def _collapsed(template: str, values: dict[str, object]) -> str:
    """What render must give: the filled-in text with its whitespace collapsed (and a float
    that Python would write with an exponent, 8.4e-05, written out: test below)."""
    plain = {
        name: f"{value:.6f}".rstrip("0").rstrip(".")
        if type(value) is float and value != 0.0 and abs(value) < 1e-4
        else value
        for name, value in values.items()
    }
    specs = any(spec or conversion for _, _, spec, conversion in string.Formatter().parse(template))
    return " ".join(template.format_map(values if specs else plain).split())


def test_a_tiny_float_is_written_out_not_in_exponent_notation() -> None:
    """Facts such as a RST's delay after a write are often tens of microseconds: a text says
    0.000053 s, not 5.3e-05 s; other numbers as Python writes them."""
    assert render("{x} s after its last write", {"x": 5.3e-05}) == "0.000053 s after its last write"
    assert render("{x} s", {"x": -8.4e-05}) == "-0.000084 s"
    assert render("{x} s, {y}", {"x": 1.5, "y": 0.0}) == "1.5 s, 0.0"
    # (the way for values with whitespace of their own too)
    assert render("{y} {x}", {"x": 2e-05, "y": "a  b"}) == "a b 0.00002"
    # A template's own format spec or conversion decides (a rule may write {x:.1f}).
    assert render("{x:.6f} s", {"x": 5.3e-05}) == "0.000053 s"
    assert render("{x!r}", {"x": 5.3e-05}) == "5.3e-05"


def test_the_only_printable_whitespace_is_the_space() -> None:
    """render trusts a printable text to hold no whitespace but spaces (str.split's idea of
    whitespace is str.isspace's)."""
    printable_spaces = [
        c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() and c.isprintable()
    ]
    assert printable_spaces == [" "]


class _Spaced:
    """A value of no type render knows, whose text has spaces at its ends and inside."""

    def __format__(self, spec: str) -> str:
        return " a  b "


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            ["a", "b c", " ", "  ", "\n", "\t", "{x}", "{y}", "{{", "}}", "\xa0", "{x!r}", "\x00"]
        ),
        max_size=10,
    ),
    x=st.one_of(
        st.text(max_size=4),
        st.integers(),
        st.none(),
        st.floats(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.just(_Spaced()),
    ),
    y=st.sampled_from(["", " ", "q", " q", "q ", "a  b", "\n", "x\ty", "\u2028", "{}", "é"]),
)
@example(pieces=["{y}"], x=0, y=" q")  # (each value that must not take the shortcut)
@example(pieces=["a", "{y}", " "], x=0, y="q ")
@example(pieces=["{y}"], x=0, y="a  b")
@example(pieces=["a", " ", "{y}", " ", "b"], x=0, y="")
@example(pieces=["{y}", "a"], x=0, y="x\ty")
@example(pieces=["{x}"], x=_Spaced(), y="")
@example(pieces=["{x!r}"], x="a", y="")  # (a conversion: not for the shortcut either)
def test_render_collapses_whitespace_as_splitting_would(
    pieces: list[str], x: object, y: str
) -> None:
    """render's shortcut (the template's own whitespace collapsed once) gives exactly what
    collapsing the whole filled-in text gives, whatever whitespace the values bring."""
    template = "".join(pieces)
    values = {"x": x, "y": y}
    assert render(template, values) == _collapsed(template, values)


def test_render_fills_in_a_rule_text_written_across_lines() -> None:
    template = "  {client} sent a SYN\n    to {server}:\tno answer.  "
    values = {"client": "10.0.0.1:4000", "server": "10.0.0.2:80"}
    assert render(template, values) == "10.0.0.1:4000 sent a SYN to 10.0.0.2:80: no answer."
    # A value with whitespace of its own is collapsed too; an empty one leaves no double space.
    assert (
        render(template, {**values, "client": " a \n b "})
        == "a b sent a SYN to 10.0.0.2:80: no answer."
    )
    assert render("x {client} y", {"client": ""}) == "x y"


def test_facts_are_every_fact_field_by_name() -> None:
    """FlowEvent.facts reads the fact fields in declaration order, for any number of them (one
    fact included: attrgetter of one name gives the value, not a tuple)."""
    from dataclasses import dataclass

    from tcpdiag.events import ConnectionRef, FlowEvent, RstEvent

    @dataclass(slots=True)
    class OneFact(FlowEvent):
        answer: int = 42

    ref = ConnectionRef(1, "10.0.0.1:1", "10.0.0.2:2", True, 4, 1, 0.0)
    assert OneFact(ref, 1, 0.0, "SYN-SENT", "LISTEN").facts() == {"answer": 42}
    rst = RstEvent(ref, 1, 0.0, "SYN-SENT", "LISTEN", sender="server", rst_ttl=64)
    facts = rst.facts()
    assert list(facts) == list(RstEvent.fact_names())
    assert facts["sender"] == "server" and facts["rst_ttl"] == 64
    assert all(facts[name] == getattr(rst, name) for name in RstEvent.fact_names())


def test_decisions_made_once_are_the_decisions_made_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule engine decides an event (rule, causes, errnos) once per kind and deciding facts
    and reuses the decision: every sample's findings are what deciding each event afresh
    gives (DECISIONS_KEPT = 0: nothing is kept), in every report field."""
    from tcpdiag import detect

    captures = sorted(SAMPLES.glob("*.pcap*"))
    assert len(captures) >= 20
    reused = RuleEngine(RULESET)
    kept = [[f.to_dict() for f in analyze_capture(c, reused).findings] for c in captures]
    assert reused._decisions, "no decision was kept for reuse"
    monkeypatch.setattr(detect, "DECISIONS_KEPT", 0)
    afresh = RuleEngine(RULESET)
    assert kept == [[f.to_dict() for f in analyze_capture(c, afresh).findings] for c in captures]
    assert sum(map(len, kept)) >= 20


def test_a_fact_that_cannot_be_a_key_is_decided_without_reuse() -> None:
    """A deciding fact whose value is not hashable (no event has one today) is decided afresh,
    not an error."""
    from tcpdiag.events import ConnectionRef, RstEvent

    ref = ConnectionRef(1, "10.0.0.1:1", "10.0.0.2:2", True, 4, 1, 0.0)
    rst = RstEvent(ref, 1, 0.0, "SYN-SENT", "LISTEN", sender="server", receiver="client")
    rst.receiver_state = "SYN-SENT"
    rst.rst_verdict = "accepted"
    engine = RuleEngine(RULESET)
    facts = rst.facts()
    rule = engine.match(rst, facts)
    assert rule is not None and rule.category == "refused"
    facts["burst_size"] = [1, 2]  # a list: the key cannot be made
    assert engine.match(rst, facts) == rule


@cache
def _sample_events() -> tuple[tuple[str, tuple[tuple[str, object], ...]], ...]:
    """(kind, facts) of every event of the samples' connections."""
    from tcpdiag.analyze import AnalysisOptions, CaptureReport, Pipeline
    from tcpdiag.columns import ColumnDecoder
    from tcpdiag.decode import Decoder
    from tcpdiag.reader import CaptureReader

    events = []
    for capture in sorted(SAMPLES.glob("*.pcap*")):
        pipeline = Pipeline(CaptureReport(path=str(capture)), ENGINE, AnalysisOptions())
        with CaptureReader(capture) as reader:
            columns = map(ColumnDecoder(Decoder()).decode, reader.chunks())
            for conn in pipeline.track_columns(columns):
                for event in getattr(conn, "events", ()):
                    events.append((event.KIND, tuple(event.facts().items())))
    return tuple(events)


def test_events_whose_numbers_fall_alike_share_a_decision() -> None:
    """Events are decided once per key of their deciding facts, and numbers are in the key
    only as far as the conditions tell them apart (equal to a named value, each side of each
    bound): for every sample event with each number moved onto, next to and across each
    bound and named value, the decision reused is the one made afresh."""
    from tcpdiag.detect import _DecidingFacts

    events = sorted(set(_sample_events()), key=repr)
    assert {kind for kind, _ in events} >= {"rst", "icmp", "silence"}
    engine = RuleEngine(RULESET)  # one for all: decisions of earlier events are reused
    checked = 0
    for kind, base in events:
        for fact, named, minimums, maximums in _DecidingFacts.of(engine._by_event[kind]).numbers:
            values: set[object] = {None, 0, -1, 10**6, *named}
            for bound in (*minimums, *maximums):
                values.update((bound, bound - 1, bound + 1, bound - 0.01, bound + 0.01))
            for value in sorted(values, key=repr):
                facts = {**dict(base), fact: value}
                assert engine._decision(kind, facts) == engine._decide(kind, facts), (fact, value)
                checked += 1
    assert checked >= 1000


def test_a_reason_written_in_the_rst_leads_the_causes() -> None:
    """A load balancer's RSTs that say why (tests/data/decode_rst_text.pcap): the reason is the
    most likely cause of the reset and of the refusal, and the RST's evidence quotes it; a RST
    whose payload is no text (random bytes, a long payload) keeps the usual causes."""
    path = SAMPLES.parent / "tests" / "data" / "decode_rst_text.pcap"
    findings = {int(f.client.rpartition(":")[2]): f for f in analyze_capture(path, ENGINE).findings}
    assert sorted(findings) == [40001, 40002, 40003, 40004, 40005, 40006]
    reasons = {
        40001: "No pool member available",
        40002: "[F5RST: Port denied]",
        40003: "Idle timeout",
        40004: "[x](https://evil.example/) <b>x</b> =cmd|' /C calc'!A0",
    }
    for port, finding in findings.items():
        reason = reasons.get(port, "")
        assert finding.facts["rst_text"] == reason
        cause = finding.cause
        assert cause is not None
        if reason:
            assert cause.id == "reason-in-reset" and f'"{reason}"' in cause.text
            assert finding.evidence[-1].what.endswith(f'carrying the text "{reason}"')
        else:
            assert cause.id != "reason-in-reset" and "carrying" not in finding.evidence[-1].what
    assert findings[40002].category == "refused" and findings[40001].category == "peer_reset"
    assert findings[40002].client_sees.errno == "ECONNREFUSED"


def test_a_rules_folder_that_cannot_be_listed_says_why(tmp_path: Path) -> None:
    # (Path.glob finds nothing in a folder it cannot list; the user needs the reason.)
    with pytest.raises(RuleError, match=r"README.md: cannot read: Not a directory"):
        load_rules(Path(__file__).resolve().parent.parent / "README.md")
    with pytest.raises(RuleError, match=r"missing: cannot read: No such file or directory"):
        load_rules(tmp_path / "missing")
    with pytest.raises(RuleError, match=r": no rule files \(\*\.toml\) found"):
        load_rules(tmp_path)
    result = CliRunner().invoke(app, ["rules", "--rules", str(tmp_path / "missing")])
    assert result.exit_code == 2
    missing = tmp_path / "missing"
    assert result.stderr == f"tcpdiag: error: {missing}: cannot read: No such file or directory\n"


@pytest.mark.parametrize(
    ("sample", "role", "errno", "winsock"),
    [
        # Winsock reports a data retransmission timeout as WSAECONNABORTED ...
        ("retransmission_stack_reset", "client", "ETIMEDOUT", "WSAECONNABORTED (10053)"),
        ("retransmission_timeout", "client", "ETIMEDOUT", "WSAECONNABORTED (10053)"),
        # ... a connect() whose SYNs went unanswered as WSAETIMEDOUT (the errno's own) ...
        ("connect_timeout", "client", "ETIMEDOUT", "WSAETIMEDOUT (10060)"),
        # ... and keep-alives that found the peer gone as WSAENETRESET (SO_KEEPALIVE's docs).
        ("keepalive_timeout", "client", "ETIMEDOUT", "WSAENETRESET (10052)"),
    ],
)
def test_a_windows_program_is_told_the_winsock_error_for_that_failure(
    sample: str, role: str, errno: str, winsock: str
) -> None:
    """A rule's `windows` names the errno whose Winsock error a Windows program gets where
    Winsock names the failure otherwise; the errno itself (what POSIX programs get) stays."""
    report = analyze_capture(SAMPLES / f"{sample}.pcap", RuleEngine(load_rules()))
    (finding,) = report.findings
    sees = finding.client_sees if role == "client" else finding.server_sees
    assert sees.errno == errno
    assert sees.windows.startswith(winsock + ":")


def test_a_ttl_of_64_reads_as_linux_macos_or_a_bsd_in_the_texts_only() -> None:
    """Linux, macOS and the BSDs all start at TTL 64: the texts say so, while the fact that rules
    match on (`stalled_os`) and the JSON's `os` keep the family's id."""
    report = analyze_capture(SAMPLES / "retransmission_timeout.pcap", RuleEngine(load_rules()))
    (finding,) = report.findings
    assert finding.facts["stalled_os"] == "linux" and finding.client_sees.os == "linux"
    assert "looks like Linux, macOS or a BSD (initial TTL 64)" in " ".join(
        finding.explanation.split()
    )
