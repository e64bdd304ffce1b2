"""Connections hanging when they were last seen: a side that stopped reading.

Nothing has failed on such a connection, so it is no finding: one side's advertised window closed
(0) and stayed closed while its peer, which has data waiting to go, probed it (RFC 9293 3.8.6.1:
zero-window probes, answered with the window still 0, all but at most the last two). Its program
is busy, stuck, or no longer reading that socket; the peer's program blocks in send() once its
send buffer is full, with no error, until the reader resumes or a send timeout of the writer's
(or a proxy's) ends the connection with a RST (then a finding: peer_reset, cause
`peer-stopped-reading`). That is the "hang" an on-call engineer is asked about, and the capture
shows it plainly, so the report sums each one up beside the findings, as it does scans and
floods. Three or more probes in a row left unanswered are no such hang: the reader went away
with its window closed (a finding, rule zero-window-probe-timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcpdiag.events import Role
from tcpdiag.findings import iso_time
from tcpdiag.tracker import TrackedConnection, probed_window, probing_closed_window

# Hangs kept for the report (each is a few hundred bytes): the first ones; the rest are counted.
HANGS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class HangSummary:
    client: str
    server: str
    conn_id: int
    reader: Role  # the side whose window stayed closed
    closed_frame: int  # the segment that closed it
    closed_time: float
    last_time: float  # the connection's last packet
    probes: int  # the writer's segments into the closed window since

    @property
    def writer(self) -> Role:
        return "server" if self.reader == "client" else "client"

    @property
    def seconds(self) -> float:
        return max(self.last_time - self.closed_time, 0.0)

    def endpoint(self, role: Role) -> str:
        return self.client if role == "client" else self.server

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "server": self.server,
            "conn_id": self.conn_id,
            "reader": self.reader,
            "writer": self.writer,
            "closed_frame": self.closed_frame,
            "closed_time": iso_time(self.closed_time),
            "closed_epoch": self.closed_time,
            "last_time": iso_time(self.last_time),
            "last_epoch": self.last_time,
            "seconds": round(self.seconds, 6),
            "probes": self.probes,
        }

    def text(self) -> str:
        reader, writer = self.endpoint(self.reader), self.endpoint(self.writer)
        return (
            f"{reader} ({self.reader}) stopped reading: its window closed (0) at frame "
            f"{self.closed_frame} and stayed closed for the {self.seconds:.1f} s to the "
            f"connection's last packet, while {writer} ({self.writer}) probed it "
            f"{self.probes} times with data waiting to go. No error yet: the {self.writer}'s "
            f"program blocks in send() once its buffer is full, until the {self.reader}'s "
            "program reads again (it is busy, stuck, or no longer reading this socket) or a "
            "send timeout ends the connection"
        )


class HangDetector:
    """Retired connections in, the hangs among them out (see the module's docstring)."""

    def __init__(self, kept: int = HANGS_KEPT) -> None:
        self.kept = kept
        self.count = 0
        self._hangs: list[HangSummary] = []

    def observe(self, conn: TrackedConnection) -> None:
        # (Any RST, stall or ICMP error made an event: its finding tells the story. Either
        # side's FIN ended the writing or the reading this is about.)
        if conn.events or conn.client.fin is not None or conn.server.fin is not None:
            return
        for reader, writer in ((conn.client, conn.server), (conn.server, conn.client)):
            closed = probed_window(reader)
            if closed is None:
                continue
            if not probing_closed_window(writer, reader):
                # (Its last probes went unanswered: the reader went away, or its path did,
                # with its window closed; no program that stopped reading.)
                return
            self.count += 1
            if len(self._hangs) < self.kept:
                self._hangs.append(
                    HangSummary(
                        conn.ref.client,
                        conn.ref.server,
                        conn.ref.conn_id,
                        reader.role,
                        closed.frame,
                        closed.time,
                        conn.last_time,
                        reader.closed_window_probes,
                    )
                )
            return

    def summaries(self) -> list[HangSummary]:
        """The hangs kept, in the order their connections began."""
        return sorted(self._hangs, key=lambda h: h.conn_id)
