"""Which findings a report keeps: --category, --since/--until, --min-confidence.

Applied to each capture's findings after the analysis (the connection filters --host, --port and
--net are applied during it, by tcpdiag.filters). Kept findings are renumbered F1, F2, ... in
report order, as with the connection filters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tcpdiag.findings import Finding, iso_time
from tcpdiag.spool import FindingSpool


class SelectionError(ValueError):
    """A selection value that cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class FindingSelection:
    categories: frozenset[str] = frozenset()
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    min_confidence: float = 0.0

    @classmethod
    def build(
        cls,
        categories: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        min_confidence: float | None = None,
        known_categories: Iterable[str] = (),
    ) -> FindingSelection:
        wanted = frozenset(c.strip() for c in categories)
        known = frozenset(known_categories)
        if known and wanted - known:
            raise SelectionError(
                f"--category {', '.join(sorted(wanted - known))}: no rule has this category "
                f"(one of {', '.join(sorted(known))})"
            )
        start = parse_time(since, "--since") if since else None
        end = parse_time(until, "--until") if until else None
        if start is not None and end is not None and end <= start:
            raise SelectionError("--until must be later than --since")
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise SelectionError(f"--min-confidence {min_confidence} is not between 0 and 1")
        return cls(wanted, start, end, min_confidence or 0.0)

    @property
    def active(self) -> bool:
        return bool(
            self.categories
            or self.since is not None
            or self.until is not None
            or self.min_confidence > 0.0
        )

    def matches(self, finding: Finding) -> bool:
        if self.categories and finding.category not in self.categories:
            return False
        if self.since is not None and finding.time < self.since:
            return False
        if self.until is not None and finding.time >= self.until:
            return False
        return finding.confidence >= self.min_confidence

    def apply(self, findings: FindingSpool) -> FindingSpool:
        """The kept findings, in a new spool (the old one is closed)."""
        if not self.active:
            return findings
        kept = FindingSpool(findings.memory_limit)
        kept.extend(f for f in findings if self.matches(f))
        findings.close()
        return kept

    def describe(self) -> list[str]:
        """The options as given, in a canonical spelling (report headers)."""
        described = [f"--category {c}" for c in sorted(self.categories)]
        if self.since is not None:
            described.append(f"--since {iso_time(self.since)}")
        if self.until is not None:
            described.append(f"--until {iso_time(self.until)}")
        if self.min_confidence > 0.0:
            described.append(f"--min-confidence {self.min_confidence:g}")
        return described


def parse_time(text: str, option: str) -> float:
    """ISO 8601 date or date and time; without a time zone it is UTC (captures are UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise SelectionError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2024-11-25T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
