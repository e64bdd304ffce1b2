"""Handing freed memory back to the system.

Each window of the fast path (tcpdiag.fastpath) makes and frees a few hundred megabytes of
arrays of a few megabytes each. glibc's allocator serves arrays of that size from its heap once
a few have been freed (its mmap threshold adapts upwards), and keeps what they leave there: a
process that needs 100 MB at a time ends up holding twice that. `release_free_memory` asks the
allocator to give back what it holds unused (malloc_trim); where there is no glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)
