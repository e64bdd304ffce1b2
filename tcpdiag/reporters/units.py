"""Numbers for people: durations, byte counts, clock times and plurals."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 finding`, `2 findings`, `0 connections` (thousands separated)."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def duration(seconds: float) -> str:
    """A span in the unit a person would use: 33 µs, 1.2 ms, 4.05 s, 3 min 20 s, 2 h 5 min."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds == 0:
        return "0 s"
    if not math.isfinite(seconds):
        return f"{seconds} s"  # (no capture's timestamps make one; no rounding takes one)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{_significant(seconds * 1e3)} ms"
    if seconds < 60:
        return f"{_significant(seconds)} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def offset(seconds: float) -> str:
    """A time relative to a connection's first packet: `+0 s`, `+1.2 ms`, `+3.5 s`."""
    return "+" + duration(seconds)


def _significant(value: float) -> str:
    # Three significant digits, without trailing zeros: 1.25, 12.5, 125.
    text = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
    return text


def size(count: int) -> str:
    """Bytes: `1 byte`, `900 bytes`, `1.5 KiB`, `12.3 MiB`, `2.0 GiB`."""
    if count < 1024:
        return plural(count, "byte")
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def clock(epoch: float, localtime: bool = False) -> str:
    """`2026-11-25 16:59:28.025082 UTC`, or the local time with its UTC offset."""
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.6f}"  # a corrupt timestamp no calendar can hold stays a number
    if localtime:
        local = moment.astimezone()
        return local.strftime("%Y-%m-%d %H:%M:%S.%f ") + (local.strftime("%Z") or "local")
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def span(first: float | None, last: float | None, localtime: bool = False) -> str:
    """A capture's time span: `from … to … (585 ms)`, or a note when it had no packet."""
    if first is None or last is None:
        return "no packets"
    return f"{clock(first, localtime)} to {clock(last, localtime)} ({duration(last - first)})"
