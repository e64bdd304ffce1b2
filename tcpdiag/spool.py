"""A capture's findings in report order, held in memory only up to a bound.

Findings are made as connections retire, which is not report order (by time). Up to
`memory_limit` of them are kept in memory; beyond that each batch is sorted and written to an
anonymous temporary file as one sorted run, and reading merges the runs back. Memory therefore
does not grow with the number of findings, so it does not grow with the size of the capture.

Like a sorted list: the order is that of a stable sort by (time, first frame), and every
iteration gives each finding its report id ("F1", "F2", ...) in that order. Findings of the
connections a filter left out are `skip`ped: only their place in the order is kept, so a
finding has the same id with or without --host/--port/--net.
"""

from __future__ import annotations

import bisect
import heapq
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from tcpdiag.findings import Finding

MEMORY_LIMIT = 500  # findings held in memory before a run goes to disk (~4 KB each)


def _report_order(finding: Finding) -> tuple[float, list[int]]:
    return finding.time, finding.frames[:1]


class FindingSpool:
    def __init__(self, memory_limit: int = MEMORY_LIMIT) -> None:
        self.memory_limit = memory_limit
        self._pending: list[Finding] = []
        self._file: IO[bytes] | None = None
        self._runs: list[tuple[int, int]] = []  # (offset, count) of each sorted run on disk
        self._count = 0
        # (time, first frame) of each skipped finding: numbered, never reported. Two flat
        # lists, not a Finding each: a narrow filter on a large capture may skip millions.
        self._skipped_times: list[float] = []
        self._skipped_frames: list[int] = []
        self._skipped_sorted = True
        self.spill_failed = ""  # why findings could not go to disk (then: all in memory)

    def skip(self, findings: Iterable[Finding]) -> None:
        """Count these findings in the numbering without keeping them."""
        for finding in findings:
            self._skipped_times.append(finding.time)
            self._skipped_frames.append(finding.frames[0] if finding.frames else 0)
            self._skipped_sorted = False

    def _skipped_before(self, finding: Finding) -> int:
        """How many skipped findings come before this one in report order."""
        if not self._skipped_sorted:
            pairs = sorted(zip(self._skipped_times, self._skipped_frames, strict=True))
            self._skipped_times = [t for t, _ in pairs]
            self._skipped_frames = [f for _, f in pairs]
            self._skipped_sorted = True
        times, frame = self._skipped_times, finding.frames[0] if finding.frames else 0
        low = bisect.bisect_left(times, finding.time)
        high = bisect.bisect_right(times, finding.time, lo=low)
        return low + sum(1 for f in self._skipped_frames[low:high] if f < frame)

    def extend(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self._pending.append(finding)
            self._count += 1
        if len(self._pending) >= self.memory_limit and not self.spill_failed:
            try:
                self._spill()
            except OSError as exc:
                # A full (or unwritable) temporary directory: keep every finding in memory
                # rather than lose any; the report says so. A partly written run is never
                # listed in _runs, so it is never read.
                self.spill_failed = f"findings kept in memory: {exc.strerror or exc}"

    def _spill(self) -> None:
        if self._file is None:
            # Owned until close() or garbage collection: the file lives as long as the spool.
            self._file = tempfile.TemporaryFile(prefix="tcpdiag-findings-")  # noqa: SIM115
        self._pending.sort(key=_report_order)
        self._file.seek(0, 2)
        offset = self._file.tell()
        pickler = pickle.Pickler(self._file, pickle.HIGHEST_PROTOCOL)
        for finding in self._pending:
            pickler.dump(finding)
            pickler.clear_memo()  # each finding stands alone, so a run is read one at a time
        self._file.flush()  # a full disk shows here, before the run is counted
        self._runs.append((offset, len(self._pending)))
        self._pending = []

    def _run(self, offset: int, count: int) -> Iterator[Finding]:
        assert self._file is not None
        position = offset
        for _ in range(count):
            self._file.seek(position)
            finding = pickle.load(self._file)
            position = self._file.tell()
            yield finding

    def __iter__(self) -> Iterator[Finding]:
        self._pending.sort(key=_report_order)
        runs: list[Iterable[Finding]] = [self._run(o, c) for o, c in self._runs]
        merged = heapq.merge(*runs, self._pending, key=_report_order)
        for number, finding in enumerate(merged, 1):
            skipped = self._skipped_before(finding) if self._skipped_times else 0
            finding.id = f"F{number + skipped}"
            yield finding

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
