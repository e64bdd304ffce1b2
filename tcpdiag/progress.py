"""Progress of a batch on stderr: a rich progress bar and one line per finished capture.

Shown only when stderr is a terminal and not --quiet, so pipes, logs and CI get nothing but
the warnings and errors. --verbose adds each capture's wall time and its worker's peak memory
(on stderr, terminal or not). Bytes count what is on disk (compressed), so the ETA follows the
reading; packets and findings are counted as each capture finishes.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from tcpdiag.analyze import CaptureReport
from tcpdiag.reporters.common import safe_line

if TYPE_CHECKING:  # rich is imported only when a bar is shown (it takes ~40 ms)
    from rich.progress import Progress, TaskID


class BatchProgress:
    def __init__(self, quiet: bool = False, verbose: bool = False, err: TextIO | None = None):
        self._err = err or sys.stderr
        self._verbose = verbose
        self._live = not quiet and _is_terminal(self._err)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._files = self._total_files = 0
        self._bytes = self._total_bytes = 0
        self._packets = self._findings = 0
        self._read: dict[int, int] = {}  # bytes already counted of captures not yet done
        self._started = time.monotonic()

    def start(self, total_files: int, total_bytes: int) -> None:
        self._total_files, self._total_bytes = total_files, total_bytes
        self._started = time.monotonic()
        # One capture: the report itself says it all, and a bar would only flicker.
        if not self._live or total_files < 2:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(file=self._err, stderr=True, highlight=False)
        self._bar = Progress(
            TextColumn("{task.fields[files]}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[packets]} packets, {task.fields[rate]}/s"),
            TextColumn("{task.fields[findings]} findings"),
            TimeRemainingColumn(),
            console=console,
            transient=True,  # the bar goes; the per-capture lines stay
        )
        self._task = self._bar.add_task("", total=max(total_bytes, 1), **self._fields())
        self._bar.start()

    def _fields(self) -> dict[str, Any]:  # Any: rich types its **fields loosely
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return {
            "files": f"{self._files}/{self._total_files} files",
            "packets": f"{self._packets:,}",
            "rate": f"{self._packets / elapsed:,.0f}",
            "findings": f"{self._findings:,}",
        }

    @property
    def live(self) -> bool:
        """Is a bar shown (so that reading progress is worth reporting)?"""
        return self._bar is not None

    def bytes_read(self, index: int, size: int) -> None:
        """Input `index` read `size` more bytes (local workers report as they go)."""
        self._read[index] = self._read.get(index, 0) + size
        self._bytes += size
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self._bytes, **self._fields())

    def file_done(
        self,
        index: int,
        report: CaptureReport,
        findings: int,
        size: int,
        seconds: float,
        peak_rss: int,
    ) -> None:
        """A capture finished (in whatever order captures finish) with `findings`."""
        self._files += 1
        self._bytes += max(size - self._read.pop(index, 0), 0)
        self._packets += report.packets
        self._findings += findings
        if self._verbose:
            memory = f", worker peak {peak_rss / (1 << 20):.0f} MiB" if peak_rss else ""
            self.echo(f"tcpdiag: {report.path}: {seconds:.2f} s, {report.packets} packets{memory}")
        if self._bar is None or self._task is None:
            return
        status = "error" if report.error else f"{findings} finding{'s' * (findings != 1)}"
        self._bar.console.print(
            safe_line(
                f"[{self._files}/{self._total_files}] {report.path}: {report.packets:,} packets, "
                f"{status}"
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        self._bar.update(self._task, completed=self._bytes, **self._fields())

    def echo(self, line: str) -> None:
        """A line on stderr that does not tear the bar (warnings, errors, timings)."""
        if self._bar is not None:
            self._bar.console.print(safe_line(line), markup=False, highlight=False, soft_wrap=True)
        else:
            self._err.write(safe_line(line) + "\n")
            self._err.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
