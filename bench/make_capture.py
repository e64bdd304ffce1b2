#!/usr/bin/env python3
"""Write a large, realistic synthetic capture for benchmarking tcpdiag.

    python bench/make_capture.py --packets 1200000 --out bench/out/base.pcap [--seed 1]
    python bench/make_capture.py --shape ipv6 --scale 0.5 --out /tmp/v6.pcap
    python bench/make_capture.py --packets 200000 --gap-us 10 --failure-share 0.17 --out x.pcap

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
The ground truth (`<out>.truth.json`) lists every injected failure: category, client, server and
scenario, so a report can be checked connection by connection (bench/groundtruth.py).

`Knobs` change the traffic (packet gap, failure share, packets per connection, streams open at
both ends, concurrency, a SYN flood, a resetting server, IPv6, VLAN tags, retransmission and
reordering); with every knob at its default the capture is the original one, byte for byte.
`SHAPES` names the combinations that `bench/run.py --matrix` measures.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import ipaddress
import itertools
import json
import math
import os
import random
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field, fields, replace
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
    "bad_server_reset": "peer_reset",
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
# The resetting server of the `bad_server` knob resets far more often: its RST/ACKs are kept this
# far apart instead (tcpdiag's burst window is 10 ms).
BAD_SERVER_SPACING_US = 20_000
# Packets of an ordinary connection with the default mix (to turn a packet gap into a rate).
DEFAULT_PACKETS_PER_CONN = 11.5
DEFAULT_GAP_US = 1_000_000 / (DEFAULT_RATE * DEFAULT_PACKETS_PER_CONN)


@dataclass(frozen=True)
class Knobs:
    """What a capture looks like beyond its size and seed. The defaults write the original
    capture, byte for byte: a knob consumes random numbers only when it is set."""

    rate: float = DEFAULT_RATE  # new connections per second
    gap_us: float | None = None  # mean packet gap in steady state: sets the rate, compresses time
    failure_share: float | None = None  # share of connection plans that are failures
    weights: dict[str, float] = field(default_factory=dict)  # PLAN_WEIGHTS overrides
    packets_per_conn: int | None = None  # packets of each healthy connection (>= 6)
    open_conns: int = 0  # long streams already open when the capture starts, still open at its end
    idle_s: float = 0.0  # extra mean idle time before a healthy connection closes (concurrency)
    flood_rate: float = 0.0  # spoofed SYNs per second (distinct 4-tuples), mixed in
    bad_server: float = 0.0  # plan weight of connections to server 0, which resets 80 % of them
    ipv6: float = 0.0  # share of client hosts (and their connections) on IPv6
    vlan: int | None = None  # 802.1Q VLAN id on every frame
    retrans: float = 0.0  # share of healthy data segments retransmitted (spuriously)
    reorder: float = 0.0  # share of healthy data segments swapped with the next one

    def changed(self) -> dict:
        """The knobs that differ from the defaults (what the manifest's identity records)."""
        base = Knobs()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(base, f.name)
        }


# The benchmark matrix: shape -> (packets at --scale 1, knobs, what it is). Sizes are modest so
# that the whole matrix (tcpdiag, tcpdiag flows and tshark on each) runs in minutes.
SHAPES: dict[str, tuple[int, Knobs, str]] = {
    "base": (300_000, Knobs(), "the default mix: 2000 connections/s, ~5 % failures"),
    "gap_1us": (300_000, Knobs(gap_us=1), "1 us between packets (~87k connections/s)"),
    "gap_10us": (300_000, Knobs(gap_us=10), "10 us between packets"),
    "gap_100us": (300_000, Knobs(gap_us=100), "100 us between packets"),
    "gap_1ms": (100_000, Knobs(gap_us=1000), "1 ms between packets (a quiet link, ~100 s)"),
    "fail_0": (300_000, Knobs(failure_share=0.0), "no failures at all"),
    "fail_17": (300_000, Knobs(failure_share=0.17), "17 % of connection plans fail"),
    "fail_50": (300_000, Knobs(failure_share=0.50), "half of the connection plans fail"),
    "ppc_6": (300_000, Knobs(packets_per_conn=6), "healthy connections of 6 packets (no data)"),
    "ppc_12": (300_000, Knobs(packets_per_conn=12), "healthy connections of ~12 packets"),
    "ppc_100": (300_000, Knobs(packets_per_conn=100), "healthy connections of ~100 packets"),
    "ppc_10k": (
        600_000,
        Knobs(packets_per_conn=10_000, open_conns=8),
        "~10,000 packets per healthy connection, each lasting ~2 minutes, plus 8 streams open "
        "at both ends of the capture",
    ),
    "concurrent_50k": (
        600_000,
        Knobs(rate=4000, idle_s=30.0),
        "4000 connections/s, healthy ones idle 15-45 s before closing: ~50k open at once",
    ),
    "scan_mix": (
        300_000,
        Knobs(weights={"scan": 0.05}),
        "an nmap -sS scan mixed in (5 % of plans, ~4.5 probes each)",
    ),
    "bad_server": (
        300_000,
        Knobs(bad_server=0.02),
        "server 10.20.0.11 gets ~40 connections/s and resets 80 % of them (RSTs 20 ms apart)",
    ),
    "synflood_1m": (
        1_200_000,
        Knobs(flood_rate=200_000),
        "1M spoofed SYNs (5 us apart, distinct 4-tuples) over normal traffic",
    ),
    "ipv6": (
        300_000,
        Knobs(ipv6=1.0),
        "every client host and server on IPv6, ICMPv6 errors (nmap scans stay IPv4)",
    ),
    "ipv6_mixed": (300_000, Knobs(ipv6=0.5), "half the client hosts on IPv6"),
    "vlan": (300_000, Knobs(vlan=100), "every frame 802.1Q-tagged (VLAN 100)"),
    "retrans_reorder": (
        300_000,
        Knobs(retrans=0.05, reorder=0.05),
        "5 % of healthy data segments retransmitted, 5 % reordered",
    ),
}


def shape_knobs(name: str) -> Knobs:
    return SHAPES[name][1]


REC = struct.Struct("<IIII")
IP6TCP = struct.Struct("!IHBB16s16sHHIIBBHHH")
IP6 = struct.Struct("!IHBB16s16s")
WORDS8 = struct.Struct("!8H")
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
    if len(addr) == 16:
        return sum(WORDS8.unpack(addr))
    return (addr[0] << 8 | addr[1]) + (addr[2] << 8 | addr[3])


def endpoint_text(addr: bytes, port: int) -> str:
    """`ip:port` or `[v6]:port`, as tcpdiag writes a finding's client and server."""
    if len(addr) == 16:
        return f"[{ipaddress.IPv6Address(addr).compressed}]:{port}"
    return f"{ipaddress.IPv4Address(addr)}:{port}"


def _mac(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(6 - len(prefix), "big")


GATEWAY_MAC = bytes.fromhex("001b21a0c001")
GATEWAY_IP = bytes([10, 20, 255, 1])
V6_CLIENTS = bytes.fromhex("20010db8c6120000")  # 2001:db8:c612::/64 + the host's index
V6_SERVERS = bytes.fromhex("20010db80a14000000000000")  # 2001:db8:a14::/104 + index
GATEWAY_IP6 = bytes.fromhex("20010db80a14ffff0000000000000001")


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
        "scenario",
        "segs",
        "ser",
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
        self.scenario: str | None = None  # "" = healthy; else a SCENARIOS key (ground truth)
        self.ser: tuple | None = None  # serialisation state, kept for connections sent in parts

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
    def __init__(
        self, packets: int, seed: int, rate: float = DEFAULT_RATE, knobs: Knobs | None = None
    ) -> None:
        knobs = knobs or Knobs(rate=rate)
        if knobs.rate != rate and rate != DEFAULT_RATE:
            knobs = replace(knobs, rate=rate)
        self.knobs = knobs
        self.target = packets
        self.seed = seed
        self.time_scale = 1.0  # healthy connections' think, idle and round gaps are scaled by it
        ppc = knobs.packets_per_conn or DEFAULT_PACKETS_PER_CONN
        rate = knobs.rate
        if knobs.gap_us is not None:
            rate = 1_000_000 / (knobs.gap_us * ppc)
            self.time_scale = min(1.0, knobs.gap_us / DEFAULT_GAP_US)
        elif knobs.packets_per_conn is not None:
            rate = knobs.rate * DEFAULT_PACKETS_PER_CONN / ppc  # the default packet rate
        self.rate = rate
        self.rng = rng = random.Random(seed)
        self.blob = rng.randbytes(1 << 20)
        est_conns = max(1000, packets // 12)
        self.hosts: list[Host | None] = [None] * max(256, est_conns // 8)
        # Enough servers that accepted RSTs of different connections stay RST_SPACING_US apart
        # per server: 32 at the default rate and failure share.
        weights = dict(PLAN_WEIGHTS)
        if knobs.failure_share is not None:
            total = sum(PLAN_WEIGHTS.values())
            weights = {k: v * knobs.failure_share / total for k, v in PLAN_WEIGHTS.items()}
        weights.update(knobs.weights)
        if knobs.bad_server:
            weights["bad_server"] = knobs.bad_server
        server_rst = sum(
            weights.get(k, 0.0)
            for k in ("peer_reset_linger0", "peer_reset_unread_data", "fin_wait_reset")
        )
        self.n_servers = max(32, math.ceil(rate * server_rst / 0.75))
        self.servers = [(0x0A14000B + i).to_bytes(4, "big") for i in range(self.n_servers)]
        self.server_mac = [_mac(b"\x52\x54\x00", i + 1) for i in range(self.n_servers)]
        self.servers6 = [V6_SERVERS + (11 + i).to_bytes(4, "big") for i in range(self.n_servers)]
        self.eth_tag = b"" if knobs.vlan is None else b"\x81\x00" + knobs.vlan.to_bytes(2, "big")
        self.bad_times: list[int] = []  # the resetting server's RST times, sorted
        self.background: list[Conn] = []  # streams open at both ends (open_conns)
        self.truth: list[list[str]] = []  # [category, client, server, scenario] per failure
        self.times = array("q")  # every record's time, for the packet gap statistics
        self.flood_next = 0
        self.flood_count = 0
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
        self.plan_names = ["normal", *weights]
        self.plan_cum: list[float] = []
        acc = 0.0
        for name in weights:
            acc += weights[name]
            self.plan_cum.append(acc)
        if acc > 1.0:
            raise ValueError(f"failure plan weights add up to {acc:.2f} > 1")
        self.ident = identity(packets, seed, knobs.rate, knobs)

    # -- random choices -------------------------------------------------------------------

    def host(self) -> Host:
        i = self.rng.randrange(len(self.hosts))
        host = self.hosts[i]
        if host is None:
            ip = (0xC6120000 + i + 1).to_bytes(4, "big")  # 198.18.0.0/15 (RFC 2544)
            host = self.hosts[i] = Host(ip, self.rng)
            if self.knobs.ipv6 and self.rng.random() < self.knobs.ipv6:
                host.ip = V6_CLIENTS + (i + 1).to_bytes(8, "big")
        return host

    def normal_server(self) -> int:
        """A server for a healthy connection (not the resetting one, when there is one)."""
        if self.knobs.bad_server:
            return 1 + self.rng.randrange(self.n_servers - 1)
        return self.rng.randrange(self.n_servers)

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
        if self.knobs.bad_server and ip == self.servers[0]:
            for t in times:
                bisect.insort(self.bad_times, t)

    # -- scenarios ------------------------------------------------------------------------

    def normal(self, t: int) -> list[Conn]:
        rng = self.rng
        conn = Conn(self, t, self.host(), self.normal_server(), self.server_port())
        conn.handshake()
        rounds = 1 + (rng.random() < 0.4) + (rng.random() < 0.2) + (rng.random() < 0.1)
        for k in range(rounds):
            conn.round(rng.randint(10, 200) if k == 0 else rng.randint(20_000, 1_500_000))
        conn.close(rng.randint(50_000, 5_000_000))
        return [conn]

    def custom_normal(self, t: int) -> list[Conn]:
        """A healthy connection shaped by the knobs (packets per connection, compressed time,
        extra idle time before the close)."""
        rng, knobs, f = self.rng, self.knobs, self.time_scale
        conn = Conn(self, t, self.host(), self.normal_server(), self.server_port())
        conn.scenario = ""
        conn.handshake()
        ppc = knobs.packets_per_conn
        if ppc is None:
            rounds = 1 + (rng.random() < 0.4) + (rng.random() < 0.2) + (rng.random() < 0.1)
            for k in range(rounds):
                gap = rng.randint(10, 200) if k == 0 else rng.randint(20_000, 1_500_000)
                conn.request(max(1, int(gap * f)))
                conn.respond(self.response_size(), max(1, int(self.think_time() * f)))
        elif ppc > 6:
            # Per round: a request, `segs` full segments, an ACK for every second one.
            body = ppc - 6
            rounds = max(1, round(body / min(80, body)))
            segs = max(1, round((body / rounds - 1) / 1.5))
            for k in range(rounds):
                if k == 0:
                    gap = rng.randint(10, 200)
                elif ppc >= 1000:  # a long-lived connection: ~1 s between rounds
                    gap = rng.randint(400_000, 1_200_000)
                else:
                    gap = rng.randint(20_000, 300_000)
                conn.request(max(1, int(gap * f)))
                conn.respond(segs * MSS, max(1, int(self.think_time() * f)))
        idle = rng.randint(50_000, 5_000_000) * f
        if knobs.idle_s:
            idle += knobs.idle_s * 1_000_000 * rng.uniform(0.5, 1.5)
        conn.close(max(1, int(idle)))
        return [conn]

    def bad_server(self, t: int) -> list[Conn]:
        """A connection to server 0, which resets 80 % of its connections after one round."""
        rng = self.rng
        conn = Conn(self, t, self.host(), 0, self.server_port())
        conn.handshake()
        conn.round(rng.randint(10, 200))
        conn.flush_client_ack(conn.t + 10_000_000)
        if rng.random() < 0.8:
            conn.rst(self.bad_slot(conn.t + rng.randint(1_000, 200_000)), S)
            conn.scenario = "bad_server_reset"
            self.counts["bad_server_reset"] += 1
        else:
            conn.close(rng.randint(50_000, 2_000_000))
            conn.scenario = ""
        return [conn]

    def bad_slot(self, want: int) -> int:
        """The first time >= `want` at least BAD_SERVER_SPACING_US from the resetting server's
        other RSTs; booked."""
        times, t = self.bad_times, want
        i = bisect.bisect_left(times, t - BAD_SERVER_SPACING_US)
        while i < len(times) and times[i] < t + BAD_SERVER_SPACING_US:
            t = times[i] + BAD_SERVER_SPACING_US
            i += 1
        self.note_rst(self.servers[0], [t])
        return t

    def open_stream(self, t: int) -> Conn:
        """A long download already running when the capture starts (no handshake) and still
        running when it ends (no FIN): fed a round about every second by the write loop."""
        conn = Conn(self, t, self.host(), self.normal_server(), 443)
        conn.scenario = ""
        conn.c_isn = conn.c_nxt = self.rng.getrandbits(32)
        return conn

    def feed_stream(self, conn: Conn, t: int) -> None:
        rng = self.rng
        conn.t = max(conn.t, t)
        conn.request(rng.randint(10, 200))
        conn.respond(rng.randint(20, 60) * MSS, rng.randint(200, 5_000))
        conn.t += rng.randint(500_000, 1_500_000)

    def perturb(self, conn: Conn) -> None:
        """Retransmit (spuriously, an RTT later) and reorder some of the server's data segments
        of a healthy connection."""
        rng, knobs = self.rng, self.knobs
        segs = conn.segs
        segs.sort(key=lambda s: s[0])
        data = [i for i, s in enumerate(segs) if s[1] == S and s[6]]
        closing = min((s[0] for s in segs if s[2] & (FIN | RST)), default=conn.end + 1)
        for a, b in itertools.pairwise(data):
            if rng.random() < knobs.reorder and segs[b][0] - segs[a][0] < 2_000:
                sa, sb = segs[a], segs[b]
                segs[a], segs[b] = (sa[0], *sb[1:]), (sb[0], *sa[1:])
        for i in data:
            if rng.random() < knobs.retrans:
                s = segs[i]
                again = s[0] + conn.rtt + rng.randint(200, 20_000)
                if again < closing:
                    segs.append((again, *s[1:]))

    def _established(self, t: int, rounds: int = 1, server: int | None = None) -> Conn:
        rng = self.rng
        srv = rng.randrange(self.n_servers) if server is None else server
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
        order = rng.sample(range(self.n_servers), 32)
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
        host, srv = self.host(), rng.randrange(self.n_servers)
        conn = Conn(self, t, host, srv, rng.choice((8443, 9000, 5432)))
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
        srv = rng.randrange(self.n_servers)
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
                conn.scenario = "half_open_scan"
            else:
                conn.add(st + rng.randint(20, 90), S, RST | ACK, 0, conn.c_isn + 1, 0, kind=K_BARE)
                self.counts["scan_closed_port"] += 1
                conn.scenario = "scan_closed_port"
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
        conn = Conn(self, t, self.host(), rng.randrange(self.n_servers), self.server_port())
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
            srv, port = rng.randrange(self.n_servers), self.server_port()
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
        conn = Conn(self, t, self.host(), rng.randrange(self.n_servers), self.server_port())
        conn.add(t, C, SYN, conn.c_isn, 0, 64240, kind=K_SYN)
        conn.add(t + rng.randint(20, 90), C, 1, 0, 0, 0, self.servers[conn.server], K_ICMP)
        self.counts["icmp_host_unreachable_syn"] += 1
        return [conn]

    def icmp_host_unreachable_established(self, t: int) -> list[Conn]:
        """The client vanishes after its request; the server's reply is retransmitted every
        ~204 ms (RFC 6069: no backoff) and each copy draws ICMP host unreachable from the
        gateway, until TCP_USER_TIMEOUT; then silence."""
        rng = self.rng
        conn = Conn(self, t, self.host(), rng.randrange(self.n_servers), self.server_port())
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
        if not segs:
            return
        segs.sort(key=lambda s: s[0])
        rng = self.rng
        srv = conn.server
        c_ip = conn.client.ip
        v6 = len(c_ip) == 16
        s_ip = self.servers6[srv] if v6 else self.servers[srv]
        ethertype = b"\x86\xdd" if v6 else b"\x08\x00"
        tag = self.eth_tag
        eth = (
            self.server_mac[srv] + GATEWAY_MAC + tag + ethertype,  # client -> server
            GATEWAY_MAC + self.server_mac[srv] + tag + ethertype,  # server -> client
        )
        addrs = ((c_ip, s_ip), (s_ip, c_ip))
        addr_sum = _words(c_ip) + _words(s_ip)
        ports = ((conn.cport, conn.sport), (conn.sport, conn.cport))
        ttl = (conn.client.ttl, 64)
        first = conn.ser is None
        if conn.ser is None:
            ipid = [rng.getrandbits(16), rng.getrandbits(16)]
            ts_base = (rng.getrandbits(32), rng.getrandbits(32))
            last_ts = [0, 0]
            last_hdr = [b"", b""]
            conn.ser = (ipid, ts_base, last_ts, last_hdr, segs[0][0])
        else:
            ipid, ts_base, last_ts, last_hdr, _ = conn.ser
        heap, push = self.heap, heapq.heappush
        seqno = self.seqno
        for t, side, flags, seq, ack, win, payload, kind in segs:
            if kind == K_ICMP:
                if v6:
                    source = GATEWAY_IP6 if payload == GATEWAY_IP else s_ip
                    pkt = self._icmp6(side, source, addrs[side][0], last_hdr[side], eth, rng)
                else:
                    pkt = self._icmp(side, flags, payload, addrs[side][0], last_hdr[side], eth, rng)
            elif v6:
                pkt = self._tcp6(t, side, flags, seq, ack, win, payload, kind, conn, eth, rng)
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
        self.planned += len(segs)
        if first:
            self.connections += 1
            if conn.scenario:
                self.truth.append(
                    [
                        SCENARIOS[conn.scenario],
                        endpoint_text(c_ip, conn.cport),
                        endpoint_text(s_ip, conn.sport),
                        conn.scenario,
                    ]
                )
        if conn in self.background:
            conn.segs = []
        else:
            self.spans.append((segs[0][0], segs[-1][0]))

    def _tcp6(self, t, side, flags, seq, ack, win, payload, kind, conn, eth, rng) -> bytes:
        """The IPv6 twin of the IPv4 serialiser above (hop limit for TTL, no IP ID or DF)."""
        _, ts_base, last_ts, last_hdr, _ = conn.ser
        hop = (conn.client.ttl, 64)[side]
        if kind == K_TS:
            tsval = (ts_base[side] + t // 1000) & M32
            last_ts[side] = tsval
            opts = TSOPT.pack(1, 1, 8, 10, tsval, last_ts[1 - side])
        elif kind in (K_SYN, K_SYNACK):
            tsval = (ts_base[side] + t // 1000) & M32
            last_ts[side] = tsval
            opts = SYNOPT.pack(2, 4, 1440, 4, 2, 8, 10, tsval, last_ts[1 - side], 1, 3, 3, 7)
        elif kind in (K_SCAN_SYN, K_SCAN_SYNACK):
            opts = b"\x02\x04\x05\xa0"
            if kind == K_SCAN_SYN:
                hop = rng.randint(37, 59)
        else:
            opts = b""
            if kind == K_INJ:
                hop = 50
            elif kind == K_OOW:
                hop = 57
        data = opts + payload if opts else payload
        doff = (20 + len(opts)) >> 2
        tcp_len = 20 + len(data)
        sport, dport = (conn.cport, conn.sport) if side == C else (conn.sport, conn.cport)
        src, dst = (conn.client.ip, self.servers6[conn.server])[:: 1 if side == C else -1]
        tcp_sum = (
            _words(src) + _words(dst) + 6 + tcp_len + sport + dport
            + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
            + (doff << 12 | flags) + win + (_sum16(data) if data else 0)
        )  # fmt: skip
        hdr = IP6TCP.pack(
            0x60000000, tcp_len, 6, hop, src, dst, sport, dport, seq, ack, doff << 4, flags,
            win, _fold(tcp_sum), 0,
        )  # fmt: skip
        last_hdr[side] = hdr[:48]
        return eth[side] + hdr + data

    def _icmp6(self, side, source, quoted_src, quoted, eth, rng) -> bytes:
        """ICMPv6 destination unreachable (address unreachable) quoting IPv6 + 8 TCP bytes."""
        body = ICMPH.pack(1, 3, 0, 0) + quoted
        total = _words(source) + _words(quoted_src) + len(body) + 58 + _sum16(body)
        body = ICMPH.pack(1, 3, _fold(total), 0) + quoted
        hop = 64 if source != GATEWAY_IP6 else 255
        ip = IP6.pack(0x60000000, len(body), 58, hop, source, quoted_src)
        return eth[1 - side] + ip + body

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
                conns = getattr(self, name)(t)
                for conn in conns:
                    if conn.scenario is None:
                        conn.scenario = name
                    if conn.scenario == "":
                        self.normal_count += 1
                break
        else:
            self.normal_count += 1
            knobs = self.knobs
            if knobs.packets_per_conn is not None or knobs.gap_us is not None or knobs.idle_s:
                conns = self.custom_normal(t)
            else:
                conns = self.normal(t)
            conns[0].scenario = ""
        if self.knobs.retrans or self.knobs.reorder:
            for conn in conns:
                if conn.scenario == "":
                    self.perturb(conn)
        return conns

    def flood_syn(self, t: int) -> None:
        """One spoofed SYN (MSS only, as flood tools send) from a new address and port to
        server 0 port 80, onto the merge heap."""
        i = self.flood_count
        self.flood_count += 1
        src = (0x64400000 + i // 60_000).to_bytes(4, "big")  # 100.64.0.0/10
        dst = self.servers[0]
        sport, seq = 1024 + i % 60_000, (i * 2_654_435_761) & M32
        opts = b"\x02\x04\x05\xb4"
        addr_sum = _words(src) + _words(dst)
        ip_sum = 0x4500 + 44 + (i & 0xFFFF) + (64 << 8 | 6) + addr_sum
        tcp_sum = addr_sum + 6 + 24 + sport + 80 + (seq >> 16) + (seq & 0xFFFF) + 0x6002 + 1024
        tcp_sum += 0x0204 + 0x05B4
        hdr = IPTCP.pack(
            0x45, 0, 44, i & 0xFFFF, 0, 64, 6, _fold(ip_sum), src, dst, sport, 80, seq, 0,
            6 << 4, SYN, 1024, _fold(tcp_sum), 0,
        )  # fmt: skip
        pkt = self.server_mac[0] + GATEWAY_MAC + self.eth_tag + b"\x08\x00" + hdr + opts
        sec, usec = divmod(t, 1_000_000)
        self.seqno += 1
        heapq.heappush(self.heap, (t, self.seqno, REC.pack(EPOCH + sec, usec, 58, 58) + pkt))
        self.planned += 1

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
            flood_gap = 1_000_000 / self.knobs.flood_rate if self.knobs.flood_rate else 0.0
            times = self.times
            while self.planned < self.target:
                t += max(1, int(rng.expovariate(1.0) * mean_gap))
                if self.knobs.open_conns and not self.background:
                    self.background = [self.open_stream(t) for _ in range(self.knobs.open_conns)]
                for conn in self.background:
                    if conn.t < t:
                        self.feed_stream(conn, t)
                        self.serialize(conn)
                if flood_gap:
                    while self.flood_next < t:
                        self.flood_syn(int(self.flood_next))
                        self.flood_next += flood_gap
                while heap and heap[0][0] < t:
                    item = pop(heap)
                    times.append(item[0])
                    rec = item[2]
                    buf.append(rec)
                    buffered += len(rec)
                    if buffered > 1 << 22:
                        f.write(b"".join(buf))
                        buf.clear()
                        buffered = 0
                for conn in self.plan(t):
                    self.serialize(conn)
            while heap:
                item = pop(heap)
                times.append(item[0])
                buf.append(item[2])
            f.write(b"".join(buf))
        tmp.replace(out)
        for conn in self.background:
            self.spans.append((conn.ser[4] if conn.ser else 0, conn.end))
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
            "failure_share": round(failing / max(self.connections, 1), 4),
            "servers": self.n_servers,
            "connection_rate": round(self.rate, 1),
            "flood_syns": self.flood_count,
            "open_streams": len(self.background),
            **self.gap_stats(),
        }

    def gap_stats(self) -> dict:
        """Median and mean gap between consecutive packets, microseconds."""
        import numpy as np  # a tcpdiag dependency; imported here to keep the CLI start quick

        gaps = np.diff(np.frombuffer(self.times, dtype=np.int64))
        if not len(gaps):
            return {"median_gap_us": 0.0, "mean_gap_us": 0.0}
        return {
            "median_gap_us": round(float(np.median(gaps)), 2),
            "mean_gap_us": round(float(gaps.mean()), 2),
        }


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def truth_path(out: Path) -> Path:
    return out.with_name(out.name + ".truth.json")


def identity(
    packets: int, seed: int, rate: float = DEFAULT_RATE, knobs: Knobs | None = None
) -> dict:
    """The parameters that determine the capture's bytes (the manifest must match them)."""
    ident = {
        "generator_version": GENERATOR_VERSION,
        "packets_requested": packets,
        "seed": seed,
        "rate": rate,
        "source_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
    }
    changed = knobs.changed() if knobs else {}
    changed.pop("rate", None)
    if changed:
        ident["knobs"] = changed
    return ident


def generate(
    packets: int,
    out: Path,
    seed: int = 1,
    rate: float = DEFAULT_RATE,
    knobs: Knobs | None = None,
    shape: str = "",
) -> dict:
    """Write the capture, its manifest (`<out>.manifest.json`) and its ground truth
    (`<out>.truth.json`: the findings per category tcpdiag must report, and for every injected
    failure its category, client, server and scenario)."""
    start = time.perf_counter()
    gen = Generator(packets, seed, rate, knobs)
    summary = gen.write(out)
    summary["generation_seconds"] = round(time.perf_counter() - start, 2)
    if shape:
        summary["shape"] = shape
    summary["truth"] = str(truth_path(out))
    truth = {
        "capture": str(out),
        "expected_findings": summary["expected_findings"],
        "failures": sorted(gen.truth),
    }
    truth_path(out).write_text(json.dumps(truth, indent=0) + "\n")
    manifest_path(out).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def generate_shape(name: str, out: Path, scale: float = 1.0, seed: int = 1) -> dict:
    """Write matrix shape `name` (see SHAPES) at `scale` times its packet count."""
    packets, knobs, _ = SHAPES[name]
    return generate(max(1000, int(packets * scale)), out, seed, knobs.rate, knobs, shape=name)


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
    parser.add_argument("--packets", type=int, help="packets to write (at least)")
    parser.add_argument("--out", type=Path, required=True, help="pcap file to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="new connections per second"
    )
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), help="a benchmark matrix shape (sets the knobs)"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="with --shape: size multiplier")
    knob = parser.add_argument_group("knobs (see Knobs)")
    knob.add_argument("--gap-us", type=float, help="mean packet gap (sets the connection rate)")
    knob.add_argument("--failure-share", type=float, help="share of plans that fail (0-1)")
    knob.add_argument(
        "--weight", action="append", default=[], metavar="PLAN=W", help="a plan weight override"
    )
    knob.add_argument("--packets-per-conn", type=int, help="packets per healthy connection")
    knob.add_argument("--open-conns", type=int, default=0, help="streams open at both ends")
    knob.add_argument("--idle-s", type=float, default=0.0, help="extra idle before closing")
    knob.add_argument("--flood-rate", type=float, default=0.0, help="spoofed SYNs per second")
    knob.add_argument("--bad-server", type=float, default=0.0, help="plan weight, see Knobs")
    knob.add_argument("--ipv6", type=float, default=0.0, help="share of IPv6 client hosts")
    knob.add_argument("--vlan", type=int, help="802.1Q VLAN id on every frame")
    knob.add_argument("--retrans", type=float, default=0.0, help="share retransmitted")
    knob.add_argument("--reorder", type=float, default=0.0, help="share reordered")
    args = parser.parse_args(argv)
    if args.shape:
        print_summary(generate_shape(args.shape, args.out, args.scale, args.seed))
        return 0
    if args.packets is None or args.packets < 1000:
        parser.error("--packets (at least 1000) or --shape is required")
    if args.packets_per_conn is not None and args.packets_per_conn < 6:
        parser.error("--packets-per-conn must be at least 6")
    try:
        weights = {k: float(v) for k, v in (w.split("=", 1) for w in args.weight)}
    except ValueError:
        parser.error("--weight takes PLAN=NUMBER")
    unknown = set(weights) - set(PLAN_WEIGHTS)
    if unknown:
        parser.error(f"unknown plans {sorted(unknown)}; known: {', '.join(PLAN_WEIGHTS)}")
    knobs = Knobs(
        rate=args.rate,
        gap_us=args.gap_us,
        failure_share=args.failure_share,
        weights=weights,
        packets_per_conn=args.packets_per_conn,
        open_conns=args.open_conns,
        idle_s=args.idle_s,
        flood_rate=args.flood_rate,
        bad_server=args.bad_server,
        ipv6=args.ipv6,
        vlan=args.vlan,
        retrans=args.retrans,
        reorder=args.reorder,
    )
    print_summary(generate(args.packets, args.out, args.seed, args.rate, knobs))
    return 0


def _main_quietly_piped() -> int:
    """main, for the command line: a reader that stops early (`make_capture.py ... | head`)
    ends the summary, not with a traceback."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # (Python flushes stdout again at exit: point it at /dev/null so that this is quiet.)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(_main_quietly_piped())
