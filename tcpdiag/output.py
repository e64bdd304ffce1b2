"""Writing a report where it may fail: a closed pipe (`tcpdiag ... >&-`, a reader that quit), a
full disk (`> /dev/full`), an -o file on a volume that went away. Every command turns such a
failure into one line on stderr and exit status 2, never a traceback; a report cut short must
not look complete, so nothing more is written after it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TextIO


class OutputError(Exception):
    """The report cannot be written (closed pipe, full disk): the run ends with one line on
    stderr. Its text is the system's reason ("No space left on device")."""


def guarded_write(out: TextIO, action: Callable[[], object]) -> None:
    """Run an output action and flush; a failure to write is OutputError, whatever raised it."""
    try:
        action()
        out.flush()
    except OSError as exc:  # BrokenPipeError (closed stdout), ENOSPC (/dev/full), ...
        raise OutputError(exc.strerror or str(exc)) from None


def silence_stdout(out: TextIO) -> None:
    """After a write error, what is still buffered would fail again when Python exits (with
    a traceback-like message), or when an -o file is closed: close the file now, quietly, or
    point stdout at /dev/null."""
    if out is not sys.stdout:
        with contextlib.suppress(OSError, ValueError):
            out.close()  # the failing flush is reported already; the file ends up closed
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
