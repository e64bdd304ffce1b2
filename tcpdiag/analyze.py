"""The pipeline for one capture: read -> decode -> track -> detect, into a `CaptureReport`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tcpdiag import tunnels
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder, DecodeStats
from tcpdiag.detect import RuleEngine
from tcpdiag.fastpath import FastPathTracker
from tcpdiag.filters import ConnectionFilter
from tcpdiag.flows import FlowRecord
from tcpdiag.reader import CaptureError, CaptureReader
from tcpdiag.spool import FindingSpool
from tcpdiag.tracker import MAX_LIVE_CONNECTIONS, FlowTable, TrackedConnection
from tcpdiag.tshark_engine import TsharkDecoder, TsharkFailed, TsharkUnavailable, tshark_path

# Decoding engines: tcpdiag's own decoder, Wireshark's dissectors through tshark (tshark_engine),
# or the native one with a hand-over to tshark for a file it mostly cannot read.
ENGINES = ("native", "pyshark", "auto")
# auto: a file is handed to tshark when at least this share of its frames was not decoded
# (unknown link type, unsupported encapsulation, malformed or cut short).
AUTO_SHARE = 0.10
# Every report warns when this share of the frames could not be decoded.
INCOMPLETE_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    connection_filter: ConnectionFilter = field(default_factory=ConnectionFilter)
    keep_flows: bool = False  # also list every connection (tcpdiag flows)
    zeek_split: bool = False  # split reused 4-tuples exactly where Zeek does
    max_connections: int = MAX_LIVE_CONNECTIONS  # live connections tracked at most
    # Recognise uneventful connections in bulk (tcpdiag.fastpath). Off: every packet goes
    # through the tracker, the reference the fast path is tested against.
    fast_path: bool = True
    # One of ENGINES. The library default is the native decoder alone (predictable for programs
    # and tests); the command line defaults to auto.
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


def _frames(count: int) -> str:
    return f"{count} frame{'s' * (count != 1)}"


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
    if options.engine == "pyshark":
        return _analyze_tshark(path, engine, options)
    report = _analyze_native(path, engine, options)
    if options.engine != "auto" or report.error is not None:
        return report
    frames, missed = report.packets, report.decode.get("not_decoded", 0)
    if not frames or missed < AUTO_SHARE * frames:
        return report
    try:
        tshark_path()
    except TsharkUnavailable as exc:
        report.warnings.append(f"{report.path}: the pyshark engine cannot read them: {exc}")
        return report
    other = _analyze_tshark(path, engine, options)
    native_records = report.decode["tcp"] + report.decode["icmp_errors"]
    if other.error is not None or other.decode["tcp"] + other.decode["icmp_errors"] <= (
        native_records
    ):
        report.warnings.append(
            f"{report.path}: the pyshark engine (tshark) read no more TCP from it"
            + (f" ({other.error})" if other.error else "")
            + "; the native decoder's report stands"
        )
        return report
    other.warnings.insert(
        0,
        f"{report.path}: {_share(missed, frames)} of the frames could not be decoded natively "
        f"({_reasons(report.decode)}): read with the pyshark engine (tshark) instead",
    )
    return other


def _analyze_tshark(
    path: str | os.PathLike[str], engine: RuleEngine, options: AnalysisOptions
) -> CaptureReport:
    report = CaptureReport(path=os.fspath(path))
    if not os.path.isfile(path):
        report.error = f"{report.path}: no such file"
        return report
    try:
        decoder = TsharkDecoder(report.path, options.vxlan_ports)
    except TsharkUnavailable as exc:
        report.error = f"{report.path}: --engine pyshark: {exc}"
        return report
    table = _table(options)
    try:
        _collect(report, table.track(decoder.packets()), engine, options)
    except TsharkFailed as exc:
        report.error = f"{report.path}: {exc}"
        return report
    report.truncated = decoder.truncated
    report.warnings.extend(decoder.warnings)
    _finish(report, table, decoder.stats, options, "pyshark")
    return report


def _table(options: AnalysisOptions) -> FlowTable:
    return FlowTable(
        zeek_split=options.zeek_split,
        max_live=options.max_connections,
        zeek=options.keep_flows or bool(options.connection_filter.states),
    )


def _collect(
    report: CaptureReport,
    connections: Iterator[TrackedConnection],
    engine: RuleEngine,
    options: AnalysisOptions,
) -> None:
    wanted = options.connection_filter
    for conn in connections:
        if wanted.active and not _selected(conn, wanted):
            continue
        report.findings.extend(engine.findings_for(conn))
        if options.keep_flows:
            report.connections.append(FlowRecord.from_connection(conn))


def _analyze_native(
    path: str | os.PathLike[str], engine: RuleEngine, options: AnalysisOptions
) -> CaptureReport:
    report = CaptureReport(path=os.fspath(path))
    try:
        reader = CaptureReader(path)
    except CaptureError as exc:
        report.error = str(exc)
        return report
    decoder = Decoder(options.vxlan_ports)
    table = _table(options)
    with reader:
        if options.fast_path and not table.zeek:
            # Zeek's view (flows, --state) needs every packet, so it keeps the packet path.
            columns = map(ColumnDecoder(decoder).decode, reader.chunks())
            connections = FastPathTracker(table).track(columns)
        else:
            connections = table.track(p for p in map(decoder.decode, reader) if p is not None)
        _collect(report, connections, engine, options)
    report.truncated = reader.truncated
    report.warnings.extend(reader.warnings)
    _finish(report, table, decoder.stats, options, "native")
    return report


def _finish(
    report: CaptureReport,
    table: FlowTable,
    stats: DecodeStats,
    options: AnalysisOptions,
    engine_name: str,
) -> None:
    """What every engine's report says about the capture as a whole."""
    report.packets = stats.frames
    report.flows = table.connections_seen
    report.evicted = table.evicted
    if table.evicted:
        report.warnings.append(
            f"{report.path}: {table.evicted} connections retired early because more than "
            f"{table.max_live} were live at once (a flood?); their analysis may be incomplete"
        )
    for linktype, count in sorted(stats.unknown_linktypes.items()):
        report.warnings.append(
            f"{report.path}: {_frames(count)} with unsupported link type {linktype} skipped"
        )
    for name, count in sorted(stats.unsupported.items()):
        report.warnings.append(
            f"{report.path}: {_frames(count)} in {name} not decoded (tcpdiag does not look "
            "inside it)"
        )
    if stats.undecodable:
        cut = f"; {stats.truncated} cut short by the snaplen" if stats.truncated else ""
        report.warnings.append(
            f"{report.path}: {_frames(stats.undecodable)} with malformed or truncated headers "
            f"skipped (first: frame {stats.first_undecodable}{cut})"
        )
    missed = stats.not_decoded
    if stats.frames and missed >= INCOMPLETE_SHARE * stats.frames:
        hint = (
            "; --engine pyshark reads them with Wireshark's dissectors (needs tshark)"
            if engine_name == "native"
            else ""
        )
        report.warnings.append(
            f"{report.path}: {_share(missed, stats.frames)} of the frames could not be decoded: "
            f"the diagnosis may be incomplete{hint}"
        )
    if stats.tunnels:
        named = ", ".join(
            f"{name} ({_frames(count)})"
            for name, count in sorted(stats.tunnels.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        )
        more = f" and {len(stats.tunnels) - 5} more" if len(stats.tunnels) > 5 else ""
        report.warnings.append(
            f"{report.path}: connections inside tunnels are diagnosed by their inner TCP, one "
            f"connection per tunnel: {named}{more}"
        )
    report.decode = {
        "engine": engine_name,
        "tcp": stats.tcp,
        "icmp_errors": stats.icmp_errors,
        "other": stats.other,
        "undecodable": stats.undecodable,
        "truncated": stats.truncated,
        "unknown_linktypes": {str(k): v for k, v in sorted(stats.unknown_linktypes.items())},
        "unsupported": dict(sorted(stats.unsupported.items())),
        "not_decoded": missed,
        "encapsulations": dict(sorted(stats.encapsulations.items())),
        "tunnels": dict(sorted(stats.tunnels.items())),
    }
    if options.keep_flows:
        by_conn: dict[int, list[str]] = {}
        for finding in report.findings:
            by_conn.setdefault(finding.conn_id, []).append(finding.id)
        report.connections.sort(key=lambda c: (c.first_time, c.conn_id))
        for record in report.connections:
            record.findings = by_conn.get(record.conn_id, [])


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.0f} %)"


def _reasons(decode: dict[str, Any]) -> str:
    reasons = [f"link type {k}: {v}" for k, v in decode["unknown_linktypes"].items()]
    reasons += [f"{k}: {v}" for k, v in decode["unsupported"].items()]
    if decode["undecodable"]:
        reasons.append(f"malformed or cut short: {decode['undecodable']}")
    return ", ".join(reasons)
