"""What a report shows: the finding filters (--category, --min-confidence, --impact), the bound
on detailed sections (--limit), the clock (--localtime), and how each is echoed in a header.

Selection happens after the findings are numbered, so an id never depends on it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from tcpdiag import __version__
from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER
from tcpdiag.filters import ConnectionFilter
from tcpdiag.findings import FindingFacts

IMPACTS = ("error_seen", "none", "unknown")

# Detailed group sections at most, by default: with the summary, this keeps a Markdown report
# under 30,000 characters (tests/test_report_markdown.py checks it on a synthesized large one).
DEFAULT_LIMIT = 10


@dataclass(frozen=True, slots=True)
class Selection:
    categories: frozenset[str] = frozenset()  # empty: every category
    min_confidence: float = 0.0
    impacts: frozenset[str] = frozenset()  # empty: every impact
    limit: int = DEFAULT_LIMIT  # detailed group sections per capture
    localtime: bool = False  # clock times in the local zone instead of UTC
    connection_filter: ConnectionFilter = field(default_factory=ConnectionFilter)

    def accepts(self, finding: FindingFacts) -> bool:
        return (
            (not self.categories or finding.category in self.categories)
            and finding.confidence >= self.min_confidence
            and (not self.impacts or finding.impact in self.impacts)
        )

    @property
    def filters_findings(self) -> bool:
        return bool(self.categories or self.impacts or self.min_confidence > 0)

    def describe(self) -> list[str]:
        """Each active filter as the option that set it, e.g. `--port 443`."""
        wanted = self.connection_filter
        parts = [f"--host {h}" for h in sorted(wanted.hosts)]
        parts += [f"--port {p}" for p in sorted(wanted.ports)]
        parts += [f"--net {n}" for n in wanted.nets]
        parts += [f"--state {s}" for s in sorted(wanted.states)]
        parts += [f"--category {c}" for c in sorted(self.categories)]
        if self.min_confidence > 0:
            parts.append(f"--min-confidence {self.min_confidence:g}")
        parts += [f"--impact {i}" for i in sorted(self.impacts)]
        return parts


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What every report header says about the run itself."""

    command: tuple[str, ...] = ("tcpdiag",)  # the command line, as typed
    version: str = __version__

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


class DocumentReporter:
    """What a reporter that writes one document for the whole run (Markdown, HTML) is told:
    which findings to show, the run's header, and how large a group of findings is
    aggregated (tcpdiag.aggregate)."""

    def __init__(
        self,
        selection: Selection | None = None,
        run: RunInfo | None = None,
        aggregate_over: int = DEFAULT_AGGREGATE_OVER,
    ) -> None:
        self.selection = selection or Selection()
        self.run = run or RunInfo()
        self.aggregate_over = aggregate_over


@dataclass(frozen=True, slots=True)
class FailOn:
    """Which findings make `tcpdiag analyze` exit 1 (--fail-on): by default those in which an
    application saw an error (impact "error_seen"); `any`; `never`; or a comma-separated list of
    categories and impacts (`refused,peer_reset`, `unknown`); and `hang`: a capture with a
    connection hanging (tcpdiag.hangs), which is no finding."""

    words: frozenset[str] = frozenset({"error_seen"})

    @classmethod
    def parse(cls, text: str, categories: frozenset[str]) -> FailOn:
        words = frozenset(w.strip() for w in text.split(",") if w.strip())
        unknown = words - categories - set(IMPACTS) - {"any", "never", "hang"}
        if not words or unknown:
            raise ValueError(
                f"--fail-on {text!r}: expected any, never, an impact ({', '.join(IMPACTS)}), "
                f"categories ({', '.join(sorted(categories))}) or hang, comma-separated"
            )
        return cls(words)

    @property
    def hangs(self) -> bool:
        """Whether a capture with a hang exits 1."""
        return "hang" in self.words and "never" not in self.words

    def __call__(self, finding: FindingFacts) -> bool:
        if "never" in self.words:
            return False
        return "any" in self.words or finding.impact in self.words or finding.category in self.words
