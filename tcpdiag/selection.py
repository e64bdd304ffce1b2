"""--since/--until: the reports' finding selection (tcpdiag.reporters.selection.Selection:
--category, --min-confidence, --impact) extended with a time window.

A subclass, so every reporter applies it where it applies the others, after the findings are
numbered (an id never depends on a filter), and echoes it in its header with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tcpdiag.findings import FindingFacts, iso_time
from tcpdiag.reporters.selection import Selection


class SelectionError(ValueError):
    """A selection value that cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class TimedSelection(Selection):
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive

    @classmethod
    def with_window(cls, base: Selection, since: str | None, until: str | None) -> Selection:
        """`base` limited to findings from `since` to `until` (ISO 8601); `base` itself when
        neither is given."""
        start = parse_time(since, "--since") if since else None
        end = parse_time(until, "--until") if until else None
        if start is None and end is None:
            return base
        if start is not None and end is not None and end <= start:
            raise SelectionError("--until must be later than --since")
        return cls(
            categories=base.categories,
            min_confidence=base.min_confidence,
            impacts=base.impacts,
            limit=base.limit,
            localtime=base.localtime,
            connection_filter=base.connection_filter,
            since=start,
            until=end,
        )

    def accepts(self, finding: FindingFacts) -> bool:
        if self.since is not None and finding.time < self.since:
            return False
        if self.until is not None and finding.time >= self.until:
            return False
        return Selection.accepts(self, finding)

    @property
    def filters_findings(self) -> bool:
        window = self.since is not None or self.until is not None
        return window or bool(self.categories or self.impacts or self.min_confidence > 0)

    def describe(self) -> list[str]:
        described = Selection.describe(self)
        if self.since is not None:
            described.append(f"--since {iso_time(self.since)}")
        if self.until is not None:
            described.append(f"--until {iso_time(self.until)}")
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
