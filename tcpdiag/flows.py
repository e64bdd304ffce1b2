"""Every connection, broken or not, in the vocabulary of Zeek's conn.log."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
        conn_state, history = ("S0", "S") if syns.zeek else ("", "")
        syn_sent, listen = TcpState.SYN_SENT.value, TcpState.LISTEN.value
        text: dict[int, str] = {}
        rows = syns.columns.rows
        names = ("conn_id", "time", "src", "sport", "dst", "dport")
        for first in range(0, len(syns), _SLICE):
            part = [rows[name][first : first + _SLICE].tolist() for name in names]
            for conn_id, time, src, sport, dst, dport in zip(*part, strict=True):
                client, server = ipv4_text(text, src), ipv4_text(text, dst)
                yield cls(
                    conn_id, community_id_v4(src, sport, dst, dport), time, time,
                    f"{client}:{sport}", f"{server}:{dport}", True, 1, 0, 0, 0, 0, 0, syn_sent,
                    listen, conn_state, history,
                )  # fmt: skip

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

    def __iter__(self) -> Iterator[FlowRecord]:
        # Where Zeek split a connection, a finding goes with the first row whose time span
        # holds it, or else with the last row: the rows of a connection come in time order,
        # so the ones not placed by the last row go with it.
        left: dict[int, tuple[int, list[tuple[float, str]]]] = {}  # rows seen, not placed
        for record in self.sorted_items():
            conn_id = record.conn_id
            found = self._found.get(conn_id)
            if found is not None:
                seen, waiting = left.pop(conn_id, (0, found))
                if seen + 1 < self._split.get(conn_id, 1):
                    mine: list[tuple[float, str]] = []
                    later: list[tuple[float, str]] = []
                    for item in waiting:
                        placed = record.first_time <= item[0] <= record.last_time
                        (mine if placed else later).append(item)
                    left[conn_id], waiting = (seen + 1, later), mine
                record.findings = [finding_id for _, finding_id in waiting]
            yield record
