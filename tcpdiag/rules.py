"""Detection rules as data: loading `rules/*.toml` (tomllib) and matching them against events.

A rule file holds `[[rule]]` tables; `errnos.toml` holds the `[errno.NAME]` messages. Every rule
is checked when loaded: known event kind, conditions naming real facts of that event, templates
naming real fields, errnos that exist, confidences within 0..1. A broken rule is a `RuleError`
naming the file and the rule, never a surprise at match time.

Conditions (`when` tables) map a fact name to
- a value: the fact must equal it (`receiver_state = "SYN-SENT"`);
- a list: the fact must be one of them (`rst_verdict = ["challenge", "out_of_window"]`);
- a table with any of `min`, `max`, `not`: inclusive bounds and exclusions
  (`burst_size = {min = 2}`).
A fact that is unknown (None) never satisfies a bound.

What a side sees (`sees` tables) is an `errno`, or, with `errno_by = "FACT"`, the errno that a
`map` gives for that fact's value (`errno` for any other value; "none": that side sees nothing);
`windows = "ERRNO"` names the errno whose Winsock error a Windows program gets for it instead.
"""

from __future__ import annotations

import importlib.util
import os
import string
import tomllib
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.events import EVENT_TYPES, FlowEvent


class RuleError(Exception):
    """A rule file that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True, slots=True)
class Condition:
    fact: str
    equals: tuple[Any, ...] = ()  # one of these values (empty: any)
    minimum: float | None = None
    maximum: float | None = None
    excluded: tuple[Any, ...] = ()

    def matches(self, value: Any) -> bool:
        if self.equals and value not in self.equals:
            return False
        if value in self.excluded:
            return False
        if self.minimum is not None and (value is None or value < self.minimum):
            return False
        return not (self.maximum is not None and (value is None or value > self.maximum))


def all_hold(conditions: tuple[Condition, ...], facts: Mapping[str, Any]) -> bool:
    """Whether every condition holds for these facts. (A loop, not all() over a generator:
    this runs for every rule and cause an event is tried against.)"""
    for condition in conditions:  # noqa: SIM110 (see above)
        if not condition.matches(facts.get(condition.fact)):
            return False
    return True


@dataclass(frozen=True, slots=True)
class SeesSpec:
    """What the application in one role sees: a fixed errno, or one looked up by a fact."""

    errno: str | None = None
    errno_by: str | None = None  # fact whose value selects the errno from errno_map
    # (None: with that value, this side sees nothing; written "none" in a rule's map)
    errno_map: Mapping[str, str | None] = field(default_factory=dict)
    when: str = ""
    # What that program saw when it is no errno (its recv() returned 0: "EOF"), shown where an
    # errno would be; empty: without an errno it saw nothing.
    label: str = ""
    # The errno whose Winsock error a Windows program gets instead, where Winsock names the
    # same failure otherwise (a data retransmission timeout is WSAECONNABORTED, not
    # WSAETIMEDOUT); None: the errno's own.
    windows: str | None = None

    def errno_for(self, facts: Mapping[str, Any]) -> str | None:
        if self.errno_by is not None:
            value = str(facts.get(self.errno_by))
            if value in self.errno_map:
                return self.errno_map[value]
        return self.errno


@dataclass(frozen=True, slots=True)
class CauseSpec:
    id: str
    text: str
    confidence: float
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    event: str
    priority: int
    title: str
    description: str
    conditions: tuple[Condition, ...]
    sees: Mapping[str, SeesSpec]  # by the event's role names ("sender", "receiver", ...)
    explanation: str
    next_step: str
    causes: tuple[CauseSpec, ...]
    confidence: float  # when no cause's conditions hold
    references: tuple[str, ...]
    sample: str  # the capture in samples/ that proves this rule
    path: str
    # "error_seen", "none" or "unknown"; empty: "error_seen" when any role sees an errno.
    impact: str = ""
    # It only re-reads an event that a lower-priority rule (one that does not override) also
    # matches: where none does, it does not fire either. It changes what a finding says, never
    # whether there is one (a Multipath TCP subflow's RST: TCP's rules decide whether it is
    # worth a finding, MPTCP's what it means).
    overrides: bool = False

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return all_hold(self.conditions, facts)


@dataclass(frozen=True, slots=True)
class ErrnoText:
    linux: str
    windows: str


@dataclass(slots=True)
class RuleSet:
    rules: list[Rule]
    errnos: dict[str, ErrnoText]

    @property
    def categories(self) -> list[str]:
        return sorted({r.category for r in self.rules})


def default_rules_dir() -> Path:
    """The installed rules (package tcpdiag.rulesdata), else the source tree's rules/."""
    # rulesdata is a namespace package (a folder of TOML files), so ask for its location directly.
    spec = importlib.util.find_spec("tcpdiag.rulesdata")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location, "errnos.toml").is_file():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "rules"


def load_rules(directory: Path | None = None) -> RuleSet:
    directory = directory or default_rules_dir()
    try:
        # (Path.glob says nothing of a folder it cannot list: it just finds no files.)
        files = sorted(directory / name for name in os.listdir(directory) if name.endswith(".toml"))
    except OSError as exc:
        raise RuleError(f"{directory}: cannot read: {exc.strerror or exc}") from None
    if not files:
        raise RuleError(f"{directory}: no rule files (*.toml) found")
    rules: list[Rule] = []
    errnos: dict[str, ErrnoText] = {}
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RuleError(f"{path}: {exc}") from None
        for name, texts in data.get("errno", {}).items():
            errnos[name] = ErrnoText(linux=texts.get("linux", ""), windows=texts.get("windows", ""))
        shared: dict[str, dict[str, Any]] = {}
        for cause in data.get("cause", []):
            name = cause.get("id")
            if not isinstance(name, str) or not name or name in shared:
                raise RuleError(f"{path}: [[cause]] {name!r}: needs an id of its own")
            shared[name] = cause
        rules.extend(_parse_rule(raw, path, shared) for raw in data.get("rule", []))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"{rule.path}: rule {rule.id!r} is defined twice")
        seen.add(rule.id)
        for role, spec in rule.sees.items():
            for errno in (spec.errno, *spec.errno_map.values(), spec.windows):
                if errno is not None and errno not in errnos:
                    raise RuleError(
                        f"{rule.path}: rule {rule.id!r}: {role} sees unknown errno {errno!r} "
                        "(add it to errnos.toml)"
                    )
    rules.sort(key=lambda r: -r.priority)
    return RuleSet(rules=rules, errnos=errnos)


# Template fields every event has: the connection's endpoints ("ip:port") and each side's
# operating-system family as its TTL suggests.
_CONNECTION_FIELDS = frozenset(
    {"client", "server", "client_endpoint", "server_endpoint", "client_os", "server_os"}
)

_RULE_KEYS = {
    "id", "category", "event", "priority", "title", "description", "when", "sees",
    "explanation", "next_step", "causes", "shared_causes", "confidence", "references", "sample",
    "impact", "overrides",
}  # fmt: skip

IMPACTS = ("error_seen", "none", "unknown")
NO_ERRNO = "none"  # a `sees` map's value for "this side sees nothing"


def _parse_rule(raw: dict[str, Any], path: Path, shared: Mapping[str, dict[str, Any]]) -> Rule:
    """One [[rule]] table. `shared`: its file's [[cause]] tables by id, which the rule takes
    by naming them in `shared_causes` (a cause several rules give, written once), ahead of
    its own `causes`; each is checked against this rule's event as its own causes are."""
    rule_id = raw.get("id", "?")

    def fail(message: str) -> RuleError:
        return RuleError(f"{path}: rule {rule_id!r}: {message}")

    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}")
    for key in ("id", "category", "event", "title", "description", "explanation", "sample"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise fail(f"needs a non-empty string {key!r}")
    event_type = EVENT_TYPES.get(raw["event"])
    if event_type is None:
        raise fail(f"unknown event {raw['event']!r} (one of {sorted(EVENT_TYPES)})")
    facts = frozenset(event_type.fact_names())
    conditions = _parse_conditions(raw.get("when", {}), facts, fail)
    roles = set(event_type.ROLES)
    sees: dict[str, SeesSpec] = {}
    for role, spec in raw.get("sees", {}).items():
        if role not in roles:
            raise fail(f"sees: unknown role {role!r} (one of {sorted(roles)})")
        if spec.get("errno_by") is not None and spec["errno_by"] not in facts:
            raise fail(f"sees.{role}: errno_by names unknown fact {spec['errno_by']!r}")
        sees[role] = SeesSpec(
            errno=spec.get("errno"),
            errno_by=spec.get("errno_by"),
            errno_map={
                value: None if errno == NO_ERRNO else errno
                for value, errno in spec.get("map", {}).items()
            },
            when=spec.get("when", ""),
            label=spec.get("label", ""),
            windows=spec.get("windows"),
        )
        label = sees[role].label
        if not isinstance(label, str) or len(label) > 12 or (label and spec.get("errno")):
            raise fail(f"sees.{role}: label must be a short text (12 characters), without errno")
        if spec.get("windows") is not None and spec.get("errno") is None:
            raise fail(f"sees.{role}: windows names what a Windows program gets for its errno")
    fields_ok = (
        facts | roles | {f"{r}_{x}" for r in roles for x in ("endpoint", "os")} | _CONNECTION_FIELDS
    )
    named = raw.get("shared_causes", [])
    if not isinstance(named, list):
        raise fail("shared_causes must be a list of [[cause]] ids")
    if missing := [name for name in named if name not in shared]:
        raise fail(f"shared_causes: no [[cause]] {missing} in this file")
    causes = []
    for cause in [shared[name] for name in named] + raw.get("causes", []):
        confidence = float(cause.get("confidence", -1))
        if not 0.0 <= confidence <= 1.0:
            raise fail(f"cause {cause.get('id')!r}: confidence must be within 0..1")
        _check_template(cause.get("text", ""), fields_ok, fail)
        causes.append(
            CauseSpec(
                id=str(cause.get("id", "")),
                text=cause.get("text", ""),
                confidence=confidence,
                conditions=_parse_conditions(cause.get("when", {}), facts, fail),
            )
        )
    for key in ("explanation", "next_step", "title"):
        _check_template(raw.get(key, ""), fields_ok, fail)
    confidence = float(raw.get("confidence", 0.5))
    if not 0.0 <= confidence <= 1.0:
        raise fail("confidence must be within 0..1")
    impact = raw.get("impact", "")
    if impact and impact not in IMPACTS:
        raise fail(f"impact must be one of {list(IMPACTS)}")
    overrides = raw.get("overrides", False)
    if not isinstance(overrides, bool):
        raise fail("overrides must be true or false")
    return Rule(
        id=raw["id"],
        category=raw["category"],
        event=raw["event"],
        priority=int(raw.get("priority", 0)),
        title=raw["title"],
        description=raw["description"].strip(),
        conditions=conditions,
        sees=sees,
        explanation=raw["explanation"].strip(),
        next_step=raw.get("next_step", "").strip(),
        causes=tuple(causes),
        confidence=confidence,
        references=tuple(raw.get("references", [])),
        sample=raw["sample"],
        path=str(path),
        impact=impact,
        overrides=overrides,
    )


def _parse_conditions(
    table: dict[str, Any], facts: Iterable[str], fail: Any
) -> tuple[Condition, ...]:
    known = set(facts)
    out = []
    for fact, spec in table.items():
        if fact not in known:
            raise fail(f"condition on unknown fact {fact!r}")
        if isinstance(spec, dict):
            extra = set(spec) - {"min", "max", "not"}
            if extra:
                raise fail(f"condition {fact!r}: unknown operators {sorted(extra)}")
            excluded = spec.get("not", [])
            out.append(
                Condition(
                    fact,
                    minimum=spec.get("min"),
                    maximum=spec.get("max"),
                    # `not` takes a value or a list of them; absent, nothing is excluded.
                    excluded=tuple(excluded) if isinstance(excluded, list) else (excluded,),
                )
            )
        elif isinstance(spec, list):
            out.append(Condition(fact, equals=tuple(spec)))
        else:
            out.append(Condition(fact, equals=(spec,)))
    return tuple(out)


def _check_template(text: str, fields_ok: AbstractSet[str], fail: Any) -> None:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name.split(".")[0].split("[")[0] not in fields_ok:
            raise fail(f"template names unknown field {{{name}}}")


def render(template: str, values: Mapping[str, Any]) -> str:
    """The template filled in, every run of whitespace made one space and the ends stripped
    (rule texts are written across lines in TOML)."""
    try:
        compiled = _COMPILED[template]
    except KeyError:
        if len(_COMPILED) >= _COMPILED_KEPT:
            _COMPILED.clear()
        compiled = _COMPILED[template] = _compile(template)
    if compiled is not None:
        # A finding renders several texts, and collapsing each one's whitespace cost more
        # than filling it in. So the template's own whitespace is collapsed once (_compile),
        # and if no value can bring whitespace of its own or leave two spaces meeting, the
        # filled-in compact template is the answer: a value that is a number, True, False,
        # None, or a text that is not empty, printable (so holding no whitespace but the
        # space: tests/test_rules.py checks every code point), with no space at either end
        # and no two together. Then every run of whitespace is the template's, made one space
        # already, as collapsing the whole text would have made it.
        text, fields = compiled
        tiny = False
        for name in fields:
            value = values[name]
            kind = type(value)
            if kind is str:
                if not (
                    value
                    and value.isprintable()
                    and value[0] != " "
                    and value[-1] != " "
                    and "  " not in value
                ):
                    break
            elif kind is float:
                tiny = tiny or (value != 0.0 and -_PLAIN_BELOW < value < _PLAIN_BELOW)
            elif kind is not int and kind is not bool and value is not None:
                break
        else:
            return text.format_map(_plain_floats(values) if tiny else values)
        # (a template without conversions or format specs: a float may be a text instead)
        return " ".join(template.format_map(_plain_floats(values)).split())
    return " ".join(template.format_map(values).split())


# Python writes a float below this in exponent notation (8.4e-05): a text says 0.000084.
_PLAIN_BELOW = 1e-4


def _plain_floats(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values` with every float Python would write in exponent notation written out (six
    decimals, as facts are rounded), for a text a person reads."""
    plain = {
        name: f"{value:.6f}".rstrip("0").rstrip(".")
        for name, value in values.items()
        if type(value) is float and value != 0.0 and -_PLAIN_BELOW < value < _PLAIN_BELOW
    }
    return {**values, **plain} if plain else values


# template -> its compact form and the names of its fields (None: not for the shortcut, see
# _compile)
_COMPILED: dict[str, tuple[str, tuple[str, ...]] | None] = {}
_COMPILED_KEPT = 4096


def _compile(template: str) -> tuple[str, tuple[str, ...]] | None:
    """The template with each run of whitespace in its literal text made one space and its ends
    stripped, and the names of its fields in order; None when a field has a conversion or a
    format spec (whose text must stay as it is) or is not a plain name."""
    parts, fields = [], []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        words = literal.split()
        text = " ".join(words)
        if literal[:1].isspace():
            text = " " + text if words else " "
        if literal[-1:].isspace() and words:
            text += " "
        parts.append(text.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            if spec or conversion or not name.isidentifier():
                return None
            parts.append("{" + name + "}")
            fields.append(name)
    compact = "".join(parts).strip(" ")
    return (compact, tuple(fields)) if compact else None


# How a side's operating-system family (tracker.os_family, from its TTL) reads in a text: a TTL
# of 64 is Linux's, and macOS's and the BSDs' too.
OS_WORDS = {
    "linux": "Linux, macOS or a BSD (initial TTL 64)",
    "windows": "Windows (initial TTL 128)",
    "network-device": "a router, firewall or load balancer (initial TTL 255)",
}


def event_values(event: FlowEvent, facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a template may name for this event (`facts`: its facts, if known); a side's
    operating-system family in words (OS_WORDS)."""
    values: dict[str, Any] = dict(event.facts() if facts is None else facts)
    ref = event.connection
    values["client"] = values["client_endpoint"] = ref.client
    values["server"] = values["server_endpoint"] = ref.server
    client_os = OS_WORDS.get(event.client_os, event.client_os)
    server_os = OS_WORDS.get(event.server_os, event.server_os)
    values["client_os"], values["server_os"] = client_os, server_os
    for role in event.ROLES:
        side = event.role_of(role)
        values[role] = side
        values[f"{role}_endpoint"] = ref.client if side == "client" else ref.server
        values[f"{role}_os"] = client_os if side == "client" else server_os
    return values
