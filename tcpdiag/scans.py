"""Scans, whole: one summary per source that probes many ports or hosts.

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


class ScanDetector:
    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}

    def observe(self, conn: TrackedConnection) -> None:
        client, server = conn.client, conn.server
        if client.bytes_sent or server.bytes_sent or (client.fin and server.fin):
            return
        if client.syn is None:  # only connections whose SYN the capture shows are probes
            return
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
