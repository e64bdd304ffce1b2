"""Scans and floods, whole: one summary per source that probes many ports or hosts, and one per
target that many sources leave half-open (a SYN flood).

A port scan is hundreds of tiny connections: a SYN answered by RST (closed port), by SYN-ACK
(open port: the scanner resets it or lets it expire), or by nothing (filtered). Each probe may
also be a finding of its own (`refused`, `half_open_scan`), but the reader of a report needs the
scan itself: who scanned what, how much, what answered, and when.

A probe is a connection on which neither side sent a byte of payload and that did not close
gracefully both ways. (Connections that did are normal ones; the fast path also takes them in
bulk, so they are never observed here, whichever path ran.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcpdiag.findings import iso_time
from tcpdiag.tracker import TrackedConnection

# A source is a scanner once it probed this many distinct host:port targets.
MIN_TARGETS = 10
# A target is flooded once this many distinct sources left payload-less attempts on it.
MIN_FLOOD_SOURCES = 100
# Memory bounds: targets remembered per source, and sources followed at once.
MAX_TARGETS_PER_SOURCE = 1 << 16
MAX_SOURCES = 1 << 12
SAMPLE_PORTS = 10


@dataclass(slots=True)
class _Source:
    targets: set[tuple[str, int]] = field(default_factory=set)
    targets_overflow: int = 0  # distinct targets beyond MAX_TARGETS_PER_SOURCE (approximate)
    probes: int = 0
    open: int = 0  # answered with SYN-ACK
    closed: int = 0  # answered with RST
    unanswered: int = 0
    source_ports: set[int] = field(default_factory=set)
    first_time: float = float("inf")
    last_time: float = float("-inf")


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
    source_ports: int  # distinct source ports the probes came from (1-2: a raw SYN scanner)
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


@dataclass(slots=True)
class _Target:
    sources: set[str] = field(default_factory=set)
    sources_overflow: int = 0
    attempts: int = 0
    half_open: int = 0  # the server answered SYN-ACK and the handshake never completed
    refused: int = 0
    unanswered: int = 0
    first_time: float = float("inf")
    last_time: float = float("-inf")


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
            f"{self.sources} sources in {max(self.last_time - self.first_time, 0.0):.1f} s "
            f"({self.rate:.0f}/s; {self.half_open} left half-open, {self.refused} refused, "
            f"{self.unanswered} unanswered), from {iso_time(self.first_time)}"
        )


class ScanDetector:
    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}
        self._targets: dict[tuple[str, int], _Target] = {}

    def observe(self, conn: TrackedConnection) -> None:
        client, server = conn.client, conn.server
        if client.bytes_sent or server.bytes_sent or (client.fin and server.fin):
            return
        if client.syn is None:  # only connections whose SYN the capture shows are probes
            return
        self._observe_target(conn)
        source = self._sources.get(client.addr)
        if source is None:
            if len(self._sources) >= MAX_SOURCES:
                return
            source = self._sources[client.addr] = _Source()
        target = (server.addr, server.port)
        if target not in source.targets:
            if len(source.targets) < MAX_TARGETS_PER_SOURCE:
                source.targets.add(target)
            else:
                source.targets_overflow += 1
        source.probes += 1
        if server.isn is not None:
            source.open += 1
        elif server.packets:
            source.closed += 1
        else:
            source.unanswered += 1
        if len(source.source_ports) < 3:
            source.source_ports.add(client.port)
        source.first_time = min(source.first_time, conn.ref.first_time)
        source.last_time = max(source.last_time, conn.last_time)

    def _observe_target(self, conn: TrackedConnection) -> None:
        client, server = conn.client, conn.server
        key = (server.addr, server.port)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= MAX_SOURCES:
                return
            target = self._targets[key] = _Target()
        if client.addr not in target.sources:
            if len(target.sources) < MAX_TARGETS_PER_SOURCE:
                target.sources.add(client.addr)
            else:
                target.sources_overflow += 1
        target.attempts += 1
        if server.isn is not None:
            target.half_open += 1
        elif server.packets:
            target.refused += 1
        else:
            target.unanswered += 1
        target.first_time = min(target.first_time, conn.ref.first_time)
        target.last_time = max(target.last_time, conn.last_time)

    def floods(self) -> list[FloodSummary]:
        out = [
            FloodSummary(
                target=f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}",
                attempts=t.attempts,
                sources=len(t.sources) + t.sources_overflow,
                half_open=t.half_open,
                refused=t.refused,
                unanswered=t.unanswered,
                first_time=t.first_time,
                last_time=t.last_time,
            )
            for (addr, port), t in self._targets.items()
            if len(t.sources) + t.sources_overflow >= MIN_FLOOD_SOURCES
        ]
        return sorted(out, key=lambda f: (-f.attempts, f.first_time))

    def summaries(self) -> list[ScanSummary]:
        out = []
        for addr, source in self._sources.items():
            targets = len(source.targets) + source.targets_overflow
            if targets < MIN_TARGETS:
                continue
            ordered = sorted(source.targets, key=lambda t: (t[1], t[0]))
            out.append(
                ScanSummary(
                    source=addr,
                    probes=source.probes,
                    targets=targets,
                    hosts=len({h for h, _ in source.targets}),
                    ports=len({p for _, p in source.targets}),
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
