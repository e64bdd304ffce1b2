"""Bare SYNs held in little memory: the attempts of a SYN flood, a scan, and every connection
between its SYN and the answer.

A connection that is so far one SYN and nothing else needs none of a Connection's state: the
SYN itself says everything its retirement will (tcpdiag.tracker builds it from the SYN alone). A
flood of spoofed SYNs makes a million of them within seconds, and none ever gets a second
packet. So `HeldSyns` keeps each as 60 bytes of typed arrays plus 12 of sorted index, instead
of Python objects of about 700 bytes: a million take about 75 MB, and the live connections'
table is left to the connections that have state. (The SYNs of ordinary connections pass
through too, between their SYN and its answer: a dict indexes the latest, with the segments as
they came, so that most are given back without touching the arrays' index.)

Only IPv4 SYNs outside tunnels are held so (every flood we have seen, and the fast path's
columns name their addresses by number); others wait as the tracker's own stand-ins.

Entries are found by a 64-bit hash of their two endpoints (`pair_hash`, the same one the fast
path groups rows by), and each hit is checked against the stored 4-tuple, so a collision is a
miss, never a mix-up. They are kept in order of arrival (capture order, even when the fast path
adds a window's worth at once) and leave in that order (retired when idle, evicted when the
store is full, or all at the end: as columns, `SynColumns`), or from the middle when anything
else happens to their 4-tuple (promoted: the tracker turns the SYN into a Connection).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from tcpdiag.columns import ipv4_text
from tcpdiag.packets import SynOptions, TcpSegment

_MASK64 = (1 << 64) - 1
_MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9
# Dead entries (promoted or retired) kept before the arrays are compacted: at least this many,
# and at least a quarter as many as the live ones, so compaction costs O(1) amortised per entry
# and a full store evicting its oldest holds at most 1.25 times its entries.
_COMPACT_MIN = 4096
# SYNs added one by one, indexed in a dict (and kept as they came) before they join the sorted
# index: at most this many (each merge costs a pass over the index, but most of them are
# answered at once and never reach it).
_RECENT_MAX = 1 << 15
# A bitmap over the low bits of the sorted index's keys, so that most lookups of a key it does
# not hold (every new connection's) skip the binary search (about 2 us from Python).
_FILTER_BITS = 21
_FILTER_MASK = (1 << _FILTER_BITS) - 1
# Entries taken out as columns at a time (HeldSyns.take_columns).
TAKE_AT_ONCE = 1 << 18
# Entries made into Python objects at a time (SynColumns.held), and their columns in the order
# SynColumns.held reads them.
_HELD_SLICE = 4096
_HELD_ORDER = (
    *("frame", "time", "src", "dst", "sport", "dport", "seq", "ack", "flags"),
    *("window", "ttl", "ip_id", "options", "conn_id", "now"),
)
# Distinct SYN option sets remembered (a flood tool sends one; real clients a handful). A SYN
# with yet another set waits as the tracker's own stand-in.
_MAX_OPTION_SETS = 4096

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


def pair_hash(lo: I64, hi: I64 | U64) -> U64:
    """One well-mixed 64-bit number per pair of endpoints (address << 16 | port), for sorting
    and set operations (a splitmix64-style mix; `pair_hash_one` is the same for one pair)."""
    h = lo.astype(np.uint64) * np.uint64(_MIX1) ^ hi.astype(np.uint64)
    h ^= h >> np.uint64(31)
    h *= np.uint64(_MIX2)
    return h ^ (h >> np.uint64(29))


def pair_hash_one(lo: int, hi: int) -> int:
    """`pair_hash` of one pair, in Python integers (mod 2**64 as numpy's uint64 wraps)."""
    h = ((lo * _MIX1) & _MASK64) ^ hi
    h ^= h >> 31
    h = (h * _MIX2) & _MASK64
    return h ^ (h >> 29)


def endpoints_hash(src: int, sport: int, dst: int, dport: int) -> int:
    """The store's key of a 4-tuple (IPv4 addresses as numbers), the same both ways."""
    a, b = (src << 16) | sport, (dst << 16) | dport
    return pair_hash_one(a, b) if a <= b else pair_hash_one(b, a)


@dataclass(slots=True)
class HeldSyn:
    """One entry taken out of the store: its SYN as the decoder made it, its connection id,
    and the capture clock when it came (for Zeek's timers)."""

    conn_id: int
    syn: TcpSegment
    now: float

    @property
    def last_time(self) -> float:
        return self.syn.time


@dataclass(slots=True)
class SynColumns:
    """Entries taken out of the store together: one array per column (see HeldSyns._FIELDS),
    in order of arrival."""

    rows: dict[str, npt.NDArray[Any]]
    option_sets: list[SynOptions | None]  # (the store's, only ever appended to)

    def __len__(self) -> int:
        return len(self.rows["conn_id"])

    def held(self) -> Iterator[HeldSyn]:
        """Each entry as `HeldSyns.take` gives it."""
        text = partial(ipv4_text, {})
        # (A slice at a time: a list of Python numbers per column of a flood's million SYNs
        # would take half a gigabyte.)
        for first in range(0, len(self), _HELD_SLICE):
            part = [self.rows[name][first : first + _HELD_SLICE].tolist() for name in _HELD_ORDER]
            for values in zip(*part, strict=True):
                yield _entry(values, text, self.option_sets)


def _entry(
    values: Sequence[Any], text: Callable[[int], str], option_sets: list[SynOptions | None]
) -> HeldSyn:
    """An entry of the store, from its columns in the order of _HELD_ORDER, with its SYN as
    the decoder made it (`text`: an address's text, from its number)."""
    frame, time, src, dst, sport, dport, seq, ack, flags = values[:9]
    window, ttl, ip_id, option_set, conn_id, now = values[9:]
    syn = TcpSegment(
        frame, time, text(src), text(dst), sport, dport, seq, ack, flags, window, 0, ttl, 4,
        ip_id, option_sets[option_set],
    )  # fmt: skip
    return HeldSyn(conn_id, syn, now)


class EvictedSyns:
    """Entries a full store evicted (HeldSyns.evict_oldest), in order, waiting to leave
    together: the store's columns but for the option set, kept as the SynOptions itself (the
    store numbers its option sets anew each time it is emptied)."""

    def __init__(self) -> None:
        self.columns: dict[str, array[Any]] = {
            name: array(code) for name, code in HeldSyns._FIELDS if name != "options"
        }
        self.options: list[SynOptions | None] = []

    def extend(self, taken: SynColumns) -> None:
        """Entries taken out of the store together (HeldSyns.evict), after those here."""
        for name, column in self.columns.items():
            column.frombytes(np.ascontiguousarray(taken.rows[name], column.typecode).tobytes())
        sets = taken.option_sets
        self.options.extend(sets[index] for index in taken.rows["options"].tolist())

    def take(self, count: int) -> SynColumns:
        """The first `count` entries, as the columns `HeldSyns.take_columns` gives."""
        rows: dict[str, npt.NDArray[Any]] = {}
        for name, column in self.columns.items():
            rows[name] = np.frombuffer(column, column.typecode)[:count].copy()
            del column[:count]
        option_sets: list[SynOptions | None] = []
        number: dict[int, int] = {}  # by id(): the store holds one object per option set
        indexes = []
        for options in self.options[:count]:
            index = number.get(id(options))
            if index is None:
                index = number[id(options)] = len(option_sets)
                option_sets.append(options)
            indexes.append(index)
        del self.options[:count]
        rows["options"] = np.array(indexes, np.uint16)
        return SynColumns(rows, option_sets)


def _first_nonzero(values: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    """The positions of the first `count` nonzero values, looked for a stretch at a time (the
    positions of all of a flood's million, to keep a few, were the peak of its memory)."""
    found: list[npt.NDArray[np.int64]] = []
    start = 0
    while count > 0 and start < len(values):
        stretch = max(count * 2, 1024)
        positions = np.flatnonzero(values[start : start + stretch])[:count] + start
        found.append(positions)
        count -= len(positions)
        start += stretch
    return np.concatenate(found) if found else np.zeros(0, np.int64)


class HeldSyns:
    """Bare IPv4 SYNs in typed arrays, in order of arrival, indexed by `endpoints_hash`."""

    # The columns, in the order `add` takes them (typecodes of the standard array module).
    _FIELDS = (
        ("src", "I"),
        ("dst", "I"),
        ("sport", "H"),
        ("dport", "H"),
        ("seq", "I"),
        ("ack", "I"),
        ("flags", "B"),
        ("window", "H"),
        ("ttl", "B"),
        ("ip_id", "H"),
        ("frame", "q"),
        ("time", "d"),
        ("now", "d"),
        ("conn_id", "q"),  # 0: the entry is dead (promoted or retired)
        ("options", "H"),  # index into _option_sets
    )

    def __init__(self) -> None:
        self._columns: dict[str, array[Any]] = {name: array(code) for name, code in self._FIELDS}
        # The index, key -> position in the columns, in two parts: the SYNs added one by one
        # lately in a dict, the rest as sorted arrays (16 bytes an entry where a dict takes
        # about 120), merged when the dict has grown (see _merge). An entry of the sorted part
        # whose SYN was taken stays there, dead (conn_id 0), until the next merge.
        self._recent: dict[int, int] = {}
        self._recent_syns: dict[int, TcpSegment] = {}  # their segments, by position
        self._sorted_keys: U64 = np.zeros(0, np.uint64)
        self._sorted_at: U32 = np.zeros(0, np.uint32)
        self._filter = bytearray()  # (see _FILTER_BITS; empty while the sorted part is)
        self._merged = 0  # entries from this position on are in the recent part
        self._alive = 0
        self._head = 0  # entries before it are dead
        self._dead = 0  # dead entries at or after the head
        self._option_sets: list[SynOptions | None] = []
        self._option_index: dict[tuple[int | None, int | None, bool, bool, int] | None, int] = {}
        self._text: dict[int, str] = {}  # address text of recent numbers

    def __len__(self) -> int:
        return self._alive

    # -- in ------------------------------------------------------------------------------------

    def options_index(self, options: SynOptions | None) -> int | None:
        """The index of this option set (None: too many distinct ones are held already)."""
        values = (
            None
            if options is None
            else (
                options.mss,
                options.window_scale,
                options.sack_permitted,
                options.timestamps,
                options.mptcp,
            )
        )
        index = self._option_index.get(values)
        if index is None:
            if len(self._option_sets) >= _MAX_OPTION_SETS:
                return None
            index = self._option_index[values] = len(self._option_sets)
            self._option_sets.append(options)
        return index

    def add(self, key: int, syn: TcpSegment, src: int, dst: int, options: int, conn_id: int,
            now: float) -> None:  # fmt: skip
        """Hold this SYN (the caller checked that `key` is not held: see `holds_key`)."""
        c = self._columns
        self._recent[key] = self._size()
        self._recent_syns[self._size()] = syn
        self._alive += 1
        c["src"].append(src)
        c["dst"].append(dst)
        c["sport"].append(syn.sport)
        c["dport"].append(syn.dport)
        c["seq"].append(syn.seq)
        c["ack"].append(syn.ack)
        c["flags"].append(syn.flags)
        c["window"].append(syn.window)
        c["ttl"].append(syn.ttl)
        c["ip_id"].append(syn.ip_id or 0)
        c["frame"].append(syn.frame)
        c["time"].append(syn.time)
        c["now"].append(now)
        c["conn_id"].append(conn_id)
        c["options"].append(options)
        if len(self._recent) >= _RECENT_MAX:
            self._merge()

    def extend(self, rows: dict[str, npt.NDArray[np.generic]], since_frame: int) -> None:
        """Hold many SYNs at once: one array per column of _FIELDS (the fast path's rows; the
        caller checked that no 4-tuple is held and that they are distinct), all of them from
        frame `since_frame` on, as are the SYNs added one by one since that frame. They take
        their places among those in capture order, so that the store stays in order of
        arrival, as if each had been added at its frame (eviction takes the oldest). `rows` is
        emptied."""
        c = self._columns
        self._alive += len(rows["conn_id"])
        for name, code in self._FIELDS:
            # (taken out of `rows` as it is copied in: under a SYN flood these columns and the
            # store at its largest are the peak of memory, so each goes as soon as it can)
            c[name].frombytes(np.ascontiguousarray(rows.pop(name), np.dtype(code)).tobytes())
        self._merge()
        # The entries before frame `since_frame` are in order, those after it at the end.
        frame = np.frombuffer(c["frame"], np.int64)
        start = int(np.searchsorted(frame, since_frame))
        order = np.argsort(frame[start:], kind="stable")
        del frame  # (a view of a column, which cannot grow while one exists)
        if np.all(order[1:] > order[:-1]):
            return
        for name, code in self._FIELDS:
            column = np.frombuffer(c[name], np.dtype(code))
            column[start:] = column[start:][order]
            del column
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        moved = self._sorted_at >= start
        self._sorted_at[moved] = start + rank[self._sorted_at[moved] - start]
        if self._head > start:
            self._head = start
            self._dead = self._size() - start - self._alive

    def _size(self) -> int:
        return len(self._columns["conn_id"])

    def _keys_at(self, at: U32 | I64) -> U64:
        """The keys of the entries at these positions (see endpoints_hash)."""
        c = self._columns
        a = np.frombuffer(c["src"], np.uint32)[at].astype(np.int64) << 16
        a |= np.frombuffer(c["sport"], np.uint16)[at]
        b = np.frombuffer(c["dst"], np.uint32)[at].astype(np.int64) << 16
        b |= np.frombuffer(c["dport"], np.uint16)[at]
        return pair_hash(np.minimum(a, b), np.maximum(a, b))

    def _merge(self) -> None:
        """Move the entries added since the last merge into the sorted part of the index,
        leaving out its dead entries."""
        conn_id = np.frombuffer(self._columns["conn_id"], np.int64)
        added = np.arange(self._merged, self._size(), dtype=np.uint32)
        added = added[conn_id[added] != 0]
        kept, kept_keys = self._sorted_at, self._sorted_keys
        alive = conn_id[kept] != 0
        del conn_id  # (a view of a column, which cannot grow while one exists)
        if not alive.all():
            kept, kept_keys = kept[alive], kept_keys[alive]
        del alive
        self._recent.clear()
        self._recent_syns.clear()
        self._merged = self._size()
        added_keys = self._keys_at(added)
        by_key = np.argsort(added_keys)
        added_keys, added = added_keys[by_key], added[by_key]
        # (one pass over the sorted part: where each new key goes, then each array in turn,
        # the old one let go before the next is made: under a flood of a million SYNs these
        # are the peak of memory)
        where = np.searchsorted(kept_keys, added_keys)
        self._sorted_keys = np.insert(kept_keys, where, added_keys)
        del kept_keys, added_keys
        self._sorted_at = np.insert(kept, where, added)
        del kept, added, where
        bits = np.zeros(1 << _FILTER_BITS if len(self._sorted_keys) else 0, np.uint8)
        # (the masked keys fit in an int64 as they are: a view, not a copy, indexes `bits`)
        bits[(self._sorted_keys & np.uint64(_FILTER_MASK)).view(np.int64)] = 1
        self._filter = bytearray(bits.tobytes())

    # -- lookup --------------------------------------------------------------------------------

    def _position(self, key: int) -> int:
        at = self._recent.get(key)
        if at is not None:
            return at
        if not self._filter or not self._filter[key & _FILTER_MASK]:
            return -1
        keys = self._sorted_keys
        i = int(np.searchsorted(keys, np.uint64(key)))
        if i < len(keys) and int(keys[i]) == key:
            at = int(self._sorted_at[i])
            if self._columns["conn_id"][at]:
                return at
        return -1

    def holds_key(self, key: int) -> bool:
        return self._alive > 0 and self._position(key) >= 0

    def find(self, key: int, src: int, sport: int, dst: int, dport: int) -> int:
        """The position of the SYN held for this 4-tuple (either way round), or -1."""
        at = self._position(key)
        if at < 0:
            return -1
        c = self._columns
        s, sp, d, dp = c["src"][at], c["sport"][at], c["dst"][at], c["dport"][at]
        if (s, sp, d, dp) == (src, sport, dst, dport) or (s, sp, d, dp) == (dst, dport, src, sport):
            return at
        return -1  # another 4-tuple with the same hash

    def holds_keys(self, keys: U64) -> npt.NDArray[np.bool_]:
        """`holds_key` of each of these keys, at once."""
        if not self._alive or not len(keys):
            return np.zeros(len(keys), np.bool_)
        if self._recent:
            self._merge()
        sorted_keys = self._sorted_keys
        i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        found = sorted_keys[i] == keys
        at = self._sorted_at[i[found]]
        found[found] = np.frombuffer(self._columns["conn_id"], np.int64)[at] != 0
        return found

    # -- out -----------------------------------------------------------------------------------

    def take(self, at: int, texts: dict[int, str] | None = None, key: int | None = None) -> HeldSyn:
        """Remove the entry at `at` and give its SYN (`texts`: address texts already known, by
        number; `key`: its key, if known)."""
        c = self._columns
        if at >= self._merged:
            held = HeldSyn(c["conn_id"][at], self._recent_syns[at], c["now"][at])
        else:
            known = texts or {}

            def text(number: int) -> str:
                return known.get(number) or ipv4_text(self._text, number)

            held = _entry([c[name][at] for name in _HELD_ORDER], text, self._option_sets)
        self._remove(at, key)
        return held

    def _remove(self, at: int, key: int | None = None) -> None:
        """Mark the entry at `at` dead (`key`: its key, if known), as `take` and `evict_oldest`
        take it out: out of the recent part of the index at once; an entry of the sorted part
        stays there, dead, until the next merge."""
        c = self._columns
        if at >= self._merged:
            if key is None:
                key = endpoints_hash(c["src"][at], c["sport"][at], c["dst"][at], c["dport"][at])
            del self._recent[key]
            del self._recent_syns[at]
        c["conn_id"][at] = 0
        self._alive -= 1
        self._dead += 1
        self._compact_if_due()

    def _compact_if_due(self) -> None:
        """Compact once the dead entries are many (see _COMPACT_MIN)."""
        if self._head + self._dead >= max(_COMPACT_MIN, self._alive >> 2):
            self._compact()

    def evict_oldest(self, into: EvictedSyns) -> None:
        """Remove the entry held longest, as `take` would, and append it to `into` without
        making its SYN into objects: a full store evicts one entry per SYN it takes in, and
        under a flood the evicted ones leave together as columns (FlowTable with
        batch_held_syns)."""
        oldest = self.oldest()
        assert oldest is not None
        at = oldest[0]
        c = self._columns
        for name, column in into.columns.items():
            column.append(c[name][at])
        into.options.append(self._option_sets[c["options"][at]])
        self._remove(at)

    def evict(self, count: int, into: EvictedSyns) -> None:
        """`evict_oldest` `count` times at once, leaving at least one entry held (so that the
        store keeps its numbering of option sets, which entries about to be added use)."""
        assert 0 < count < self._alive
        taken = self.take_columns(limit=count)
        assert taken is not None and len(taken) == count
        into.extend(taken)
        self._compact_if_due()

    def oldest(self) -> tuple[int, float] | None:
        """The position and SYN time of the entry held longest, or None."""
        if not self._alive:
            return None
        conn_id, time = self._columns["conn_id"], self._columns["time"]
        while conn_id[self._head] == 0:
            self._head += 1
            self._dead -= 1
        return self._head, time[self._head]

    def take_columns(
        self, now: float | None = None, idle: float = 0.0, limit: int | None = None
    ) -> SynColumns | None:
        """Take entries in order of arrival, as columns: all of them (`now` None), or those
        held `idle` seconds or more by `now`, from the oldest up to the first that is not; at
        most `limit` at a time (a copy of a flood's two million would double the store)."""
        oldest = self.oldest()
        if oldest is None or (now is not None and now - oldest[1] < idle):
            return None
        c = self._columns
        conn_id = np.frombuffer(c["conn_id"], np.int64)
        at = self._head + _first_nonzero(conn_id[self._head :], limit or TAKE_AT_ONCE)
        if now is not None:
            due = (now - np.frombuffer(c["time"], np.float64)[at]) >= idle
            if not due.all():
                at = at[: int(np.argmin(due))]  # (the first that is not due)
        rows = {name: np.frombuffer(c[name], np.dtype(code))[at] for name, code in self._FIELDS}
        conn_id[at] = 0
        del conn_id  # (a view of a column, which cannot grow while one exists)
        recent = at[at >= self._merged]
        for key, position in zip(self._keys_at(recent).tolist(), recent.tolist(), strict=True):
            del self._recent[key], self._recent_syns[position]
        new_head = int(at[-1]) + 1
        self._dead -= (new_head - self._head) - len(at)  # the dead ones passed over
        self._head = new_head
        self._alive -= len(at)
        options = self._option_sets
        if not self._alive:
            self.clear()  # (the columns taken keep the option sets they name)
        elif now is not None:
            # (not while all are taken, a slice at a time: that would copy them)
            self._compact_if_due()
        return SynColumns(rows, options)

    def drain(self) -> Iterator[HeldSyn]:
        """Take every entry, in order of arrival."""
        while (oldest := self.oldest()) is not None:
            yield self.take(oldest[0])

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def _compact(self) -> None:
        """Drop the dead entries (their arrays would otherwise grow with every SYN ever held)."""
        c = self._columns
        alive = np.flatnonzero(np.frombuffer(c["conn_id"], np.int64) != 0)
        for name, code in self._FIELDS:
            kept = np.frombuffer(c[name], np.dtype(code))[alive].tobytes()
            c[name] = array(code)
            c[name].frombytes(kept)
        self._head = self._dead = self._merged = 0
        self._sorted_keys, self._sorted_at = np.zeros(0, np.uint64), np.zeros(0, np.uint32)
        self._merge()
