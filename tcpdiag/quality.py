"""Capture quality: what about the capture itself limits what its findings can claim.

A diagnosis is only as good as the capture. A capture that saw one direction only, caught
connections mid-stream, recorded every packet twice, or has timestamps that go backwards or jump
by years still gets analysed, but the reader of a report must know, because it changes what a
finding can claim (an unanswered segment may simply not have been captured).

`CaptureQuality` observes the decoded packets' times and the retired connections (read-only, at
the end of the pipeline) and says what it noticed as warnings. It never changes a finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tcpdiag.tracker import TrackedConnection

# A forward jump in timestamps this large is not an idle gap but two captures joined together
# or a clock step.
TIME_JUMP_SECONDS = 86_400.0
# Connections with at least this many packets, all from one side, suggest a one-way capture.
ONE_WAY_MIN_PACKETS = 3


@dataclass(slots=True)
class CaptureQuality:
    packets_backwards: int = 0  # packets stamped earlier than the one before them
    largest_step_back: float = 0.0
    time_jumps: int = 0
    largest_jump: float = 0.0
    one_way_connections: int = 0  # several packets from one side, acknowledging unseen data
    midstream_connections: int = 0  # the capture missed the handshake
    duplicate_segments: int = 0  # the same segment (same IP ID and sequence) captured twice
    # The earliest and latest packet time (captures are not always in time order, so a min and
    # a max, not the first and last record); None without packets.
    first_time: float | None = None
    last_time: float | None = None
    _last_time: float | None = None

    def observe_times(self, times: npt.NDArray[np.float64] | Iterable[float]) -> None:
        """Packet times in capture order (called per batch; batches continue each other)."""
        array = np.asarray(times if isinstance(times, np.ndarray) else list(times), np.float64)
        if not len(array):
            return
        low, high = float(array.min()), float(array.max())
        self.first_time = low if self.first_time is None else min(self.first_time, low)
        self.last_time = high if self.last_time is None else max(self.last_time, high)
        if self._last_time is not None:
            array = np.concatenate(([self._last_time], array))
        steps = np.diff(array)
        back = steps < 0
        if back.any():
            self.packets_backwards += int(back.sum())
            self.largest_step_back = max(self.largest_step_back, float(-steps[back].min()))
        jumps = steps > TIME_JUMP_SECONDS
        if jumps.any():
            self.time_jumps += int(jumps.sum())
            self.largest_jump = max(self.largest_jump, float(steps[jumps].max()))
        self._last_time = float(array[-1])

    def observe_connection(self, conn: TrackedConnection) -> None:
        client, server = conn.client, conn.server
        if not conn.ref.initiator_known:
            self.midstream_connections += 1
        # One side only, yet its ACKs advance: the other side sent data the capture does not
        # hold. (Unanswered SYNs or keepalive probes to a dead peer are one-way too, but their
        # ACK stands still: they prove nothing about the capture.)
        speaker = client if client.packets else server
        if (
            client.packets + server.packets >= ONE_WAY_MIN_PACKETS
            and not (client.packets and server.packets)
            and speaker.acks_advanced
        ):
            self.one_way_connections += 1
        self.duplicate_segments += client.duplicates + server.duplicates

    def warnings(self, path: str, connections: int) -> list[str]:
        """One line each, naming the file, for what a reader of the findings must know."""
        out: list[str] = []
        if self.packets_backwards:
            out.append(
                f"{path}: timestamps go backwards {_times(self.packets_backwards)} (by up to "
                f"{self.largest_step_back:.6f} s): packets are analysed in capture order, and "
                "times and durations around those packets are unreliable"
            )
        if self.time_jumps:
            out.append(
                f"{path}: timestamps jump forward by {self.largest_jump / 86_400:.1f} days "
                f"{_times(self.time_jumps)}: two captures joined, or a clock step; durations "
                "across the jump mean nothing"
            )
        # Against every connection seen: those recognised in bulk (tcpdiag.fastpath) are never
        # observed here, and they are all two-way.
        if self.one_way_connections and self.one_way_connections * 2 >= connections:
            out.append(
                f"{path}: {self.one_way_connections} of {connections} connections were seen in "
                "one direction only: the capture probably missed the other direction (asymmetric "
                "routing, a one-way tap or filter), so unanswered segments prove nothing"
            )
        if self.midstream_connections:
            out.append(
                f"{path}: {self.midstream_connections} of {connections} connections started "
                "before the capture (no handshake): their client and server roles are guessed "
                "and their windows are unknown"
            )
        if self.duplicate_segments:
            out.append(
                f"{path}: {self.duplicate_segments} segments were captured twice (same IP ID "
                "and sequence number): the capture saw them on two interfaces or a mirror "
                "port; they are not counted as retransmissions"
            )
        return out


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
