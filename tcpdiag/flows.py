"""Every connection, broken or not, in the vocabulary of Zeek's conn.log."""

from __future__ import annotations

import heapq
import itertools
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from tcpdiag.columns import ipv4_text
from tcpdiag.communityid import community_id_v4
from tcpdiag.fastpath import SUMMARY_CONN_STATE, SummarisedConnections, SummaryListing
from tcpdiag.findings import Finding, iso_time
from tcpdiag.spool import SortedSpool
from tcpdiag.tracker import RetiredSyns, TcpState, TrackedConnection

MEMORY_LIMIT = 8192  # connection records held in memory before a run goes to disk (~600 B each)
# Runs merged a level up: records are small, so reading can hold a block of 32 from each of 255
# runs, and 2 million records (255 runs) are written once.
FAN_IN = 256
# Records made at a time (FlowRecord.unanswered, .summarised), and handed to the spool at a
# time (FlowSpool.extend_in_parts).
_SLICE = 4096
# Rows of unanswered SYNs (UnansweredRun) held in memory before they go to disk, 28 bytes each,
# and read (and listed) at a time.
SYN_ROWS_IN_MEMORY = 1 << 16
SYN_ROWS_AT_ONCE = 1 << 14
# An unanswered SYN's row, as a flood's are kept (FlowSpool.extend_unanswered): its connection
# id, the SYN's time and its IPv4 4-tuple as numbers.
SYN_ROW = np.dtype(
    [("conn_id", "<i8"), ("time", "<f8"), ("src", "<u4"), ("dst", "<u4"), ("sport", "<u2"),
     ("dport", "<u2")]
)  # fmt: skip


@dataclass(slots=True)
class FlowRecord:
    conn_id: int
    community_id: str
    first_time: float
    last_time: float
    client: str  # the SYN's sender, "ip:port"
    server: str
    initiator_known: bool
    client_packets: int
    client_bytes: int  # payload bytes, each counted once (retransmissions excluded)
    client_bytes_acked: int  # of those, acknowledged by the server
    server_packets: int
    server_bytes: int
    server_bytes_acked: int
    client_state: str  # final RFC 9293 state of each side, as inferred from the wire
    server_state: str
    conn_state: str  # Zeek's conn_state
    history: str  # Zeek's history; uppercase = Zeek's originator
    findings: list[str] = field(default_factory=list)  # ids of the findings about it
    tunnel: str = ""  # the tunnel it was carried in (outer endpoints, VNI/key), "" if none

    @property
    def duration(self) -> float:
        return max(self.last_time - self.first_time, 0.0)

    @classmethod
    def from_connection(cls, conn: TrackedConnection) -> list[FlowRecord]:
        """One record, or one per conn.log row where Zeek's timers split the connection (the
        rows take their times, packets, bytes and Zeek states from Zeek's view; the tcpdiag
        states and acknowledged bytes are the connection's, on its last row)."""
        whole = cls._whole(conn)
        if not conn.zeek_rows:
            return [whole]
        records = []
        for row in conn.zeek_rows:
            records.append(
                replace(
                    whole,
                    first_time=row.first_time,
                    last_time=row.last_time,
                    client=row.orig,
                    server=row.resp,
                    client_packets=row.orig_packets,
                    client_bytes=row.orig_bytes,
                    client_bytes_acked=0,
                    server_packets=row.resp_packets,
                    server_bytes=row.resp_bytes,
                    server_bytes_acked=0,
                    client_state="",
                    server_state="",
                    conn_state=row.conn_state,
                    history=row.history,
                    findings=[],  # not the whole record's list: each row gets its own
                )
            )
        last = records[-1]
        last.client_state, last.server_state = whole.client_state, whole.server_state
        if last.client == whole.client:
            last.client_bytes_acked = whole.client_bytes_acked
            last.server_bytes_acked = whole.server_bytes_acked
        return records

    @classmethod
    def _whole(cls, conn: TrackedConnection) -> FlowRecord:
        return cls(
            conn_id=conn.ref.conn_id,
            community_id=conn.community_id,
            first_time=conn.ref.first_time,
            last_time=conn.last_time,
            client=conn.ref.client,
            server=conn.ref.server,
            initiator_known=conn.ref.initiator_known,
            client_packets=conn.client.packets,
            client_bytes=conn.client.bytes_sent,
            client_bytes_acked=conn.client.bytes_acked,
            server_packets=conn.server.packets,
            server_bytes=conn.server.bytes_sent,
            server_bytes_acked=conn.server.bytes_acked,
            client_state=conn.client.state.value,
            server_state=conn.server.state.value,
            conn_state=conn.conn_state,
            history=conn.history,
            tunnel=conn.ref.tunnel,
        )

    @classmethod
    def unanswered(cls, syns: RetiredSyns) -> Iterator[FlowRecord]:
        """The record of each bare SYN retired together (tcpdiag.attempts), as
        `from_connection` makes it from its TrackedConnection, without making that: a client
        in SYN_SENT, a server in LISTEN, one packet, Zeek's S0 with history S (when Zeek's view
        was tracked). tests/test_flows.py compares both ways."""
        rows = _syn_rows(syns)
        return UnansweredRun(rows, 0, len(rows), syns.zeek).records()

    @classmethod
    def summarised(cls, connections: SummarisedConnections) -> Iterator[FlowRecord]:
        """The record of each connection listed from its summary, as `from_connection`
        makes it from its TrackedConnection (`connections.connections()`), without making
        that: a clean close, Zeek's SF, never split by Zeek's timers (made a few thousand at
        a time). tests/test_flows.py compares both ways."""
        for part in connections.parts(_SLICE):
            yield from cls._summarised(part.listing())

    @classmethod
    def _summarised(cls, listed: SummaryListing) -> list[FlowRecord]:
        return [
            cls(
                conn_id, cid, first, last, client, server, True, c_packets, c_bytes, c_acked,
                s_packets, s_bytes, s_acked, c_state, s_state, SUMMARY_CONN_STATE, history, [],
                tunnel,
            )
            for (
                conn_id, cid, first, last, client, server, c_packets, c_bytes, c_acked, s_packets,
                s_bytes, s_acked, c_state, s_state, history, tunnel,
            ) in zip(
                listed.conn_id, listed.community_id, listed.first_time, listed.last_time,
                listed.client, listed.server, listed.client_packets, listed.client_bytes,
                listed.client_bytes_acked, listed.server_packets, listed.server_bytes,
                listed.server_bytes_acked, listed.client_state, listed.server_state,
                listed.history, listed.tunnel, strict=True,
            )
        ]  # fmt: skip

    def to_dict(self, head: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON shape: the fields in their order (times as text), then the duration and
        the times as epoch numbers. Spelled out: dataclasses.asdict deep-copies every value,
        and took a sixth of `tcpdiag flows` (tests/test_flows.py checks the two agree).
        `head`: keys to put first (a JSON Lines record's type, tool and capture)."""
        first = iso_time(self.first_time)
        # (A flood lists a million one-packet connections: their times are the same.)
        last = first if self.last_time == self.first_time else iso_time(self.last_time)
        return {
            **(head or {}),
            "conn_id": self.conn_id,
            "community_id": self.community_id,
            "first_time": first,
            "last_time": last,
            "client": self.client,
            "server": self.server,
            "initiator_known": self.initiator_known,
            "client_packets": self.client_packets,
            "client_bytes": self.client_bytes,
            "client_bytes_acked": self.client_bytes_acked,
            "server_packets": self.server_packets,
            "server_bytes": self.server_bytes,
            "server_bytes_acked": self.server_bytes_acked,
            "client_state": self.client_state,
            "server_state": self.server_state,
            "conn_state": self.conn_state,
            "history": self.history,
            "findings": list(self.findings),
            "tunnel": self.tunnel,
            "duration": round(self.duration, 6),
            "first_epoch": self.first_time,
            "last_epoch": self.last_time,
        }


def _syn_rows(syns: RetiredSyns) -> npt.NDArray[np.void]:
    """The rows (SYN_ROW) of bare SYNs retired together, in order of arrival."""
    columns = syns.columns.rows
    rows = np.empty(len(syns), SYN_ROW)
    for name in SYN_ROW.names or ():
        rows[name] = columns[name]
    return rows


def _in_listing_order(rows: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Rows (SYN_ROW) sorted as the listing orders them: by time, then connection id."""
    if len(rows) > 1:
        time, conn_id = rows["time"], rows["conn_id"]
        later = (time[1:] > time[:-1]) | ((time[1:] == time[:-1]) & (conn_id[1:] > conn_id[:-1]))
        if not later.all():  # (they come in order of arrival: mostly in order already)
            rows = rows[np.lexsort((conn_id, time))]
    return rows


@dataclass(slots=True)
class UnansweredRun:
    """Rows of the listing that follow one another and are each a bare SYN nothing answered
    (a flood's): rows `start` to `stop` of a `block` of such rows (SYN_ROW; a listing's are
    pieces of at most SYN_ROWS_AT_ONCE rows) kept as numbers rather than FlowRecords, since a
    flood lists a million. `records()` makes their FlowRecords; a writer may list them from
    the numbers, a block at a time. `zeek`: whether Zeek's view was tracked (S0 and history
    S)."""

    block: npt.NDArray[np.void]
    start: int
    stop: int
    zeek: bool

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def rows(self) -> npt.NDArray[np.void]:
        return self.block[self.start : self.stop]

    def states(self) -> tuple[str, str, str, str]:
        """Each row's client and server state, Zeek's conn_state and history."""
        conn_state, history = ("S0", "S") if self.zeek else ("", "")
        return TcpState.SYN_SENT.value, TcpState.LISTEN.value, conn_state, history

    @staticmethod
    def columns(rows: npt.NDArray[np.void]) -> Iterator[tuple[Any, ...]]:
        """(conn_id, time, client address, client port, server address, server port,
        community id) of each of these rows, a slice at a time (a list of Python numbers per
        column of a million rows would take half a gigabyte)."""
        text: dict[int, str] = {}
        names = ("conn_id", "time", "src", "sport", "dst", "dport")
        for begin in range(0, len(rows), _SLICE):
            part = rows[begin : begin + _SLICE]
            for conn_id, time, src, sport, dst, dport in zip(
                *(part[name].tolist() for name in names), strict=True
            ):
                yield (
                    conn_id, time, ipv4_text(text, src), sport, ipv4_text(text, dst), dport,
                    community_id_v4(src, sport, dst, dport),
                )  # fmt: skip

    def records(self) -> Iterator[FlowRecord]:
        syn_sent, listen, conn_state, history = self.states()
        for conn_id, time, client, sport, server, dport, cid in self.columns(self.rows):
            yield FlowRecord(
                conn_id, cid, time, time, f"{client}:{sport}", f"{server}:{dport}", True, 1, 0,
                0, 0, 0, 0, syn_sent, listen, conn_state, history,
            )  # fmt: skip


def _listing_order(record: FlowRecord) -> tuple[float, int]:
    return record.first_time, record.conn_id


class FlowSpool(SortedSpool[FlowRecord]):
    """The connections `tcpdiag flows` lists, in its order (first time, connection id), held
    in memory only up to a bound (tcpdiag.spool). Each record gets the ids of the findings
    about it as it is read (`list_findings`)."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT, fan_in: int = FAN_IN) -> None:
        super().__init__(FlowRecord, _listing_order, memory_limit, "connections", fan_in)
        # The rows of the connections with findings that Zeek's timers split (conn_id -> rows)
        # and, once listed, the findings of each connection (conn_id -> (time, id) in report
        # order): per finding, never per connection.
        self._split: dict[int, int] = {}
        self._found: dict[int, list[tuple[float, str]]] = {}
        # A flood's bare SYNs (extend_unanswered): blocks of rows, each in the listing's order,
        # in the order they came; in memory up to syn_memory_rows rows, then written to a file
        # of their own (`_syn_on_disk`: offset, rows and Zeek's view of each block there).
        self.syn_memory_rows = SYN_ROWS_IN_MEMORY
        self._syn_blocks: list[tuple[npt.NDArray[np.void], bool]] = []
        self._syn_held = 0
        self._syn_file: IO[bytes] | None = None
        self._syn_on_disk: list[tuple[int, int, bool]] = []
        # Whether each block begins after the last row of the blocks before it (they come in
        # order of arrival, so unless the capture's clock went back), and that last row's key.
        self._syn_in_order = True
        self._syn_last: tuple[float, int] | None = None
        self._found_unanswered = False  # whether a finding is about one of them

    def extend_in_parts(self, records: Iterable[FlowRecord]) -> None:
        """Rows without findings, maybe a great many (a flood's bare SYNs, the connections
        listed from summaries): handed on a few thousand at a time, each part within the
        spool's memory bound (FlowSpool.add of one row each cost a call per row)."""
        rows, size = iter(records), min(_SLICE, self.memory_limit)
        while part := list(itertools.islice(rows, size)):
            self.extend(part)

    def add(self, records: list[FlowRecord], findings: int) -> None:
        """The rows of one connection, about which there are `findings` findings."""
        self.extend(records)
        if findings and len(records) > 1:
            conn_id = records[0].conn_id
            self._split[conn_id] = self._split.get(conn_id, 0) + len(records)

    def list_findings(self, findings: Iterable[Finding]) -> None:
        """The findings (with their ids) to list on the rows of their connections."""
        found: dict[int, list[tuple[float, str]]] = {}
        for finding in findings:
            found.setdefault(finding.conn_id, []).append((finding.time, finding.id))
        self._found = found
        # (None about a flood's SYN, which makes no event: but were there one, its run would
        # be listed as records, each with its findings.)
        ids = np.fromiter(found, np.int64, len(found))
        self._found_unanswered = bool(len(ids)) and any(
            np.isin(rows["conn_id"], ids).any() for rows, _ in self._syn_blocks_read()
        )

    def extend_unanswered(self, syns: RetiredSyns) -> None:
        """Bare SYNs retired together that nothing answered (a flood's): rows without
        findings, kept as numbers (28 bytes a row) instead of a FlowRecord each, and listed in
        their place as FlowRecord.unanswered makes them (see listing)."""
        rows = _in_listing_order(_syn_rows(syns))
        if not len(rows):
            return
        first = (float(rows["time"][0]), int(rows["conn_id"][0]))
        if self._syn_last is not None and first < self._syn_last:
            self._syn_in_order = False
        self._syn_last = (float(rows["time"][-1]), int(rows["conn_id"][-1]))
        self._syn_blocks.append((rows, syns.zeek))
        self._syn_held += len(rows)
        self._count += len(rows)
        if self._syn_held >= self.syn_memory_rows and not self.spill_failed:
            try:
                self._spill_syns()
            except OSError as exc:  # as SortedSpool.extend: all kept in memory, said so
                self.spill_failed = f"{self._label} kept in memory: {exc.strerror or exc}"

    def _spill_syns(self) -> None:
        if self._syn_file is None:
            # Owned until close() or garbage collection, as SortedSpool's files.
            self._syn_file = tempfile.TemporaryFile(prefix="tcpdiag-spool-")  # noqa: SIM115
        file = self._syn_file
        file.seek(0, 2)
        written = []
        for rows, zeek in self._syn_blocks:
            written.append((file.tell(), len(rows), zeek))
            file.write(rows.tobytes())
        file.flush()  # a full disk shows here, before the blocks are counted as written
        self._syn_on_disk.extend(written)
        self._syn_blocks, self._syn_held = [], 0

    def _syn_blocks_read(self) -> Iterator[tuple[npt.NDArray[np.void], bool]]:
        """The SYN blocks in the order they came, in pieces of at most SYN_ROWS_AT_ONCE rows
        (those on disk read a piece at a time), each with Zeek's view."""
        file, size, most = self._syn_file, SYN_ROW.itemsize, SYN_ROWS_AT_ONCE
        for offset, count, zeek in self._syn_on_disk:
            assert file is not None
            for begin in range(0, count, most):
                file.seek(offset + begin * size)
                part = min(count - begin, most)
                yield np.frombuffer(file.read(part * size), SYN_ROW), zeek
        for rows, zeek in self._syn_blocks:
            for begin in range(0, len(rows), most):
                yield rows[begin : begin + most], zeek

    def _rows(self) -> Iterator[FlowRecord | UnansweredRun]:
        """Every row in the listing's order, a flood's SYNs in runs."""
        records = self.sorted_items()
        if not self._syn_on_disk and not self._syn_blocks:
            return records
        if not self._syn_in_order:
            # Blocks that overlap (the capture's clock went back): row by row, merged.
            each = [
                UnansweredRun(rows, 0, len(rows), zeek).records()
                for rows, zeek in self._syn_blocks_read()
            ]
            return heapq.merge(records, *each, key=_listing_order)
        return _merged(records, self._syn_blocks_read())

    def listing(self) -> Iterator[FlowRecord | UnansweredRun]:
        """Every row in order, each record with the ids of the findings about it (see
        list_findings); a flood's bare SYNs in runs (UnansweredRun), for a writer that lists
        them in bulk (none has a finding: a run holding one comes as its records)."""
        # Where Zeek split a connection, a finding goes with the first row whose time span
        # holds it, or else with the last row: the rows of a connection come in time order,
        # so the ones not placed by the last row go with it.
        left: dict[int, tuple[int, list[tuple[float, str]]]] = {}  # rows seen, not placed
        for item in self._rows():
            if isinstance(item, UnansweredRun):
                if not self._found_unanswered:
                    yield item
                    continue
                records: Iterable[FlowRecord] = item.records()
            else:
                records = (item,)
            for record in records:
                conn_id = record.conn_id
                found = self._found.get(conn_id)
                if found is not None:
                    seen, waiting = left.pop(conn_id, (0, found))
                    if seen + 1 < self._split.get(conn_id, 1):
                        mine: list[tuple[float, str]] = []
                        later: list[tuple[float, str]] = []
                        for finding in waiting:
                            placed = record.first_time <= finding[0] <= record.last_time
                            (mine if placed else later).append(finding)
                        left[conn_id], waiting = (seen + 1, later), mine
                    record.findings = [finding_id for _, finding_id in waiting]
                yield record

    def __iter__(self) -> Iterator[FlowRecord]:
        for item in self.listing():
            if isinstance(item, UnansweredRun):
                yield from item.records()
            else:
                yield item

    def __getstate__(self) -> dict[str, Any]:
        # Pickled (to another process): every row in memory, as SortedSpool has it; no files.
        state = super().__getstate__()
        blocks = [(rows.copy(), zeek) for rows, zeek in self._syn_blocks_read()]
        state.update(
            _syn_blocks=blocks,
            _syn_held=sum(len(rows) for rows, _ in blocks),
            _syn_file=None,
            _syn_on_disk=[],
        )
        return state

    def close(self) -> None:
        super().close()
        if self._syn_file is not None:
            self._syn_file.close()
        self._syn_file, self._syn_on_disk, self._syn_blocks, self._syn_held = None, [], [], 0
        self._syn_in_order, self._syn_last = True, None


def _merged(
    records: Iterator[FlowRecord], blocks: Iterable[tuple[npt.NDArray[np.void], bool]]
) -> Iterator[FlowRecord | UnansweredRun]:
    """Records and blocks of SYN rows, each in the listing's order (the blocks one after
    another too), merged into it: the SYN rows between two records as one run. (No row of a
    block has a record's key: a connection id is one connection's.)"""
    record = next(records, None)
    for block, zeek in blocks:
        time, conn_id = np.ascontiguousarray(block["time"]), np.ascontiguousarray(block["conn_id"])
        at, end = 0, len(block)
        while record is not None:
            # (a tuple of Python numbers: most records come before the next SYN row)
            next_row = (float(time[at]), int(conn_id[at]))
            while record is not None and (record.first_time, record.conn_id) < next_row:
                yield record
                record = next(records, None)
            if record is None:
                break
            # the block's rows before the record: those of earlier times, and of its time
            # with smaller connection ids
            first_time, ident = record.first_time, record.conn_id
            lo = at + int(np.searchsorted(time[at:], first_time, "left"))
            hi = lo + int(np.searchsorted(time[lo:], first_time, "right"))
            stop = lo + int(np.searchsorted(conn_id[lo:hi], ident, "left"))
            yield UnansweredRun(block, at, stop, zeek)
            at = stop
            if at == end:
                break
        if at < end:  # (no record left)
            yield UnansweredRun(block, at, end, zeek)
    if record is not None:
        yield record
        yield from records
