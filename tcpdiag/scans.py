"""Scans and floods, whole: one summary per source that probes many ports or hosts, and one per
target that many sources leave half-open, refused or unanswered, or that attempts reach at a
flood's rate (a SYN flood).

A port scan is hundreds of tiny connections: a SYN answered by RST (closed port), by SYN-ACK
(open port: the scanner resets it or lets it expire), or by nothing (filtered). Each probe may
also be a finding of its own (`refused`, `half_open_scan`), but the reader of a report needs the
scan itself: who scanned what, how much, what answered, and when.

A probe is a connection on which neither side sent a byte of payload and that did not close
gracefully both ways. (Connections that did are normal ones; the fast path also takes them in
bulk, so they are never observed here, whichever path ran.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from tcpdiag.columns import ipv4_int, ipv4_text
from tcpdiag.findings import iso_time
from tcpdiag.tracker import TrackedConnection

I64 = npt.NDArray[np.int64]

# A source is a scanner once it probed this many distinct host:port targets.
MIN_TARGETS = 10
# A target is flooded once this many distinct sources left payload-less attempts on it, or once
# it drew this many attempts at this rate or more, from however few sources (a flood tool on a
# few hosts cycles source ports; a health check of a dead port, one a second, is no flood).
MIN_FLOOD_SOURCES = 100
MIN_FLOOD_ATTEMPTS = 1000
MIN_FLOOD_RATE = 100.0  # attempts per second over the flood's span
# Memory bounds: distinct peers remembered per source or target, and sources or targets
# followed at once.
MAX_PEERS = 1 << 16
MAX_TALLIES = 1 << 12
SAMPLE_PORTS = 10
# Unanswered attempts tallied in bulk at a time (observe_unanswered): a flood's million, all
# at once, made tens of megabytes of temporary arrays at the end of the run.
BULK_ATTEMPTS = 1 << 16


@dataclass(slots=True)
class _Tally:
    """The probes of one source (its distinct targets), or the attempts on one target (its
    distinct sources), with what answered them."""

    peers: set[Any] = field(default_factory=set)  # distinct (bounded) ...
    peers_overflow: int = 0  # ... and those beyond MAX_PEERS (approximate)
    probes: int = 0
    open: int = 0  # answered with SYN-ACK
    closed: int = 0  # answered with RST
    unanswered: int = 0
    source_ports: set[int] = field(default_factory=set)  # the first few only
    first_time: float = float("inf")
    last_time: float = float("-inf")

    @property
    def peer_count(self) -> int:
        return len(self.peers) + self.peers_overflow

    def count(self, conn: TrackedConnection, peer: Any) -> None:
        if peer not in self.peers:
            if len(self.peers) < MAX_PEERS:
                self.peers.add(peer)
            else:
                self.peers_overflow += 1
        self.probes += 1
        server = conn.server
        if server.isn is not None:
            self.open += 1
        elif server.packets:
            self.closed += 1
        else:
            self.unanswered += 1
        if len(self.source_ports) < 3:
            self.source_ports.add(conn.client.port)
        # (Comparisons, not min() and max(): this runs twice for every probe of a flood.)
        if conn.ref.first_time < self.first_time:
            self.first_time = conn.ref.first_time
        if conn.last_time > self.last_time:
            self.last_time = conn.last_time


@dataclass(frozen=True, slots=True)
class ScanSummary:
    source: str  # the scanner's address
    probes: int  # probe connections
    targets: int  # distinct host:port pairs probed
    hosts: int  # distinct hosts probed
    ports: int  # distinct ports probed
    open: int  # probes answered with SYN-ACK
    closed: int  # probes answered with RST (refused)
    unanswered: int  # probes nothing answered (filtered)
    # distinct source ports the probes came from, counted up to 3 (1-2: a raw SYN scanner)
    source_ports: int
    first_time: float
    last_time: float
    sample_targets: tuple[str, ...]  # a few host:port probed, the lowest ports first

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "probes": self.probes,
            "targets": self.targets,
            "hosts": self.hosts,
            "ports": self.ports,
            "open": self.open,
            "closed": self.closed,
            "unanswered": self.unanswered,
            "source_ports": self.source_ports,
            "first_time": iso_time(self.first_time),
            "last_time": iso_time(self.last_time),
            "duration": round(max(self.last_time - self.first_time, 0.0), 6),
            "sample_targets": list(self.sample_targets),
        }

    def text(self) -> str:
        kind = "raw SYN scan" if self.source_ports <= 2 else "scan"
        return (
            f"{kind} from {self.source}: {self.probes} probes of {self.ports} ports on "
            f"{self.hosts} host{'s' * (self.hosts != 1)} in "
            f"{max(self.last_time - self.first_time, 0.0):.1f} s ({self.open} open, "
            f"{self.closed} closed, {self.unanswered} unanswered), from {iso_time(self.first_time)}"
        )


@dataclass(frozen=True, slots=True)
class FloodSummary:
    target: str  # "ip:port" that many sources left half-open
    attempts: int
    sources: int
    half_open: int
    refused: int
    unanswered: int
    first_time: float
    last_time: float

    @property
    def rate(self) -> float:
        """Attempts per second over the flood's span."""
        span = self.last_time - self.first_time
        return self.attempts / span if span > 0 else float(self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "attempts": self.attempts,
            "sources": self.sources,
            "half_open": self.half_open,
            "refused": self.refused,
            "unanswered": self.unanswered,
            "first_time": iso_time(self.first_time),
            "last_time": iso_time(self.last_time),
            "duration": round(max(self.last_time - self.first_time, 0.0), 6),
            "rate": round(self.rate, 3),
        }

    def text(self) -> str:
        return (
            f"SYN flood against {self.target}: {self.attempts} connection attempts from "
            f"{self.sources} source{'' if self.sources == 1 else 's'} in "
            f"{max(self.last_time - self.first_time, 0.0):.1f} s "
            f"({self.rate:.0f}/s; {self.half_open} left half-open, {self.refused} refused, "
            f"{self.unanswered} unanswered), from {iso_time(self.first_time)}"
        )


class ScanDetector:
    def __init__(self) -> None:
        self._sources: dict[str, _Tally] = {}  # by client address: its targets
        self._targets: dict[tuple[str, int], _Tally] = {}  # by server endpoint: its sources

    def observe(self, conn: TrackedConnection) -> None:
        client, server = conn.client, conn.server
        if client.bytes_sent or server.bytes_sent or (client.fin and server.fin):
            return
        # Only connections whose SYN the capture shows are probes (not one known only from an
        # ICMP error's quote: a firewall on the client's host rejected it before the wire).
        if client.syn is None or not conn.on_wire:
            return
        source = _tally(self._sources, client.addr)
        if source is not None:
            source.count(conn, (server.addr, server.port))
        target = _tally(self._targets, (server.addr, server.port))
        if target is not None:
            target.count(conn, client.addr)

    def observe_unanswered(
        self,
        client: npt.NDArray[np.integer[Any]],
        client_port: npt.NDArray[np.integer[Any]],
        server: npt.NDArray[np.integer[Any]],
        server_port: npt.NDArray[np.integer[Any]],
        time: npt.NDArray[np.float64],
    ) -> None:
        """`observe` each of these connection attempts, in order, in bulk: each a client's
        bare SYN and nothing else (so a probe nothing answered), IPv4 addresses as numbers. A
        flood's million cost about what its few thousand tallies do. tests/test_scans.py checks
        that the tallies come out as from `observe`, bounds included. (BULK_ATTEMPTS at a
        time: `observe` takes them one after another, so any slicing tallies the same.)"""
        address = partial(ipv4_text, {})

        def endpoint(number: int) -> tuple[str, int]:
            return address(number >> 16), number & 0xFFFF

        for begin in range(0, len(client), BULK_ATTEMPTS):
            part = slice(begin, begin + BULK_ATTEMPTS)
            source = client[part].astype(np.int64)
            port = client_port[part].astype(np.int64)
            target = (server[part].astype(np.int64) << 16) | server_port[part]
            when = time[part]
            _count_bulk(self._sources, source, target, address, endpoint, port, when)
            _count_bulk(self._targets, target, source, endpoint, address, port, when)

    def floods(self) -> list[FloodSummary]:
        targets = (
            FloodSummary(
                target=f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}",
                attempts=t.probes,
                sources=t.peer_count,
                half_open=t.open,
                refused=t.closed,
                unanswered=t.unanswered,
                first_time=t.first_time,
                last_time=t.last_time,
            )
            for (addr, port), t in self._targets.items()
        )
        out = [target for target in targets if _flooded(target)]
        return sorted(out, key=lambda f: (-f.attempts, f.first_time))

    def summaries(self) -> list[ScanSummary]:
        out = []
        for addr, source in self._sources.items():
            if source.peer_count < MIN_TARGETS:
                continue
            targets: set[tuple[str, int]] = source.peers
            ordered = sorted(targets, key=lambda t: (t[1], t[0]))
            out.append(
                ScanSummary(
                    source=addr,
                    probes=source.probes,
                    targets=source.peer_count,
                    hosts=len({h for h, _ in targets}),
                    ports=len({p for _, p in targets}),
                    open=source.open,
                    closed=source.closed,
                    unanswered=source.unanswered,
                    source_ports=len(source.source_ports),
                    first_time=source.first_time,
                    last_time=source.last_time,
                    sample_targets=tuple(
                        f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in ordered[:SAMPLE_PORTS]
                    ),
                )
            )
        return sorted(out, key=lambda s: (-s.probes, s.first_time))


def _flooded(target: FloodSummary) -> bool:
    """Many sources, or a flood's count and rate of attempts from however few."""
    if target.sources >= MIN_FLOOD_SOURCES:
        return True
    return target.attempts >= MIN_FLOOD_ATTEMPTS and target.rate >= MIN_FLOOD_RATE


def _ipv4_number(key: Any) -> int | None:
    """The number of an address (or (address, port) endpoint, as address << 16 | port) that
    _count_bulk would give it; None for an IPv6 one, which no IPv4 attempt can match."""
    if isinstance(key, tuple):
        number = _ipv4_number(key[0])
        return None if number is None else (number << 16) | key[1]
    if ":" in key:
        return None
    return ipv4_int(key)


def _count_bulk(
    tallies: dict[Any, _Tally],
    owners: I64,
    peers: I64,
    owner_key: Callable[[int], Any],
    peer_value: Callable[[int], Any],
    client_ports: I64,
    times: npt.NDArray[np.float64],
) -> None:
    """What `_tally(tallies, owner).count(conn, peer)` does for each unanswered attempt in
    turn, for all of them at once: the owners (sources or targets) that have a tally or get
    one while there is room, in order of their first attempt; each one's peers as a set that
    takes new ones while it has room and counts the attempts of the rest as overflow."""
    unique, first, inverse = np.unique(owners, return_index=True, return_inverse=True)
    existing = [n for key in tallies if (n := _ipv4_number(key)) is not None]
    has_tally = np.isin(unique, np.array(existing, np.int64))
    new = np.flatnonzero(~has_tally)
    new = new[np.argsort(first[new], kind="stable")][: max(MAX_TALLIES - len(tallies), 0)]
    chosen = np.concatenate([np.flatnonzero(has_tally), new])
    chosen = chosen[np.argsort(first[chosen], kind="stable")]  # (new tallies in this order)
    by_owner = np.argsort(inverse, kind="stable")  # each owner's attempts, in order
    starts = np.searchsorted(inverse[by_owner], np.arange(len(unique) + 1))
    for u in chosen.tolist():
        key = owner_key(int(unique[u]))
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally()
        mine = by_owner[starts[u] : starts[u + 1]]
        count = len(mine)
        tally.probes += count
        tally.unanswered += count
        earliest, latest = float(times[mine].min()), float(times[mine].max())
        if earliest < tally.first_time:
            tally.first_time = earliest
        if latest > tally.last_time:
            tally.last_time = latest
        if len(tally.source_ports) < 3:
            ports, at = np.unique(client_ports[mine], return_index=True)
            for port in ports[np.argsort(at)].tolist():
                if len(tally.source_ports) >= 3:
                    break
                tally.source_ports.add(port)
        _count_peers(tally, peers[mine], peer_value)


def _count_peers(tally: _Tally, peers: I64, peer_value: Callable[[int], Any]) -> None:
    """The peers part of _Tally.count, for these attempts in turn (see _count_bulk)."""
    unique, first, inverse = np.unique(peers, return_index=True, return_inverse=True)
    members = tally.peers
    if not members:
        known = np.zeros(len(unique), np.bool_)
    elif len(unique) <= len(members):
        known = np.array([peer_value(p) in members for p in unique.tolist()], np.bool_)
    else:
        numbers = [n for m in members if (n := _ipv4_number(m)) is not None]
        known = np.isin(unique, np.array(numbers, np.int64))
    new = np.flatnonzero(~known)
    new = new[np.argsort(first[new], kind="stable")]
    room = max(MAX_PEERS - len(members), 0)
    members.update(peer_value(p) for p in unique[new[:room]].tolist())
    if len(new) > room:
        # Every attempt on a peer that found the set full is counted, as _Tally.count does.
        tally.peers_overflow += int(np.count_nonzero(np.isin(inverse, new[room:])))


def _tally(tallies: dict[Any, _Tally], key: Any) -> _Tally | None:
    """The tally for `key`, new if there is room (a flood of sources cannot exhaust memory)."""
    tally = tallies.get(key)
    if tally is None and len(tallies) < MAX_TALLIES:
        tally = tallies[key] = _Tally()
    return tally
