"""`tcpdiag explain CATEGORY`: a category's meaning, read from the rules that produce it."""

from __future__ import annotations

import string
import textwrap

from tcpdiag.rules import Condition, Rule, RuleSet

WIDTH = 100


class _Placeholders(dict[str, str]):
    """Template fields stay visible by name: `{receiver_endpoint}` reads `<receiver_endpoint>`."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def generic(template: str) -> str:
    """A rule template with its fields named instead of filled in."""
    fields = _Placeholders()
    try:
        # Format specs (`{idle_seconds:.1f}`) cannot apply to a name: drop them first.
        plain = "".join(
            literal + ("{" + name + "}" if name is not None else "")
            for literal, name, _spec, _conv in string.Formatter().parse(template)
        )
        return " ".join(plain.format_map(fields).split())
    except (ValueError, KeyError, IndexError):
        return " ".join(template.split())


def _condition(c: Condition) -> str:
    parts = []
    if c.equals:
        parts.append(" or ".join(str(v) for v in c.equals))
    if c.minimum is not None:
        parts.append(f">= {c.minimum:g}")
    if c.maximum is not None:
        parts.append(f"<= {c.maximum:g}")
    if c.excluded:
        parts.append("not " + " or ".join(str(v) for v in c.excluded))
    return f"{c.fact} {' '.join(parts) or 'any'}"


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def _rule(rule: Rule, ruleset: RuleSet) -> list[str]:
    lines = [f"rule {rule.id} (priority {rule.priority}, on {rule.event} events)"]
    lines.append(_wrap(" ".join(rule.description.split())))
    if rule.overrides:
        lines.append(
            _wrap("overrides: fires only where a lower-priority rule also would (a re-reading)")
        )
    if rule.conditions:
        lines.append(_wrap("on the wire: " + "; ".join(_condition(c) for c in rule.conditions)))
    for role, spec in rule.sees.items():
        text = ruleset.errnos.get(spec.errno) if spec.errno else None
        seen = f'{spec.errno} "{text.linux}"' if text else (spec.errno or spec.label or "nothing")
        if spec.errno_by and spec.errno_map:
            # Which errno for which value of the fact; the one above for any other value.
            by = ", ".join(f"{v}: {e or 'nothing'}" for v, e in spec.errno_map.items())
            seen = f"by {spec.errno_by}: {by}; otherwise {seen}"
        winsock = ruleset.errnos.get(spec.windows) if spec.windows else None
        if winsock is not None:
            # (Winsock names this failure with another error: say which.)
            seen += f"; a Windows program gets {winsock.windows.split(':')[0]}"
        when = f" ({generic(spec.when)})" if spec.when else ""
        lines.append(_wrap(f"the {role}'s program sees: {seen}{when}"))
    lines.append(_wrap("explanation: " + generic(rule.explanation)))
    for cause in rule.causes:
        lines.append(_wrap(f"cause ({cause.confidence:.2f}): {generic(cause.text)}"))
    if rule.next_step:
        lines.append(_wrap("next step: " + generic(rule.next_step)))
    if rule.references:
        lines.append(_wrap("references: " + "; ".join(rule.references)))
    return lines


def explain_text(ruleset: RuleSet, category: str) -> str:
    rules = sorted((r for r in ruleset.rules if r.category == category), key=lambda r: -r.priority)
    lines = [f"{category}: {len(rules)} rule{'s' * (len(rules) != 1)} (highest priority first)"]
    lines.append(
        "<names> stand for the endpoints and facts of a real finding; sender/receiver are the "
        "sides of the packet that decided it."
    )
    for rule in rules:
        lines.append("")
        lines.extend(_rule(rule, ruleset))
    return "\n".join(lines) + "\n"
