"""The fast path: whole uneventful connections are recognised in bulk and never tracked one
packet at a time.

Most connections of a busy capture are healthy: a handshake, data in order, a FIN each way,
both acknowledged. Nothing in them can become an event (`tcpdiag.events`): events come only
from RSTs, ICMP errors, and retransmissions or repeated SYNs (silence). Tracking them packet by
packet in Python is where the time would go, only to retire them with nothing to say.

So packets arrive as `Columns` (tcpdiag.columns), and in windows of a few hundred thousand rows
this module finds, with array operations, the connections that provably produce no event and
whose handling could not affect any other connection. The rest, packet by packet and in capture
order, goes to the one `FlowTable` that `analyze` would have used anyway. The table is told
what it would have seen of the connections handled here, so that its results are the same as
if it had tracked everything:

- their connection ids and their count (`skip_connections`, at the position of their SYN);
- their place in the queue of closed connections (`closed_elsewhere`), because that queue
  decides when the connections behind them retire;
- the capture clock and the retirement check points (`advance`, `retire_due`), at the same
  packet positions as `FlowTable.track` has them.

A connection qualifies only if all of this holds (anything else, or any doubt, is tracked
normally):

- every one of its packets was decoded by the arrays (IPv4 without fragments or IPv6 without
  extension headers, at most two VLAN tags);
- it starts with a SYN, then a SYN-ACK that acknowledges it, then the client's ACK of the
  SYN-ACK, then only ACK segments without SYN, RST or URG;
- in each direction every segment starts exactly where the previous one ended (so there is no
  retransmission, no keepalive probe and no reordering), and there is at most one FIN;
- none of the segments the table takes by its general path (the handshake, and everything
  from the first FIN on) repeats its sender's last one (same IP ID, numbers, flags and
  length: captured twice), which the table drops and counts (`_again`);
- no ICMP error in the window quotes it and its 4-tuple is not live in the table;
- its SYN is in the part of the window being decided, its FINs are both acknowledged, no other
  packet of its 4-tuple is in the window, and the window goes on past the check point at which
  the table would retire it (a close grace period after its last packet, two if packets came
  after the close), so no later packet could have joined it. In the last window of a capture
  every connection has all its packets, and an unclosed one is retired at the end anyway;
- the table could not have reached its live-connection cap in this window (eviction would
  depend on every connection).

Bare SYNs that nothing else in their window touches (a SYN flood's, a scan's unanswered probes)
are not fed to the table either: it would hold each in its compact store of attempts
(tcpdiag.attempts), so they are handed to that store in bulk at the end of the window, with the
connection ids they took at their rows (`_bare_syns`, FlowTable.hold_syns), in their places in
capture order. A window that could fill the store goes the per-packet way whole, since the
store then evicts its oldest at each SYN, answered or not.

A connection that ends at once, with nothing else of its 4-tuple in the window (a client's
bare SYN and the RST a closed port answers it with; a half-open probe's SYN, the SYN-ACK and
the client's RST; a handshake, a little data, perhaps one side's FIN, and a RST: at most
ENDED_MAX_ROWS rows, nothing before the RST that could close it or start another connection:
`_ended_attempts`), is handed to the table whole at its last row (FlowTable.attempt_ended),
which makes of it the Connection it would have made: fed, the SYN would have waited in the
table, held, until the next row made it a connection, and nothing can look it up in between.
Its SYN takes its connection id at its own row. Only where connections may be continued
(below: the table cannot fill up, nothing can become idle in the rows).

Connections already live in the table (longer than a window, or idle in the middle) are
continued in bulk where they go on along the tracker's in-order path: per part of a window
(`_CONTINUE_ROWS` rows), planned with the table as the rows before left it, each such
connection's first rows for as long as each is an ACK without SYN, FIN, RST or URG that starts
where its sender's last segment ended (`_continuations`, Connection.in_order_start). The table
takes such a run at the place of its last row, as one call (FlowTable.continue_in_order) that
applies each segment as the in-order path does, without a Packet or a lookup per row. Until
then the connection's state and its place in the table's order of activity are those before
its run, so no part is continued where anything could read them in between: the table could
fill up and evict by that order, or a connection could become idle for `idle_retire`
(`_may_continue`); and the connections an ICMP error quotes are left out. Zeek's view of a
continued connection is kept up to date segment by segment as well, with the capture clock
at each. A connection that starts in the part with a clean handshake, of a 4-tuple the table
holds nothing of (`_fresh_handshakes`: most failing connections), is continued the same way
after its handshake, which the table is fed: its state then is foreseen from the handshake's
numbers, and checked at the run's place (FastPathTracker._continue).

A connection that is clean so far but that its window ends too early to decide (it has not
closed, or its retirement check point lies beyond the window: a connection longer than a
window, or a fast capture's) is followed from one window to the next instead of being fed
(`_Followed`): the table holds a stand-in for it (tracker.FollowedConnection), with its id
and its place in the order of activity, moved at the last of its rows in each window (so the
same `_may_continue` conditions apply), and each next window judges its rows as _uneventful
would have judged its whole life (`_follow_on`), from the sequence numbers it had reached. If
it closes cleanly, it leaves the table at its close, as a connection decided in bulk does; if
the capture ends with it clean and with payload, likewise. Anything else (a segment off that
path, an ICMP error quoting it, eviction, idle retirement, a close that straddles the end of a
window's decided part, too many rows or windows kept) has the table replay its rows, kept for
that (at most FOLLOW_MAX_ROWS each), into a Connection exactly when it first needs one
(FlowTable._held), and from then on it is tracked as any other. A followed connection that
closes cleanly but too near its window's end waits in the table's closing queue as a
stand-in (FlowTable.followed_closed). Where Zeek's view is wanted, one that finishes is
listed from a summary of its whole life (`_listed`), and none waits in the closing queue
(it would leave it unlisted).

When Zeek's view is wanted (`tcpdiag flows`, `--state`), the connections handled here are also
handed on as summaries (`_summary_connections`): what a connection without events is listed,
counted and filtered by; to a listing without filters, together (`SummarisedConnections`),
which it makes into records from columns. Only those that Zeek's timers cannot split qualify
then (answered within Zeek's attempt delay, nothing a close delay after the second FIN, no
pause as long as its inactivity timeout, no packet stamped before their SYN, no zero window,
no ACK beyond what the peer had sent: see _uneventful).

`tests/test_fastpath.py` checks that both ways give the same report (and list the same flows) on
every sample, on crafted edge cases and on a generated busy capture; tests/fuzzing.py checks it
on every mutated capture.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tcpdiag.attempts import pair_hash
from tcpdiag.columns import F64, I64, Bools, Columns, ipv4_number, quoted_key
from tcpdiag.communityid import community_id, community_id_v4
from tcpdiag.events import ConnectionRef, Evidence, Role
from tcpdiag.memory import release_free_memory
from tcpdiag.packets import ACK, FIN, RST, SYN, URG, SynOptions, TcpSegment
from tcpdiag.tracker import (
    CLOSE_GRACE_SECONDS,
    FIN_TEXT,
    OPENING_TEXT,
    RETIRE_CHECK_EVERY,
    Endpoint,
    FlowTable,
    FollowedConnection,
    InOrderRun,
    Key,
    Retired,
    TcpState,
    TrackedConnection,
    endpoint_text,
)
from tcpdiag.zeek import ATTEMPT_DELAY_SECONDS, CLOSE_DELAY_SECONDS, INACTIVITY_SECONDS

# A connection is decided only once the window reaches the check point at which the table
# would retire it (see _uneventful), so a window is decided up to this long before its end; the
# allowance lets connections that started shortly before that point finish.
_MARGIN_SECONDS = 0.5
FLOW_ALLOWANCE_SECONDS = 8.0
LOOKAHEAD_SECONDS = CLOSE_GRACE_SECONDS + _MARGIN_SECONDS + FLOW_ALLOWANCE_SECONDS
# Rows collected before a window is decided (at least half of it must be decidable), and the
# most held at once: memory is bounded by these, whatever the size of the capture.
WINDOW_ROWS = 1 << 18
WINDOW_MAX_ROWS = 1 << 19
# Rows the arrays could not describe carry a Packet object each (about 0.5 KB: an ICMP error
# with its quote, a fragment, a deeper tunnel): a window holding this many is decided at once,
# whatever its span, so that a capture made of them (an ICMP storm) stays in bounded memory.
WINDOW_MAX_OBJECTS = 1 << 17
# Rows decided between two calls of tcpdiag.memory.release_free_memory (a few ms each).
TRIM_EVERY_ROWS = 1 << 17

_HALF = np.uint32(1 << 31)
_SLICE = 2048  # rows the table is fed per slice (see _decide)
# Rows of a window whose continuations of live connections are found at once (see
# _continuations): each part is planned with the table as the rows before it left it.
_CONTINUE_ROWS = 1 << 15
# The fewest rows a continuation takes: a shorter run costs about what its rows would cost the
# table one by one (the lookup and the call outweigh the packets saved).
_CONTINUE_MIN_ROWS = 4
# The same for a connection that started in the part (_fresh_handshakes): its table lookup is
# made for its handshake anyway, so a run of two is worth its call.
_FRESH_MIN_ROWS = 2
_NEVER = np.iinfo(np.int64).max
_SHAPE = SYN | ACK | FIN | RST | URG
_DONE_KEY = np.uint64(2)  # the group key of rows already decided (a collision is safe)
# A followed connection (see _Followed) keeps its rows for a replay; one that has kept this
# many, or has had rows in this many windows, is left to the table (its rows so far replayed
# at its next one), so that what is kept is bounded per live connection.
FOLLOW_MAX_ROWS = 64
FOLLOW_MAX_WINDOWS = 4
FOLLOWED_IN_MEMORY = 65_536


class FastPathTracker:
    """Drives a FlowTable from Columns, keeping uneventful connections off the packet path."""

    def __init__(self, table: FlowTable, *, summaries_together: bool = False) -> None:
        self.table = table
        # Hand the connections listed from summaries (Zeek's view wanted) on together, as
        # SummarisedConnections, rather than one TrackedConnection each: for a consumer that
        # only lists them (tcpdiag flows without filters).
        self.summaries_together = summaries_together
        self.fast_connections = 0  # connections handled in bulk (for benchmarks and tests)
        self.held_in_bulk = 0  # bare SYNs handed to the table's compact store in bulk
        self.continued_rows = 0  # rows that continued live connections in bulk
        self.missed_continuations = 0  # see _continue
        self.ended_in_bulk = 0  # connections that ended at once (see _ended_attempts)
        # Connections followed across windows (see _Followed) that then left the table
        # without being fed a packet, and rows of theirs taken.
        self.followed_connections = 0
        self.followed_rows = 0
        self._followed: dict[int, _Followed] = {}  # by grouping key
        self._rows_since_trim = 0
        self._base = 0  # packet index (as FlowTable.track counts) of the window's first row
        self._addr_text: dict[int, str] = {}
        self._addr_number: dict[str, int] = {}
        # Rows at the head of the next window that belong to connections already decided, and
        # the closes (see _Close) of those that close in a later window.
        self._done: Bools = np.zeros(0, np.bool_)
        self._carried_closes: list[_Close] = []

    def track(self, batches: Iterable[Columns]) -> Iterator[Retired | SummarisedConnections]:
        parts: list[Columns] = []
        latest: list[float] = []  # per part: the latest packet time in it
        rows = objects = 0
        for columns in batches:
            if not len(columns):
                continue
            parts.append(columns)
            latest.append(float(columns.time.max()))
            rows += len(columns)
            objects += len(columns.others)
            if self._flooded():
                # Nothing is taken in bulk now, so nothing needs a look ahead: hand every row
                # over at once, and keep memory to the table's.
                window = Columns.join(parts)
                parts, latest, rows, objects = [], [], 0, 0
                clock = self._clock_for(window.time)
                yield from self._decide(window, clock, len(window), last=False)
                self._done = self._done[len(window) :].copy()
                continue
            if rows < WINDOW_ROWS and objects < WINDOW_MAX_OBJECTS:
                continue
            # Decide once at least half the window is at least LOOKAHEAD_SECONDS before its end
            # (judged on whole parts, to look before concatenating them).
            half, k = rows // 2, 0
            while half >= len(parts[k]):
                half -= len(parts[k])
                k += 1
            short = max(latest[: k + 1]) > latest[-1] - LOOKAHEAD_SECONDS
            if short and rows < WINDOW_MAX_ROWS and objects < WINDOW_MAX_OBJECTS:
                continue  # too short a span yet: read on
            window = Columns.join(parts)
            parts = []
            clock = self._clock_for(window.time)
            end = int(np.searchsorted(clock, clock[-1] - LOOKAHEAD_SECONDS, "right"))
            # A very fast capture may not span the lookahead in WINDOW_MAX_ROWS: decide half;
            # what cannot be decided goes the slow way.
            end = max(end, rows // 2)
            yield from self._decide(window, clock, end, last=False)
            parts = [window.tail(end)]
            latest = [float(parts[0].time.max())] if len(parts[0]) else []
            objects = len(parts[0].others)
            if not latest:
                parts = []
            self._done = self._done[end:].copy()
            rows = len(window) - end
        if parts:
            window = Columns.join(parts)
            parts = []
            yield from self._decide(window, self._clock_for(window.time), len(window), last=True)
            del window  # (not kept while everything still live is retired)
        # The table's clock as `track` leaves it at the end, whether or not the last rows were
        # handed to it: what is retired now is judged at the capture's end.
        self.table.advance(self.table.clock.now)
        yield from self.table.flush()

    def _quiet(self, clock: F64, end: int) -> bool:
        """No retiring (FlowTable._retire_due) could do anything in rows [0, end) but give
        out what retired early, and nothing is carried over to close there: a SYN evicted
        from the store one by one makes the table retire at its packet, and handed over in
        bulk it does not."""
        if any(close.row - self._base < end for close in self._carried_closes):
            return False
        return bool(clock[end - 1] < self.table.quiet_until())

    def _flooded(self) -> bool:
        """A flood, or a table near its cap: eviction may come, and it depends on every
        connection, so none is taken in bulk (deciding would be wasted work and memory)."""
        table = self.table
        return (
            self._open_count() >= table.max_live // 2
            or table.attempt_count >= table.max_attempts // 2
        )

    def _open_count(self) -> int:
        """At most how many connections the table would hold open (what its cap bounds: see
        FlowTable._make_room) had it tracked everything: those it holds, and those decided
        here that are still open (they close in a later window)."""
        return self.table.open_count + len(self._carried_closes)

    def _may_fill(self, joining: int) -> bool:
        """Whether this many connections more could fill the table up to a cap, live ones
        (those decided here that are still open count too) or bare-SYN attempts, where it
        retires one early (FlowTable._make_room)."""
        table = self.table
        return (
            self._open_count() + joining >= table.max_live
            or table.attempt_count + joining >= table.max_attempts
        )

    def _clock_for(self, time: F64) -> F64:
        """The capture clock at each row of a window (tcpdiag.clock), from the clock before
        it; nothing is committed until the window is decided (see _decide)."""
        return self.table.clock.copy().steps(time)

    # -- one window ---------------------------------------------------------------------------

    def _decide(
        self, w: Columns, clock: F64, end: int, *, last: bool
    ) -> Iterator[Retired | SummarisedConnections]:
        """Decide the connections whose SYN is in rows [0, end) of window `w`, hand the table
        the bare SYNs of [0, end) that it would hold compactly and nothing else touches in the
        window (see _bare_syns), feed it the other rows of [0, end), and yield what it
        retires."""
        table = self.table
        if not len(w):
            return
        done = np.zeros(len(w), np.bool_)
        done[: len(self._done)] = self._done  # rows of connections decided in an earlier window
        quoted = _quoted_keys(w)  # the connections the window's ICMP errors quote
        if self._flooded() or (
            not last and clock[-1] - clock[0] < CLOSE_GRACE_SECONDS + _MARGIN_SECONDS
        ):
            # (Too short a window: none of its connections could qualify, see _uneventful.)
            bulk = _Bulk.nothing(len(w))
        else:
            bulk = _uneventful(
                w, done, clock, end, last, self._base, table.zeek, quoted,
                FOLLOWED_IN_MEMORY - len(self._followed),
            )  # fmt: skip
        live = self._live(w) if table.live_count or table.held_syns else None
        chosen = np.ones(len(bulk.groups), np.bool_)
        # Bare SYNs in the part decided: the store of them could fill up (see below).
        bare = int(np.count_nonzero((w.flags[:end] & _SHAPE) == SYN))
        store_may_fill = table.held_syns + bare >= table.max_held_syns
        may_continue = self._may_continue(w, clock, end, bulk)
        live_full = self._may_fill(bulk.open_in_part)
        blocked = live_full or store_may_fill
        if blocked:
            # The table might evict: which connection, and when, depends on every connection
            # (on every bare SYN, even one answered at once), so nothing is taken in bulk.
            chosen[:] = False
        elif live is not None:
            chosen &= ~live(bulk.key)
        qualifies = np.zeros(bulk.n_groups, np.bool_)
        qualifies[bulk.groups[chosen]] = True
        done |= qualifies[bulk.group_of_row]
        # Connections followed across windows (see _Followed): those followed already, and
        # those to follow from now on. A followed one is brought up to date in the table's
        # order of activity only at its last row, as a continuation is (see _may_continue).
        self._followed = {k: f for k, f in self._followed.items() if f.conn.followed}
        followed = list(self._followed.values())
        follow = may_continue and not blocked
        on = None
        if follow and followed:
            on = _follow_on(w, clock, done, end, last, self._base, followed, quoted, table.zeek)
        listed = None  # (Zeek's view: those that finish, as bulk ones)
        if on is not None and table.zeek and len(on.finished):
            on, listed = self._listed(w, clock, followed, on)
        if on is not None:
            done[on.rows] = True
            self.followed_rows += len(on.rows)
        new = bulk.follow if follow else None
        if new is not None:
            keep = ~np.isin(new.key, np.fromiter(self._followed, np.uint64, len(followed)))
            if live is not None:
                keep &= ~live(new.key)
            new = new.select(keep) if keep.any() else None
        if new is not None:
            done[new.rows] = True
            self.followed_rows += len(new.rows)
        # The bare SYNs of [0, end), for what follows (not for a window of a flood that may
        # fill the store, which goes the per-packet way unless it is nothing but those).
        syns = _syn_rows(w, done, end) if follow or not store_may_fill else None
        ended = _NO_ENDED
        if follow and syns is not None:  # (the table cannot fill up, nor a SYN become idle)
            ended = _ended_attempts(w, syns, done, end, live, quoted)
            done[ended.rows[ended.rows >= 0]] = True
            self.ended_in_bulk += len(ended.last_row)
        evicting = False
        if syns is not None and not store_may_fill:
            held = _bare_syns(w, syns, clock, live, quoted, table)
        else:
            held = _NO_BARE_SYNS
            if self._quiet(clock, end):
                # A window of a SYN flood that fills the store: taken in bulk only if it is
                # nothing but bare SYNs the table would hold (see _only_bare_syns), which
                # leave the live connections alone, however many there are.
                syns = syns if syns is not None else _syn_rows(w, done, end)
                held = _bare_syns(w, syns, clock, live, quoted, table)
                evicting = _only_bare_syns(held, w, clock, done, end, table)
                if not evicting:
                    held = _NO_BARE_SYNS
        done[held.row] = True
        syns = None  # (a few arrays of the window's length: not kept while its rows are fed)
        self._done = done
        # Each connection decided or followed here takes its id at its SYN's row, in capture
        # order.
        n_bulk, n_held = int(np.count_nonzero(chosen)), len(held.row)
        new_syns = new.syn_row if new is not None else np.zeros(0, np.int64)
        n_new = len(new_syns)
        starting = np.concatenate([bulk.syn_row[chosen], held.row, new_syns, ended.syn_row])
        by_start = np.argsort(starting, kind="stable")
        start_rows = starting[by_start]
        self.fast_connections += n_bulk
        self.held_in_bulk += len(held.row)

        # Each closed one takes its place in the closing queue at the row that closed it,
        # which may be in the next window.
        closed = chosen & (bulk.close_row >= 0)
        closes = self._carried_closes + [
            _Close(row, closed_at, last_time)
            for row, closed_at, last_time in zip(
                (bulk.close_row[closed] + self._base).tolist(),
                w.time[bulk.close_row[closed]].tolist(),
                bulk.last_time[closed].tolist(),
                strict=True,
            )
        ]
        # (a followed connection that closes here leaves the table at its close: see below)
        # A followed one's last row here -> it, its last time, whether it closes there.
        follow_at: dict[int, tuple[_Followed, float, bool]] = {}
        if on is not None:
            for k, close_row in zip(on.finished.tolist(), on.close_row.tolist(), strict=True):
                f = followed[k]
                closes.append(
                    _Close(
                        close_row + self._base,
                        float(w.time[close_row]),
                        float(on.last_time[k]),
                        f,
                    )
                )
            for k, last_row, closes_there in zip(
                on.going_on.tolist(), on.last_row.tolist(), on.closes.tolist(), strict=True
            ):
                follow_at[last_row] = (followed[k], float(on.last_time_early[k]), closes_there)
        made = _followed_from(new, w, self._addr_text) if new is not None else []
        if new is not None:
            for f, last_row, last_time, closes_there in zip(
                made,
                new.last_row.tolist(),
                new.last_time.tolist(),
                new.closes.tolist(),
                strict=True,
            ):
                follow_at[last_row] = (f, last_time, closes_there)
        closes.sort(key=lambda c: c.row)
        split = bisect_left(closes, self._base + end, key=lambda c: c.row)
        self._carried_closes = closes[split:]
        close_rows = np.array([c.row - self._base for c in closes[:split]], np.int64)
        follow_rows = np.array(sorted(follow_at), np.int64)

        # The table sees the other rows, and the retirement check points, in capture order;
        # part by part, each part's continuations of live connections (see _continuations)
        # found with the table as the part before left it, and each given to the table at the
        # place of its last row.
        checks = np.arange(-self._base % RETIRE_CHECK_EVERY, end, RETIRE_CHECK_EVERY)
        done_starts = done_closes = 0
        id_runs: list[tuple[int, int, int]] = []  # (first, stop) of start_rows, first id
        step = _CONTINUE_ROWS if may_continue else max(end, 1)
        for start in range(0, end, step):
            stop = min(start + step, end)
            continuing = _NO_CONTINUATIONS
            if may_continue:
                continuing = _continuations(
                    w, clock, done, start, stop, quoted, table, self._addr_text
                )
                done[continuing.rows] = True
                self.continued_rows += len(continuing.rows)
            slow = np.flatnonzero(~done[start:stop]) + start
            # (the rows the loop below visits, in order: one sort of all of them)
            pieces = [slow, checks[(checks >= start) & (checks < stop)]]
            continue_at = dict(zip(continuing.at, range(len(continuing.at)), strict=True))
            if continue_at:
                pieces.append(np.array(continuing.at, np.int64))
            if follow_at:
                pieces.append(follow_rows[(follow_rows >= start) & (follow_rows < stop)])
            if len(ended.last_row):
                last_rows = ended.last_row
                pieces.append(last_rows[(last_rows >= start) & (last_rows < stop)])
            points = np.unique(np.concatenate(pieces))
            # In slices, so that the Python objects made for the loop are few at any one time.
            for first in range(0, len(points), _SLICE):
                these = points[first : first + _SLICE]
                fed = these[~done[these]]
                packets = iter(w.packets(fed, self._addr_text))
                # An attempt that ended is handed over at its last row, with the id its SYN
                # took.
                ended_here = {}
                if len(ended.last_row):
                    ended_here = _ended_here(w, clock, ended, these, start_rows, self._addr_text)
                for n_starts, n_closes, now, feed, check, row in zip(
                    np.searchsorted(start_rows, these, "left").tolist(),
                    np.searchsorted(close_rows, these, "right").tolist(),
                    clock[these].tolist(),
                    (~done[these]).tolist(),
                    ((these + self._base) % RETIRE_CHECK_EVERY == 0).tolist(),
                    these.tolist(),
                    strict=True,
                ):
                    if n_starts > done_starts:
                        first_id = table.skip_connections(n_starts - done_starts)
                        id_runs.append((done_starts, n_starts, first_id))
                        done_starts = n_starts
                    while done_closes < n_closes:
                        closes[done_closes].apply(table)
                        done_closes += 1
                    table.advance(now)
                    if feed:
                        table.feed(next(packets))
                    elif continue_at and (k := continue_at.get(row)) is not None:
                        self._continue(w, continuing, k)
                    elif ended_here and (attempt := ended_here.get(row)) is not None:
                        segments, nows, start_at = attempt
                        table.attempt_ended(segments, nows, _id_of(start_at, id_runs))
                    elif follow_at and (went := follow_at.get(row)) is not None:
                        f, last_time, closes_there = went
                        if not f.windows:  # (followed from now on)
                            f.conn.last_time = last_time
                            table.follow(f.conn)
                        if closes_there:
                            closed_at = float(w.time[row])
                            table.followed_closed(f.conn, closed_at, last_time)
                        elif f.windows:
                            table.followed_active(f.conn, last_time)
                    yield from table.retire_due(check)
        first_id = table.skip_connections(len(start_rows) - done_starts)
        id_runs.append((done_starts, len(start_rows), first_id))
        for close in closes[done_closes:split]:
            close.apply(table)
        self.table.clock.steps(w.time[:end])  # the clock's state after the decided rows
        self._base += end
        ids = np.zeros(len(start_rows), np.int64)  # the connection id each one took
        for begin, stop, first_id in id_runs:
            ids[begin:stop] = first_id + np.arange(stop - begin)
        ids_by_start = np.empty_like(ids)
        ids_by_start[by_start] = ids  # (in the order of concatenation: bulk, then held)
        if evicting:
            # As one by one, the store evicting its oldest for each SYN it has no room for;
            # a piece at a time, so that the evicted ones leave (as columns) before they fill
            # memory.
            rows = held.columns(w, clock, ids_by_start[n_bulk : n_bulk + n_held])
            for first in range(0, n_held, HOLD_AT_ONCE):
                table.hold_syns_evicting(
                    {k: v[first : first + HOLD_AT_ONCE] for k, v in rows.items()}
                )
                yield from table.retire_due(False)
            del rows
        elif len(held.row):
            held_ids = ids_by_start[n_bulk : n_bulk + n_held]
            table.hold_syns(held.columns(w, clock, held_ids), int(w.number[0]))
        new_ids = ids_by_start[n_bulk + n_held : n_bulk + n_held + n_new]
        self._follow_up(w, clock, followed, on, new, made, new_ids, last)
        self._rows_since_trim += len(w)
        if self._rows_since_trim >= TRIM_EVERY_ROWS:
            # (the window's arrays are freed by now, but the allocator keeps them: see
            # tcpdiag.memory)
            release_free_memory()
            self._rows_since_trim = 0
        if listed is not None:
            yield from self._handed_on(listed)
        if bulk.summaries is not None and n_bulk:
            # Zeek's view is wanted: the connections taken in bulk are listed too.
            in_order = np.flatnonzero(chosen)[by_start[by_start < n_bulk]]
            summaries = bulk.summaries.select(in_order)
            yield from self._handed_on(
                SummarisedConnections(
                    w, summaries, ids[by_start < n_bulk], bulk.last_time[in_order], self._addr_text
                )
            )

    def _listed(
        self, w: Columns, clock: F64, followed: list[_Followed], on: _FollowOn
    ) -> tuple[_FollowOn, SummarisedConnections | None]:
        """Zeek's view is wanted: the followed connections that finish in this window are
        listed from a summary of their whole life (their kept rows and their rows here, made
        one window for _uneventful, see _summary_connections), as a connection taken in bulk
        is. One that Zeek's timers could split, or whose summary the arrays cannot give
        exactly, is not finished here after all: its rows are fed, and the table replays it."""
        finished = on.finished.tolist()
        by_kept: dict[int, tuple[Columns, F64, list[I64]]] = {}
        for k in finished:
            for kept, kept_clock, start, stop in followed[k].history.parts:
                _, _, ranges = by_kept.setdefault(id(kept), (kept, kept_clock, []))
                ranges.append(np.arange(start, stop, dtype=np.int64))
        pieces = [
            (kept.take(rows), kept_clock[rows])
            for kept, kept_clock, ranges in by_kept.values()
            if len(rows := np.concatenate(ranges))
        ]
        here = on.rows[np.isin(on.rows_owner, on.finished)]
        pieces.append((w.take(here), clock[here]))
        whole = Columns.join([columns for columns, _ in pieces])
        order = np.argsort(whole.number, kind="stable")  # (capture order)
        whole, whole_clock = whole.take(order), np.concatenate([c for _, c in pieces])[order]
        none = np.zeros(len(whole), np.bool_)
        quoted = np.zeros(0, np.uint64)
        summary = _uneventful(whole, none, whole_clock, len(whole), True, 0, True, quoted)
        which = {followed[k].group_key: k for k in finished}
        ids = np.array([followed[which[key]].conn.conn_id for key in summary.key.tolist()])
        listed = None
        if summary.summaries is not None and len(summary.groups):
            listed = SummarisedConnections(
                whole, summary.summaries, ids, summary.last_time, self._addr_text
            )
        fine = np.isin(np.array([followed[k].group_key for k in finished], np.uint64), summary.key)
        if not fine.all():
            unfinished = on.finished[~fine]
            mine = ~np.isin(on.rows_owner, unfinished)
            on = replace(
                on,
                rows=on.rows[mine],
                rows_owner=on.rows_owner[mine],
                finished=on.finished[fine],
                close_row=on.close_row[fine],
            )
        return on, listed

    def _handed_on(
        self, listed: SummarisedConnections
    ) -> Iterable[TrackedConnection | SummarisedConnections]:
        """Connections listed from summaries, together or one by one (summaries_together)."""
        return (listed,) if self.summaries_together else listed.connections()

    def _follow_up(
        self,
        w: Columns,
        clock: F64,
        followed: list[_Followed],
        on: _FollowOn | None,
        new: _NewFollowed | None,
        made: list[_Followed],
        new_ids: I64,
        last: bool,
    ) -> None:
        """After a window: what the followed connections (`followed`, those that were;
        `made`, those followed from now on, with the ids they took) keep of it."""
        # Their rows taken, kept for replays: one copy of the window's, shared.
        taken, owners = [], []
        if on is not None and len(on.kept):
            taken.append(on.kept)
            owners.append(on.kept_owner)
        if new is not None:
            taken.append(new.rows)
            owners.append(len(followed) + np.repeat(np.arange(len(made)), np.diff(new.starts)))
        if taken:
            rows, owner = np.concatenate(taken), np.concatenate(owners)
            kept, kept_clock = w.take(rows), clock[rows]
            everyone = followed + made
            bounds = (np.flatnonzero(np.diff(owner)) + 1).tolist()
            for start, stop in zip([0, *bounds], [*bounds, len(rows)], strict=True):
                everyone[int(owner[start])].history.add(kept, kept_clock, start, stop)
        if on is not None:
            for k, (client_next, server_next), data, waits, closes in zip(
                on.going_on.tolist(),
                on.next_seq.tolist(),
                on.data.tolist(),
                on.client_waits.tolist(),
                on.closes.tolist(),
                strict=True,
            ):
                f = followed[k]
                f.next_seq = (client_next, server_next)
                f.data = f.data or data
                f.client_waits = waits
                f.closed = closes
                f.windows += 1
            for k in on.finished.tolist():
                del self._followed[followed[k].group_key]
                self.followed_connections += 1
        for f, conn_id, closes in zip(
            made, new_ids.tolist(), new.closes.tolist() if new is not None else [], strict=True
        ):
            f.conn.conn_id = conn_id
            f.windows = 1
            f.closed = closes
            self._followed[f.group_key] = f
        if last:
            # The capture ends with them clean: as a connection decided in bulk in the last
            # window, they leave the table unretired; but one without any payload and not
            # closed, which the scan detector would count as a probe, is retired by the table,
            # and so is each when Zeek's view is wanted (it lists them as they retire).
            for f in self._followed.values():
                if f.conn.followed and (f.data or f.closed) and not self.table.zeek:
                    self.table.followed_done(f.conn)
                    self.followed_connections += 1
            self._followed = {}

    def _continue(self, w: Columns, continuing: _Continuations, k: int) -> None:
        """The table takes continuation `k` at the place of its last row."""
        table, key, run = self.table, continuing.keys[k], continuing.runs[k]
        expected = continuing.expected[k]
        if expected is None or table.in_order_start(key) == expected[0]:
            table.continue_in_order(key, run)
            return
        # The handshake did not leave the connection as _fresh_handshakes foresaw (no known
        # case: tests/test_fastpath.py counts these): its rows are fed, here.
        self.missed_continuations += 1
        for packet in w.packets(expected[1], self._addr_text):
            table.feed(packet)

    def _may_continue(self, w: Columns, clock: F64, end: int, bulk: _Bulk) -> bool:
        """Whether connections live in the table may be continued in bulk in rows [0, end)
        of window `w` (see _continuations). A continued connection's state, and its place in
        the table's order of activity, are brought up to date only at its run's last row, so
        nothing before that may read them. The order of activity decides which connection is
        evicted when the table is full, and where the retirement of idle connections stops;
        the state, whether a connection is idle. So: the table cannot fill up in these rows,
        and no connection can become idle (`idle_retire` since its last packet) in them,
        whatever the order."""
        table = self.table
        if self._flooded() or not end:
            return False
        # At most one connection open at once per 4-tuple with a packet in these rows (fewer
        # where refused ones close: see _open_at_once), and one per row the arrays could not
        # describe, whose 4-tuple the columns may not hold.
        new_connections = bulk.open_in_part
        if not bulk.grouped:
            a, b = _ends(w, slice(0, end))
            context = _context(w.tunnel[:end], w.v6[:end])
            keys = _connection_keys(a, b, context)
            row = np.argsort(keys, kind="stable")
            keys = keys[row]
            starts = np.flatnonzero(np.append(True, keys[1:] != keys[:-1]))
            new_connections = _open_at_once(w, row, starts, end, context)
        new_connections += len(w.others)
        if self._may_fill(new_connections):
            return False
        horizon = float(clock[end - 1]) - table.idle_retire
        return table.oldest_activity() > horizon and float(w.time[:end].min()) > horizon

    def _live(self, w: Columns) -> Callable[[npt.NDArray[np.uint64]], Bools]:
        """A test of which 4-tuples, as grouping keys (tunnel and family included, direction
        0: see _group_keys), the table is tracking now, as connections or as bare SYNs."""
        numbers = self._addr_number
        numbers6 = w.addresses6.number
        ends: list[tuple[int, int, int]] = []
        families: list[int] = []
        for src, sport, dst, dport, tunnel in self.table.live_keys():
            if ":" in src:
                # IPv6: by the numbers the column decoder gave its addresses (an address
                # without one has no simple row, so its connection is in no group).
                a6, b6 = numbers6.get(src), numbers6.get(dst)
                if a6 is None or b6 is None:
                    continue
                a, b, family = a6, b6, 1
            else:
                a, b = ipv4_number(numbers, src), ipv4_number(numbers, dst)
                family = 0
            # (a context the columns never named has no rows: -1 matches none)
            ends.append(((a << 16) | sport, (b << 16) | dport, w.tunnel_ids.get(tunnel, -1)))
            families.append(family)
        table = self.table

        def live(keys: npt.NDArray[np.uint64]) -> Bools:
            # The bare SYNs are held by tcpdiag.attempts' key of untunnelled IPv4 (context 0,
            # see _context): the grouping key, with either lowest bit.
            held = table.holds_syn_keys(keys) | table.holds_syn_keys(keys | np.uint64(1))
            return (held | np.isin(keys, connections)) if len(connections) else held

        if not ends:
            connections = np.zeros(0, np.uint64)
            return live
        live_ends = np.array(ends, np.int64)
        context = _context(live_ends[:, 2], np.array(families, np.int64))
        connections = _connection_keys(live_ends[:, 0], live_ends[:, 1], context)
        return live


def _context(tunnel: npt.NDArray[np.int32] | I64, v6: Bools | I64) -> I64:
    """What keeps equal 4-tuples of different connections apart besides the numbers: the
    tunnel, and the family (an IPv6 address's number may equal an IPv4 address)."""
    return (tunnel.astype(np.int64) << 1) | v6.astype(np.int64)


@dataclass(slots=True)
class _Bulk:
    """Connections of one window that qualify, before the checks against the table."""

    n_groups: int  # 4-tuples in the window
    group_of_row: npt.NDArray[np.int32]
    # At most how many connections of the 4-tuples with a packet in the part being decided
    # are open at once there (see _open_at_once).
    open_in_part: int
    groups: I64  # the qualifying ones; the arrays below are parallel to it
    key: npt.NDArray[np.uint64]  # grouping key (see _group_keys)
    syn_row: I64
    close_row: I64  # the row after which the table would call it closed; -1: never closed
    last_time: F64
    summaries: _Summaries | None = None  # only when Zeek's view is wanted
    grouped: bool = True  # False: the rows were not grouped (open_in_part is no count)
    follow: _NewFollowed | None = None  # clean so far but not yet decidable (see _Followed)

    @staticmethod
    def nothing(rows: int) -> _Bulk:
        """No connection qualifies (all rows in one group that does not)."""
        none = np.zeros(0, np.int64)
        return _Bulk(
            n_groups=1,
            group_of_row=np.zeros(rows, np.int32),
            open_in_part=0,
            groups=none,
            key=np.zeros(0, np.uint64),
            syn_row=none,
            close_row=none,
            last_time=np.zeros(0, np.float64),
            grouped=False,
        )


@dataclass(slots=True)
class SummaryListing:
    """Per connection of a SummarisedConnections, in their order, what its TrackedConnection
    would give a listing of it (tcpdiag.flows.FlowRecord): a column per field."""

    conn_id: list[int]
    community_id: list[str]
    first_time: list[float]
    last_time: list[float]
    client: list[str]  # "ip:port", "[v6]:port"
    server: list[str]
    client_packets: list[int]
    client_bytes: list[int]  # (payload bytes: no retransmission, no duplicate)
    client_bytes_acked: list[int]
    server_packets: list[int]
    server_bytes: list[int]
    server_bytes_acked: list[int]
    client_state: list[str]
    server_state: list[str]
    history: list[str]  # Zeek's (its conn_state: SUMMARY_CONN_STATE)
    tunnel: list[str]


# Zeek's conn_state of every connection taken in bulk: a normal establishment and termination.
SUMMARY_CONN_STATE = "SF"
# The final states of a connection taken in bulk, (client's, server's): the side whose FIN
# came first waits in TIME_WAIT, the other is CLOSED.
_CLOSED_STATES = {
    True: (TcpState.TIME_WAIT, TcpState.CLOSED),  # the client's FIN came first
    False: (TcpState.CLOSED, TcpState.TIME_WAIT),
}


@dataclass(slots=True)
class SummarisedConnections:
    """Connections taken in bulk and listed from their summaries (Zeek's view wanted), handed
    on together (FastPathTracker's summaries_together): `connections()` makes each one's
    TrackedConnection, as they are handed on one by one otherwise; `listing()` gives what a
    listing of them reads, without making those. Each is a clean, closed connection without
    events, so it adds nothing to a report but its record (tests/test_flows.py checks that
    it tells the capture's quality and the scan detector nothing)."""

    window: Columns
    summaries: _Summaries
    ids: I64
    last_time: F64
    addr_text: dict[int, str]

    def __len__(self) -> int:
        return len(self.ids)

    def connections(self) -> Iterator[TrackedConnection]:
        return _summary_connections(
            self.window, self.summaries, self.ids, self.last_time, self.addr_text
        )

    def parts(self, size: int) -> Iterator[SummarisedConnections]:
        """These connections, `size` at a time, in order."""
        for first in range(0, len(self), size):
            part = np.arange(first, min(first + size, len(self)))
            yield SummarisedConnections(
                self.window,
                self.summaries.select(part),
                self.ids[part],
                self.last_time[part],
                self.addr_text,
            )

    def listing(self) -> SummaryListing:
        w, summaries = self.window, self.summaries
        rows = summaries.syn_row
        clients, servers = w.address_texts(rows, self.addr_text)
        sports, dports = w.sport[rows].tolist(), w.dport[rows].tolist()
        # (As TrackedConnection.community_id, IPv4 addresses hashed from their numbers.)
        community_ids = [
            community_id(client, sport, server, dport) if v6 else community_id_v4(*numbers)
            for client, sport, server, dport, v6, numbers in zip(
                clients, sports, servers, dports, w.v6[rows].tolist(),
                zip(w.src[rows].tolist(), sports, w.dst[rows].tolist(), dports, strict=True),
                strict=True,
            )
        ]  # fmt: skip
        states = [
            _CLOSED_STATES[first]
            for first in (summaries.fin_row[0] < summaries.fin_row[1]).tolist()
        ]
        # (Endpoint.bytes_acked: the sequence space the peer acknowledged but the FIN's)
        client_acked, server_acked = (np.maximum(a - 1, 0).tolist() for a in summaries.acked)
        names = w.tunnel_names
        return SummaryListing(
            conn_id=self.ids.tolist(),
            community_id=community_ids,
            first_time=w.time[rows].tolist(),
            last_time=self.last_time.tolist(),
            client=list(map(endpoint_text, clients, sports)),
            server=list(map(endpoint_text, servers, dports)),
            client_packets=summaries.packets[0].tolist(),
            client_bytes=summaries.payload[0].tolist(),
            client_bytes_acked=client_acked,
            server_packets=summaries.packets[1].tolist(),
            server_bytes=summaries.payload[1].tolist(),
            server_bytes_acked=server_acked,
            client_state=[client.value for client, _ in states],
            server_state=[server.value for _, server in states],
            history=_histories(summaries),
            tunnel=[names[t] for t in w.tunnel[rows].tolist()],
        )


def _summary_connections(
    w: Columns, summaries: _Summaries, ids: I64, last_time: F64, addr_text: dict[int, str]
) -> Iterator[TrackedConnection]:
    """The connections taken in bulk, as the retired connections that list them (flows, and
    --state filters): exactly what a connection without events is listed, counted and
    filtered by (its ids, times, counters, final states, Zeek's conn_state and history); the
    rest of each Endpoint is left at its defaults. tests/test_fastpath.py compares the flows
    listed both ways."""
    rows = summaries.syn_row
    names = w.tunnel_names
    number, time = w.number.tolist(), w.time.tolist()  # (by row: a few per connection)
    client_first = (summaries.fin_row[0] < summaries.fin_row[1]).tolist()
    openings = (rows.tolist(), summaries.synack_row.tolist())
    numbers = (summaries.isn, summaries.acked, summaries.packets, summaries.payload)
    per_side = [
        list(zip(*(a[side].tolist() for a in (*numbers, summaries.fin_row)), strict=True))
        for side in (0, 1)
    ]
    histories = _histories(summaries)
    for k, (client_addr, server_addr, sport, dport, v6, tunnel, conn_id, last) in enumerate(
        zip(
            *w.address_texts(rows, addr_text),
            w.sport[rows].tolist(),
            w.dport[rows].tolist(),
            w.v6[rows].tolist(),
            w.tunnel[rows].tolist(),
            ids.tolist(),
            last_time.tolist(),
            strict=True,
        )
    ):
        client_state, server_state = _CLOSED_STATES[client_first[k]]
        client = _summary_endpoint(
            client_addr, sport, "client", per_side[0][k], openings[0][k], number, time, client_state
        )
        server = _summary_endpoint(
            server_addr, dport, "server", per_side[1][k], openings[1][k], number, time, server_state
        )
        syn = openings[0][k]
        ref = ConnectionRef(
            conn_id=conn_id,
            client=client.text,
            server=server.text,
            initiator_known=True,
            ip_version=6 if v6 else 4,
            first_frame=number[syn],
            first_time=time[syn],
            tunnel=names[tunnel],
        )
        yield TrackedConnection(
            ref, client, server, last, [], SUMMARY_CONN_STATE, histories[k], False
        )


def _summary_endpoint(
    addr: str,
    port: int,
    role: Role,
    numbers: tuple[int, int, int, int, int],
    opening: int,
    number: list[int],
    time: list[float],
    state: TcpState,
) -> Endpoint:
    """One side of a connection taken in bulk (see _summary_connections)."""
    isn, acked, packets, payload, fin = numbers
    what = OPENING_TEXT[role == "server", role]
    return Endpoint(
        addr,
        port,
        state=state,
        isn=isn,
        acked=acked,
        fin_acked=True,
        acks_advanced=True,
        packets=packets,
        payload_bytes=payload,
        bytes_sent=payload,
        syn=Evidence(number[opening], time[opening], what),
        fin=Evidence(number[fin], time[fin], FIN_TEXT[role]),
        role=role,
    )


def _histories(summaries: _Summaries) -> list[str]:
    """Zeek's history of each healthy connection: each letter where it first shows, the
    originator's (the client's) upper case."""
    columns = [(summaries.syn_row, "S"), (summaries.synack_row, "h")]
    for side, (ack, data, fin) in enumerate((("A", "D", "F"), ("a", "d", "f"))):
        columns += [
            (summaries.ack_row[side], ack),
            (summaries.data_row[side], data),
            (summaries.fin_row[side], fin),
        ]
    rows = np.stack([c for c, _ in columns], axis=1)
    order = np.argsort(rows, axis=1, kind="stable").tolist()
    present = (rows != _NEVER).tolist()
    letters = [letter for _, letter in columns]
    return [
        "".join(letters[j] for j in by_row if seen[j])
        for by_row, seen in zip(order, present, strict=True)
    ]


@dataclass(slots=True)
class _Summaries:
    """Per qualifying connection, the numbers its summary is made of (see
    _summary_connections): rows of the window, and pairs of arrays (client's, server's)."""

    syn_row: I64
    synack_row: I64
    fin_row: tuple[I64, I64]
    ack_row: tuple[I64, I64]  # the first pure ACK (_NEVER: none)
    data_row: tuple[I64, I64]  # the first segment with data (and no SYN or FIN)
    packets: tuple[I64, I64]
    payload: tuple[I64, I64]
    isn: tuple[I64, I64]
    # The sequence space of each side's that the peer acknowledged (its FIN included).
    acked: tuple[I64, I64]

    def select(self, groups: I64) -> _Summaries:
        def pick(pair: tuple[I64, I64]) -> tuple[I64, I64]:
            return pair[0][groups], pair[1][groups]

        return _Summaries(
            self.syn_row[groups],
            self.synack_row[groups],
            pick(self.fin_row),
            pick(self.ack_row),
            pick(self.data_row),
            pick(self.packets),
            pick(self.payload),
            pick(self.isn),
            pick(self.acked),
        )


def _ends(w: Columns, rows: I64 | slice) -> tuple[I64, I64]:
    """Per row of `rows`: its sender's endpoint and its receiver's (address << 16 | port)."""
    return (
        (w.src[rows].astype(np.int64) << 16) | w.sport[rows],
        (w.dst[rows].astype(np.int64) << 16) | w.dport[rows],
    )


def _endpoints(w: Columns) -> tuple[I64, I64, I64]:
    """Per row: the two endpoints (address << 16 | port), the smaller first, and the
    direction (1 if the sender is the larger)."""
    a, b = _ends(w, slice(None))
    return np.minimum(a, b), np.maximum(a, b), (a > b).astype(np.int64)


def _connection_keys(a: I64, b: I64, context: I64) -> npt.NDArray[np.uint64]:
    """The grouping keys (see _group_keys, direction 0) of the connections between endpoints
    `a` and `b` (either way round) in `context` (see _context)."""
    return _group_keys(np.minimum(a, b), np.maximum(a, b), np.zeros_like(a), context)


def _group_keys(lo: I64, hi: I64, direction: I64, tunnel: I64) -> npt.NDArray[np.uint64]:
    """Per row: its 4-tuple and context (tunnel and family, see _context) as a 64-bit key,
    the same both ways, with the direction in the lowest bit, so that sorting by it sorts by
    connection, then direction. Rows with no TCP 4-tuple share the key of 0.0.0.0:0, whose
    group never qualifies."""
    # hi is below 2**48: the tunnel goes above it (mod 2**64; a collision is safe, see
    # pair_hash), so an untunnelled connection keeps the key it always had.
    tunnelled = hi.astype(np.uint64) ^ (tunnel.astype(np.uint64) << np.uint64(48))
    return (pair_hash(lo, tunnelled) & ~np.uint64(1)) | direction.astype(np.uint64)


def _open_at_once(w: Columns, row: I64, starts: I64, end: int, context: I64) -> int:
    """At most how many connections of the 4-tuples with a row in [0, end) of window `w` are
    open at once in those rows, had the table been fed them all (what its cap bounds: see
    FlowTable._make_room). `row`: rows grouped by 4-tuple (in capture order within each
    direction), `starts`: where each group begins; `context`: per row (see _context).

    Each counts from its first row on, whether it started there or was open before (those
    the table holds are counted apart: twice is safe). One only closes for sure at a refusal:
    a group of two rows, a client's bare SYN and the RST/ACK that acknowledges it from the
    other end (RFC 9293 3.10.7.3: accepted in SYN-SENT, the tracker's verdict too), which a
    new connection of that SYN (or one open before, still counted apart) cannot outlive. A
    storm of refusals thus holds few open at once, not one per refusal of the part."""
    if not len(row):
        return 0
    firsts = np.minimum.reduceat(row, starts)
    in_part = firsts < end
    sizes = np.diff(np.append(starts, len(row)))
    pairs = np.flatnonzero(in_part & (sizes == 2))
    x, y = row[starts[pairs]], row[starts[pairs] + 1]
    syn, rst = np.minimum(x, y), np.maximum(x, y)
    refused = (
        (rst < end)
        & w.simple[syn]
        & w.simple[rst]
        & ((w.flags[syn] & _SHAPE) == SYN)
        & ((w.flags[rst] & _SHAPE) == (RST | ACK))
        & (w.ack[rst] == w.seq[syn] + np.uint32(1))  # (uint32: modulo 2**32)
        & (w.src[syn] == w.dst[rst])
        & (w.dst[syn] == w.src[rst])
        & (w.sport[syn] == w.dport[rst])
        & (w.dport[syn] == w.sport[rst])
        & (context[syn] == context[rst])
    )
    # Per row, the connections that start there less the refusals closed by the row before.
    change = np.bincount(firsts[in_part], minlength=end + 1)
    change -= np.bincount(rst[refused] + 1, minlength=end + 1)
    return int(np.cumsum(change).max(initial=0))


def _uneventful(
    w: Columns,
    done: Bools,
    clock: F64,
    end: int,
    last: bool,
    base: int,
    zeek: bool,
    quoted: npt.NDArray[np.uint64],
    follow_room: int = FOLLOWED_IN_MEMORY,
) -> _Bulk:
    n = len(w)
    # Sort rows by 4-tuple, then direction, then capture order (a stable sort): each direction
    # of each connection becomes a run of consecutive positions.
    lo, hi, direction = _endpoints(w)
    context = _context(w.tunnel, w.v6)
    sort_key = _group_keys(lo, hi, direction, context)
    sort_key[done] = _DONE_KEY  # decided already: kept out of every group
    row = np.argsort(sort_key, kind="stable")  # position -> row
    sorted_key = sort_key[row]
    del sort_key, direction
    # Each row's group (its 4-tuple's) among all the window's groups.
    new_group = np.ones(n, np.bool_)
    new_group[1:] = (sorted_key[1:] >> np.uint64(1)) != (sorted_key[:-1] >> np.uint64(1))
    all_starts = np.flatnonzero(new_group)
    n_all = len(all_starts)
    group_of_row = np.empty(n, np.int32)
    group_of_row[row] = (np.cumsum(new_group) - 1).astype(np.int32)
    open_in_part = _open_at_once(w, row, all_starts, end, context)
    # A group of one row (a flood's SYN, a scan's probe) cannot qualify: in a window of a
    # flood most groups are such, and the arrays below are made for the others only.
    several = np.diff(np.append(all_starts, n)) >= 2
    kept_groups = np.flatnonzero(several)
    if len(kept_groups) < n_all:
        kept = np.repeat(several, np.diff(np.append(all_starts, n)))
        # (whole groups go: each kept group's first row still starts it)
        row, sorted_key, new_group = row[kept], sorted_key[kept], new_group[kept]
        n = len(row)  # (from here on: positions in the sorted rows kept, not rows)
        del kept
    del all_starts, several
    # Two 4-tuples whose keys collide (or a 4-tuple whose key is _DONE_KEY) share a group:
    # such a group must never pass for one connection.
    lo, hi, context = lo[row], hi[row], context[row]
    mixed = np.zeros(n, np.bool_)
    mixed[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]) | (context[1:] != context[:-1])
    del lo, hi, context
    new_run = np.ones(n, np.bool_)
    new_run[1:] = sorted_key[1:] != sorted_key[:-1]
    g_start = np.flatnonzero(new_group)
    r_start = np.flatnonzero(new_run)
    group_key = sorted_key[g_start] & ~np.uint64(1)
    del sorted_key
    group_s = (np.cumsum(new_group) - 1).astype(np.int32)
    run_s = (np.cumsum(new_run) - 1).astype(np.int32)
    n_groups, n_runs = len(g_start), len(r_start)

    shape = w.flags[row] & _SHAPE
    # Sequence arithmetic in uint32 wraps exactly as TCP's does (mod 2**32).
    seq = w.seq[row]
    ack = w.ack[row]
    plen = w.payload_len[row].astype(np.uint32)
    syn, fin = (shape & SYN) != 0, (shape & FIN) != 0
    next_seq = seq + plen + syn + fin

    # Per position: anything that could make an event or a state the check below does not know.
    bad = ~w.simple[row]
    bad |= mixed & ~new_group
    later = ~new_run  # not the first segment of its direction
    bad |= later & (((shape & (SYN | RST | URG)) != 0) | ((shape & ACK) == 0))
    bad[1:] |= later[1:] & (seq[1:] != next_seq[:-1])  # not where the previous one ended
    ok = np.add.reduceat(bad.astype(np.int32), g_start) == 0
    del bad, later, mixed
    runs_per_group = np.bincount(group_s[r_start], minlength=n_groups)
    ok &= runs_per_group == 2
    del group_s

    # The two directions: the client's run starts with the SYN, the server's with the SYN-ACK.
    first_run = np.searchsorted(r_start, g_start)
    second_run = np.minimum(first_run + 1, n_runs - 1)
    run_size = np.diff(np.append(r_start, n))
    s0, s1 = r_start[first_run], r_start[second_run]
    client_first = (shape[s0] == SYN) & (shape[s1] == SYN | ACK)
    ok &= client_first | ((shape[s1] == SYN) & (shape[s0] == SYN | ACK))
    c_run = np.where(client_first, first_run, second_run)
    s_run = np.where(client_first, second_run, first_run)
    ok &= (run_size[c_run] >= 2) & (run_size[s_run] >= 2)
    c0, s0 = r_start[c_run], r_start[s_run]
    c1, s1 = np.minimum(c0 + 1, n - 1), np.minimum(s0 + 1, n - 1)
    # SYN, SYN-ACK acknowledging it, the client's ACK of the SYN-ACK, then the server again.
    ok &= row[c0] < row[s0]
    ok &= ack[s0] == seq[c0] + 1
    ok &= (row[c1] > row[s0]) & (ack[c1] == seq[s0] + 1)
    ok &= row[s1] > row[c1]

    # At most one FIN each way (a second one would be a retransmission anyway).
    fins = np.add.reduceat(fin.astype(np.int32), r_start)
    ok &= (fins[c_run] <= 1) & (fins[s_run] <= 1)
    fin_pos = np.full(n_runs, -1, np.int64)
    where_fin = np.flatnonzero(fin)
    fin_pos[run_s[where_fin]] = where_fin
    has_fin = fin_pos >= 0
    fp = np.maximum(fin_pos, 0)
    fin_ack = seq[fp] + plen[fp] + 1  # the ACK number that acknowledges the FIN
    fin_row = np.where(has_fin, row[fp], _NEVER)
    # The first segment of each run that acknowledges the other direction's FIN.
    run_first_of_group = new_group[r_start]
    peer_run = np.where(run_first_of_group, np.arange(n_runs) + 1, np.arange(n_runs) - 1)
    peer_run = np.clip(peer_run, 0, n_runs - 1)
    peer = peer_run[run_s]
    acks_fin = (
        has_fin[peer]
        & (row > fin_row[peer])
        & ((ack - fin_ack[peer]) < _HALF)  # seq_le(FIN + 1, ack), in uint32
        & ((shape & ACK) != 0)
    )
    acked_at = np.minimum.reduceat(np.where(acks_fin, row, _NEVER), r_start)
    both_acked = (acked_at[c_run] < _NEVER) & (acked_at[s_run] < _NEVER)
    close_row = np.where(both_acked, np.maximum(acked_at[c_run], acked_at[s_run]), -1)

    # The table takes the handshake, and everything from the connection's first FIN on, by its
    # general path, which drops a segment that is its sender's last one again (the same IP ID,
    # numbers, flags and length: captured twice) and counts it: such a connection is left to
    # the table. ("Last": the sender's last segment there or carrying data, with an IP ID.)
    group_of = np.cumsum(new_group) - 1
    general = row >= np.minimum(fin_row[c_run], fin_row[s_run])[group_of]
    general[c0] = general[c1] = general[s0] = True
    ok[group_of[_again(w, row, run_s, general, plen)]] = False
    del group_of, general

    # The server's FIN before the client's, with data of the client's later than the server's
    # last (a request the server left unanswered, or one written after its FIN): the table
    # judges it (tracker.Connection._close_event), clean as it is on the wire.
    last_data = np.maximum.reduceat(np.where(plen > 0, row, -1), r_start)
    ok &= ~((fin_row[s_run] < fin_row[c_run]) & (last_data[c_run] > last_data[s_run]))
    del last_data

    first_row = np.minimum.reduceat(row, g_start)
    last_time = np.maximum.reduceat(w.time[row], g_start)
    ok &= (first_row < end) & (group_key != _DONE_KEY)
    clean = ok.copy()  # (so far: nothing about its end)
    if not last:
        # Later packets of the 4-tuple must not be able to join it: it must be closed, and the
        # window must reach the check point that retires it.
        ok &= both_acked
        # The table retires a closed connection at the first check point a grace period after
        # it closed, or, when later segments came after the close, up to a grace period
        # after those (it is queued again behind the connections closed in between).
        closed_at = w.time[np.maximum(close_row, 0)]
        wait = np.where(last_time > closed_at, 2 * CLOSE_GRACE_SECONDS, CLOSE_GRACE_SECONDS)
        j = np.searchsorted(clock, last_time + wait + _MARGIN_SECONDS, "left")
        check = -(-(base + j) // RETIRE_CHECK_EVERY) * RETIRE_CHECK_EVERY - base
        ok &= check < len(w)

    # ICMP errors: the connections they quote (`quoted`, see _quoted_keys) are left to the table.
    if len(quoted):
        unquoted = ~np.isin(group_key, quoted)
        ok &= unquoted
        clean &= unquoted
    follow = None
    if not last:
        # The clean ones that the window ends too early for: followed on (see _Followed).
        # (its handshake before the end of the part decided: the rest is plain ACKs)
        candidate = clean & ~ok & (row[c1] < end)
        # (Zeek's view lists a connection as it leaves: not one that leaves the table unseen)
        closing = close_row if not zeek else np.full_like(close_row, -1)
        follow = _new_followed(
            w, end, row, shape, plen, next_seq, candidate, closing, g_start, r_start, c_run,
            s_run, follow_room,
        )  # fmt: skip
        if follow is not None:
            follow.key = group_key[follow.groups]

    summaries = None
    if zeek:
        # Zeek's view is wanted (flows, --state): the connection is listed from a summary
        # (see _Summaries), which is only as simple as this for the closed connections that
        # Zeek's timers cannot split and whose counters the arrays can give exactly.
        ok &= both_acked
        syn_time = w.time[row[c0]]
        last_row = np.maximum.reduceat(row, g_start)
        # None of Zeek's removal timers (tcpdiag.zeek.ZeekTimeline) may fire on it. The capture
        # clock Zeek's view sees at a row is at most that row's clock or time, so at any row
        # of the connection at most `latest` (none of its packets stamped before its SYN):
        ok &= np.minimum.reduceat(w.time[row], g_start) >= syn_time
        latest = np.maximum(clock[last_row], last_time)
        # - the attempt timer (the SYN's time + ATTEMPT_DELAY) removes only an unanswered
        #   attempt: it must not be due at the SYN-ACK, after which it no longer can;
        synack = row[s0]
        ok &= np.maximum(clock[synack], w.time[synack]) < syn_time + ATTEMPT_DELAY_SECONDS
        # - the close timer is set at the second FIN (both sides closed), CLOSE_DELAY after its
        #   time: it must not be due at any later packet;
        fin2 = np.maximum(fin_row[c_run], fin_row[s_run])
        trailing = last_row > fin2
        fin2_time = w.time[np.where(trailing, fin2, 0)]
        ok &= ~trailing | (latest < fin2_time + CLOSE_DELAY_SECONDS)
        # - the inactivity timer: no packet that long after the one before (its shortest,
        #   INACTIVITY_SECONDS; some ports wait longer).
        ok &= latest - syn_time < INACTIVITY_SECONDS
        # A zero window is a history letter ('W') of its own.
        zero = ((shape & (SYN | RST)) == 0) & (w.window[row] == 0)
        ok &= np.add.reduceat(zero.astype(np.int32), g_start) == 0
        # Each ACK acknowledges no more than the peer had sent when it was captured, so that
        # the acknowledged bytes are the largest ACK's (see Endpoint.acknowledged).
        isn = seq[r_start]  # per run: the SYN's or SYN-ACK's sequence number
        rel_ack = ack - isn[peer] - np.uint32(1)
        rows = len(w) + 1  # (above any row: (run, row) as one number, in order)
        composite = run_s.astype(np.int64) * rows + row
        before = np.searchsorted(composite, peer * rows + row) - 1  # the peer's last one
        before = np.maximum(before, 0)
        sent = (run_s[before] == peer) & (row[before] < row)
        peer_next = next_seq[before] - isn[peer] - np.uint32(1)
        has_ack = (shape & ACK) != 0
        overreach = has_ack & (~sent | (rel_ack > peer_next))
        ok &= np.add.reduceat(overreach.astype(np.int32), g_start) == 0
        acked = np.maximum.reduceat(np.where(has_ack, rel_ack, 0), r_start)
        # (and less than 2 GiB each way, where sequence comparisons stop being plain ones)
        ok &= (acked[c_run] < _HALF) & (acked[s_run] < _HALF)
        # (A side's acknowledged space is in the peer's ACKs: the client's in the server's run.)
        # Summaries of the connections that qualify only (a flood's window has a group per
        # SYN, and a summary's dozen arrays for each were the peak of memory).
        taken = np.flatnonzero(ok)
        acked_by_peer = (
            acked[s_run[taken]].astype(np.int64),
            acked[c_run[taken]].astype(np.int64),
        )
        summaries = _summaries(
            w, row, shape, plen, r_start, run_size, c_run[taken], s_run[taken], fin_pos,
            acked_by_peer,
        )  # fmt: skip

    groups = np.flatnonzero(ok)
    return _Bulk(
        n_groups=n_all,
        group_of_row=group_of_row,
        open_in_part=open_in_part,
        groups=kept_groups[groups],
        key=group_key[groups],
        syn_row=row[c0[groups]],
        close_row=close_row[groups],
        last_time=last_time[groups],
        summaries=summaries,
        follow=follow,
    )


@dataclass(slots=True)
class _Continuations:
    """Runs of rows that continue connections live in the table along the in-order path
    (see _continuations): per run, the table's key and the segments, and the row at whose
    place the table takes them (the last of them)."""

    rows: I64  # every row of every run
    keys: list[Key]
    runs: list[InOrderRun]
    at: list[int]  # per run, its last row
    # Per run of a connection that started in the part (see _fresh_handshakes): what
    # Connection.in_order_start must say at the run's place, and the run's rows; else None.
    expected: list[tuple[tuple[int, int, bool, bool], I64] | None]


_NO_CONTINUATIONS = _Continuations(np.zeros(0, np.int64), [], [], [], [])
_NO_HANDSHAKES: tuple[I64, dict[int, tuple[Key, int, int, tuple[int, int, bool, bool]]]] = (
    np.zeros(0, np.int64),
    {},
)


def _continuations(
    w: Columns,
    clock: F64,
    done: Bools,
    start: int,
    stop: int,
    quoted: npt.NDArray[np.uint64],
    table: FlowTable,
    addr_text: dict[int, str],
) -> _Continuations:
    """The rows of [start, stop) that continue a connection the table holds in memory along
    the in-order path (FlowTable.in_order_connection): for each such connection, its first
    rows here for as long as each is an ACK without SYN, FIN, RST or URG, decoded by the
    arrays, that starts where its sender's previous segment ended (from the sender's SND.NXT
    in the table), and, if empty, comes from a side whose SYN was seen. The table takes them
    in one go at the place of the last (FlowTable.continue_in_order), exactly as it would
    have taken them one by one.

    The table is as the rows before `start` left it; the caller makes sure that nothing in
    these rows could read a continued connection's state, or its place in the table's order
    of activity, before its last row (see FastPathTracker._may_continue). The connections
    that an ICMP error quotes are left out."""
    part = np.flatnonzero(~done[start:stop]) + start  # the rows the table would be fed
    if not len(part):
        return _NO_CONTINUATIONS
    a, b = _ends(w, part)
    context = _context(w.tunnel[part], w.v6[part])
    keys = _connection_keys(a, b, context)
    # Connections that start here with a clean handshake: their handshakes are fed, and
    # the rows after it considered as if the table held them (FastPathTracker._continue
    # checks, at the run's place, that it does hold them so).
    handshakes, fresh = _fresh_handshakes(w, part, keys, quoted, table, addr_text)
    if len(handshakes):
        part, a, b = np.delete(part, handshakes), np.delete(a, handshakes), np.delete(b, handshakes)
        context, keys = np.delete(context, handshakes), np.delete(keys, handshakes)
    flags = w.flags[part]
    candidate = w.simple[part] & ((flags & _SHAPE) == ACK)
    unique, first, slot = np.unique(keys, return_index=True, return_inverse=True)
    n = len(unique)
    # The connections to look up: those whose first row here could continue them, with rows
    # enough that could.
    wanted = candidate[first]
    min_rows = np.full(n, _CONTINUE_MIN_ROWS)
    if fresh:
        min_rows[np.isin(unique, np.fromiter(fresh, np.uint64, len(fresh)))] = _FRESH_MIN_ROWS
    wanted &= np.bincount(slot[candidate], minlength=n) >= min_rows
    if len(quoted):
        wanted &= ~np.isin(unique, quoted)
    if not wanted.any():
        return _NO_CONTINUATIONS
    ready = np.zeros(n, np.bool_)
    client_end = np.zeros(n, np.int64)  # address << 16 | port
    server_end = np.zeros(n, np.int64)
    next_seq = np.zeros((n, 2), np.int64)  # SND.NXT of the client, of the server
    syn_seen = np.zeros((n, 2), np.bool_)
    table_keys: dict[int, Key] = {}
    lookups = np.flatnonzero(wanted)
    rows = part[first[lookups]]
    names = w.tunnel_names
    expect: dict[int, tuple[int, int, bool, bool]] = {}
    for u, key_value, src_text, dst_text, sport, dport, tunnel, a_end, b_end in zip(
        lookups.tolist(),
        unique[lookups].tolist(),
        *w.address_texts(rows, addr_text),
        w.sport[rows].tolist(),
        w.dport[rows].tolist(),
        w.tunnel[rows].tolist(),
        a[first[lookups]].tolist(),
        b[first[lookups]].tolist(),
        strict=True,
    ):
        started = fresh.get(key_value)
        if started is not None:
            ready[u] = True
            table_keys[u], client_end[u], server_end[u], after_handshake = started
            next_seq[u] = after_handshake[0], after_handshake[1]
            syn_seen[u] = True
            expect[u] = after_handshake
            continue
        found = table.in_order_connection(src_text, sport, dst_text, dport, names[tunnel])
        if found is None:
            continue
        key, conn = found
        begin = conn.in_order_start()
        assert begin is not None  # (checked by in_order_connection)
        ready[u] = True
        table_keys[u] = key
        from_src = conn.client.addr == src_text and conn.client.port == sport
        client_end[u], server_end[u] = (a_end, b_end) if from_src else (b_end, a_end)
        next_seq[u] = begin[0], begin[1]
        syn_seen[u] = begin[2], begin[3]
    if not table_keys:
        return _NO_CONTINUATIONS
    # Per row: whether it could continue its connection, so far as it alone can tell.
    from_client = (a == client_end[slot]) & (b == server_end[slot])
    from_server = (a == server_end[slot]) & (b == client_end[slot])
    # (a row of another 4-tuple whose key collides with this one's is neither)
    ok = candidate & ready[slot] & (from_client | from_server)
    ok &= context == context[first[slot]]
    side = from_server.astype(np.int64)  # 0: the client sent it, 1: the server
    plen = w.payload_len[part].astype(np.int64)
    ok &= (plen > 0) | syn_seen[slot, side]
    # Each side's segments must follow on from each other: in capture order, the first must
    # start at the side's SND.NXT, each next one where the one before ended (mod 2**32).
    seq = w.seq[part].astype(np.int64)
    order = np.lexsort((side, slot))  # by connection, then side, then capture order
    o_slot, o_side = slot[order], side[order]
    new_run = np.ones(len(part), np.bool_)
    new_run[1:] = (o_slot[1:] != o_slot[:-1]) | (o_side[1:] != o_side[:-1])
    expected = np.empty(len(part), np.int64)
    expected[1:] = (seq[order][:-1] + plen[order][:-1]) & 0xFFFFFFFF
    expected[new_run] = next_seq[o_slot[new_run], o_side[new_run]]
    in_sequence = np.empty(len(part), np.bool_)
    in_sequence[order] = seq[order] == expected
    ok &= in_sequence
    # Each connection's run: its rows here up to the first that is not so.
    by_slot = np.argsort(slot, kind="stable")  # by connection, then capture order
    s_slot = slot[by_slot]
    starts = np.flatnonzero(np.concatenate(([True], s_slot[1:] != s_slot[:-1])))
    position = np.arange(len(part))
    first_bad = np.minimum.reduceat(np.where(ok[by_slot], len(part), position), starts)
    first_bad[first_bad - starts < min_rows[s_slot[starts]]] = 0  # (too short: none of it)
    taken = by_slot[position < np.repeat(first_bad, np.diff(np.append(starts, len(part))))]
    if not len(taken):
        return _NO_CONTINUATIONS
    chosen = part[taken]
    run_slot = slot[taken]
    edges = [0, *(np.flatnonzero(np.diff(run_slot)) + 1).tolist(), len(taken)]
    columns = (
        from_client[taken].tolist(),
        w.number[chosen].tolist(),
        w.time[chosen].tolist(),
        w.seq[chosen].tolist(),
        w.ack[chosen].tolist(),
        flags[taken].tolist(),
        w.window[chosen].tolist(),
        w.payload_len[chosen].tolist(),
        w.ttl[chosen].tolist(),
        w.ip_id[chosen].tolist(),  # (0 on IPv6, which has none: the same to the tracker)
        clock[chosen].tolist(),
    )
    runs, run_keys, at = [], [], []
    foreseen: list[tuple[tuple[int, int, bool, bool], I64] | None] = []
    for begin_at, end_at in itertools.pairwise(edges):
        runs.append(InOrderRun(*(column[begin_at:end_at] for column in columns)))
        u = int(run_slot[begin_at])
        run_keys.append(table_keys[u])
        at.append(int(chosen[end_at - 1]))
        state = expect.get(u)
        foreseen.append(None if state is None else (state, chosen[begin_at:end_at]))
    return _Continuations(chosen, run_keys, runs, at, foreseen)


def _fresh_handshakes(
    w: Columns,
    part: I64,
    keys: npt.NDArray[np.uint64],
    quoted: npt.NDArray[np.uint64],
    table: FlowTable,
    addr_text: dict[int, str],
) -> tuple[I64, dict[int, tuple[Key, int, int, tuple[int, int, bool, bool]]]]:
    """The connections whose first three rows in `part` are a clean handshake (the client's
    SYN, the server's SYN-ACK acknowledging it, the client's ACK of that, each decoded by
    the arrays) of a 4-tuple the table holds nothing of, with rows enough after it to be worth
    a run: the positions (in `part`) of those handshakes' rows, and per connection (by its
    grouping key) the table's key, the client's and the server's end (address << 16 | port)
    and what Connection.in_order_start will say once the table has been fed the handshake:
    each side's SND.NXT after it, both SYNs seen. `keys`: the rows' grouping keys."""
    order = np.argsort(keys, kind="stable")  # by connection, then capture order
    o_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], o_keys[1:] != o_keys[:-1])))
    sizes = np.diff(np.append(starts, len(part)))
    starts = starts[sizes >= 3 + _FRESH_MIN_ROWS]
    if not len(starts):
        return _NO_HANDSHAKES
    syn, syn_ack, ack = part[order[starts]], part[order[starts + 1]], part[order[starts + 2]]
    ok = ((w.flags[syn] & _SHAPE) == SYN) & ((w.flags[syn_ack] & _SHAPE) == SYN | ACK)
    ok &= (w.flags[ack] & _SHAPE) == ACK
    ok &= w.simple[syn] & w.simple[syn_ack] & w.simple[ack]
    # (the same 4-tuple each time, both ways: not another whose key collides with it)
    client, server = _ends(w, syn)
    answer_from, answer_to = _ends(w, syn_ack)
    ack_from, ack_to = _ends(w, ack)
    ok &= (answer_from == server) & (answer_to == client) & (ack_from == client)
    ok &= ack_to == server
    context = _context(w.tunnel[syn], w.v6[syn])
    ok &= context == _context(w.tunnel[syn_ack], w.v6[syn_ack])
    ok &= context == _context(w.tunnel[ack], w.v6[ack])
    ok &= (w.payload_len[syn] == 0) & (w.payload_len[syn_ack] == 0)
    client_next = (w.seq[syn].astype(np.int64) + 1) & 0xFFFFFFFF
    server_next = (w.seq[syn_ack].astype(np.int64) + 1) & 0xFFFFFFFF
    ok &= (w.ack[syn_ack] == client_next) & (w.seq[ack] == client_next)
    ok &= w.ack[ack] == server_next
    if len(quoted):
        ok &= ~np.isin(o_keys[starts], quoted)
    chosen = np.flatnonzero(ok)
    if not len(chosen):
        return _NO_HANDSHAKES
    syn, ack = syn[chosen], ack[chosen]
    client_next = (w.seq[ack].astype(np.int64) + w.payload_len[ack]) & 0xFFFFFFFF
    fresh: dict[int, tuple[Key, int, int, tuple[int, int, bool, bool]]] = {}
    taken: list[int] = []
    names = w.tunnel_names
    for i, key_value, src, dst, sport, dport, tunnel, c_end, s_end, c_next, s_next in zip(
        chosen.tolist(),
        o_keys[starts[chosen]].tolist(),
        *w.address_texts(syn, addr_text),
        w.sport[syn].tolist(),
        w.dport[syn].tolist(),
        w.tunnel[syn].tolist(),
        client[chosen].tolist(),
        server[chosen].tolist(),
        client_next.tolist(),
        server_next[chosen].tolist(),
        strict=True,
    ):
        key = table.untracked_key(src, sport, dst, dport, names[tunnel])
        if key is not None:
            fresh[key_value] = (key, c_end, s_end, (c_next, s_next, True, True))
            taken.append(i)
    if not taken:
        return _NO_HANDSHAKES
    first = starts[np.array(taken, np.int64)]
    return np.concatenate((order[first], order[first + 1], order[first + 2])), fresh


# -- connections followed across windows -------------------------------------------------------


@dataclass(slots=True)
class _Close:
    """A connection tracked here that closes at packet index `row`: its place in the table's
    closing queue (FlowTable.closed_elsewhere); a followed one also leaves the live ones."""

    row: int
    closed_at: float
    last_time: float
    followed: _Followed | None = None

    def apply(self, table: FlowTable) -> None:
        if self.followed is not None:
            table.followed_done(self.followed.conn)
        table.closed_elsewhere(self.closed_at, self.last_time)


class _History:
    """A followed connection's rows so far, kept for its replay (tcpdiag.tracker.SegmentHistory):
    per window, a slice of that window's kept rows (shared by the connections followed in it)
    and the capture clock at each."""

    __slots__ = ("addr_text", "parts", "rows")

    def __init__(self, addr_text: dict[int, str]) -> None:
        self.addr_text = addr_text
        self.parts: list[tuple[Columns, F64, int, int]] = []
        self.rows = 0

    def add(self, kept: Columns, clock: F64, start: int, stop: int) -> None:
        self.parts.append((kept, clock, start, stop))
        self.rows += stop - start

    def segments(self) -> Iterator[tuple[TcpSegment, float]]:
        for kept, clock, start, stop in self.parts:
            packets = kept.packets(np.arange(start, stop, dtype=np.int64), self.addr_text)
            for packet, now in zip(packets, clock[start:stop].tolist(), strict=True):
                assert isinstance(packet, TcpSegment)
                yield packet, now


@dataclass(slots=True, eq=False)
class _Followed:
    """A connection followed across windows (a FollowedConnection in the table): clean so far
    in every way _uneventful asks, but not closed, or not yet retired, when its window ended.
    Each next window either goes on with it as cleanly (its rows are then never fed to the
    table), closes it cleanly (it leaves the table as a connection tracked elsewhere), or has
    anything else for it: then its rows are fed, and the first one makes the table replay its
    history into a Connection (FlowTable._held), exactly as if it had been fed all along."""

    group_key: int  # see _group_keys
    conn: FollowedConnection  # (with the table's key)
    history: _History
    client_end: int  # address << 16 | port
    server_end: int
    context: int  # see _context
    next_seq: tuple[int, int]  # SND.NXT of the client, of the server
    data: bool  # payload seen (a connection without any, left open, is a scan's probe)
    # The client's ACK of the SYN-ACK: its IP ID, sequence and acknowledgement numbers, flags.
    # Until the client sends payload, the table's last segment of the client's (see _again).
    handshake_ack: tuple[int, ...]
    # The client's data came after the server's last (or the server sent none): a server's
    # FIN now would leave it unanswered (see _uneventful).
    client_waits: bool = False
    windows: int = 1  # windows it had rows in
    closed: bool = False  # closed cleanly: waits in the table's closing queue


@dataclass(slots=True)
class _NewFollowed:
    """Connections of one window to follow from now on (see _Followed): parallel arrays."""

    groups: I64  # their groups in the window
    key: npt.NDArray[np.uint64]  # grouping key (see _group_keys)
    syn_row: I64
    last_row: I64  # the last of their rows in the part decided
    last_time: F64  # the latest time of those rows
    client_end: I64
    server_end: I64
    context: I64
    next_seq: I64  # (connections, 2): SND.NXT of the client, of the server, after those rows
    data: Bools
    handshake_ack: I64  # (connections, 4): see _Followed
    client_waits: Bools  # see _Followed
    closes: Bools  # closed cleanly with the last of those rows, and nothing after in the window
    rows: I64  # their rows in the part decided, by connection, then in capture order
    starts: I64  # where each one's rows start in `rows`, and len(rows) last

    def select(self, chosen: Bools) -> _NewFollowed:
        counts = np.diff(self.starts)[chosen]
        mine = np.repeat(chosen, np.diff(self.starts))
        return _NewFollowed(
            self.groups[chosen], self.key[chosen], self.syn_row[chosen], self.last_row[chosen],
            self.last_time[chosen], self.client_end[chosen], self.server_end[chosen],
            self.context[chosen], self.next_seq[chosen], self.data[chosen],
            self.handshake_ack[chosen], self.client_waits[chosen], self.closes[chosen],
            self.rows[mine],
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        )  # fmt: skip


def _new_followed(
    w: Columns,
    end: int,
    row: I64,
    shape: npt.NDArray[np.integer[Any]],
    plen: npt.NDArray[np.uint32],
    next_seq: npt.NDArray[np.uint32],
    candidate: Bools,
    close_row: I64,
    g_start: I64,
    r_start: I64,
    c_run: I64,
    s_run: I64,
    room: int,
) -> _NewFollowed | None:
    """Of the candidate groups of _uneventful (its sorted arrays: by group, direction, capture
    order; `close_row`, per group, the row after which the table calls it closed, or -1),
    those to follow: not too many rows to keep, and no FIN yet in the part decided, or a
    clean close there with its last row (it then waits in the table's closing queue)."""
    n = len(row)
    early = row < end
    fin_early = np.add.reduceat((early & ((shape & FIN) != 0)).astype(np.int32), g_start)
    rows_early = np.add.reduceat(early.astype(np.int32), g_start)
    last_of_all = np.maximum.reduceat(row, g_start)
    closes = (close_row >= 0) & (close_row == last_of_all) & (last_of_all < end)
    chosen = candidate & ((fin_early == 0) | closes) & (rows_early <= FOLLOW_MAX_ROWS)
    groups = np.flatnonzero(chosen)
    if len(groups) > room:
        chosen[groups[max(room, 0) :]] = False
        groups = groups[: max(room, 0)]
    if not len(groups):
        return None
    position = np.arange(n)
    # Per direction: its last position in the part decided (the SYN's and the SYN-ACK's are).
    last_early = np.maximum.reduceat(np.where(early, position, -1), r_start)
    c_last, s_last = last_early[c_run[groups]], last_early[s_run[groups]]
    next_both = np.stack([next_seq[c_last], next_seq[s_last]], axis=1).astype(np.int64)
    syn_rows = row[r_start[c_run[groups]]]
    ack_rows = row[r_start[c_run[groups]] + 1]  # (the client's second segment: see _uneventful)
    handshake_ack = np.stack(
        [w.ip_id[ack_rows], w.seq[ack_rows], w.ack[ack_rows], w.flags[ack_rows]], axis=1
    ).astype(np.int64)
    client_end, server_end = _ends(w, syn_rows)
    last_row = np.maximum.reduceat(np.where(early, row, -1), g_start)[groups]
    time = w.time[row]
    last_time = np.maximum.reduceat(np.where(early, time, -np.inf), g_start)[groups]
    data = np.add.reduceat((early & (plen > 0)).astype(np.int32), g_start)[groups] > 0
    last_data = np.maximum.reduceat(np.where(early & (plen > 0), row, -1), r_start)
    client_waits = last_data[c_run[groups]] > last_data[s_run[groups]]
    # Their rows in the part decided, by connection, then capture order.
    group_of_position = np.repeat(np.arange(len(g_start)), np.diff(np.append(g_start, n)))
    mine = early & chosen[group_of_position]
    owner = np.searchsorted(groups, group_of_position[mine])
    rows = row[mine]
    order = np.lexsort((rows, owner))
    counts = np.bincount(owner, minlength=len(groups))
    return _NewFollowed(
        groups=groups,
        key=np.zeros(len(groups), np.uint64),  # (set by the caller)
        syn_row=syn_rows,
        last_row=last_row,
        last_time=last_time,
        client_end=client_end,
        server_end=server_end,
        context=_context(w.tunnel[syn_rows], w.v6[syn_rows]),
        next_seq=next_both,
        data=data,
        handshake_ack=handshake_ack,
        client_waits=client_waits,
        closes=closes[groups],
        rows=rows[order],
        starts=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
    )


def _followed_from(new: _NewFollowed, w: Columns, addr_text: dict[int, str]) -> list[_Followed]:
    """The connections to follow from now on, each with its stand-in for the table (its id
    is set once taken: see FastPathTracker._follow_up)."""
    syn = new.syn_row
    sources, destinations = w.address_texts(syn, addr_text)
    names = w.tunnel_names
    made = []
    for (
        src,
        dst,
        sport,
        dport,
        tunnel,
        key,
        client_end,
        server_end,
        context,
        nxt,
        data,
        handshake_ack,
        waits,
    ) in zip(
        sources,
        destinations,
        w.sport[syn].tolist(),
        w.dport[syn].tolist(),
        w.tunnel[syn].tolist(),
        new.key.tolist(),
        new.client_end.tolist(),
        new.server_end.tolist(),
        new.context.tolist(),
        new.next_seq.tolist(),
        new.data.tolist(),
        new.handshake_ack.tolist(),
        new.client_waits.tolist(),
        strict=True,
    ):
        history = _History(addr_text)
        table_key = FlowTable.key_of(src, sport, dst, dport, names[tunnel])
        made.append(
            _Followed(
                key,
                FollowedConnection(table_key, -1, 0.0, history),
                history,
                client_end,
                server_end,
                context,
                (nxt[0], nxt[1]),
                data,
                tuple(handshake_ack),
                client_waits=waits,
                windows=0,
            )
        )
    return made


@dataclass(slots=True)
class _FollowOn:
    """What a window does with the connections followed into it (see _follow_on), per
    connection of the list it was given."""

    rows: I64  # the rows taken (never fed to the table)
    rows_owner: I64  # parallel to rows: the connection (index into the list)
    finished: I64  # the connections that close cleanly here (indices into the list)
    close_row: I64  # parallel to finished: the row that closes it
    going_on: I64  # those that go on cleanly (rows in the part decided, no FIN there, or a
    # clean close with the last of them: `closes`)
    closes: Bools  # parallel to going_on
    last_row: I64  # parallel to going_on: the last of its rows in the part decided
    next_seq: I64  # (len(going_on), 2)
    data: Bools  # parallel to going_on: payload among its rows here
    client_waits: Bools  # parallel to going_on: see _Followed, after its rows here
    last_time: F64  # per connection of the list: its latest time, with its rows here
    last_time_early: F64  # the same with its rows in the part decided only
    kept: I64  # the rows taken from going_on ones, by connection then capture order
    kept_owner: I64  # parallel to kept: the connection (index into the list)


def _again(
    w: Columns, row: I64, run: npt.NDArray[np.integer[Any]], general: Bools, plen: npt.NDArray[Any]
) -> I64:
    """Positions (rows `row` of `w`, by run of one sender's segments, in capture order) whose
    segment the table's general path (where `general`) would drop as its sender's last one
    again: the same IP ID (not 0), sequence and acknowledgement numbers, flags and length as
    the sender's last segment there or carrying data, with an IP ID (Connection._general)."""
    ip_id = w.ip_id[row]
    marks = np.flatnonzero((general | (plen > 0)) & (ip_id != 0))
    p, q = marks[:-1], marks[1:]
    flags, seq, ack = w.flags[row], w.seq[row], w.ack[row]
    again = (run[p] == run[q]) & general[q] & (ip_id[p] == ip_id[q]) & (plen[p] == plen[q])
    again &= (seq[p] == seq[q]) & (ack[p] == ack[q]) & (flags[p] == flags[q])
    return q[again]


def _follow_on(
    w: Columns,
    clock: F64,
    done: Bools,
    end: int,
    last: bool,
    base: int,
    followed: list[_Followed],
    quoted: npt.NDArray[np.uint64],
    zeek: bool = False,
) -> _FollowOn | None:
    """The rows of the window that belong to followed connections (not decided already),
    judged as _uneventful judges a connection's rows (each is a plain ACK segment, decoded by
    the arrays, of the connection's 4-tuple, that starts where its sender's last one ended,
    with at most one FIN each way), from the sequence numbers the connection reached before.
    Such a connection is finished here if its FINs are both acknowledged in the part decided
    and, before the capture's last window, the window reaches the check point that retires it
    (as for a connection decided in bulk); it goes on if its rows in the part decided are all
    so and none is a FIN (the FIN state is not carried over), or if they close it cleanly with
    the last of its rows in the window (it then waits in the table's closing queue); anything
    else, an ICMP error quoting it (`quoted`) too, leaves it to the table. Followed
    connections that kept too many rows, or are old, are left to the table."""
    n_followed = len(followed)
    group_key = np.fromiter((f.group_key for f in followed), np.uint64, n_followed)
    by_key = np.argsort(group_key)
    sorted_keys = group_key[by_key]
    rows = np.flatnonzero(~done)
    if not len(rows):
        return None
    a, b = _ends(w, rows)
    context = _context(w.tunnel[rows], w.v6[rows])
    keys = _connection_keys(a, b, context)
    at = np.minimum(np.searchsorted(sorted_keys, keys), n_followed - 1)
    hit = sorted_keys[at] == keys
    if not hit.any():
        return None
    rows, a, b, context = rows[hit], a[hit], b[hit], context[hit]
    e = by_key[at[hit]]  # per row: its connection (index into `followed`)
    client_end = np.array([f.client_end for f in followed], np.int64)
    server_end = np.array([f.server_end for f in followed], np.int64)
    their_context = np.array([f.context for f in followed], np.int64)
    carried = np.array([f.next_seq for f in followed], np.int64).reshape(n_followed, 2)
    closed = np.array([f.closed for f in followed], np.bool_)
    from_client = (a == client_end[e]) & (b == server_end[e])
    from_server = (a == server_end[e]) & (b == client_end[e])
    shape = w.flags[rows] & _SHAPE
    bad = ~w.simple[rows] | ~(from_client | from_server) | (context != their_context[e])
    bad |= ((shape & (SYN | RST | URG)) != 0) | ((shape & ACK) == 0)
    if len(quoted):
        # (an ICMP error quoting it: the table makes it a Connection then, to judge the error)
        bad |= np.isin(keys[hit], quoted)
    bad |= closed[e]  # (anything after its close: the table replays it then)
    side = from_server.astype(np.int64)
    # Each side's segments follow on from each other, the first from where the side was.
    seq = w.seq[rows].astype(np.int64)
    plen = w.payload_len[rows].astype(np.int64)
    fin = (shape & FIN) != 0
    order = np.lexsort((rows, side, e))  # by connection, side, capture order
    o_e, o_side = e[order], side[order]
    new_run = np.ones(len(rows), np.bool_)
    new_run[1:] = (o_e[1:] != o_e[:-1]) | (o_side[1:] != o_side[:-1])
    ends_at = (seq[order] + plen[order] + fin[order]) & 0xFFFFFFFF
    expected = np.empty(len(rows), np.int64)
    expected[1:] = ends_at[:-1]
    expected[new_run] = carried[o_e[new_run], o_side[new_run]]
    bad[order] |= seq[order] != expected
    # At most one FIN each way.
    fins = np.zeros((n_followed, 2), np.int64)
    np.add.at(fins, (e[fin], side[fin]), 1)
    bad |= (fins[e, 0] > 1) | (fins[e, 1] > 1)
    early = rows < end
    # The server's FIN before the client's, with the client's data later than the server's
    # last: the table judges it (see _uneventful). (A followed connection carries no FIN
    # across windows: each FIN of it is here.)
    waits = np.array([f.client_waits for f in followed], np.bool_)
    fin_at = np.full((n_followed, 2), _NEVER, np.int64)
    fin_at[e[fin], side[fin]] = rows[fin]
    bad |= ((fin_at[:, 1] < fin_at[:, 0]) & _client_last(e, side, rows, plen > 0, waits))[e]
    # From its first FIN on, the table's general path (see _uneventful): a segment that is its
    # sender's last one again is the table's to judge. That one is of an earlier window only
    # for a client that has sent no payload yet: its handshake's ACK.
    general = rows >= fin_at.min(axis=1)[e]
    again = _again(w, rows[order], side[order] + 2 * e[order], general[order], plen[order])
    bad[order[again]] = True
    first = np.array([f.handshake_ack for f in followed], np.int64).reshape(-1, 4)[e]
    ip_id = w.ip_id[rows]
    same = (ip_id == first[:, 0]) & (seq == first[:, 1]) & (w.ack[rows] == first[:, 2])
    same &= w.flags[rows] == first[:, 3]
    bad |= general & from_client & (plen == 0) & (ip_id != 0) & same
    bad_any = np.bincount(e[bad], minlength=n_followed) > 0
    bad_early = np.bincount(e[bad & early], minlength=n_followed) > 0
    fin_early = np.bincount(e[fin & early], minlength=n_followed) > 0
    last_row = np.full(n_followed, -1, np.int64)
    np.maximum.at(last_row, e, rows)
    time = w.time[rows]
    last_time = np.array([f.conn.last_time for f in followed], np.float64)
    last_time_early = last_time.copy()  # (with its rows in the part decided only)
    np.maximum.at(last_time, e, time)
    np.maximum.at(last_time_early, e[early], time[early])
    # The close: the first segment of each side that acknowledges the other's FIN.
    fin_row = np.full((n_followed, 2), _NEVER, np.int64)
    fin_ack = np.zeros((n_followed, 2), np.int64)
    fin_row[e[fin], side[fin]] = rows[fin]
    fin_ack[e[fin], side[fin]] = (seq[fin] + plen[fin] + 1) & 0xFFFFFFFF
    peer = 1 - side
    ack = w.ack[rows].astype(np.int64)
    acks_fin = (fin_row[e, peer] < rows) & ((shape & ACK) != 0)
    acks_fin &= ((ack - fin_ack[e, peer]) & 0xFFFFFFFF) < (1 << 31)  # seq_le(FIN + 1, ack)
    acked_at = np.full((n_followed, 2), _NEVER, np.int64)
    np.minimum.at(acked_at, (e[acks_fin], peer[acks_fin]), rows[acks_fin])
    both = (acked_at[:, 0] < _NEVER) & (acked_at[:, 1] < _NEVER)
    close_row = np.where(both, acked_at.max(axis=1), -1)
    finished = ~bad_any & both & (last_row < end) & (last_row >= 0)
    if not last and finished.any():
        closed_at = w.time[np.maximum(close_row, 0)]
        wait = np.where(last_time > closed_at, 2 * CLOSE_GRACE_SECONDS, CLOSE_GRACE_SECONDS)
        j = np.searchsorted(clock, last_time + wait + _MARGIN_SECONDS, "left")
        check = -(-(base + j) // RETIRE_CHECK_EVERY) * RETIRE_CHECK_EVERY - base
        finished &= check < len(w)
    kept_so_far = np.array([f.history.rows for f in followed], np.int64)
    windows = np.array([f.windows for f in followed], np.int64)
    rows_early = np.bincount(e[early], minlength=n_followed)
    # Closed cleanly with its last row, and no row after (in this window): it waits out the
    # grace period in the table's closing queue (FlowTable.followed_closed).
    closes = ~finished & ~bad_any & both & (last_row < end) & (close_row == last_row)
    if zeek:
        closes[:] = False  # (Zeek's view lists a connection as it leaves: see _listed)
    going_on = ~finished & ~bad_early & (~fin_early | closes) & (rows_early > 0)
    going_on &= (kept_so_far + rows_early <= FOLLOW_MAX_ROWS) & (windows < FOLLOW_MAX_WINDOWS)
    taken = finished[e] | (going_on[e] & early)
    # Per side of each going-on connection: where its last row in the part decided ended.
    o_taken = going_on[o_e] & early[order]
    run_id = np.cumsum(new_run) - 1
    last_pos = np.full(int(run_id[-1]) + 1, -1, np.int64)
    np.maximum.at(last_pos, run_id[o_taken], np.flatnonzero(o_taken))
    run_of = np.flatnonzero(new_run)
    next_seq = carried.copy()
    moved = last_pos >= 0
    next_seq[o_e[run_of[moved]], o_side[run_of[moved]]] = ends_at[last_pos[moved]]
    last_early = np.full(n_followed, -1, np.int64)
    np.maximum.at(last_early, e[early], rows[early])
    data = np.bincount(e[early & (plen > 0)], minlength=n_followed) > 0
    waits = _client_last(e, side, rows, early & (plen > 0), waits)
    on = np.flatnonzero(going_on)
    kept_mask = going_on[e] & early
    kept_order = np.lexsort((rows[kept_mask], e[kept_mask]))
    done_ones = np.flatnonzero(finished)
    return _FollowOn(
        rows=rows[taken],
        rows_owner=e[taken],
        finished=done_ones,
        close_row=close_row[done_ones],
        going_on=on,
        closes=closes[on],
        last_row=last_early[on],
        next_seq=next_seq[on],
        data=data[on],
        client_waits=waits[on],
        last_time=last_time,
        last_time_early=last_time_early,
        kept=rows[kept_mask][kept_order],
        kept_owner=e[kept_mask][kept_order],
    )


def _client_last(e: I64, side: I64, rows: I64, data: Bools, waits: Bools) -> Bools:
    """Per followed connection (`e`: each row's, `side`: 0 client, 1 server): whether the client
    sent the last of the rows with `data`, or, none here, did before (`waits`)."""
    last = np.full((len(waits), 2), -1, np.int64)
    np.maximum.at(last, (e[data], side[data]), rows[data])
    # (none here: the side that wrote last before the window ranks above the other)
    last[:, 0] = np.where(last[:, 0] >= 0, last[:, 0], np.where(waits, -1, -2))
    last[:, 1] = np.where(last[:, 1] >= 0, last[:, 1], np.where(waits, -2, -1))
    return last[:, 0] > last[:, 1]


def _quoted_keys(w: Columns) -> npt.NDArray[np.uint64]:
    """The grouping keys (see _group_keys) of the connections the window's ICMP errors quote."""
    quoted = [k for p in w.others if (k := quoted_key(p, w)) is not None]
    if not quoted:
        return np.zeros(0, np.uint64)
    q = np.array(quoted, np.int64)
    qa, qb = (q[:, 0] << 16) | q[:, 1], (q[:, 2] << 16) | q[:, 3]
    return _connection_keys(qa, qb, _context(q[:, 4], q[:, 5]))


@dataclass(slots=True)
class _BareSyns:
    """Rows of a window that are each a connection's only packet so far, a bare SYN that the
    table would hold compactly (tcpdiag.attempts): handed to it in bulk, never as packets."""

    row: I64
    options: npt.NDArray[np.uint16]  # the table's index of each row's SYN options

    def columns(self, w: Columns, clock: F64, ids: I64) -> dict[str, npt.NDArray[Any]]:
        """What HeldSyns.extend takes, for these rows with these connection ids."""
        r = self.row
        return {
            "src": w.src[r], "dst": w.dst[r], "sport": w.sport[r], "dport": w.dport[r],
            "seq": w.seq[r], "ack": w.ack[r], "flags": w.flags[r], "window": w.window[r],
            "ttl": w.ttl[r], "ip_id": w.ip_id[r], "frame": w.number[r], "time": w.time[r],
            "now": np.maximum(clock[r], w.time[r]), "conn_id": ids, "options": self.options,
        }  # fmt: skip


_NO_BARE_SYNS = _BareSyns(np.zeros(0, np.int64), np.zeros(0, np.uint16))
# Bare SYNs handed at a time to a store they fill (FlowTable.hold_syns_evicting), each piece's
# evictions given out before the next: what waits to leave stays small.
HOLD_AT_ONCE = 1 << 14


def _only_bare_syns(
    held: _BareSyns, w: Columns, clock: F64, done: Bools, end: int, table: FlowTable
) -> bool:
    """Whether rows [0, end) are nothing but bare SYNs the table would hold (and rows decided
    before), fewer than the store holds, none of them idle long enough by the last to be
    retired as such: then, one by one, nothing but those SYNs happens to the table there,
    each evicting the oldest entry once the store is full, and they can be handed over
    together (FlowTable.hold_syns_evicting)."""
    undecided = end - int(np.count_nonzero(done[:end]))
    return (
        0 < len(held.row) == undecided
        and len(held.row) < table.max_held_syns
        and bool(clock[end - 1] - w.time[held.row].min() < table.idle_retire)
    )


def _bare_syns(
    w: Columns,
    syns: _SynRows,
    clock: F64,
    live: Callable[[npt.NDArray[np.uint64]], Bools] | None,
    quoted: npt.NDArray[np.uint64],
    table: FlowTable,
) -> _BareSyns:
    """The rows of [0, end) that the table would hold as bare SYNs (FlowTable._hold_syn) and
    that nothing else in the window touches: no other row of their 4-tuple, no ICMP error
    quoting it, and not live in the table. Handing them over in bulk after the window's other
    rows changes nothing the table does with those (no lookup can find them), as long as the
    store cannot fill up in the window (checked by the caller)."""
    rows = syns.rows
    time = w.time[rows]
    bare = syns.alone & ~w.v6[rows] & (w.tunnel[rows] == 0)
    bare &= np.maximum(clock[rows], time) - time < INACTIVITY_SECONDS
    rows, mine = rows[bare], syns.keys[rows[bare]]
    if not len(rows):
        return _NO_BARE_SYNS
    alone = np.ones(len(rows), np.bool_)
    if len(quoted):
        alone &= ~np.isin(mine, quoted)
    if live is not None:
        alone &= ~live(mine)
    rows = rows[alone]
    lo, hi = syns.lo, syns.hi
    store_key = pair_hash(lo[rows], hi[rows])
    # Two 4-tuples whose keys collide: left to the table, which holds one of them elsewhere.
    rows = rows[_once(store_key)]
    # The SYN options, by the table's index of each distinct set (a set it has no room for
    # leaves its rows to the per-packet way). Each set as one number: MSS + 1 (17 bits), the
    # window scale + 1 (9 bits), SACK permitted, timestamps.
    sets = (w.mss[rows].astype(np.int64) + 1) << 11
    sets |= (w.window_scale[rows].astype(np.int64) + 1) << 2
    sets |= (w.sack_permitted[rows].astype(np.int64) << 1) | w.timestamps[rows]
    if len(sets) and bool((sets == sets[0]).all()):
        # (A flood's SYNs all alike: no sort of them needed to find that.)
        distinct, which = sets[:1], np.zeros(len(sets), np.intp)
    else:
        distinct, which = np.unique(sets, return_inverse=True)
    index = np.array(
        [
            -1 if (i := table.syn_options_index(_syn_options(n))) is None else i
            for n in distinct.tolist()
        ],
        np.int64,
    )
    options = index[which]
    fits = options >= 0
    return _BareSyns(rows[fits], options[fits].astype(np.uint16))


# Rows of a short connection that ended at once (a SYN, at most this many rows, a RST), which
# the fast path may hand the table whole at its last row (see _ended_attempts).
ENDED_MAX_ROWS = 24


@dataclass(slots=True)
class _EndedAttempts:
    """Connections that ended at once (see _ended_attempts), in order of their last rows: the
    rows of each, in order from its SYN (`rows`, -1 after its last), its SYN's and its last
    row."""

    rows: I64  # (attempts x the most rows of one)
    syn_row: I64
    last_row: I64


_NO_ENDED = _EndedAttempts(np.zeros((0, 0), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(slots=True)
class _SynRows:
    """The rows of [0, end) of a window that are a SYN without ACK, FIN, RST, URG or
    payload, simple and not decided yet (the candidates of _ended_attempts and _bare_syns),
    and what each asks of them: whether a row is the only one of its 4-tuple in the window
    (`alone`), and, of those whose 4-tuple has from two to ENDED_MAX_ROWS rows there (`few`,
    with their `count`), the rows of it from the SYN on (`chain`, -1 after the last). The
    window's endpoints and grouping keys (direction 0: see _group_keys), per row, come with
    them. (A flood's window has hundreds of thousands of candidates: per candidate, a bool.)"""

    rows: I64
    alone: Bools
    few: I64
    count: I64
    chain: I64  # (few x the most rows of one, at most ENDED_MAX_ROWS)
    lo: I64
    hi: I64
    keys: npt.NDArray[np.uint64]


_NONE = np.zeros(0, np.int64)
_NO_SYN_ROWS = _SynRows(
    _NONE,
    np.zeros(0, np.bool_),
    _NONE,
    _NONE,
    np.zeros((0, 0), np.int64),
    _NONE,
    _NONE,
    np.zeros(0, np.uint64),
)


def _syn_rows(w: Columns, done: Bools, end: int) -> _SynRows:
    part = slice(0, end)
    candidate = (w.flags[part] & _SHAPE) == SYN
    candidate &= ~done[part] & w.simple[part] & (w.payload_len[part] == 0)
    rows = np.flatnonzero(candidate)
    if not len(rows):  # (then nothing asks for an endpoint or a key)
        return _NO_SYN_ROWS
    lo, hi, _ = _endpoints(w)
    keys = _group_keys(lo, hi, np.zeros_like(lo), _context(w.tunnel, w.v6))
    mine = keys[rows]
    # How many rows of the window have each one's 4-tuple: every row looked up among these
    # few keys (not the window sorted).
    ordered = np.sort(mine)
    at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
    hits = np.flatnonzero(ordered[at] == keys)
    rows_of = np.bincount(at[hits], minlength=len(ordered))
    count = rows_of[np.searchsorted(ordered, mine)]
    alone = count == 1
    few_of = (count >= 2) & (count <= ENDED_MAX_ROWS)
    few, count = rows[few_of], count[few_of]
    # (as wide as the longest: a storm of refusals, two)
    chain = np.full((len(few), int(count.max()) if len(few) else 0), -1, np.int64)
    if len(few):  # (a flood's SYNs have none)
        # The rows of those 4-tuples, by key then row: each row's next one is the next of its
        # 4-tuple's if the key is the same.
        among = hits[(rows_of[at[hits]] >= 2) & (rows_of[at[hits]] <= ENDED_MAX_ROWS)]
        among = among[np.argsort(keys[among], kind="stable")]
        after = np.full(len(w) + 1, -1, np.int64)  # (after[-1]: the row after none, none)
        same = keys[among[1:]] == keys[among[:-1]]
        after[among[:-1][same]] = among[1:][same]
        chain[:, 0] = few
        for k in range(1, chain.shape[1]):
            chain[:, k] = after[chain[:, k - 1]]
    return _SynRows(rows, alone, few, count, chain, lo, hi, keys)


def _ended_attempts(
    w: Columns,
    syns: _SynRows,
    done: Bools,
    end: int,
    live: Callable[[npt.NDArray[np.uint64]], Bools] | None,
    quoted: npt.NDArray[np.uint64],
) -> _EndedAttempts:
    """The 4-tuples of the window that are nothing but a client's bare SYN, then rows that
    can neither close the connection nor start another (no RST, no bare SYN, FINs from one
    side only), then a RST, at most ENDED_MAX_ROWS in all and all in [0, end): a refusal (a
    closed port answers RST/ACK), a half-open probe (a SYN-ACK, the client's RST), a
    connection reset soon after its handshake, or after one side shut down; that the table
    holds nothing of and no ICMP error in the window quotes.
    Fed one by one, the SYN would wait in the table until the next row made it a connection,
    nothing could look it up in between (this 4-tuple has no other row), and nothing but the
    last row could close it, so the table is handed them all at the last
    (FlowTable.attempt_ended), the SYN having taken its connection id at its row, and makes
    of them what it would have made (of a RST it does not accept too). The table's own limits
    are not checked here: the caller takes these only where connections may be continued
    (see _may_continue), so where the table cannot fill up and no connection could be
    retired as idle in these rows."""
    count, chain = syns.count, syns.chain
    if not len(count):
        return _NO_ENDED
    # (the SYN is the first of its 4-tuple's rows in the window: its chain reaches them all)
    last = chain[np.arange(len(count)), count - 1]
    take = last >= 0
    chain, count, last = chain[take], count[take], last[take]
    first = chain[:, 0]
    real = chain >= 0
    rows = np.where(real, chain, first[:, None])  # (in place of none: the SYN, checked)
    ok = (last < end) & ~done[rows].any(axis=1) & w.simple[rows].all(axis=1)
    ok &= (w.flags[last] & (SYN | FIN | RST | URG)) == RST
    place = np.arange(chain.shape[1])
    between = (place > 0) & (place < (count - 1)[:, None])
    flags = w.flags[rows]
    ok &= ~(between & (((flags & RST) != 0) | ((flags & (SYN | ACK)) == SYN))).any(axis=1)
    # FINs from one side only: the other side never reaches CLOSED or TIME-WAIT, so only
    # the RST can close the connection (a client that shut down, then reset it)
    fin = between & ((flags & FIN) != 0)
    from_client = (w.src[rows] == w.src[first][:, None]) & (
        w.sport[rows] == w.sport[first][:, None]
    )
    ok &= ~((fin & from_client).any(axis=1) & (fin & ~from_client).any(axis=1))
    # each between the same endpoints and context (keys may collide)
    lo, hi, keys = syns.lo, syns.hi, syns.keys
    for column in (lo, hi, w.tunnel, w.v6):
        ok &= (column[rows] == column[first][:, None]).all(axis=1)
    if len(quoted):
        ok &= ~np.isin(keys[first], quoted)
    if live is not None:
        ok &= ~live(keys[first])
    chain, first, last = chain[ok], first[ok], last[ok]
    by_last = np.argsort(last, kind="stable")
    return _EndedAttempts(chain[by_last], first[by_last], last[by_last])


def _ended_here(
    w: Columns,
    clock: F64,
    ended: _EndedAttempts,
    these: I64,
    start_rows: I64,
    addr_text: dict[int, str],
) -> dict[int, tuple[list[TcpSegment], list[float], int]]:
    """The attempts whose last rows are among rows `these` (in order, and holding every last
    row from their first to their last), by last row: their segments, the capture clock at
    each but the last (as the table would have fed them: see FlowTable.attempt_ended) and
    the SYN's place among the window's starts (see _id_of)."""
    k = np.arange(*np.searchsorted(ended.last_row, [these[0], these[-1] + 1]))
    if not len(k):
        return {}
    chain = ended.rows[k]
    real = chain >= 0
    rows = chain[real]  # (attempt by attempt, each in order)
    segments = cast(list[TcpSegment], w.packets(rows, addr_text))  # (simple rows: TCP)
    nows = np.maximum(clock[rows], w.time[rows]).tolist()
    made: dict[int, tuple[list[TcpSegment], list[float], int]] = {}
    at = 0
    for row, size, start_at in zip(
        ended.last_row[k].tolist(),
        real.sum(axis=1).tolist(),
        np.searchsorted(start_rows, ended.syn_row[k]).tolist(),
        strict=True,
    ):
        made[row] = (segments[at : at + size], nows[at : at + size - 1], start_at)
        at += size
    return made


def _id_of(start: int, id_runs: list[tuple[int, int, int]]) -> int:
    """The connection id taken by the connection at this place among the starts (id_runs:
    (first, stop, first id) of each run of starts given ids, in order)."""
    # (the last run that begins at or before it: tuples compare in order of their items)
    first, stop, first_id = id_runs[bisect_right(id_runs, (start, _NEVER)) - 1]
    assert first <= start < stop, "an attempt's SYN took no id before its last row"
    return first_id + start - first


def _once(values: npt.NDArray[Any]) -> Bools:
    """Per value, whether no other one equals it (a sort of them, where np.unique and np.isin
    would make three)."""
    order = np.argsort(values)
    ordered = values[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(values), np.bool_)
    repeated[1:] |= same
    repeated[:-1] |= same
    once = np.empty(len(values), np.bool_)
    once[order] = ~repeated
    return once


def _syn_options(number: int) -> SynOptions:
    """A SYN row's options from their number (see _bare_syns), as the column decoder gives
    them."""
    mss, scale = (number >> 11) - 1, ((number >> 2) & 0x1FF) - 1
    return SynOptions(
        None if mss < 0 else mss, None if scale < 0 else scale, bool(number & 2), bool(number & 1)
    )


def _summaries(
    w: Columns,
    row: I64,
    shape: npt.NDArray[np.integer[Any]],
    plen: npt.NDArray[np.uint32],
    r_start: I64,
    run_size: I64,
    c_run: I64,
    s_run: I64,
    fin_pos: I64,
    acked: tuple[I64, I64],
) -> _Summaries:
    """Per group (a connection that qualifies: see _uneventful), what its summary needs."""
    # Zeek's history letters of a healthy connection: each the first time it shows, by side.
    plain = (shape & (SYN | FIN | RST)) == 0
    pure_ack = plain & (plen == 0) & ((shape & ACK) != 0)
    data = plain & (plen > 0)
    first_ack = np.minimum.reduceat(np.where(pure_ack, row, _NEVER), r_start)
    first_data = np.minimum.reduceat(np.where(data, row, _NEVER), r_start)
    payload = np.add.reduceat(plen.astype(np.int64), r_start)
    c0, s0 = r_start[c_run], r_start[s_run]
    return _Summaries(
        syn_row=row[c0],
        synack_row=row[s0],
        fin_row=(row[fin_pos[c_run]], row[fin_pos[s_run]]),
        ack_row=(first_ack[c_run], first_ack[s_run]),
        data_row=(first_data[c_run], first_data[s_run]),
        packets=(run_size[c_run], run_size[s_run]),
        payload=(payload[c_run], payload[s_run]),
        isn=(w.seq[row[c0]].astype(np.int64), w.seq[row[s0]].astype(np.int64)),
        acked=acked,
    )
