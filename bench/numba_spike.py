#!/usr/bin/env python3
"""A measurement for issue 11, not part of tcpdiag: what a compiled per-packet loop over the
decoded columns costs, with numba (`pip install numba`; not a dependency of tcpdiag).

    python bench/numba_spike.py CAPTURE

The loop is a simplified tracker, not tcpdiag's: one open-addressing table of connections
keyed by the 4-tuple; per side its state, SND.NXT and what it acknowledged of the other; a
RST accepted at RCV.NXT or not; data before SND.NXT counted as retransmitted. It emits a row
per RST and per connection with repeated retransmissions. What it measures is the price of
the per-packet work once compiled (the JIT's compile time on the first run, its cache's load
time after), against the seconds tcpdiag's Python tracker spends on the same capture
(bench/README.md, "twenty-seventh session").
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit  # type: ignore[import-not-found]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder
from tcpdiag.reader import CaptureReader

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TABLE_BITS = 16  # slots for 65,536 connections (the matrix's shapes have fewer)
NONE, SYN_SENT, OPEN, FIN_SENT, CLOSED = 0, 1, 2, 3, 4
RST_ACCEPTED, RST_IGNORED, RETRANSMITTED = 1, 2, 3


@njit(cache=True)
def _before(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) > 0x7FFFFFFF


@njit(cache=True)
def track(src, dst, sport, dport, seq, ack, flags, length, events):  # type: ignore[no-untyped-def]
    """Events as (row, kind, slot) in `events`; returns (events, connections)."""
    size = 1 << TABLE_BITS
    mask = size - 1
    key_lo = np.full(size, -1, np.int64)
    key_hi = np.full(size, -1, np.int64)
    client = np.zeros(size, np.int64)
    state = np.zeros((size, 2), np.int8)
    snd_nxt = np.zeros((size, 2), np.int64)
    acked = np.full((size, 2), -1, np.int64)
    retransmitted = np.zeros((size, 2), np.int32)
    n_events = n_connections = 0
    for i in range(src.shape[0]):
        a = (np.int64(src[i]) << 16) | np.int64(sport[i])
        b = (np.int64(dst[i]) << 16) | np.int64(dport[i])
        lo, hi = (a, b) if a < b else (b, a)
        h = (lo * 0x9E3779B97F4A7C15 + hi * 0xC2B2AE3D27D4EB4F) & mask
        while key_lo[h] != -1 and not (key_lo[h] == lo and key_hi[h] == hi):
            h = (h + 1) & mask
        f, s, q, n = flags[i], np.int64(seq[i]), np.int64(ack[i]), np.int64(length[i])
        if key_lo[h] == -1:
            key_lo[h], key_hi[h] = lo, hi
            client[h] = b if (f & SYN and f & ACK) else a
            n_connections += 1
        side = 0 if a == client[h] else 1
        other = 1 - side
        if f & RST:
            expected = acked[h, other]
            accepted = expected == -1 or s == expected or s == snd_nxt[h, side]
            events[n_events, 0], events[n_events, 1] = i, RST_ACCEPTED if accepted else RST_IGNORED
            events[n_events, 2] = h
            n_events += 1
            if accepted:
                state[h, 0] = state[h, 1] = CLOSED
            continue
        if f & SYN:
            if state[h, side] == SYN_SENT and snd_nxt[h, side] == ((s + 1) & 0xFFFFFFFF):
                retransmitted[h, side] += 1
            state[h, side] = SYN_SENT
            snd_nxt[h, side] = (s + 1) & 0xFFFFFFFF
        end = (s + n + (1 if f & FIN else 0)) & 0xFFFFFFFF
        if n > 0 or f & FIN:
            if state[h, side] >= OPEN and _before(s, snd_nxt[h, side]):
                retransmitted[h, side] += 1
            else:
                snd_nxt[h, side] = end
            if f & FIN:
                state[h, side] = FIN_SENT
        if f & ACK:
            acked[h, side] = q
            if state[h, side] == SYN_SENT:
                state[h, side] = OPEN
        if state[h, side] == NONE:  # (a connection seen from its middle)
            state[h, side] = OPEN
            snd_nxt[h, side] = end
    for h in range(size):
        if key_lo[h] != -1 and (retransmitted[h, 0] > 2 or retransmitted[h, 1] > 2):
            events[n_events, 0], events[n_events, 1], events[n_events, 2] = -1, RETRANSMITTED, h
            n_events += 1
    return n_events, n_connections


def main(path: str) -> None:
    start = time.process_time()
    decoder = ColumnDecoder(Decoder())
    with CaptureReader(path) as reader:
        windows = [decoder.decode(chunk) for chunk in reader.chunks()]
    decoded = time.process_time()

    def column(name: str, dtype: type) -> np.ndarray:
        return np.concatenate([getattr(w, name) for w in windows]).astype(dtype)

    args = [
        column("src", np.uint32), column("dst", np.uint32),
        column("sport", np.uint16), column("dport", np.uint16),
        column("seq", np.int64), column("ack", np.int64),
        column("flags", np.int64), column("payload_len", np.int64),
    ]  # fmt: skip
    rows = len(args[0])
    events = np.zeros((rows + (1 << TABLE_BITS), 3), np.int64)
    first = time.process_time()
    track(*args, events)
    second = time.process_time()
    n_events, n_connections = track(*args, events)
    done = time.process_time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{path}: {rows:,} rows, {n_connections:,} connections, {n_events:,} events; "
        f"read and decode {decoded - start:.3f} CPU s; first call {second - first:.3f} s "
        f"(compiling, or loading the cache, and one run); a run {done - second:.4f} s "
        f"({1e9 * (done - second) / rows:.0f} ns a row); peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main(sys.argv[1])
