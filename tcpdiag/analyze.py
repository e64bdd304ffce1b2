"""The pipeline for one capture: read -> decode -> track -> detect, into a `CaptureReport`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpdiag.columns import ColumnDecoder, Columns
from tcpdiag.decode import Decoder
from tcpdiag.detect import RuleEngine
from tcpdiag.fastpath import FastPathTracker
from tcpdiag.filter_probe import FilterProbe
from tcpdiag.filters import ConnectionFilter
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord
from tcpdiag.packets import Packet
from tcpdiag.quality import CaptureQuality
from tcpdiag.reader import (
    STDIN,
    STDIN_NAME,
    CaptureError,
    CaptureReader,
    JoinedReader,
    joined_name,
)
from tcpdiag.scans import FloodSummary, ScanDetector, ScanSummary
from tcpdiag.spool import FindingSpool
from tcpdiag.tracker import MAX_LIVE_CONNECTIONS, FlowTable, TrackedConnection


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    connection_filter: ConnectionFilter = field(default_factory=ConnectionFilter)
    keep_flows: bool = False  # also list every connection (tcpdiag flows)
    zeek_split: bool = False  # split reused 4-tuples exactly where Zeek does
    max_connections: int = MAX_LIVE_CONNECTIONS  # live connections tracked at most
    # Recognise uneventful connections in bulk (tcpdiag.fastpath). Off: every packet goes
    # through the tracker, the reference the fast path is tested against.
    fast_path: bool = True


@dataclass(slots=True)
class CaptureReport:
    path: str
    packets: int = 0  # frames read from the capture
    flows: int = 0  # TCP connections seen
    # In report order (time) with ids F1...; held in memory only up to a bound (tcpdiag.spool).
    findings: FindingSpool = field(default_factory=FindingSpool)
    connections: list[FlowRecord] = field(default_factory=list)  # only with keep_flows
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # set when the capture could not be read at all
    truncated: bool = False  # reading stopped early at damage; findings cover the part before it
    evicted: int = 0  # connections retired early to keep memory bounded
    decode: dict[str, Any] = field(default_factory=dict)
    scans: list[ScanSummary] = field(default_factory=list)  # sources that probed many targets
    floods: list[FloodSummary] = field(default_factory=list)  # targets many sources left half-open
    # Time of the earliest and latest decoded packet (epoch seconds); None without packets.
    first_time: float | None = None
    last_time: float | None = None
    # False when --host/--port/--net/--state are given and no connection matched them.
    filter_matched: bool = True
    # Rotated parts read as this one capture (--join): (path, first frame, frames); frames are
    # numbered continuously across them. Empty for a single file.
    parts: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        if self.first_time is None or self.last_time is None:
            return 0.0
        return max(self.last_time - self.first_time, 0.0)

    def to_dict(self, findings: bool = True) -> dict[str, Any]:
        return {
            "path": self.path,
            "packets": self.packets,
            "flows": self.flows,
            "first_time": iso_time(self.first_time) if self.first_time is not None else None,
            "last_time": iso_time(self.last_time) if self.last_time is not None else None,
            "first_epoch": self.first_time,
            "last_epoch": self.last_time,
            "duration": round(self.duration, 6),
            "filter_matched": self.filter_matched,
            "truncated": self.truncated,
            "evicted": self.evicted,
            "warnings": list(self.warnings),
            "error": self.error,
            "decode": dict(self.decode),
            "scans": [scan.to_dict() for scan in self.scans],
            "floods": [flood.to_dict() for flood in self.floods],
            **({"parts": [_part(p) for p in self.parts]} if self.parts else {}),
            **({"findings": [f.to_dict() for f in self.findings]} if findings else {}),
        }


def _part(part: tuple[str, int, int]) -> dict[str, Any]:
    path, first, frames = part
    return {"path": path, "first_frame": first, "frames": frames}


def _frames(count: int) -> str:
    return f"{count} frame{'s' * (count != 1)}"


def _selected(conn: TrackedConnection, wanted: ConnectionFilter) -> bool:
    return wanted.matches(
        (conn.client.addr, conn.server.addr), (conn.client.port, conn.server.port), conn.conn_state
    )


def _observed_columns(columns: Iterable[Columns], quality: CaptureQuality) -> Iterator[Columns]:
    for batch in columns:
        quality.observe_times(batch.time)
        yield batch


def _observed_packets(packets: Iterable[Packet], quality: CaptureQuality) -> Iterator[Packet]:
    # Times in batches: one numpy call per thousand packets, not one per packet.
    times: list[float] = []
    for packet in packets:
        times.append(packet.time)
        if len(times) == 1024:
            quality.observe_times(times)
            times.clear()
        yield packet
    quality.observe_times(times)


def analyze_capture(
    path: str | os.PathLike[str] | Sequence[str],
    engine: RuleEngine,
    options: AnalysisOptions | None = None,
) -> CaptureReport:
    """Analyse one capture. Unreadable input is reported in `error`, never raised.

    `path` "-" is standard input; a list of paths is the rotated parts of one capture, read
    as one (tcpdiag.reader.JoinedReader)."""
    options = options or AnalysisOptions()
    single: str | None = None
    parts: list[str] = []
    if isinstance(path, str | os.PathLike):
        single = os.fspath(path)
    else:
        parts = [os.fspath(p) for p in path]
    name = (STDIN_NAME if single == STDIN else single) if single is not None else None
    report = CaptureReport(path=name if name is not None else joined_name(parts))
    reader: CaptureReader | JoinedReader
    try:
        reader = CaptureReader(single) if single is not None else JoinedReader(parts)
    except CaptureError as exc:
        report.error = str(exc)
        return report
    decoder = Decoder()
    table = FlowTable(
        zeek_split=options.zeek_split,
        max_live=options.max_connections,
        zeek=options.keep_flows or bool(options.connection_filter.states),
    )
    wanted = options.connection_filter
    quality, scans, probe = CaptureQuality(), ScanDetector(), FilterProbe(wanted)
    selected = 0
    with reader:
        if options.fast_path and not table.zeek:
            # Zeek's view (flows, --state) needs every packet, so it keeps the packet path.
            columns = map(ColumnDecoder(decoder).decode, reader.chunks())
            observed = _observed_columns(columns, quality)
            connections = FastPathTracker(table).track(probe.columns(observed))
        else:
            packets = (p for p in map(decoder.decode, reader) if p is not None)
            connections = table.track(probe.packets(_observed_packets(packets, quality)))
        for conn in connections:
            quality.observe_connection(conn)
            if wanted.active and not _selected(conn, wanted):
                # Still numbered, so that a finding's id does not depend on the filter.
                report.findings.skip(engine.findings_for(conn))
                continue
            selected += 1
            scans.observe(conn)
            report.findings.extend(engine.findings_for(conn))
            if options.keep_flows:
                report.connections.extend(FlowRecord.from_connection(conn))
    stats = decoder.stats
    report.first_time, report.last_time = quality.first_time, quality.last_time
    report.filter_matched = probe.matched and (selected > 0 or not wanted.states)
    report.packets = stats.frames
    report.flows = table.connections_seen
    report.evicted = table.evicted
    if table.evicted:
        report.warnings.append(
            f"{report.path}: {table.evicted} connections retired early because more than "
            f"{table.max_live} were live at once (a flood?); their analysis may be incomplete"
        )
    report.scans, report.floods = scans.summaries(), scans.floods()
    report.truncated = reader.truncated
    report.warnings.extend(reader.warnings)
    if isinstance(reader, JoinedReader):
        report.parts = [(p.path, p.first_frame, p.frames) for p in reader.parts]
    # Among them: connections without a handshake, as in a part of a rotated capture that
    # was not joined to the part before it (--join).
    report.warnings.extend(quality.warnings(report.path, table.connections_seen))
    for linktype, count in sorted(stats.unknown_linktypes.items()):
        report.warnings.append(
            f"{report.path}: {_frames(count)} with unsupported link type {linktype} skipped"
        )
    if stats.undecodable:
        report.warnings.append(
            f"{report.path}: {_frames(stats.undecodable)} with malformed or truncated headers "
            f"skipped (first: frame {stats.first_undecodable})"
        )
    report.decode = {
        "tcp": stats.tcp,
        "icmp_errors": stats.icmp_errors,
        "other": stats.other,
        "undecodable": stats.undecodable,
    }
    if options.keep_flows:
        by_conn: dict[int, list[tuple[float, str]]] = {}
        for finding in report.findings:
            by_conn.setdefault(finding.conn_id, []).append((finding.time, finding.id))
        report.connections.sort(key=lambda c: (c.first_time, c.conn_id))
        rows_of: dict[int, list[FlowRecord]] = {}
        for record in report.connections:
            rows_of.setdefault(record.conn_id, []).append(record)
        for conn_id, found in by_conn.items():
            rows = rows_of.get(conn_id, [])
            for time, finding_id in found:
                # Where Zeek split the connection, the finding goes with the row of its time.
                row = next((r for r in rows if r.first_time <= time <= r.last_time), None)
                if row is None and rows:
                    row = rows[-1]
                if row is not None:
                    row.findings.append(finding_id)
    return report
