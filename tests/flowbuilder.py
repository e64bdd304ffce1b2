"""Build TCP segment sequences by hand for tracker and rule tests (no capture file needed).

`Conversation` keeps each side's sequence numbers the way a real stack would, so a test reads as
the scenario it describes: handshake, data, close, reset.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import dpkt

from tcpdiag.detect import RuleEngine
from tcpdiag.findings import Finding
from tcpdiag.packets import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    IcmpError,
    Packet,
    QuotedTcp,
    SynOptions,
    TcpSegment,
)
from tcpdiag.rules import load_rules
from tcpdiag.tracker import FlowTable, TrackedConnection

MASK = 0xFFFFFFFF
LINUX_SYN = SynOptions(mss=65495, window_scale=7, sack_permitted=True, timestamps=True)


@dataclass
class Side:
    addr: str
    port: int
    seq: int
    ttl: int = 64


@dataclass
class Capture:
    """A growing list of packets with Wireshark-style frame numbers and times."""

    packets: list[Packet] = field(default_factory=list)
    time: float = 1_700_000_000.0

    def next_frame(self, dt: float) -> tuple[int, float]:
        self.time += dt
        return len(self.packets) + 1, self.time


class Conversation:
    def __init__(
        self,
        capture: Capture,
        client: tuple[str, int] = ("10.0.0.1", 40000),
        server: tuple[str, int] = ("10.0.0.2", 80),
        client_isn: int = 1000,
        server_isn: int = 5000,
    ) -> None:
        self.capture = capture
        self.c = Side(*client, seq=client_isn)
        self.s = Side(*server, seq=server_isn)

    def side(self, who: str) -> tuple[Side, Side]:
        return (self.c, self.s) if who == "c" else (self.s, self.c)

    def send(
        self,
        who: str,
        flags: int,
        data: int = 0,
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int = 512,
        ttl: int | None = None,
        options: SynOptions | None = None,
        advance: bool = True,
        dt: float = 0.001,
    ) -> TcpSegment:
        me, peer = self.side(who)
        frame, time = self.capture.next_frame(dt)
        seg = TcpSegment(
            frame=frame,
            time=time,
            src=me.addr,
            dst=peer.addr,
            sport=me.port,
            dport=peer.port,
            seq=me.seq if seq is None else seq & MASK,
            ack=(peer.seq if ack is None else ack & MASK) if flags & ACK else 0,
            flags=flags,
            window=window,
            payload_len=data,
            ttl=me.ttl if ttl is None else ttl,
            ip_version=6 if ":" in me.addr else 4,
            syn_options=options if flags & SYN else None,
        )
        self.capture.packets.append(seg)
        if advance and seq is None:
            me.seq = (me.seq + data + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & MASK
        return seg

    # Common exchanges -------------------------------------------------------------------------

    def handshake(self) -> None:
        self.send("c", SYN, options=LINUX_SYN)
        self.send("s", SYN | ACK, options=LINUX_SYN)
        self.send("c", ACK)

    def data(self, who: str, n: int) -> None:
        other = "s" if who == "c" else "c"
        self.send(who, PSH | ACK, n)
        self.send(other, ACK)

    def close(self, first: str) -> None:
        other = "s" if first == "c" else "c"
        self.send(first, FIN | ACK)
        self.send(other, FIN | ACK)
        self.send(first, ACK)

    def rst(self, who: str, *, with_ack: bool = True, **kw: object) -> TcpSegment:
        return self.send(who, RST | (ACK if with_ack else 0), advance=False, **kw)  # type: ignore[arg-type]

    def icmp(
        self, about: TcpSegment, icmp_type: int, code: int, src: str, mtu: int | None = None
    ) -> None:
        frame, time = self.capture.next_frame(0.001)
        self.capture.packets.append(
            IcmpError(
                frame=frame,
                time=time,
                src=src,
                dst=about.src,
                ip_version=about.ip_version,
                icmp_type=icmp_type,
                icmp_code=code,
                ttl=64,
                quoted=QuotedTcp(
                    about.src, about.dst, about.sport, about.dport, about.seq, 0, about.flags
                ),
                mtu=mtu,
            )
        )


def established(capture: Capture, client_host: str, count: int) -> list[Conversation]:
    """`count` connections from `client_host` (ports 40000 on), each past its handshake with
    100 bytes sent by the client and acknowledged."""
    conversations = []
    for k in range(count):
        conv = Conversation(capture, client=(client_host, 40000 + k))
        conv.handshake()
        conv.data("c", 100)
        conversations.append(conv)
    return conversations


def write_pcap(capture: Capture, path: Path) -> None:
    """Write the TCP segments of `capture` as an Ethernet pcap, IPv4 or IPv6 (dpkt), so a
    crafted case can go through the whole pipeline, reader and decoder included."""
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, nano=False)
        for pkt in capture.packets:
            if isinstance(pkt, IcmpError):
                writer.writepkt(_icmp_frame(pkt), ts=pkt.time)
                continue
            options = b""
            if pkt.syn_options and pkt.syn_options.mss:
                options = b"\x02\x04" + pkt.syn_options.mss.to_bytes(2, "big")
            if pkt.syn_options and pkt.syn_options.window_scale is not None:
                options += b"\x01\x03\x03" + bytes([pkt.syn_options.window_scale])
            tcp = dpkt.tcp.TCP(
                sport=pkt.sport, dport=pkt.dport, seq=pkt.seq, ack=pkt.ack, flags=pkt.flags,
                win=pkt.window, opts=options, off=(20 + len(options)) // 4,
                data=b"x" * pkt.payload_len,
            )  # fmt: skip
            ip: dpkt.Packet
            if pkt.ip_version == 6:
                ip = dpkt.ip6.IP6(
                    src=socket.inet_pton(socket.AF_INET6, pkt.src),
                    dst=socket.inet_pton(socket.AF_INET6, pkt.dst), nxt=6, hlim=pkt.ttl,
                    plen=len(bytes(tcp)), data=tcp,
                )  # fmt: skip
                kind = dpkt.ethernet.ETH_TYPE_IP6
            else:
                ip = dpkt.ip.IP(
                    src=socket.inet_aton(pkt.src), dst=socket.inet_aton(pkt.dst), p=6,
                    ttl=pkt.ttl, id=pkt.ip_id or 0, data=tcp,
                )  # fmt: skip
                kind = dpkt.ethernet.ETH_TYPE_IP
            frame = dpkt.ethernet.Ethernet(data=ip, type=kind)
            writer.writepkt(bytes(frame), ts=pkt.time)


def _icmp_frame(icmp: IcmpError) -> bytes:
    """An IPv4 ICMP error as Ethernet bytes, quoting the IP header and the TCP header of the
    segment it is about (its first 8 bytes, all RFC 792 asks for, if its flags are unknown)."""
    assert icmp.ip_version == 4 and icmp.quoted is not None, "IPv4 ICMP errors only"
    q = icmp.quoted
    quoted_tcp = struct.pack("!HHI", q.sport, q.dport, q.seq)
    if q.flags is not None:
        quoted_tcp += struct.pack("!IBBHHH", 0, 5 << 4, q.flags, 0, 0, 0)
    quoted_ip = dpkt.ip.IP(
        src=socket.inet_aton(q.src), dst=socket.inet_aton(q.dst), p=6, len=40,
    )  # fmt: skip
    body = bytes(quoted_ip)[:20] + quoted_tcp
    message = dpkt.icmp.ICMP(type=icmp.icmp_type, code=icmp.icmp_code, data=b"\0" * 4 + body)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(icmp.src), dst=socket.inet_aton(icmp.dst), p=1, ttl=icmp.ttl,
        data=message,
    )  # fmt: skip
    return bytes(dpkt.ethernet.Ethernet(data=ip, type=dpkt.ethernet.ETH_TYPE_IP))


def track(capture: Capture) -> list[TrackedConnection]:
    return list(FlowTable().track(capture.packets))


_ENGINE: RuleEngine | None = None


def findings_of(conn: TrackedConnection) -> list[Finding]:
    """The findings of one connection, by the shipped rules."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = RuleEngine(load_rules())
    return _ENGINE.findings_for(conn)


def findings(capture: Capture) -> list[Finding]:
    return [f for conn in track(capture) for f in findings_of(conn)]


def categories(capture: Capture) -> list[str]:
    return [f.category for f in findings(capture)]


class FullDisk:
    """A temporary file on a full disk: every write fails with ENOSPC (monkeypatched in for
    tempfile.TemporaryFile)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._file: IO[bytes] = open("/dev/full", "w+b")  # noqa: SIM115

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")
