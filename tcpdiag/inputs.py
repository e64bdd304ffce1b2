"""What the command line's capture arguments name: files, directories, globs, stdin, and (with
--join) the rotated parts of one capture grouped together.

Expansion never fails: an argument that names nothing becomes an input whose analysis reports
the problem (one error row), so one bad argument does not stop a batch.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tcpdiag.reader import STDIN, STDIN_NAME, CaptureError, CaptureReader, joined_name

# File names a directory search picks up unless --glob says otherwise (compressed or not:
# "x.pcap.gz", "x.pcap1", "x.cap", "x.pcapng.zst").
DEFAULT_GLOBS = ("*.pcap*", "*.cap*", "*.pcapng*")

_GLOB_CHARS = re.compile(r"[*?[]")
_DIGITS = re.compile(r"\d+")
# Compression suffixes, ignored when deciding which files are parts of one capture.
_COMPRESSION_SUFFIX = re.compile(r"\.(gz|bz2|xz|zst|zstd|lz4)$", re.IGNORECASE)
# Files whose names say nothing are parts of one capture when each starts at most this long
# after the previous one ended (a capture tool rotating its output loses no time).
CHAIN_GAP_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CaptureInput:
    """One capture to analyse: a file, standard input ("-"), or rotated parts read as one."""

    parts: tuple[str, ...]
    size: int = 0  # bytes on disk, all parts (0 for standard input or when unknown)
    error: str | None = None  # the argument named nothing readable: report this, read nothing

    @property
    def name(self) -> str:
        if self.parts == (STDIN,):
            return STDIN_NAME
        return joined_name(self.parts)

    @property
    def is_stdin(self) -> bool:
        return STDIN in self.parts

    @property
    def source(self) -> str | list[str]:
        """What tcpdiag.analyze.analyze_capture takes: a path, or the list of parts."""
        return self.parts[0] if len(self.parts) == 1 else list(self.parts)


def expand_inputs(
    arguments: Sequence[str], patterns: Sequence[str] = (), join: bool = False
) -> list[CaptureInput]:
    """The captures the arguments name, in argument order; a directory's files (recursively,
    those matching `patterns`, default DEFAULT_GLOBS) and a glob's matches in sorted order.
    With `join`, rotated parts among them become one input at the place of their first part."""
    patterns = tuple(patterns) or DEFAULT_GLOBS
    paths: list[str] = []
    errors: dict[int, str] = {}  # position in paths -> why that argument gave nothing
    for argument in arguments:
        if argument == STDIN:
            paths.append(STDIN)
        elif os.path.isdir(argument):
            found = list(_directory_files(argument, patterns))
            if not found:
                errors[len(paths)] = f"{argument}: no file matching {' or '.join(patterns)}"
                paths.append(argument)
            paths.extend(found)
        elif _GLOB_CHARS.search(argument) and not os.path.lexists(argument):
            # A glob the shell did not expand (quoted, or too many files for the command line).
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                errors[len(paths)] = f"{argument}: no file matches this pattern"
                paths.append(argument)
            for match in matches:
                if os.path.isdir(match):
                    paths.extend(_directory_files(match, patterns))
                else:
                    paths.append(match)
        else:
            paths.append(argument)  # missing or unreadable: analysis says why, for this file
    if not join:
        return [
            CaptureInput((path,), _size(path), errors.get(number))
            for number, path in enumerate(paths)
        ]
    # (A named pipe, a device or a socket is read once, alone: ordering parts reads each part's
    # first packet before the part itself.)
    plain = [p for n, p in enumerate(paths) if n not in errors and p != STDIN and _joinable(p)]
    groups = {group[0]: group for group in group_rotated(plain)}
    members = {part for group in groups.values() for part in group}
    inputs: list[CaptureInput] = []
    for number, path in enumerate(paths):
        if number in errors or path == STDIN:
            inputs.append(CaptureInput((path,), 0, errors.get(number)))
        elif path in groups:
            group = groups[path]
            inputs.append(CaptureInput(tuple(group), sum(_size(p) for p in group)))
        elif path not in members:
            inputs.append(CaptureInput((path,), _size(path)))
    return inputs


def _joinable(path: str) -> bool:
    """A regular file (or one that is missing or unreadable: its analysis says why)."""
    return os.path.isfile(path) or not os.path.exists(path)


def _directory_files(directory: str, patterns: Sequence[str]) -> list[str]:
    """Regular files under `directory` whose name matches a pattern, sorted by path (so the
    order does not depend on the file system). Symbolic links to directories are not followed
    (no loops); FIFOs, sockets and devices are left out (opening a FIFO would wait for a
    writer forever)."""
    found = [
        os.path.join(root, name)
        for root, _dirs, files in os.walk(directory)
        for name in files
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
    ]
    return sorted(path for path in found if os.path.isfile(path))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return 0


def rotation_key(path: str) -> tuple[str, str]:
    """What rotated parts of one capture share: their directory and their name with every
    number replaced (tcpdump -C appends a count: x.pcap, x.pcap1, ...; -G puts a strftime
    time in the name; -W numbers with zero padding) and the compression suffix removed."""
    directory, name = os.path.split(path)
    return directory, _DIGITS.sub("#", _COMPRESSION_SUFFIX.sub("", name))


def group_rotated(paths: Sequence[str]) -> list[list[str]]:
    """The paths grouped into rotated captures, each group in capture order (by the time of its
    first packet, then by the numbers in the name), groups in order of their first path.

    Parts are recognised by name (`rotation_key`); tcpdump -C's first file, which has no
    number ("x.pcap" before "x.pcap1"), joins the group of the numbered ones. Files whose names
    match no other are joined when their time ranges chain (`_chain_by_time`)."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for path in dict.fromkeys(paths):  # each path once
        by_key.setdefault(rotation_key(path), []).append(path)
    for key in list(by_key):
        directory, name = key
        numbered = (directory, name + "#")
        if "#" not in name and numbered in by_key and key in by_key:
            by_key[numbered] = by_key.pop(key) + by_key[numbered]
    groups = [sorted(group, key=_capture_order) for group in by_key.values()]
    loose = [group[0] for group in groups if len(group) == 1]
    groups = _chain_by_time([group for group in groups if len(group) > 1], loose)
    first_seen = {path: number for number, path in enumerate(paths)}
    return sorted(groups, key=lambda group: min(first_seen[p] for p in group))


def _chain_by_time(groups: list[list[str]], loose: list[str]) -> list[list[str]]:
    """Files whose names match no other are joined when their time ranges chain: in the same
    directory, each starting within CHAIN_GAP_SECONDS after the one before it ended."""
    if len(loose) < 2:
        return groups + [[p] for p in loose]
    spans = {path: _time_span(path) for path in loose}
    chains: list[list[str]] = []
    for path in sorted(loose, key=lambda p: (spans[p][0], p)):
        first, _ = spans[path]
        previous = chains[-1][-1] if chains else None
        if (
            previous is not None
            and os.path.dirname(previous) == os.path.dirname(path)
            and 0.0 <= first - spans[previous][1] <= CHAIN_GAP_SECONDS
        ):
            chains[-1].append(path)
        else:
            chains.append([path])
    return groups + chains


def _time_span(path: str) -> tuple[float, float]:
    """The first and last packet time (a whole read); unreadable or empty: (inf, inf)."""
    first = last = float("inf")
    try:
        with CaptureReader(path) as reader:
            for frame in reader:
                if first == float("inf"):
                    first = frame.time
                last = frame.time
    except CaptureError:
        pass
    return first, last


def _capture_order(path: str) -> tuple[float, tuple[int, ...], str]:
    # The first packet's time puts a ring buffer (tcpdump -W) that wrapped around in order; the
    # numbers in the name decide when times are equal or unreadable (a file without a number,
    # tcpdump -C's first, comes first).
    numbers = tuple(int(n) for n in _DIGITS.findall(os.path.basename(path)))
    return _first_time(path), numbers, path


def _first_time(path: str) -> float:
    try:
        with CaptureReader(path) as reader:
            for frame in reader:
                return frame.time
    except CaptureError:
        pass
    return float("inf")  # unreadable or empty: last, where its error will show
