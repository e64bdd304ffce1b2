"""The pipeline for one capture: read -> decode -> track -> detect, into a `CaptureReport`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpdiag import tunnels
from tcpdiag.clock import STEP_SECONDS
from tcpdiag.columns import ColumnDecoder, Columns
from tcpdiag.decode import Decoder, DecodeStats
from tcpdiag.decodereport import describe_decode
from tcpdiag.detect import RuleEngine
from tcpdiag.fastpath import FastPathTracker, SummarisedConnections
from tcpdiag.filter_probe import FilterProbe
from tcpdiag.filters import ConnectionFilter
from tcpdiag.findings import iso_time
from tcpdiag.flows import FlowRecord, FlowSpool
from tcpdiag.hangs import HangDetector, HangSummary
from tcpdiag.packets import Packet
from tcpdiag.quality import CaptureQuality
from tcpdiag.reader import (
    STDIN,
    STDIN_NAME,
    CaptureError,
    CaptureReader,
    JoinedReader,
    ReadLimits,
    joined_name,
)
from tcpdiag.scans import FloodSummary, ScanDetector, ScanSummary
from tcpdiag.spool import FindingEncoder, FindingSpool
from tcpdiag.tracker import (
    MAX_HELD_SYNS,
    MAX_LIVE_CONNECTIONS,
    FlowTable,
    Retired,
    RetiredSyns,
    TrackedConnection,
)


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    connection_filter: ConnectionFilter = field(default_factory=ConnectionFilter)
    keep_flows: bool = False  # also list every connection (tcpdiag flows)
    zeek_split: bool = False  # split reused 4-tuples exactly where Zeek does
    max_connections: int = MAX_LIVE_CONNECTIONS  # open connections tracked at most
    max_held_syns: int = MAX_HELD_SYNS  # bare SYNs waiting for an answer, held at most
    # Recognise uneventful connections in bulk (tcpdiag.fastpath). Off: every packet goes
    # through the tracker, the reference the fast path is tested against.
    fast_path: bool = True
    # The decoding engine: native, pyshark or auto (tcpdiag.engines). The library default is
    # the native decoder alone, predictable for programs and tests; the command line's is auto.
    engine: str = "native"
    vxlan_ports: frozenset[int] = frozenset((tunnels.VXLAN_PORT,))  # UDP ports read as VXLAN
    # The reader's give-up rules: a named pipe's wait for its writer, a zeroed tail.
    read_limits: ReadLimits = field(default_factory=ReadLimits)
    # Keep each finding as its JSON report form (tcpdiag.spool.FindingSpool's `encode`), when
    # the report will be JSON or JSON Lines: the command line gives
    # tcpdiag.reporters.json_report.encode_finding then. Such a report's findings are then read
    # only with FindingSpool.encoded (or counted through their digests). Not with keep_flows,
    # whose listing reads each finding's connection: the findings are kept as they are then.
    finding_encoder: FindingEncoder | None = None


@dataclass(slots=True)
class CaptureReport:
    path: str
    packets: int = 0  # frames read from the capture
    flows: int = 0  # TCP connections seen
    # In report order (time) with ids F1...; held in memory only up to a bound (tcpdiag.spool).
    findings: FindingSpool = field(default_factory=FindingSpool)
    # Only with keep_flows: every connection (a row per Zeek conn.log row) in listing order
    # (first time, id), each with the ids of its findings; also bounded in memory.
    connections: FlowSpool = field(default_factory=FlowSpool)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # set when the capture could not be read at all
    truncated: bool = False  # reading stopped early at damage; findings cover the part before it
    evicted: int = 0  # connections retired early to keep memory bounded
    decode: dict[str, Any] = field(default_factory=dict)
    scans: list[ScanSummary] = field(default_factory=list)  # sources that probed many targets
    floods: list[FloodSummary] = field(default_factory=list)  # targets many sources left half-open
    # Connections hanging when last seen: a side that stopped reading (tcpdiag.hangs).
    hangs: list[HangSummary] = field(default_factory=list)
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
            "hangs": [hang.to_dict() for hang in self.hangs],
            **({"parts": [_part(p) for p in self.parts]} if self.parts else {}),
            **({"findings": [f.to_dict() for f in self.findings]} if findings else {}),
        }


def _part(part: tuple[str, int, int]) -> dict[str, Any]:
    path, first, frames = part
    return {"path": path, "first_frame": first, "frames": frames}


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


class Pipeline:
    """Track -> detect -> summarise for one capture, whatever decoded its packets: the native
    decoder (packet by packet, or in columns through the fast path) or tshark."""

    def __init__(self, report: CaptureReport, engine: RuleEngine, options: AnalysisOptions):
        self.report, self.engine, self.options = report, engine, options
        if options.finding_encoder is not None and not options.keep_flows:
            report.findings.close()
            report.findings = FindingSpool(encode=options.finding_encoder)
        self.table = FlowTable(
            zeek_split=options.zeek_split,
            max_live=options.max_connections,
            zeek=options.keep_flows or bool(options.connection_filter.states),
            max_held_syns=options.max_held_syns,
            batch_held_syns=True,
        )
        self.quality, self.scans = CaptureQuality(), ScanDetector()
        self.hangs = HangDetector()
        self.probe = FilterProbe(options.connection_filter)
        self.selected = 0

    def track_packets(self, packets: Iterable[Packet]) -> Iterator[Retired]:
        observed = _observed_packets(packets, self.quality)
        return self.table.track(self.probe.packets(observed))

    def track_columns(
        self, columns: Iterable[Columns]
    ) -> Iterator[Retired | SummarisedConnections]:
        observed = _observed_columns(columns, self.quality)
        # (Without filters, a listing takes the connections listed from summaries together.)
        together = self.options.keep_flows and not self.options.connection_filter.active
        tracker = FastPathTracker(self.table, summaries_together=together)
        return tracker.track(self.probe.columns(observed))

    def detect(self, connections: Iterable[Retired | SummarisedConnections]) -> None:
        report, engine, wanted = self.report, self.engine, self.options.connection_filter
        for conn in connections:
            if type(conn) is RetiredSyns:
                self._unanswered(conn)
                continue
            if type(conn) is SummarisedConnections:
                self._summarised(conn)
                continue
            assert isinstance(conn, TrackedConnection)
            self.quality.observe_connection(conn)
            if wanted.active and not _selected(conn, wanted):
                # Still numbered, so that a finding's id does not depend on the filter.
                report.findings.skip(engine.findings_for(conn))
                continue
            self.selected += 1
            self.scans.observe(conn)
            self.hangs.observe(conn)
            # (Most connections have no event: a flood's attempts, the healthy ones.)
            found = engine.findings_for(conn) if conn.events else []
            if found:
                report.findings.extend(found)
            if self.options.keep_flows and conn.on_wire:
                report.connections.add(FlowRecord.from_connection(conn), len(found))

    def _unanswered(self, syns: RetiredSyns) -> None:
        """Bare SYNs that nothing answered, retired together (a flood's, at the end): each
        makes no event, hence no finding, and tells the capture's quality nothing (one packet),
        so unless each must be filtered, the scan detector takes them in bulk, and the list of
        connections (flows) their records."""
        if self.options.connection_filter.active:
            self.detect(syns.connections())
            return
        self.selected += len(syns)
        if self.options.keep_flows:
            self.report.connections.extend_unanswered(syns)
        rows = syns.columns.rows
        self.scans.observe_unanswered(
            rows["src"], rows["sport"], rows["dst"], rows["dport"], rows["time"]
        )

    def _summarised(self, listed: SummarisedConnections) -> None:
        """Clean connections taken in bulk, handed on together for the listing (flows without
        filters, see track_columns): each is selected and tells nothing but its record (no
        event, and nothing the capture's quality or the scan detector count)."""
        if self.options.connection_filter.active or not self.options.keep_flows:
            self.detect(listed.connections())  # (as if handed on one by one)
            return
        self.selected += len(listed)
        self.report.connections.extend_in_parts(FlowRecord.summarised(listed))

    def finish(
        self,
        stats: DecodeStats,
        engine_name: str,
        truncated: bool,
        source_warnings: list[str],
        damage: str | None = None,
    ) -> CaptureReport:
        """The report, once every packet went through. `damage`: the source's warning of the
        damage it stopped reading at, if any (see tcpdiag.reader)."""
        report, table, wanted = self.report, self.table, self.options.connection_filter
        report.first_time, report.last_time = self.quality.first_time, self.quality.last_time
        report.filter_matched = self.probe.matched and (self.selected > 0 or not wanted.states)
        report.packets = stats.frames
        report.flows = table.connections_seen
        report.evicted = table.evicted
        if table.evicted_attempts:
            report.warnings.append(
                f"{report.path}: {table.evicted_attempts} connection attempts that were nothing "
                f"but a SYN were retired early because more than {table.max_held_syns} such "
                f"attempts ({table.max_attempts} of those the compact store cannot hold: IPv6, "
                f"tunnelled), or {table.max_live} connections, were open at once (a SYN "
                "flood?); other connections were kept"
            )
        if table.evicted > table.evicted_attempts:
            report.warnings.append(
                f"{report.path}: {table.evicted - table.evicted_attempts} connections retired "
                f"early because more than {table.max_live} were open at once (a flood?); their "
                "analysis may be incomplete"
            )
        if table.grace_cut:
            report.warnings.append(
                f"{report.path}: {table.grace_cut:,} closed connections retired before their "
                f"close grace period ({table.close_grace:.0f} s) ended, because more than "
                f"{table.max_closed:,} were waiting it out at once (a storm of refusals or "
                "resets?); a late segment of one of them starts a connection of its own"
            )
        if orphans := table.orphan_icmp:
            source, count = table.orphan_icmp_sources.most_common(1)[0]
            report.warnings.append(
                f"{report.path}: {orphans:,} ICMP error{'s' if orphans > 1 else ''} quoted TCP "
                "connections the capture does not show open (begun before it, already closed, "
                f"or forged quotes); {count:,} of them from {source}"
            )
        if ignored := table.clock.ignored:
            report.warnings.append(
                f"{report.path}: {ignored:,} frame{'s' if ignored > 1 else ''} stamped more "
                f"than {STEP_SECONDS:.0f} s ahead of the frames around them did not move the "
                "capture clock (a clock step, or captures merged out of order): connections "
                "are retired by the clock of the frames around them"
            )
        report.scans, report.floods = self.scans.summaries(), self.scans.floods()
        report.hangs = self.hangs.summaries()
        if self.hangs.count > len(report.hangs):
            report.warnings.append(
                f"{report.path}: {self.hangs.count:,} connections were hanging (a side that "
                f"stopped reading); the report lists the first {len(report.hangs):,}"
            )
        spools = (report.findings.spill_failed, report.connections.spill_failed)
        for problem in (table.spill_failed, *spools):
            if problem:
                report.warnings.append(
                    f"{report.path}: the temporary directory could not be written ({problem}); "
                    "memory use grew with the capture"
                )
        report.truncated = truncated
        report.warnings.extend(source_warnings)
        if damage is not None and not stats.frames:
            # Damaged before its first frame: nothing of the capture could be read. That is a
            # capture that cannot be read (a one-line error, exit 2), not an empty report that
            # looks clean.
            report.error = damage
            report.warnings.remove(damage)
        report.warnings.extend(self.quality.warnings(report.path, table.connections_seen))
        # What was decoded, what was not and why, and the tunnels (warnings and `decode`).
        report.decode = describe_decode(report.path, stats, engine_name, report.warnings)
        if self.options.keep_flows:
            report.connections.list_findings(report.findings)
        return report


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
    if options.engine != "native" and single is not None and single != STDIN:
        from tcpdiag.engines import analyze_with_engine  # (tcpdiag.engines imports this module)

        return analyze_with_engine(single, engine, options)
    name = (STDIN_NAME if single == STDIN else single) if single is not None else None
    report = CaptureReport(path=name if name is not None else joined_name(parts))
    reader: CaptureReader | JoinedReader
    try:
        if single is not None:
            reader = CaptureReader(single, options.read_limits)
        else:
            reader = JoinedReader(parts, options.read_limits)
    except CaptureError as exc:
        report.error = str(exc)
        return report
    decoder = Decoder(options.vxlan_ports)
    pipeline = Pipeline(report, engine, options)
    with reader:
        if options.fast_path:
            columns = map(ColumnDecoder(decoder).decode, reader.chunks())
            pipeline.detect(pipeline.track_columns(columns))
        else:
            packets = (p for p in map(decoder.decode, reader) if p is not None)
            pipeline.detect(pipeline.track_packets(packets))
    if isinstance(reader, JoinedReader):
        report.parts = [(p.path, p.first_frame, p.frames) for p in reader.parts]
    return pipeline.finish(
        decoder.stats, "native", reader.truncated, reader.warnings, reader.damage
    )
