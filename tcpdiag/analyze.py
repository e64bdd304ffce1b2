"""The pipeline for one capture: read -> decode -> track -> detect, into a `CaptureReport`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from tcpdiag import tunnels
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder
from tcpdiag.decodereport import describe_decode
from tcpdiag.detect import RuleEngine
from tcpdiag.fastpath import FastPathTracker
from tcpdiag.filters import ConnectionFilter
from tcpdiag.flows import FlowRecord
from tcpdiag.reader import CaptureError, CaptureReader
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
    # The decoding engine: native, pyshark or auto (tcpdiag.engines). The library default is
    # the native decoder alone, predictable for programs and tests; the command line's is auto.
    engine: str = "native"
    vxlan_ports: frozenset[int] = frozenset((tunnels.VXLAN_PORT,))  # UDP ports read as VXLAN


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

    def to_dict(self, findings: bool = True) -> dict[str, Any]:
        return {
            "path": self.path,
            "packets": self.packets,
            "flows": self.flows,
            "truncated": self.truncated,
            "evicted": self.evicted,
            "warnings": list(self.warnings),
            "error": self.error,
            "decode": dict(self.decode),
            **({"findings": [f.to_dict() for f in self.findings]} if findings else {}),
        }


def _selected(conn: TrackedConnection, wanted: ConnectionFilter) -> bool:
    return wanted.matches(
        (conn.client.addr, conn.server.addr), (conn.client.port, conn.server.port), conn.conn_state
    )


def analyze_capture(
    path: str | os.PathLike[str],
    engine: RuleEngine,
    options: AnalysisOptions | None = None,
) -> CaptureReport:
    """Analyse one capture. Unreadable input is reported in `error`, never raised."""
    options = options or AnalysisOptions()
    if options.engine != "native":
        from tcpdiag.engines import analyze_with_engine  # (tcpdiag.engines imports this module)

        return analyze_with_engine(path, engine, options)
    report = CaptureReport(path=os.fspath(path))
    try:
        reader = CaptureReader(path)
    except CaptureError as exc:
        report.error = str(exc)
        return report
    decoder = Decoder(options.vxlan_ports)
    table = FlowTable(
        zeek_split=options.zeek_split,
        max_live=options.max_connections,
        zeek=options.keep_flows or bool(options.connection_filter.states),
    )
    wanted = options.connection_filter
    with reader:
        if options.fast_path and not table.zeek:
            # Zeek's view (flows, --state) needs every packet, so it keeps the packet path.
            columns = map(ColumnDecoder(decoder).decode, reader.chunks())
            connections = FastPathTracker(table).track(columns)
        else:
            connections = table.track(p for p in map(decoder.decode, reader) if p is not None)
        for conn in connections:
            if wanted.active and not _selected(conn, wanted):
                continue
            report.findings.extend(engine.findings_for(conn))
            if options.keep_flows:
                report.connections.append(FlowRecord.from_connection(conn))
    stats = decoder.stats
    report.packets = stats.frames
    report.flows = table.connections_seen
    report.evicted = table.evicted
    if table.evicted:
        report.warnings.append(
            f"{report.path}: {table.evicted} connections retired early because more than "
            f"{table.max_live} were live at once (a flood?); their analysis may be incomplete"
        )
    report.truncated = reader.truncated
    report.warnings.extend(reader.warnings)
    # What was decoded, what was not and why, and the tunnels (warnings and `decode`).
    report.decode = describe_decode(report.path, stats, "native", report.warnings)
    if options.keep_flows:
        by_conn: dict[int, list[str]] = {}
        for finding in report.findings:
            by_conn.setdefault(finding.conn_id, []).append(finding.id)
        report.connections.sort(key=lambda c: (c.first_time, c.conn_id))
        for record in report.connections:
            record.findings = by_conn.get(record.conn_id, [])
    return report
