"""Packet ladders: the packets of one connection, in order, as the reports and `tcpdiag show` draw
them (two lanes, an arrow per packet, relative sequence numbers as Wireshark shows them).

Findings keep only their evidence frames, so a ladder comes from a second read of the capture
that keeps just the packets of the connections asked for. It stops at the last frame it needs
and keeps, per connection, the first few packets and a bounded tail, so a long download costs
no more than a short one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tcpdiag.decode import Decoder
from tcpdiag.findings import Finding
from tcpdiag.packets import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, IcmpError, Packet, TcpSegment
from tcpdiag.reader import CaptureError, CaptureReader

HEAD = 4  # first packets of a connection always kept (the handshake)
TAIL = 200  # packets kept before the last one needed
AFTER = 3  # packets kept after the finding's last frame: did the connection carry on?
LOOK_AHEAD = 2000  # frames read past the last one needed, looking for those AFTER packets
SHOWN = 14  # packets a condensed ladder shows at most

_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
               (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))  # fmt: skip

Key = tuple[str, int, str, int]  # client host, client port, server host, server port


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`10.0.0.1:80` -> ("10.0.0.1", 80); `[::1]:80` -> ("::1", 80)."""
    host, _, port = endpoint.rpartition(":")
    return (host[1:-1] if host.startswith("[") else host), int(port)


def finding_key(finding: Finding) -> Key:
    return (*split_endpoint(finding.client), *split_endpoint(finding.server))


def flag_names(flags: int) -> str:
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


@dataclass(frozen=True, slots=True)
class Step:
    """One packet of the ladder."""

    frame: int
    time: float
    from_client: bool | None  # None: an ICMP error sent by a third party about the flow
    flags: str  # "SYN", "SYN,ACK", "RST,ACK", "ICMP 3/1"
    seq: int | None  # relative to the sender's ISN (or first sequence number seen)
    ack: int | None  # relative to the receiver's ISN; None without the ACK flag
    length: int  # TCP payload bytes
    ttl: int


@dataclass(slots=True)
class Ladder:
    client: str
    server: str
    first_time: float  # the connection's first packet seen: ladder times are relative to it
    steps: list[Step]
    decisive: int  # the frame where the verdict was made (highlighted)
    evidence: frozenset[int] = frozenset()  # the finding's frames
    dropped: int = 0  # packets between the head and the tail that were not kept

    def condensed(self, shown: int = SHOWN) -> list[Step | int]:
        """At most `shown` steps: the handshake, the finding's frames and their neighbours, the
        last packets; an int stands for that many packets left out."""
        if len(self.steps) <= shown and not self.dropped:
            return list(self.steps)
        keep: set[int] = {0, 1, 2, len(self.steps) - 1}
        for index, step in enumerate(self.steps):
            if step.frame in self.evidence or step.frame == self.decisive:
                keep.update({index - 1, index})
        chosen = sorted(i for i in keep if 0 <= i < len(self.steps))
        if len(chosen) > shown:  # many evidence frames: the first ones and the last ones
            chosen = chosen[: shown // 2] + chosen[-(shown - shown // 2) :]
        out: list[Step | int] = []
        previous = -1
        for index in chosen:
            gap = index - previous - 1 + (self.dropped if previous < HEAD <= index else 0)
            if gap > 0:
                out.append(gap)
            out.append(self.steps[index])
            previous = index
        return out


@dataclass(slots=True)
class _Collector:
    finding: Finding
    key: Key
    stop_frame: int
    head: list[Packet] = field(default_factory=list)
    tail: deque[Packet] = field(default_factory=lambda: deque(maxlen=TAIL))
    dropped: int = 0
    after: int = 0

    @property
    def done(self) -> bool:
        return self.after >= AFTER

    def add(self, packet: Packet) -> None:
        if isinstance(packet, TcpSegment) and self._restarts(packet):
            self.head.clear()
            self.tail.clear()
            self.dropped = 0
        if packet.frame > self.stop_frame:
            self.after += 1
        if len(self.head) < HEAD:
            self.head.append(packet)
            return
        if len(self.tail) == TAIL:
            self.dropped += 1
        self.tail.append(packet)

    def _restarts(self, seg: TcpSegment) -> bool:
        """A new SYN on the same 4-tuple before the finding: an earlier connection ends here."""
        if not (seg.flags & SYN and not seg.flags & ACK) or seg.frame > self.finding.frames[0]:
            return False
        first = self.head[0] if self.head else None
        return isinstance(first, TcpSegment) and first.flags & SYN != 0 and first.seq != seg.seq

    def ladder(self) -> Ladder:
        packets = [*self.head, *self.tail]
        client_host, client_port, _, _ = self.key
        base: dict[bool, int] = {}  # from_client -> ISN (or first sequence number)
        for p in packets:
            if isinstance(p, TcpSegment):
                side = p.src == client_host and p.sport == client_port
                if p.flags & SYN or side not in base:
                    base[side] = p.seq
        steps = [_step(p, self.key, base) for p in packets]
        decisive = next(
            (e.frame for e in self.finding.evidence if e.time == self.finding.time),
            self.finding.frames[-1],
        )
        return Ladder(
            client=self.finding.client,
            server=self.finding.server,
            first_time=min((p.time for p in packets), default=self.finding.time),
            steps=steps,
            decisive=decisive,
            evidence=frozenset(self.finding.frames),
            dropped=self.dropped,
        )


def _step(packet: Packet, key: Key, base: dict[bool, int]) -> Step:
    if isinstance(packet, IcmpError):
        return Step(packet.frame, packet.time, None, f"ICMP {packet.icmp_type}/{packet.icmp_code}",
                    None, None, 0, packet.ttl)  # fmt: skip
    side = packet.src == key[0] and packet.sport == key[1]
    seq = (packet.seq - base.get(side, packet.seq)) % (1 << 32)
    ack = (packet.ack - base.get(not side, packet.ack)) % (1 << 32) if packet.flags & ACK else None
    return Step(packet.frame, packet.time, side, flag_names(packet.flags), seq, ack,
                packet.payload_len, packet.ttl)  # fmt: skip


def _keys_of(packet: Packet) -> Iterator[Key]:
    """The 4-tuple a packet belongs to, both ways round (client first)."""
    if isinstance(packet, TcpSegment):
        yield (packet.src, packet.sport, packet.dst, packet.dport)
        yield (packet.dst, packet.dport, packet.src, packet.sport)
    elif packet.quoted is not None:
        q = packet.quoted
        yield (q.src, q.sport, q.dst, q.dport)
        yield (q.dst, q.dport, q.src, q.sport)


def connection_packets(
    path: str | os.PathLike[str], key: Key, engine: str = "native"
) -> list[Packet]:
    """Every packet of one 4-tuple (and the ICMP errors about it), for `tcpdiag show`, decoded
    by the engine that analysed the capture (`native`, or `pyshark`: tshark's records, for a
    link type the native decoder does not know)."""

    def of_it(packets: Iterable[Packet | None]) -> list[Packet]:
        return [p for p in packets if p is not None and key in _keys_of(p)]

    if engine == "pyshark":
        from tcpdiag.tshark_engine import TsharkDecoder

        return of_it(TsharkDecoder(os.fspath(path)).packets())
    decoder = Decoder()
    with CaptureReader(path) as reader:
        return of_it(map(decoder.decode, reader))


def collect_ladders(path: str | os.PathLike[str], findings: Iterable[Finding]) -> dict[str, Ladder]:
    """The ladder of each finding's connection, by finding id, from one more read of the
    capture. A capture that cannot be read again gives no ladders (the report says so)."""
    by_key: dict[Key, list[_Collector]] = {}
    for finding in findings:
        if finding.frames:
            key = finding_key(finding)
            collector = _Collector(finding, key, max(finding.frames))
            by_key.setdefault(key, []).append(collector)
    if not by_key:
        return {}
    last_needed = max(c.stop_frame for cs in by_key.values() for c in cs)
    decoder = Decoder()

    def all_done() -> bool:
        return all(c.done for cs in by_key.values() for c in cs)

    try:
        with CaptureReader(path) as reader:
            for frame in reader:
                past = frame.number - last_needed
                if past > 0 and (past > LOOK_AHEAD or (past % 256 == 0 and all_done())):
                    break
                packet = decoder.decode(frame)
                if packet is None:
                    continue
                for key in _keys_of(packet):
                    for collector in by_key.get(key, ()):
                        if not collector.done:
                            collector.add(packet)
    except (CaptureError, OSError):
        return {}
    return {c.finding.id: c.ladder() for cs in by_key.values() for c in cs}
