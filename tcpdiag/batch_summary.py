"""The summary across the captures of a batch: findings per category per capture, the
endpoints most often involved, the time span, the captures with errors, and the filters.

Accumulated one report at a time (reports are not kept), rendered as text, Markdown or a JSON
value. Endpoint counts are bounded: past MAX_ENDPOINTS distinct ones, the rarest are dropped
(the top of the list is what a summary shows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpdiag.analyze import CaptureReport
from tcpdiag.findings import FindingFacts, iso_time
from tcpdiag.reporters.common import markdown_text, safe_line, tabulate
from tcpdiag.spool import digests_of

TOP = 10  # endpoints listed
MAX_ENDPOINTS = 100_000  # distinct endpoints counted at most


@dataclass(slots=True)
class CaptureLine:
    path: str
    packets: int
    findings: Counter[str]  # per category
    error: str | None
    truncated: bool
    parts: list[tuple[str, int, int]] = field(default_factory=list)  # --join: (path, first, n)
    hangs: int = 0  # connections hanging when last seen (tcpdiag.hangs): no findings

    def parts_text(self) -> str:
        """Where each joined part's frames are in the continuous numbering."""
        return ", ".join(
            f"{path} = frames {first}-{first + count - 1}" for path, first, count in self.parts
        )


def _host(endpoint: str) -> str:
    """'10.0.0.1:80' -> '10.0.0.1'; '[2001:db8::1]:80' -> '2001:db8::1'."""
    host = endpoint.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


@dataclass(slots=True)
class BatchSummary:
    filters: list[str] = field(default_factory=list)
    captures: list[CaptureLine] = field(default_factory=list)
    servers: Counter[str] = field(default_factory=Counter)  # server ip:port
    clients: Counter[str] = field(default_factory=Counter)  # client address
    first_time: float | None = None
    last_time: float | None = None
    interrupted: bool = False

    def add(self, report: CaptureReport, shown: Callable[[FindingFacts], bool] = bool) -> None:
        """Count `report`'s findings that `shown` accepts (those the reports show)."""
        per_category: Counter[str] = Counter()
        servers, clients = self.servers, self.clients
        for finding in digests_of(report.findings):
            if not shown(finding):
                continue
            per_category[finding.category] += 1
            servers[finding.server] += 1
            clients[_host(finding.client)] += 1
            if len(servers) > MAX_ENDPOINTS or len(clients) > MAX_ENDPOINTS:
                # Within a capture too: a scan of a million ports would otherwise count a
                # million endpoints before the first trim.
                _trim(servers, clients)
        self.captures.append(
            CaptureLine(
                report.path,
                report.packets,
                per_category,
                report.error,
                report.truncated,
                list(report.parts),
                len(report.hangs),
            )
        )
        _trim(servers, clients)
        first, last = report.first_time, report.last_time
        if first is not None and (self.first_time is None or first < self.first_time):
            self.first_time = first
        if last is not None and (self.last_time is None or last > self.last_time):
            self.last_time = last

    @property
    def categories(self) -> list[str]:
        return sorted({c for line in self.captures for c in line.findings})

    @property
    def joined(self) -> list[CaptureLine]:
        return [line for line in self.captures if line.parts]

    @property
    def errors(self) -> list[CaptureLine]:
        return [line for line in self.captures if line.error]

    def _span(self) -> str:
        if self.first_time is None or self.last_time is None:
            return "no packets"
        return f"{iso_time(self.first_time)} to {iso_time(self.last_time)}"

    def _table(self) -> tuple[list[str], list[list[Any]]]:
        categories = self.categories
        # (A column of hangs only where a capture has one: the capture an application hung in
        # is what a team triaging a directory looks for, though it has no finding.)
        hangs = any(line.hangs for line in self.captures)
        rows = []
        for line in self.captures:
            status = "error" if line.error else "cut short" if line.truncated else "ok"
            counts = [line.findings.get(c, 0) for c in categories]
            if hangs:
                counts.append(line.hangs)
            rows.append([line.path, status, line.packets, *counts, sum(line.findings.values())])
        totals = [sum(line.findings.get(c, 0) for line in self.captures) for c in categories]
        packets = sum(line.packets for line in self.captures)
        extra = [sum(line.hangs for line in self.captures)] if hangs else []
        rows.append(["total", "", packets, *totals, *extra, sum(totals)])
        headers = ["capture", "status", "packets", *categories, *(["hangs"] if hangs else [])]
        return [*headers, "findings"], rows

    def text(self) -> str:
        headers, rows = self._table()
        lines = [f"== batch summary: {len(self.captures)} captures" + self._interrupted()]
        if self.filters:
            lines.append(f"filters: {' '.join(self.filters)}")
        lines.append(f"time span: {self._span()}")
        lines.append(safe_line_table(tabulate(rows, headers=headers, tablefmt="simple")))
        for title, counter in (("servers", self.servers), ("client hosts", self.clients)):
            if counter:
                top = ", ".join(f"{k} ({n})" for k, n in counter.most_common(TOP))
                lines.append(safe_line(f"top {title} in findings: {top}"))
        for line in self.joined:
            lines.append(safe_line(f"joined {line.path}: {line.parts_text()}"))
        for line in self.errors:
            lines.append(safe_line(f"error: {line.error}"))
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        headers, rows = self._table()
        for row in rows:
            row[0] = markdown_text(str(row[0]))
        out = [f"## Batch summary: {len(self.captures)} captures{self._interrupted()}\n"]
        if self.filters:
            out.append(f"Filters: {markdown_text(' '.join(self.filters))}\n")
        out.append(f"Time span: {self._span()}\n")
        out.append(tabulate(rows, headers=[markdown_text(h) for h in headers], tablefmt="github"))
        out.append("")
        for title, counter in (("servers", self.servers), ("client hosts", self.clients)):
            if counter:
                top = ", ".join(f"{markdown_text(k)} ({n})" for k, n in counter.most_common(TOP))
                out.append(f"- top {title} in findings: {top}")
        out.extend(
            f"- joined {markdown_text(line.path)}: {markdown_text(line.parts_text())}"
            for line in self.joined
        )
        out.extend(f"- **error:** {markdown_text(line.error or '')}" for line in self.errors)
        return "\n".join(out).rstrip("\n") + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "captures": len(self.captures),
            "interrupted": self.interrupted,
            "filters": list(self.filters),
            "first_time": iso_time(self.first_time) if self.first_time is not None else None,
            "last_time": iso_time(self.last_time) if self.last_time is not None else None,
            "findings_per_capture": [
                {
                    "path": line.path,
                    "error": line.error,
                    "packets": line.packets,
                    "findings": dict(sorted(line.findings.items())),
                    "hangs": line.hangs,
                }
                for line in self.captures
            ],
            "top_servers": [
                {"endpoint": k, "findings": n} for k, n in self.servers.most_common(TOP)
            ],
            "top_clients": [{"host": k, "findings": n} for k, n in self.clients.most_common(TOP)],
            "errors": [{"path": line.path, "error": line.error} for line in self.errors],
        }

    def _interrupted(self) -> str:
        return " (interrupted: the captures that finished)" if self.interrupted else ""


def safe_line_table(text: str) -> str:
    return "\n".join(safe_line(line) for line in text.split("\n"))


def _trim(*counters: Counter[str]) -> None:
    """Past MAX_ENDPOINTS distinct endpoints, keep the most frequent half."""
    for counter in counters:
        if len(counter) > MAX_ENDPOINTS:
            for key, _ in counter.most_common()[MAX_ENDPOINTS // 2 :]:
                del counter[key]
