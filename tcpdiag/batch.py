"""Analysing many captures: worker processes, one capture per task, results in input order.

A task is one `CaptureInput` (a file, or the rotated parts of one capture); the worker returns
a `FileResult`, which pickles: the report's findings travel as a list (a FindingSpool may hold
a temporary file) and go back into a spool on arrival. Memory per worker is that of the
capture being analysed, which tcpdiag bounds; the parent holds only reports that finished
ahead of their turn.

Isolation: an error in a capture is that capture's error row. A worker that dies (a crash, the
OOM killer) breaks a ProcessPoolExecutor and fails every task still in it. Workers mark in
shared memory which input they are on, so the tasks that never began go back into a fresh
shared pool, and those that were being analysed (the one that killed its worker, and its
neighbours the broken pool took down with it) run again each in a pool of its own: the one
that kills its worker again is reported as such, the others are analysed.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.detect import RuleEngine
from tcpdiag.findings import EncodedFinding, Finding
from tcpdiag.inputs import CaptureInput
from tcpdiag.reader import set_read_observer
from tcpdiag.rules import RuleSet, load_rules
from tcpdiag.spool import FindingEncoder, FindingSpool


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs besides the input; pickled once per task (it is small)."""

    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    rules_dir: str | None = None
    debug: bool = False  # let internal errors raise (with --jobs 1 the traceback shows)


@dataclass(slots=True)
class FileResult:
    """One capture's analysis as it crosses a process boundary."""

    index: int  # position in the batch's inputs
    # Across a process boundary the report's `findings` spool is empty and `findings` holds
    # them; within one process they stay in the spool.
    report: CaptureReport
    findings: list[Finding] | list[EncodedFinding] = field(default_factory=list)
    encode: FindingEncoder | None = None  # how the analysis kept its findings (into_report)
    seconds: float = 0.0  # wall time of the analysis
    peak_rss: int = 0  # the worker's peak resident memory so far, bytes (0: not measured)
    size: int = 0  # bytes on disk

    def into_report(self) -> CaptureReport:
        """The report with its findings back in a spool (in report order, ids F1...)."""
        if self.findings:
            spool = FindingSpool(encode=self.encode)
            spool.extend(self.findings)
            self.report.findings = spool
            self.findings = []
        return self.report


_engines: dict[str | None, RuleEngine] = {}  # per process: rules are loaded once per worker


def keep_rules(rules_dir: str | None, ruleset: RuleSet) -> None:
    """Rules this process has loaded already (the command line reads them first, to refuse a
    bad rule before anything else): the engine for `rules_dir` is made from them rather than
    from a second reading of the files, about 10 ms of every run's start-up."""
    if rules_dir not in _engines:
        _engines[rules_dir] = RuleEngine(ruleset)


def _engine(rules_dir: str | None) -> RuleEngine:
    engine = _engines.get(rules_dir)
    if engine is None:
        engine = _engines[rules_dir] = RuleEngine(
            load_rules(Path(rules_dir) if rules_dir else None)
        )
    return engine


# In a local worker: bytes read per input index, shared with the parent (the progress bar).
# Each slot has one writer, the worker on that input, so no lock: a worker killed mid-write
# cannot leave a lock held and hang the others.
_read_counts: Any = None
# In a local worker: per input index, STARTED while a worker analyses it, DONE after. When a
# worker dies, the inputs left STARTED are the suspects; the others never began.
_task_states: Any = None
STARTED, DONE = 1, 2


def _count_reads(index: int) -> Callable[[int], None]:
    counts = _read_counts

    def count(size: int) -> None:
        counts[index] += size

    return count


def analyse_input(
    index: int, item: CaptureInput, settings: WorkerSettings, portable: bool = True
) -> FileResult:
    """The task: analyse one capture (in whatever process runs it). Never raises for bad
    input; an internal error becomes the capture's error unless settings.debug.

    `portable`: the result will be pickled, so the findings leave their spool for a list.
    In this process they stay in the spool, on disk beyond its memory bound."""
    set_read_observer(_count_reads(index) if _read_counts is not None else None)
    if _task_states is not None:
        _task_states[index] = STARTED
    try:
        return _analyse(index, item, settings, portable)
    finally:
        set_read_observer(None)
        if _task_states is not None:
            _task_states[index] = DONE


def _analyse(
    index: int, item: CaptureInput, settings: WorkerSettings, portable: bool
) -> FileResult:
    started = time.monotonic()
    if item.error is not None:
        report = CaptureReport(path=item.name, error=item.error)
    else:
        try:
            report = analyze_capture(item.source, _engine(settings.rules_dir), settings.options)
        except Exception as exc:  # a bug, not bad input: one line, and the batch goes on
            if settings.debug:
                raise
            report = CaptureReport(path=item.name, error=internal_error(item.name, exc))
    findings: list[Finding] | list[EncodedFinding] = []
    encode = report.findings.encode  # (the spool's kind, which the options do not always set)
    if portable:
        findings = report.findings.in_order()
        report.findings.close()
        report.findings = FindingSpool()
    return FileResult(
        index=index,
        report=report,
        findings=findings,
        encode=encode,
        seconds=time.monotonic() - started,
        peak_rss=_peak_rss(),
        size=item.size,
    )


def internal_error(name: str, exc: BaseException) -> str:
    return f"{name}: internal error ({type(exc).__name__}: {exc}); rerun with --debug and report it"


def _peak_rss() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def died_result(index: int, item: CaptureInput) -> FileResult:
    report = CaptureReport(
        path=item.name,
        error=f"{item.name}: the worker process analysing it died (a crash, or killed: out of "
        "memory?); the other captures were analysed",
    )
    return FileResult(index=index, report=report, size=item.size)


# -- local worker processes -----------------------------------------------------------------------


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_local(
    inputs: Sequence[CaptureInput],
    settings: WorkerSettings,
    jobs: int,
    on_bytes: Callable[[int, int], None] | None = None,
) -> Generator[FileResult, None, None]:
    """Analyse the inputs with up to `jobs` worker processes; results in completion order.

    Standard input is read in this process (a worker cannot read it), in a thread, while the
    workers analyse the files. One input alone is analysed in this process too: a worker would
    only add start-up time. `on_bytes(index, size)` hears of the workers' reading as it
    goes (called between results, from the consumer's thread)."""
    if len(inputs) == 1:
        yield analyse_input(0, inputs[0], settings, portable=False)
        return
    files = [n for n, item in enumerate(inputs) if not item.is_stdin]
    local = [n for n, item in enumerate(inputs) if item.is_stdin]
    # The largest first: a huge capture starts at once instead of after the small ones, so it
    # does not finish long after them (longest processing time first).
    files.sort(key=lambda n: -inputs[n].size)
    pool = _Pool(inputs, settings, max(1, min(jobs, len(files))), on_bytes)
    try:
        pool.start(files, local)
        yield from pool.results()
    finally:
        pool.stop()


_POLL_SECONDS = 0.25
# Workers are forked on Linux (Python 3.14 would pick forkserver): they start at once with
# tcpdiag and the rules already imported. The threads this process may have when it forks
# (the progress bar's refresh, the stdin reader) are never used by a worker.
_CONTEXT = multiprocessing.get_context("fork" if sys.platform == "linux" else None)


def _worker_start(read_counts: Any, task_states: Any) -> None:
    # Ctrl-C is the parent's to handle: it reports what finished and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _read_counts, _task_states
    _read_counts, _task_states = read_counts, task_states


class _Pool:
    """A ProcessPoolExecutor that survives a worker's death: see the module docstring."""

    def __init__(
        self,
        inputs: Sequence[CaptureInput],
        settings: WorkerSettings,
        workers: int,
        on_bytes: Callable[[int, int], None] | None,
    ) -> None:
        self._inputs = inputs
        self._settings = settings
        self._workers = workers
        self._on_bytes = on_bytes
        self._counts: Any = None  # bytes read per input, written by the workers
        self._seen: list[int] = []
        if on_bytes is not None:
            self._counts = _CONTEXT.Array("q", len(inputs), lock=False)
            self._seen = [0] * len(inputs)
        # Shared memory, one slot per input, one writer per slot: no lock to leave held.
        self._states = _CONTEXT.Array("b", len(inputs), lock=False)
        self._executors: list[ProcessPoolExecutor] = []
        self._shared: ProcessPoolExecutor | None = None  # the pool new tasks go to
        self._alone: set[ProcessPoolExecutor] = set()  # one-task pools, for suspects
        self._breaks: Counter[int] = Counter()  # broken pools each input was in
        # future -> (input index, its pool; None: a thread of this process, for stdin)
        self._running: dict[Future[FileResult], tuple[int, ProcessPoolExecutor | None]] = {}

    def _executor(self, workers: int) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            workers,
            mp_context=_CONTEXT,
            initializer=_worker_start,
            initargs=(self._counts, self._states),
        )
        self._executors.append(executor)
        return executor

    def _submit(self, executor: ProcessPoolExecutor, index: int) -> None:
        future = executor.submit(analyse_input, index, self._inputs[index], self._settings)
        self._running[future] = (index, executor)

    def start(self, indices: list[int], here: list[int]) -> None:
        """Submit `indices` to the workers; analyse `here` (stdin) in a thread of this process.
        A daemon thread: blocked on a silent pipe, it must not keep the process alive."""
        if indices:
            _engine(self._settings.rules_dir)  # loaded once here, inherited by forked workers
            shared = self._shared = self._executor(self._workers)
            for index in indices:
                self._submit(shared, index)
        for index in here:
            future: Future[FileResult] = Future()
            thread = threading.Thread(target=self._run_here, args=(future, index), daemon=True)
            thread.start()
            self._running[future] = (index, None)

    def _run_here(self, future: Future[FileResult], index: int) -> None:
        try:
            result = analyse_input(index, self._inputs[index], self._settings, portable=False)
            future.set_result(result)
        except BaseException as exc:  # handed to the consumer, like a worker's exception
            future.set_exception(exc)

    def results(self) -> Iterator[FileResult]:
        # Inputs a worker was on when its pool broke: run again, each in a pool of its own.
        suspects: deque[int] = deque()
        while self._running or suspects:
            while suspects and len(self._running) < self._workers:
                single = self._executor(1)
                self._alone.add(single)
                self._submit(single, suspects.popleft())
            # A timeout, so the progress bar hears of the reading of long captures.
            done, _ = wait(self._running, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            self._poll_reads()
            for future in sorted(done, key=lambda f: self._running[f][0]):
                index, executor = self._running.pop(future)
                alone = executor in self._alone
                if executor is not None and alone:  # its one task is done: let it go
                    executor.shutdown(wait=False)
                    self._executors.remove(executor)
                    self._alone.discard(executor)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    self._breaks[index] += 1
                    if alone:
                        yield died_result(index, self._inputs[index])
                    elif self._states[index] == STARTED or self._breaks[index] >= 2:
                        # (Twice in a broken pool without starting: suspect anyway, so that a
                        # crash before the mark cannot break fresh pools forever.)
                        suspects.append(index)
                    else:  # never began: innocent, back into a (fresh) shared pool
                        self._resubmit(executor, index)
                    continue
                except Exception as exc:  # e.g. the result did not pickle: still one line
                    if self._settings.debug:
                        raise
                    name = self._inputs[index].name
                    result = FileResult(
                        index, CaptureReport(path=name, error=internal_error(name, exc))
                    )
                yield result

    def _resubmit(self, broken: ProcessPoolExecutor | None, index: int) -> None:
        if self._shared is broken:
            self._shared = self._executor(self._workers)
        assert self._shared is not None
        self._submit(self._shared, index)

    def _poll_reads(self) -> None:
        if self._on_bytes is None:
            return
        for index, _ in self._running.values():
            count = self._counts[index]
            if count != self._seen[index]:
                self._on_bytes(index, count - self._seen[index])
                self._seen[index] = count

    def stop(self) -> None:
        """End every worker now (on Ctrl-C, or when the consumer stops early)."""
        for executor in self._executors:
            # Workers busy on a capture would otherwise finish it first: terminate them.
            # (ProcessPoolExecutor has no public way before Python 3.14's terminate_workers.)
            processes = getattr(executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
            executor.shutdown(wait=True, cancel_futures=True)


class InputOrder:
    """Results put back in input order: iterating yields each as soon as it and all before
    it are known; `on_finished` sees every result as it finishes (progress). After an
    interruption, `finished_out_of_turn` hands over those that were waiting for their turn."""

    def __init__(
        self, results: Iterator[FileResult], count: int, on_finished: Callable[[FileResult], None]
    ) -> None:
        self._results = results
        self._count = count
        self._on_finished = on_finished
        self._waiting: dict[int, FileResult] = {}
        self._next = 0

    def __iter__(self) -> Iterator[FileResult]:
        for result in self._results:
            # Kept before anything is said about it: a Ctrl-C right after the progress line
            # must still find it in finished_out_of_turn().
            self._waiting[result.index] = result
            self._on_finished(result)
            while self._next in self._waiting:
                self._next += 1
                yield self._waiting.pop(self._next - 1)
        if self._next < self._count:  # a runner that lost a result: a bug, never a silent gap
            raise RuntimeError(f"no result for input {self._next + 1} of {self._count}")

    def finished_out_of_turn(self) -> list[FileResult]:
        waiting, self._waiting = self._waiting, {}
        return [waiting[n] for n in sorted(waiting)]
