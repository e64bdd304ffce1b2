#!/usr/bin/env python3
"""Write a large, realistic synthetic capture for benchmarking tcpdiag.

    python bench/make_capture.py --packets 1200000 --out bench/out/base.pcap [--seed 1]

Classic pcap (little-endian, microseconds, Ethernet, snaplen 262144), full payload bytes. The tap
sits in front of a server farm: ~2000 new connections per second from ~8 connections per client
host, each living ~2-3 s, so thousands are open at once. Most connections are healthy: a 3-way
handshake with Linux's SYN options (MSS, SACK-permitted, timestamps, window scale), one or more
request/response rounds (TLS records on 443, HTTP/1.1 on 80) with delayed and every-other-segment
ACKs, and a FIN close in either order. About 5 % are failures, each shaped like the real Linux
kernel's wire signature (see samples/README.md, "What the wire showed"); `SCENARIOS` lists them
and the tcpdiag category each one must produce.

Packets are built from struct templates (no scapy); IP and TCP checksums are correct. Each
connection is planned as a short list of abstract segments, serialised, and merged into the output
in time order through a heap, so memory follows the live connections. Deterministic for a given
seed. A manifest (`<out>.manifest.json`) records the parameters and the expected finding counts
per tcpdiag category; bench/run.py uses it to reuse the capture and to check tcpdiag's report.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import math
import random
import struct
import sys
import time
from pathlib import Path

GENERATOR_VERSION = 1
EPOCH = 1_732_536_000  # 2024-11-25 12:00:00 UTC: first connection of the capture
SNAPLEN = 262_144
MSS = 1448  # 1460 - 12 bytes of timestamp option
DEFAULT_RATE = 2000.0  # new connections per second

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF

# Abstract segment kinds: which options and IP header fields the serializer writes.
K_TS = 0  # ordinary segment from a Linux socket: timestamps option, DF, per-socket IP ID
K_SYN = 1  # Linux SYN: MSS 1460, SACK-permitted, TS, NOP, WS 7
K_SYNACK = 2  # Linux SYN-ACK: the same layout, TSecr = the SYN's TSval
K_BARE = 3  # kernel reply without a socket (RST to a closed port or closed socket): no options
K_INJ = 4  # injected by a middlebox: no options, TTL 50, IP ID 1, no DF, window 0
K_SCAN_SYN = 5  # nmap -sS raw SYN: MSS only, window 1024, random TTL 37-59, no DF
K_SCAN_SYNACK = 6  # Linux SYN-ACK to an MSS-only SYN: MSS only
K_OOW = 7  # off-path blind RST: no options, IP ID 1, no DF
K_ICMP = 8  # ICMP error quoting the last packet of `side` (IP header + 8 TCP bytes)

C, S = 0, 1  # direction: from client, from server

# Scenario -> tcpdiag category it must produce (one finding per connection).
SCENARIOS = {
    "refused": "refused",
    "scan_closed_port": "refused",
    "half_open_scan": "half_open_scan",
    "peer_reset_linger0": "peer_reset",
    "peer_reset_unread_data": "peer_reset",
    "broken_pipe": "broken_pipe",
    "fin_wait_reset": "fin_wait_reset",
    "keepalive_timeout": "keepalive_timeout",
    "retransmission_timeout": "retransmission_timeout",
    "local_abort": "local_abort",
    "icmp_host_unreachable_syn": "icmp_error",
    "icmp_host_unreachable_established": "icmp_error",
    "ignored_reset_out_of_window": "ignored_reset",
    "injected_reset_ttl": "injected_reset",
}

# Probability that a new connection plan is a failure of this kind (the rest are healthy).
# A scan plan makes ~1.5 half-open and ~3 closed-port probes; a local abort plan 3 connections.
PLAN_WEIGHTS = {
    "refused": 0.0045,
    "scan": 0.0014,
    "peer_reset_linger0": 0.0040,
    "peer_reset_unread_data": 0.0040,
    "broken_pipe": 0.0040,
    "fin_wait_reset": 0.0040,
    "keepalive_timeout": 0.0035,
    "retransmission_timeout": 0.0035,
    "local_abort": 0.0014,
    "icmp_host_unreachable_syn": 0.0040,
    "icmp_host_unreachable_established": 0.0030,
    "ignored_reset_out_of_window": 0.0040,
    "injected_reset_ttl": 0.0040,
}

# tcpdiag counts RST/ACKs from one host within 50 ms as a burst (local_abort): keep every other
# accepted RST/ACK at least this far from any other one sent by (or claimed from) the same host.
RST_SPACING_US = 250_000

REC = struct.Struct("<IIII")
IPTCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
IPH = struct.Struct("!BBHHHBBH4s4s")
ICMPH = struct.Struct("!BBHI")
TSOPT = struct.Struct("!BBBBII")
SYNOPT = struct.Struct("!BBHBBBBIIBBBB")
HTTP_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: %05d\r\nConnection: keep-alive\r\n\r\n"
)
HTTP_HEAD_LEN = len(HTTP_HEAD % 0)


def _sum16(data: bytes) -> int:
    """The 16-bit one's complement sum of `data`, modulo 65535 (2^16 = 1 mod 65535)."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def _fold(total: int) -> int:
    """The Internet checksum field for a sum of 16-bit words (RFC 1071; 0x0000, not 0xFFFF,
    when the one's complement sum is 0xFFFF, as RFC 1624 asks)."""
    r = total % 0xFFFF
    return 0xFFFF - r if r else 0


def _words(addr: bytes) -> int:
    return (addr[0] << 8 | addr[1]) + (addr[2] << 8 | addr[3])


def _mac(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(6 - len(prefix), "big")


GATEWAY_MAC = bytes.fromhex("001b21a0c001")
GATEWAY_IP = bytes([10, 20, 255, 1])


class Host:
    __slots__ = ("ip", "next_port", "rtt", "ttl")

    def __init__(self, ip: bytes, rng: random.Random) -> None:
        self.ip = ip
        # Path RTT from the tap to the client, microseconds: mostly LAN/metro, some far away.
        self.rtt = int(min(250_000, max(250, rng.lognormvariate(math.log(12_000), 1.1))))
        self.ttl = 64 - rng.randint(1, 10)  # a few router hops away (never 50: see injected)
        self.next_port = rng.randint(32768, 60999)

    def port(self, rng: random.Random) -> int:
        port = self.next_port
        self.next_port += rng.randint(1, 64)
        if self.next_port > 60999:
            self.next_port -= 60999 - 32768
        return port


class Conn:
    """One connection being planned: abstract segments in time order, plus both ends' state."""

    __slots__ = (
        "c_isn",
        "c_nxt",
        "c_win",
        "client",
        "cport",
        "end",
        "gen",
        "http",
        "pending_ack",
        "rtt",
        "s_isn",
        "s_nxt",
        "s_win",
        "segs",
        "server",
        "sport",
        "t",
    )

    def __init__(
        self, gen: Generator, t: int, client: Host, server: int, sport: int, cport: int = 0
    ) -> None:
        rng = gen.rng
        self.gen = gen
        self.t = t
        self.client = client
        self.server = server
        self.sport = sport
        self.cport = cport or client.port(rng)
        self.rtt = client.rtt
        self.http = sport == 80
        self.c_isn = rng.getrandbits(32)
        self.s_isn = rng.getrandbits(32)
        self.c_nxt = self.c_isn
        self.s_nxt = self.s_isn
        self.c_win = 502
        self.s_win = 509
        self.segs: list[tuple] = []
        self.pending_ack: int | None = None  # the client's delayed ACK, not yet sent
        self.end = t

    # -- building blocks -------------------------------------------------------------------

    def add(self, t, side, flags, seq, ack, win, payload=b"", kind=K_TS) -> None:
        self.segs.append((t, side, flags, seq & M32, ack & M32, win, payload, kind))
        if t > self.end:
            self.end = t

    def handshake(self) -> None:
        rng = self.gen.rng
        t = self.t
        self.add(t, C, SYN, self.c_isn, 0, 64240, kind=K_SYN)
        self.c_nxt = (self.c_isn + 1) & M32
        t += rng.randint(25, 120)
        self.add(t, S, SYN | ACK, self.s_isn, self.c_nxt, 65160, kind=K_SYNACK)
        self.s_nxt = (self.s_isn + 1) & M32
        t += self.rtt
        self.add(t, C, ACK, self.c_nxt, self.s_nxt, self.c_win)
        self.t = t

    def flush_client_ack(self, before: int) -> None:
        """Send the client's delayed ACK if it falls due before the client's next segment."""
        if self.pending_ack is not None and self.pending_ack < before:
            self.add(self.pending_ack, C, ACK, self.c_nxt, self.s_nxt, self.c_win)
        self.pending_ack = None

    def request(self, gap: int, size: int | None = None) -> int:
        """The client sends one request segment `gap` us after the last event; returns its size."""
        gen = self.gen
        t = self.t + gap
        self.flush_client_ack(t)
        payload = gen.request_payload(self.http, size)
        self.add(t, C, PSH | ACK, self.c_nxt, self.s_nxt, self.c_win, payload)
        self.c_nxt = (self.c_nxt + len(payload)) & M32
        self.s_win = min(3000, self.s_win + len(payload) // 512)
        self.t = t
        return len(payload)

    def server_ack(self, delay: int) -> None:
        self.t += delay
        self.add(self.t, S, ACK, self.s_nxt, self.c_nxt, self.s_win)

    def respond(self, nbytes: int, think: int, unsent: int = 0) -> None:
        """The server answers after `think` us: segments in ACK-clocked flights (IW 10)."""
        rng = self.gen.rng
        t = self.t
        if think > 40_000:
            self.add(t + 40_000, S, ACK, self.s_nxt, self.c_nxt, self.s_win)  # delayed ACK
        t += think
        payloads = self.gen.response_payloads(self.http, nbytes, unsent)
        flight, i, n = 10, 0, len(payloads)
        while i < n:
            last_ack_t = t
            chunk = payloads[i : i + flight]
            seg_t = t
            for j, payload in enumerate(chunk):
                if j:
                    seg_t += 12 + rng.randint(0, 3)  # back to back at ~1 Gbit/s
                last = i + j == n - 1
                flags = PSH | ACK if last else ACK
                self.add(seg_t, S, flags, self.s_nxt, self.c_nxt, self.s_win, payload)
                self.s_nxt = (self.s_nxt + len(payload)) & M32
                self.c_win = min(6000, self.c_win + len(payload) // 256)
                ack_t = seg_t + self.rtt + rng.randint(5, 60)
                if j % 2 == 1:
                    self.add(ack_t, C, ACK, self.c_nxt, self.s_nxt, self.c_win)
                    last_ack_t = ack_t
                elif last:
                    # Odd last segment: quick ACK at first, else the delayed-ACK timer.
                    delack = 0 if rng.random() < 0.5 else rng.randint(4_000, 40_000)
                    self.pending_ack = ack_t + delack
                    last_ack_t = ack_t
                else:
                    last_ack_t = ack_t
            i += len(chunk)
            t = last_ack_t + 10
            flight *= 2
        self.t = max(self.t, t - 10)

    def close(self, idle: int) -> None:
        """FIN both ways; the client closes first in most connections."""
        rng = self.gen.rng
        t = self.t + idle
        self.flush_client_ack(t)
        if rng.random() < 0.65:
            self.add(t, C, FIN | ACK, self.c_nxt, self.s_nxt, self.c_win)
            self.c_nxt = (self.c_nxt + 1) & M32
            t += rng.randint(30, 400)
            self.add(t, S, FIN | ACK, self.s_nxt, self.c_nxt, self.s_win)
            self.s_nxt = (self.s_nxt + 1) & M32
            t += self.rtt
            self.add(t, C, ACK, self.c_nxt, self.s_nxt, self.c_win)
        else:
            self.add(t, S, FIN | ACK, self.s_nxt, self.c_nxt, self.s_win)
            self.s_nxt = (self.s_nxt + 1) & M32
            t += self.rtt + rng.randint(50, 2_000)
            self.add(t, C, FIN | ACK, self.c_nxt, self.s_nxt, self.c_win)
            self.c_nxt = (self.c_nxt + 1) & M32
            t += rng.randint(20, 80)
            self.add(t, S, ACK, self.s_nxt, self.c_nxt, self.s_win)
        self.t = t

    def round(self, gap: int) -> None:
        gen = self.gen
        self.request(gap)
        self.respond(gen.response_size(), gen.think_time())

    def rst(self, t: int, side: int, kind: int = K_TS) -> None:
        """RST/ACK from a socket (linger 0, abort, keepalive): seq = SND.NXT, window not 0."""
        if side == C:
            self.add(t, C, RST | ACK, self.c_nxt, self.s_nxt, self.c_win, kind=kind)
        else:
            self.add(t, S, RST | ACK, self.s_nxt, self.c_nxt, self.s_win, kind=kind)
        self.t = t


class Generator:
    def __init__(self, packets: int, seed: int, rate: float = DEFAULT_RATE) -> None:
        self.target = packets
        self.seed = seed
        self.rate = rate
        self.rng = rng = random.Random(seed)
        self.blob = rng.randbytes(1 << 20)
        est_conns = max(1000, packets // 12)
        self.hosts: list[Host | None] = [None] * max(256, est_conns // 8)
        self.servers = [bytes([10, 20, 0, 11 + i]) for i in range(32)]
        self.server_mac = [_mac(b"\x52\x54\x00", i + 1) for i in range(32)]
        self.scanners = [bytes([203, 0, 113, 50 + i]) for i in range(4)]
        self.scanner_hosts: dict[bytes, Host] = {}
        self.rst_times: dict[bytes, list[int]] = {}
        self.counts = dict.fromkeys(SCENARIOS, 0)
        self.connections = 0
        self.normal_count = 0
        self.spans: list[tuple[int, int]] = []  # (start, end) per connection, for concurrency
        self.heap: list[tuple[int, int, bytes]] = []
        self.seqno = 0
        self.planned = 0
        self.written = 0
        self.plan_names = ["normal", *PLAN_WEIGHTS]
        self.plan_cum: list[float] = []
        acc = 0.0
        for name in PLAN_WEIGHTS:
            acc += PLAN_WEIGHTS[name]
            self.plan_cum.append(acc)
        self.ident = identity(packets, seed, rate)

    # -- random choices -------------------------------------------------------------------

    def host(self) -> Host:
        i = self.rng.randrange(len(self.hosts))
        host = self.hosts[i]
        if host is None:
            ip = (0xC6120000 + i + 1).to_bytes(4, "big")  # 198.18.0.0/15 (RFC 2544)
            host = self.hosts[i] = Host(ip, self.rng)
        return host

    def server_port(self) -> int:
        return 443 if self.rng.random() < 0.7 else 80

    def response_size(self) -> int:
        rng = self.rng
        if rng.random() < 0.04:
            return rng.randint(2_000, 12_000)
        return int(min(MSS, max(60, rng.lognormvariate(math.log(280), 0.7))))

    def think_time(self) -> int:
        return int(min(400_000, max(150, self.rng.lognormvariate(math.log(3_000), 1.3))))

    def request_payload(self, http: bool, size: int | None = None) -> bytes:
        rng = self.rng
        if http:
            path = f"/api/v1/items/{rng.randrange(1_000_000)}?page={rng.randrange(50)}"
            head = (
                f"GET {path} HTTP/1.1\r\nHost: shop.example.internal\r\n"
                "User-Agent: bench-client/1.0\r\nAccept: */*\r\n"
                f"X-Request-Id: {rng.getrandbits(128):032x}\r\n"
            )
            pad = (size or rng.randint(150, 700)) - len(head) - 2
            cookie = "" if pad < 12 else f"Cookie: s={'a' * (pad - 12)}\r\n"
            return (head + cookie + "\r\n").encode()
        size = size or rng.randint(100, 600)
        return self.record(size)

    def record(self, size: int) -> bytes:
        """A TLS 1.2/1.3 application-data record of `size` bytes in all."""
        off = self.rng.randrange(len(self.blob) - MSS)
        return b"\x17\x03\x03" + (size - 5).to_bytes(2, "big") + self.blob[off : off + size - 5]

    def response_payloads(self, http: bool, nbytes: int, unsent: int = 0) -> list[bytes]:
        """Segment payloads (each at most MSS) for a response of about `nbytes`; an HTTP
        header announces `unsent` more body bytes than these segments carry."""
        sizes = [MSS] * (nbytes // MSS)
        if nbytes % MSS or not sizes:
            sizes.append(max(nbytes % MSS, 60))
        if not http:
            return [self.record(n) for n in sizes]
        sizes[0] = max(sizes[0], HTTP_HEAD_LEN + 20)
        head = HTTP_HEAD % (sum(sizes) - HTTP_HEAD_LEN + unsent)
        out = []
        for k, n in enumerate(sizes):
            off = self.rng.randrange(len(self.blob) - MSS)
            if k == 0:
                out.append(head + self.blob[off : off + n - HTTP_HEAD_LEN])
            else:
                out.append(self.blob[off : off + n])
        return out

    def rst_free(self, ip: bytes, times: list[int], now: int) -> bool:
        log = self.rst_times.get(ip)
        if not log:
            return True
        log[:] = [x for x in log if x >= now - RST_SPACING_US]
        return all(abs(x - t) >= RST_SPACING_US for x in log for t in times)

    def note_rst(self, ip: bytes, times: list[int]) -> None:
        self.rst_times.setdefault(ip, []).extend(times)

    # -- scenarios ------------------------------------------------------------------------

    def normal(self, t: int) -> list[Conn]:
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(32), self.server_port())
        conn.handshake()
        rounds = 1 + (rng.random() < 0.4) + (rng.random() < 0.2) + (rng.random() < 0.1)
        for k in range(rounds):
            conn.round(rng.randint(10, 200) if k == 0 else rng.randint(20_000, 1_500_000))
        conn.close(rng.randint(50_000, 5_000_000))
        return [conn]

    def _established(self, t: int, rounds: int = 1, server: int | None = None) -> Conn:
        rng = self.rng
        srv = rng.randrange(32) if server is None else server
        conn = Conn(self, t, self.host(), srv, self.server_port())
        conn.handshake()
        for k in range(rounds):
            conn.round(rng.randint(10, 200) if k == 0 else rng.randint(20_000, 800_000))
        conn.flush_client_ack(conn.t + 10_000_000)
        return conn

    def _server_rst_conn(self, t: int, build) -> Conn:
        """A connection whose server sends an accepted RST/ACK: pick a server with no other
        RST/ACK near that moment, so tcpdiag does not see a burst (local_abort)."""
        rng = self.rng
        state = rng.getstate()
        order = rng.sample(range(32), 32)
        for srv in order:
            rng.setstate(state)
            conn = build(t, srv)
            rst_t = conn.segs[-1][0]
            if self.rst_free(self.servers[srv], [rst_t], t):
                self.note_rst(self.servers[srv], [rst_t])
                return conn
        return conn  # every server busy: accept a possible burst (never seen at default rates)

    def _client_rst_conn(self, t: int, build) -> Conn:
        for _ in range(50):
            conn = build(t)
            rst_t = conn.segs[-1][0]
            if self.rst_free(conn.client.ip, [rst_t], t):
                self.note_rst(conn.client.ip, [rst_t])
                return conn
        return conn

    def refused(self, t: int) -> list[Conn]:
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(32), rng.choice((8443, 9000, 5432)))
        conn.add(t, C, SYN, conn.c_isn, 0, 64240, kind=K_SYN)
        conn.add(t + rng.randint(20, 90), S, RST | ACK, 0, conn.c_isn + 1, 0, kind=K_BARE)
        self.counts["refused"] += 1
        return [conn]

    def scan(self, t: int) -> list[Conn]:
        """nmap -sS from one source port: open ports half-open (SYN, SYN-ACK, bare RST), closed
        ones refused (RST/ACK)."""
        rng = self.rng
        ip = rng.choice(self.scanners)
        host = self.scanner_hosts.get(ip)
        if host is None:
            host = self.scanner_hosts[ip] = Host(ip, rng)
        srv = rng.randrange(32)
        sport_src = rng.randint(40000, 65000)
        open_ports = rng.sample([80, 443], rng.randint(1, 2))
        closed = rng.sample([21, 22, 23, 25, 110, 139, 445, 3306, 3389, 5900, 8080], 3)
        ports = open_ports + closed
        rng.shuffle(ports)
        conns = []
        for k, port in enumerate(ports):
            st = t + k * rng.randint(50, 900)
            conn = Conn(self, st, host, srv, port, cport=sport_src)
            conn.add(st, C, SYN, conn.c_isn, 0, 1024, kind=K_SCAN_SYN)
            if port in open_ports:
                st += rng.randint(25, 100)
                conn.add(st, S, SYN | ACK, conn.s_isn, conn.c_isn + 1, 64240, kind=K_SCAN_SYNACK)
                st += host.rtt
                conn.add(st, C, RST, conn.c_isn + 1, 0, 0, kind=K_BARE)
                self.counts["half_open_scan"] += 1
            else:
                conn.add(st + rng.randint(20, 90), S, RST | ACK, 0, conn.c_isn + 1, 0, kind=K_BARE)
                self.counts["scan_closed_port"] += 1
            conns.append(conn)
        return conns

    def peer_reset_linger0(self, t: int) -> list[Conn]:
        rng = self.rng

        def build(t: int, srv: int) -> Conn:
            conn = self._established(t, rounds=rng.randint(1, 2), server=srv)
            conn.rst(conn.t + rng.randint(1_000, 500_000), S)
            return conn

        self.counts["peer_reset_linger0"] += 1
        return [self._server_rst_conn(t, build)]

    def peer_reset_unread_data(self, t: int) -> list[Conn]:
        """Request 2 is ACKed (delayed ACK) but never read; close() then sends a RST."""
        rng = self.rng

        def build(t: int, srv: int) -> Conn:
            conn = self._established(t, server=srv)
            conn.request(rng.randint(20_000, 600_000))
            conn.server_ack(40_000 + rng.randint(0, 2_000))
            conn.rst(conn.t + rng.randint(10_000, 800_000), S)
            return conn

        self.counts["peer_reset_unread_data"] += 1
        return [self._server_rst_conn(t, build)]

    def broken_pipe(self, t: int) -> list[Conn]:
        """The client reads part of a download and closes (FIN); the server's next segment
        draws a bare RST with seq = that segment's ACK."""
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(32), self.server_port())
        conn.handshake()
        conn.request(rng.randint(10, 200))
        # A download the client abandons: the header announces more than it will read.
        conn.respond(
            rng.randint(2, 6) * MSS, conn.gen.think_time(), unsent=rng.randint(1, 9) * 10_000
        )
        tf = conn.t + rng.randint(1_000, 300_000)
        conn.flush_client_ack(tf)
        conn.add(tf, C, FIN | ACK, conn.c_nxt, conn.s_nxt, conn.c_win)
        conn.c_nxt = (conn.c_nxt + 1) & M32
        ta = tf + rng.randint(20, 200)
        conn.add(ta, S, ACK, conn.s_nxt, conn.c_nxt, conn.s_win)
        td = ta + rng.randint(500, 200_000)
        for k in range(rng.choice((1, 1, 2))):
            payload = conn.gen.record(1000) if not conn.http else conn.gen.blob[k : k + 1000]
            conn.add(td + k * 15, S, PSH | ACK, conn.s_nxt, conn.c_nxt, conn.s_win, payload)
            conn.s_nxt = (conn.s_nxt + 1000) & M32
            conn.add(td + k * 15 + conn.rtt, C, RST, conn.c_nxt, 0, 0, kind=K_BARE)
        self.counts["broken_pipe"] += 1
        return [conn]

    def fin_wait_reset(self, t: int) -> list[Conn]:
        """The client sends and shuts down writing; the server reads EOF, closes with linger 0."""
        rng = self.rng

        def build(t: int, srv: int) -> Conn:
            conn = Conn(self, t, self.host(), srv, self.server_port())
            conn.handshake()
            conn.request(rng.randint(10, 200))
            conn.server_ack(rng.randint(5, 50))
            tf = conn.t + rng.randint(50, 5_000) + conn.rtt // 2
            conn.add(tf, C, FIN | ACK, conn.c_nxt, conn.s_nxt, conn.c_win)
            conn.c_nxt = (conn.c_nxt + 1) & M32
            conn.t = tf
            conn.server_ack(rng.randint(1_000, 40_000))
            conn.rst(conn.t + rng.randint(1_000, 300_000), S)
            return conn

        self.counts["fin_wait_reset"] += 1
        return [self._server_rst_conn(t, build)]

    def keepalive_timeout(self, t: int) -> list[Conn]:
        """The server goes silent; the client's keepalive probes (seq = SND.NXT-1) go
        unanswered 1 s apart, then the client resets (ETIMEDOUT)."""
        rng = self.rng

        def build(t: int) -> Conn:
            conn = self._established(t)
            idle = rng.randint(2, 6) * 1_000_000 + rng.randint(0, 30_000)
            tp = conn.t + idle
            for _ in range(3):
                conn.add(tp, C, ACK, conn.c_nxt - 1, conn.s_nxt, conn.c_win)
                tp += 1_000_000 + rng.randint(0, 25_000)
            conn.rst(tp + rng.randint(20_000, 80_000), C)
            return conn

        self.counts["keepalive_timeout"] += 1
        return [self._client_rst_conn(t, build)]

    def retransmission_timeout(self, t: int) -> list[Conn]:
        """A request retransmitted 5 times with doubling gaps, never ACKed, then silence."""
        rng = self.rng
        conn = self._established(t, rounds=rng.randint(0, 1))
        t1 = conn.t + rng.randint(10_000, 1_500_000)
        seq = conn.c_nxt
        conn.request(t1 - conn.t)
        payload = conn.segs[-1][6]
        rto = 205_000 + rng.randint(0, 15_000)
        tr = t1
        for _ in range(5):
            tr += rto
            conn.add(tr, C, PSH | ACK, seq, conn.s_nxt, conn.c_win, payload)
            rto *= 2
        self.counts["retransmission_timeout"] += 1
        return [conn]

    def local_abort(self, t: int) -> list[Conn]:
        """ss -K on a client host: 3 idle connections to one server port reset within 1 ms."""
        rng = self.rng
        for _ in range(50):
            host = self.host()
            srv, port = rng.randrange(32), self.server_port()
            conns = []
            for k in range(3):
                conn = Conn(self, t + k * rng.randint(1_000, 100_000), host, srv, port)
                conn.handshake()
                conn.round(rng.randint(10, 200))
                conn.flush_client_ack(conn.t + 10_000_000)
                conns.append(conn)
            tr = max(c.t for c in conns) + rng.randint(100_000, 3_000_000)
            times = [tr, tr + rng.randint(50, 400), tr + rng.randint(450, 950)]
            if self.rst_free(host.ip, times, t):
                break
        self.note_rst(host.ip, times)
        rng.shuffle(conns)
        for conn, tr in zip(conns, times, strict=True):
            conn.rst(tr, C)
        self.counts["local_abort"] += 3
        return conns

    def icmp_host_unreachable_syn(self, t: int) -> list[Conn]:
        """The server host's firewall answers the SYN with ICMP host unreachable."""
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(32), self.server_port())
        conn.add(t, C, SYN, conn.c_isn, 0, 64240, kind=K_SYN)
        conn.add(t + rng.randint(20, 90), C, 1, 0, 0, 0, self.servers[conn.server], K_ICMP)
        self.counts["icmp_host_unreachable_syn"] += 1
        return [conn]

    def icmp_host_unreachable_established(self, t: int) -> list[Conn]:
        """The client vanishes after its request; the server's reply is retransmitted every
        ~204 ms (RFC 6069: no backoff) and each copy draws ICMP host unreachable from the
        gateway, until TCP_USER_TIMEOUT; then silence."""
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(32), self.server_port())
        conn.handshake()
        if rng.random() < 0.5:
            conn.round(rng.randint(10, 200))
            conn.flush_client_ack(conn.t + 10_000_000)
        conn.request(rng.randint(10, 200_000))
        ts = conn.t + conn.gen.think_time()
        payload = conn.gen.response_payloads(conn.http, rng.randint(200, MSS))[0]
        seq = conn.s_nxt
        conn.s_nxt = (seq + len(payload)) & M32
        for _ in range(1 + rng.randint(6, 16)):
            conn.add(ts, S, PSH | ACK, seq, conn.c_nxt, conn.s_win, payload)
            conn.add(ts + rng.randint(150, 900), S, 1, 0, 0, 0, GATEWAY_IP, K_ICMP)
            ts += 204_000 + rng.randint(0, 3_000)
        self.counts["icmp_host_unreachable_established"] += 1
        return [conn]

    def ignored_reset_out_of_window(self, t: int) -> list[Conn]:
        """A blind RST "from the client" with seq = RCV.NXT + 2^30: dropped; the connection
        carries on and closes gracefully."""
        rng = self.rng
        conn = self._established(t)
        ti = conn.t + rng.randint(10_000, 500_000)
        conn.add(ti, C, RST, conn.c_nxt + (1 << 30), 0, 0, kind=K_OOW)
        conn.t = ti
        conn.round(rng.randint(50_000, 600_000))
        conn.close(rng.randint(20_000, 1_000_000))
        self.counts["ignored_reset_out_of_window"] += 1
        return [conn]

    def injected_reset_ttl(self, t: int) -> list[Conn]:
        """A middlebox resets both sides (RST/ACK at exact RCV.NXT, TTL 50, window 0)."""
        rng = self.rng

        def build(t: int) -> Conn:
            conn = self._established(t, rounds=rng.randint(1, 2))
            ti = conn.t + rng.randint(5_000, 2_000_000)
            conn.add(ti, C, RST | ACK, conn.c_nxt, conn.s_nxt, 0, kind=K_INJ)
            conn.add(
                ti + rng.randint(300, 1_500), S, RST | ACK, conn.s_nxt, conn.c_nxt, 0, kind=K_INJ
            )
            return conn

        self.counts["injected_reset_ttl"] += 1
        return [self._client_rst_conn(t, build)]

    # -- serialisation ---------------------------------------------------------------------

    def serialize(self, conn: Conn) -> None:
        """Turn the connection's abstract segments into pcap records on the merge heap."""
        segs = conn.segs
        segs.sort(key=lambda s: s[0])
        rng = self.rng
        srv = conn.server
        c_ip, s_ip = conn.client.ip, self.servers[srv]
        eth = (
            self.server_mac[srv] + GATEWAY_MAC + b"\x08\x00",  # client -> server
            GATEWAY_MAC + self.server_mac[srv] + b"\x08\x00",  # server -> client
        )
        addrs = ((c_ip, s_ip), (s_ip, c_ip))
        addr_sum = _words(c_ip) + _words(s_ip)
        ports = ((conn.cport, conn.sport), (conn.sport, conn.cport))
        ttl = (conn.client.ttl, 64)
        ipid = [rng.getrandbits(16), rng.getrandbits(16)]
        ts_base = (rng.getrandbits(32), rng.getrandbits(32))
        last_ts = [0, 0]
        last_hdr = [b"", b""]
        heap, push = self.heap, heapq.heappush
        seqno = self.seqno
        for t, side, flags, seq, ack, win, payload, kind in segs:
            if kind == K_ICMP:
                pkt = self._icmp(side, flags, payload, addrs[side][0], last_hdr[side], eth, rng)
            else:
                frag, id_, tt = 0x4000, 0, ttl[side]
                if kind == K_TS:
                    tsval = (ts_base[side] + t // 1000) & M32
                    last_ts[side] = tsval
                    opts = TSOPT.pack(1, 1, 8, 10, tsval, last_ts[1 - side])
                    id_ = ipid[side] = (ipid[side] + 1) & 0xFFFF
                elif kind in (K_SYN, K_SYNACK):
                    tsval = (ts_base[side] + t // 1000) & M32
                    last_ts[side] = tsval
                    opts = SYNOPT.pack(
                        2, 4, 1460, 4, 2, 8, 10, tsval, last_ts[1 - side], 1, 3, 3, 7
                    )
                    if kind == K_SYN:
                        id_ = ipid[side] = (ipid[side] + 1) & 0xFFFF
                elif kind == K_BARE:
                    opts = b""
                elif kind == K_SCAN_SYN:
                    opts = b"\x02\x04\x05\xb4"
                    frag, id_, tt = 0, rng.getrandbits(16), rng.randint(37, 59)
                elif kind == K_SCAN_SYNACK:
                    opts = b"\x02\x04\x05\xb4"
                elif kind == K_INJ:
                    opts, frag, id_, tt = b"", 0, 1, 50
                else:  # K_OOW
                    opts, frag, id_, tt = b"", 0, 1, 57
                data = opts + payload if opts else payload
                doff = (20 + len(opts)) >> 2
                tcp_len = 20 + len(data)
                total = 20 + tcp_len
                sport, dport = ports[side]
                ip_sum = 0x4500 + total + id_ + frag + (tt << 8 | 6) + addr_sum
                tcp_sum = (
                    addr_sum
                    + 6
                    + tcp_len
                    + sport
                    + dport
                    + (seq >> 16)
                    + (seq & 0xFFFF)
                    + (ack >> 16)
                    + (ack & 0xFFFF)
                    + (doff << 12 | flags)
                    + win
                    + (_sum16(data) if data else 0)
                )
                src, dst = addrs[side]
                hdr = IPTCP.pack(
                    0x45,
                    0,
                    total,
                    id_,
                    frag,
                    tt,
                    6,
                    _fold(ip_sum),
                    src,
                    dst,
                    sport,
                    dport,
                    seq,
                    ack,
                    doff << 4,
                    flags,
                    win,
                    _fold(tcp_sum),
                    0,
                )
                last_hdr[side] = hdr[:28]
                pkt = eth[side] + hdr + data
            sec, usec = divmod(t, 1_000_000)
            n = len(pkt)
            seqno += 1
            push(heap, (t, seqno, REC.pack(EPOCH + sec, usec, n, n) + pkt))
        self.seqno = seqno
        self.connections += 1
        self.planned += len(segs)
        self.spans.append((segs[0][0], segs[-1][0]))

    def _icmp(self, side, code, source, quoted_src, quoted, eth, rng) -> bytes:
        """ICMP destination unreachable to the sender of `quoted` (IP header + 8 TCP bytes)."""
        body = ICMPH.pack(3, code, 0, 0) + quoted
        body = ICMPH.pack(3, code, _fold(_sum16(body)), 0) + quoted
        total = 20 + len(body)
        ttl = 64 if source != GATEWAY_IP else 255
        id_ = rng.getrandbits(16)
        dst = quoted_src
        ip_sum = 0x4500 + total + id_ + (ttl << 8 | 1) + _words(source) + _words(dst)
        ip_sum += 0xC0  # TOS: internetwork control, as Linux sends ICMP errors
        ip = IPH.pack(0x45, 0xC0, total, id_, 0, ttl, 1, _fold(ip_sum), source, dst)
        # To the quoted packet's sender: the reverse of that packet's Ethernet direction.
        return eth[1 - side] + ip + body

    # -- main loop --------------------------------------------------------------------------

    def plan(self, t: int) -> list[Conn]:
        r = self.rng.random()
        for name, cum in zip(self.plan_names[1:], self.plan_cum, strict=True):
            if r < cum:
                return getattr(self, name)(t)
        self.normal_count += 1
        return self.normal(t)

    def write(self, out: Path) -> dict:
        rng = self.rng
        heap = self.heap
        pop = heapq.heappop
        mean_gap = 1_000_000 / self.rate
        t = 0
        buf: list[bytes] = []
        buffered = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))
            while self.planned < self.target:
                t += max(1, int(rng.expovariate(1.0) * mean_gap))
                while heap and heap[0][0] < t:
                    rec = pop(heap)[2]
                    buf.append(rec)
                    buffered += len(rec)
                    if buffered > 1 << 22:
                        f.write(b"".join(buf))
                        buf.clear()
                        buffered = 0
                for conn in self.plan(t):
                    self.serialize(conn)
            while heap:
                buf.append(pop(heap)[2])
            f.write(b"".join(buf))
        tmp.replace(out)
        self.written = self.seqno
        return self.summary(out)

    def summary(self, out: Path) -> dict:
        events = [(s, 1) for s, _ in self.spans] + [(e, -1) for _, e in self.spans]
        events.sort()
        live = peak = 0
        for _, d in events:
            live += d
            peak = max(peak, live)
        first = min(s for s, _ in self.spans)
        last = max(e for _, e in self.spans)
        duration = (last - first) / 1e6
        mean_live = sum(e - s for s, e in self.spans) / max(last - first, 1)
        expected: dict[str, int] = {}
        for scenario, n in self.counts.items():
            cat = SCENARIOS[scenario]
            expected[cat] = expected.get(cat, 0) + n
        size = out.stat().st_size
        failing = sum(self.counts.values())
        return {
            **self.ident,
            "path": str(out),
            "packets": self.written,
            "connections": self.connections,
            "healthy_connections": self.normal_count,
            "failing_connections": failing,
            "bytes": size,
            "bytes_per_packet": round(size / max(self.written, 1), 1),
            "packets_per_connection": round(self.written / max(self.connections, 1), 2),
            "duration_s": round(duration, 3),
            "peak_live_connections": peak,
            "mean_live_connections": round(mean_live),
            "scenarios": dict(self.counts),
            "expected_findings": expected,
        }


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def identity(packets: int, seed: int, rate: float = DEFAULT_RATE) -> dict:
    """The parameters that determine the capture's bytes (the manifest must match them)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "packets_requested": packets,
        "seed": seed,
        "rate": rate,
        "source_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
    }


def generate(packets: int, out: Path, seed: int = 1, rate: float = DEFAULT_RATE) -> dict:
    start = time.perf_counter()
    gen = Generator(packets, seed, rate)
    summary = gen.write(out)
    summary["generation_seconds"] = round(time.perf_counter() - start, 2)
    manifest_path(out).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_summary(s: dict) -> None:
    print(
        f"wrote {s['path']}: {s['packets']} packets, {s['connections']} connections "
        f"({s['healthy_connections']} healthy, {s['failing_connections']} failing = "
        f"{100 * s['failing_connections'] / max(s['connections'], 1):.1f} %), "
        f"{s['bytes'] / 1e6:.1f} MB ({s['bytes_per_packet']} B/packet), "
        f"{s['packets_per_connection']} packets/connection"
    )
    print(
        f"capture spans {s['duration_s']} s; live connections: peak {s['peak_live_connections']},"
        f" mean {s['mean_live_connections']}; generated in {s.get('generation_seconds', '?')} s"
    )
    print("per scenario (connections):")
    for name, n in s["scenarios"].items():
        print(f"  {name:36s} {n:7d}  -> {SCENARIOS[name]}")
    print("expected tcpdiag findings per category:")
    for cat, n in sorted(s["expected_findings"].items()):
        print(f"  {cat:36s} {n:7d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, required=True, help="packets to write (at least)")
    parser.add_argument("--out", type=Path, required=True, help="pcap file to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="new connections per second"
    )
    args = parser.parse_args(argv)
    if args.packets < 1000:
        parser.error("--packets must be at least 1000")
    print_summary(generate(args.packets, args.out, args.seed, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
