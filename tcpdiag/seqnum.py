"""TCP sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4)."""

from __future__ import annotations

MOD = 1 << 32
HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    return (a + n) % MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b, taking wrap-around into account (|result| < 2**31)."""
    d = (a - b) % MOD
    return d - MOD if d >= HALF else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_between(lo: int, x: int, hi: int) -> bool:
    """lo <= x <= hi in sequence space (the interval is taken from lo forwards)."""
    return seq_diff(x, lo) >= 0 and seq_diff(hi, x) >= 0
