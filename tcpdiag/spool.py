"""Items in a sorted order, held in memory only up to a bound: a capture's findings, and the
connections `tcpdiag flows` lists.

Findings (and connection records) are made as connections retire, which is not report order.
Up to `memory_limit` items are kept in memory; beyond that each batch is sorted and written to
an anonymous temporary file as one sorted run, and reading merges the runs back. A batch that
starts where the newest run ends (items mostly come in order) continues that run instead. Memory
therefore does not grow with the number of items, so it does not grow with the capture.

A run is pickled in blocks of up to `BLOCK_ITEMS` items, each item as plain values (its `Codec`:
by default the tuple of its fields; a finding's evidence and causes laid out flat), one
`pickle.dumps` per block, not per item, and read a block at a time. Reading holds one
block per run, so the number of runs is bounded too: when `fan_in` runs of one size have
accumulated, they are merged into one run `fan_in` times bigger (as in a log-structured merge;
each level has a file of its own, emptied when its runs move up). Blocks are memory_limit /
fan_in items, so reading holds about memory_limit items per level; an item is written about
log_fan_in(items / memory_limit) times: not at all again below memory_limit * fan_in items.

`SortedSpool` is like a sorted list: the order is that of a stable sort by `key`. For findings
(`FindingSpool`), every iteration also gives each finding its report id ("F1", "F2", ...) in
that order. Findings of the connections a filter left out are `skip`ped: only their place in
the order is kept, so a finding has the same id with or without --host/--port/--net. For the
JSON reports a FindingSpool keeps each finding as its JSON text (`encode`), so that a finding is
turned into JSON once, as it comes in, instead of pickled, read back and then turned into JSON.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import heapq
import itertools
import operator
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Generic, NamedTuple, TypeVar, cast

from tcpdiag.events import Evidence
from tcpdiag.findings import Cause, EncodedFinding, Finding, FindingDigest, FindingFacts

MEMORY_LIMIT = 500  # findings held in memory before a run goes to disk (~4 KB each)
DIGESTS_PER_FINDING = 8  # digests held in memory per finding held (~0.4 KB each)
BLOCK_ITEMS = 256  # items pickled together at most (fewer with a small memory_limit)
FAN_IN = 32  # runs of one level merged into one run of the next level (by default)

T = TypeVar("T")


class Codec(NamedTuple, Generic[T]):
    """How an item of a spool goes to disk: `encode` makes it plain values that pickle
    quickly (tuples, lists, numbers, strings), `decode` makes the item again from them."""

    encode: Callable[[T], Any]
    decode: Callable[[Any], T]


def _made(item_type: Callable[..., T], values: tuple[Any, ...]) -> T:
    return item_type(*values)


class SortedSpool(Generic[T]):
    """Items of one dataclass type (`item_type`, its fields all set by `__init__`) in the order
    of a stable sort by `key`; in memory up to `memory_limit` items, the rest in sorted runs on
    disk. `label` names the items in the warning of a full temporary directory."""

    def __init__(
        self,
        item_type: type[T],
        key: Callable[[T], Any],
        memory_limit: int,
        label: str = "items",
        fan_in: int = 0,
        codec: Codec[T] | None = None,
    ) -> None:
        self.memory_limit = max(memory_limit, 1)
        self.fan_in = max(fan_in or FAN_IN, 2)
        self._key, self._label = key, label
        if codec is None:
            names = [f.name for f in dataclasses.fields(item_type)]  # type: ignore[arg-type]
            # An item goes to disk as the plain tuple of its fields: the generic pickling of a
            # slotted dataclass looks its fields up again for every object, several times
            # slower.
            codec = Codec(operator.attrgetter(*names), functools.partial(_made, item_type))
        self._codec = codec
        self._block = max(1, min(BLOCK_ITEMS, self.memory_limit // self.fan_in))
        self._pending: list[T] = []
        self._files: list[IO[bytes]] = []  # one per level
        self._runs: list[tuple[int, int, int]] = []  # (level, offset, count), oldest first
        # The key of the last item of the newest run while that run is of level 0 (the end of
        # its file): a batch whose first key is not below it extends that run (see _spill).
        self._tail: Any = None
        self._count = 0
        self.spill_failed = ""  # why items could not go to disk (then: all in memory)

    def extend(self, items: Iterable[T]) -> None:
        before = len(self._pending)
        self._pending.extend(items)
        self._count += len(self._pending) - before
        if len(self._pending) >= self.memory_limit and not self.spill_failed:
            try:
                self._spill()
            except OSError as exc:
                # A full (or unwritable) temporary directory: keep every item in memory rather
                # than lose any; the report says so. A partly written run is never listed in
                # _runs, so it is never read.
                self.spill_failed = f"{self._label} kept in memory: {exc.strerror or exc}"

    def _file(self, level: int) -> IO[bytes]:
        while len(self._files) <= level:
            # Owned until close() or garbage collection: the files live as long as the spool.
            self._files.append(tempfile.TemporaryFile(prefix="tcpdiag-spool-"))  # noqa: SIM115
        return self._files[level]

    def _write(self, level: int, items: Iterable[T]) -> tuple[int, int, int]:
        """Items (in order) as one run at the end of the level's file."""
        file, fields, size, rest = self._file(level), self._codec.encode, self._block, iter(items)
        file.seek(0, 2)
        offset, count = file.tell(), 0
        while block := list(map(fields, itertools.islice(rest, size))):
            file.write(pickle.dumps(block, pickle.HIGHEST_PROTOCOL))
            count += len(block)
        file.flush()  # a full disk shows here, before the run is counted
        return level, offset, count

    def _spill(self) -> None:
        pending, key = self._pending, self._key
        pending.sort(key=key)
        if self._tail is not None and not key(pending[0]) < self._tail:
            # Items mostly come in order (findings as connections retire): a batch that starts
            # where the newest run ends continues it (its blocks follow in the same file), so
            # that a stream in order is one run, never merged, and read without merging.
            level, offset, count = self._runs[-1]
            self._runs[-1] = (level, offset, count + self._write(0, pending)[2])
        else:
            self._runs.append(self._write(0, pending))
        self._tail = key(pending[-1])
        self._pending = []
        level = 0
        while sum(1 for run in self._runs if run[0] == level) >= self.fan_in:
            # The runs of a level are always the newest ones: merge them (oldest first, so the
            # merge stays stable) into one run of the next level, then empty the level's file.
            first = len(self._runs) - self.fan_in
            merged = heapq.merge(*map(self._read, self._runs[first:]), key=self._key)
            run = self._write(level + 1, merged)
            del self._runs[first:]
            self._runs.append(run)
            self._files[level].seek(0)
            self._files[level].truncate()
            self._tail = None  # (the newest run is of a higher level now)
            level += 1

    def _read(self, run: tuple[int, int, int]) -> Iterator[T]:
        level, position, left = run
        file, decode = self._files[level], self._codec.decode
        while left > 0:
            file.seek(position)
            block = pickle.load(file)
            position = file.tell()
            left -= len(block)
            yield from map(decode, block)

    def sorted_items(self) -> Iterator[T]:
        """Every item, in order (reads the runs back; may be called again)."""
        self._pending.sort(key=self._key)
        if not self._runs:
            return iter(self._pending)
        pending, tail = self._pending, self._tail
        in_order = tail is not None and (not pending or not self._key(pending[0]) < tail)
        if len(self._runs) == 1 and in_order:
            # Everything came in order: no merge (nor a key per item) needed.
            return itertools.chain(self._read(self._runs[0]), pending)
        runs: list[Iterable[T]] = [self._read(run) for run in self._runs]
        return heapq.merge(*runs, self._pending, key=self._key)

    def __iter__(self) -> Iterator[T]:
        return self.sorted_items()

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (to another process): every item, in order, in memory; no files.
        state = dict(self.__dict__)
        state.update(_pending=list(self.sorted_items()), _files=[], _runs=[], _tail=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def close(self) -> None:
        """Remove the temporary files; the spool is empty after."""
        for file in self._files:
            file.close()
        self._files, self._runs, self._pending, self._count = [], [], [], 0
        self._tail = None


_FINDING_FIELDS = [f.name for f in dataclasses.fields(Finding)]
_finding_values = operator.attrgetter(*_FINDING_FIELDS)
_EVIDENCE = _FINDING_FIELDS.index("evidence")
_CAUSE = _FINDING_FIELDS.index("cause")
_ALTERNATIVES = _FINDING_FIELDS.index("alternatives")
_flat = itertools.chain.from_iterable


def _finding_to_disk(finding: Finding) -> list[Any]:
    """A finding's fields, its evidence items and causes laid out flat in plain tuples: they
    are named tuples, which pickle one Python call (__reduce__) each; flat, a finding goes to
    disk about a quarter faster, and comes back about as fast."""
    values = list(_finding_values(finding))
    values[_EVIDENCE] = tuple(_flat(finding.evidence))  # frame, time, what, frame, ...
    cause = finding.cause
    values[_CAUSE] = None if cause is None else tuple(cause)
    values[_ALTERNATIVES] = tuple(_flat(finding.alternatives))  # id, text, confidence, ...
    return values


def _finding_from_disk(values: list[Any]) -> Finding:
    flat = values[_EVIDENCE]
    values[_EVIDENCE] = list(map(Evidence, flat[0::3], flat[1::3], flat[2::3]))
    if values[_CAUSE] is not None:
        values[_CAUSE] = Cause(*values[_CAUSE])
    flat = values[_ALTERNATIVES]
    values[_ALTERNATIVES] = list(map(Cause, flat[0::3], flat[1::3], flat[2::3]))
    return Finding(*values)


_FINDING_CODEC = Codec(_finding_to_disk, _finding_from_disk)


def _report_order(finding: Finding | EncodedFinding) -> tuple[float, list[int]]:
    return finding.time, finding.frames[:1]


def _digest_order(digest: FindingDigest) -> tuple[float, list[int]]:
    return digest.time, digest.first_frame


# A finding made into its JSON report form (tcpdiag.reporters.json_report.encode_finding).
FindingEncoder = Callable[[Finding], EncodedFinding]
_Numbered = TypeVar("_Numbered", Finding, EncodedFinding)


class FindingSpool(SortedSpool[Finding | EncodedFinding]):
    """A capture's findings in report order (time, first frame), numbered F1... as they are
    read; and their digests (`digests`), in the same order, for the passes that only count,
    filter and group them.

    With `encode`, each finding is kept as its JSON report form (EncodedFinding), made as it
    comes in: for a capture whose report is JSON or JSON Lines (the command line chooses),
    which then reads them with `encoded` and writes their text as it is. Such a spool gives
    no Finding objects (iterating it is a TypeError)."""

    def __init__(
        self, memory_limit: int = MEMORY_LIMIT, encode: FindingEncoder | None = None
    ) -> None:
        if encode is None:
            super().__init__(
                Finding,
                _report_order,
                memory_limit,
                label="findings",
                codec=cast(Codec[Finding | EncodedFinding], _FINDING_CODEC),
            )
        else:
            super().__init__(EncodedFinding, _report_order, memory_limit, label="findings")
        self.encode = encode
        # The same stable sort of the same items, by the same key: the same order.
        self._digests = SortedSpool(
            FindingDigest,
            _digest_order,
            memory_limit * DIGESTS_PER_FINDING,
            label="findings",
            fan_in=self.fan_in,
        )
        # (time, first frame) of each skipped finding: numbered, never reported. Two flat
        # lists, not a Finding each: a narrow filter on a large capture may skip millions.
        self._skipped_times: list[float] = []
        self._skipped_frames: list[int] = []
        self._skipped_sorted = True

    def extend(self, items: Iterable[Finding | EncodedFinding]) -> None:
        """Findings; in a spool that encodes, findings encoded already (a worker's) too."""
        encode = self.encode
        findings: list[Finding | EncodedFinding]
        if encode is None:
            findings = list(items)
            if any(type(f) is EncodedFinding for f in findings):
                raise TypeError("an encoded finding for a spool that keeps findings as they are")
        else:
            findings = [f if isinstance(f, EncodedFinding) else encode(f) for f in items]
        super().extend(findings)
        self._digests.extend(map(FindingDigest.of, findings))
        self.spill_failed = self.spill_failed or self._digests.spill_failed

    def digests(self) -> Iterable[FindingDigest]:
        """Every finding's digest, in report order; like the spool itself, it may be read again
        (planning aggregated findings reads them twice)."""
        return self._digests

    def close(self) -> None:
        super().close()
        self._digests.close()

    def skip(self, findings: Iterable[Finding]) -> None:
        """Count these findings in the numbering without keeping them."""
        for finding in findings:
            self._skipped_times.append(finding.time)
            self._skipped_frames.append(finding.frames[0] if finding.frames else 0)
            self._skipped_sorted = False

    def _skipped_before(self, finding: Finding | EncodedFinding) -> int:
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

    def _numbered(self, items: Iterable[_Numbered]) -> Iterator[_Numbered]:
        skipped = bool(self._skipped_times)
        for number, finding in enumerate(items, 1):
            finding.id = f"F{number + (self._skipped_before(finding) if skipped else 0)}"
            yield finding

    def __iter__(self) -> Iterator[Finding]:
        if self.encode is not None:
            raise TypeError("these findings are kept as JSON: read them with encoded()")
        return self._numbered(cast(Iterator[Finding], self.sorted_items()))

    def encoded(self, encode: FindingEncoder) -> Iterator[EncodedFinding]:
        """The findings as the JSON reports write them, numbered, in report order: as they
        were kept, or encoded now with `encode` (with their ids)."""
        if self.encode is None:
            return map(encode, self)
        return self._numbered(cast(Iterator[EncodedFinding], self.sorted_items()))

    def in_order(self) -> list[Finding] | list[EncodedFinding]:
        """Every finding as it is kept, in report order, numbered (to cross a process
        boundary: a FindingSpool with the same `encode` takes them back)."""
        if self.encode is None:
            return list(self)
        return list(self.encoded(self.encode))


def digests_of(findings: Iterable[Finding] | FindingSpool) -> Iterable[FindingFacts]:
    """What a pass that only counts, filters or groups findings reads: a spool's digests (in the
    same order), or the findings themselves."""
    if isinstance(findings, FindingSpool):
        return findings.digests()
    return findings
