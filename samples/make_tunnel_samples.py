#!/usr/bin/env python3
"""Make tcpdiag's tunnel sample captures: TCP failures inside real Linux kernel tunnels.

Usage (as root; the crafted ones need no root):

    sudo python3 samples/make_tunnel_samples.py [--out DIR] [--seed N] [SCENARIO ...]
    python3 samples/make_tunnel_samples.py --list

Kernel scenarios (`<tunnel>_<failure>`, tunnel in vxlan, geneve, gretap; failure in refused,
peer_reset_linger0): two network namespaces of their own (`tcpdiag-tun-<pid>-a` and `-b`) are
joined by a veth pair with underlay addresses 192.168.77.1/.2; a tunnel device `tun0` over it
carries the overlay 10.77.0.1/.2. The client runs in namespace a, the server in namespace b,
both real sockets (threads that enter their namespace with setns(2)). tcpdump captures on a's
veth, so every packet has its outer headers.

VXLAN is the kernel's own (`ip link add tun0 type vxlan`). The kernel these samples were made
on (a Firecracker VM kernel without modules) has no geneve, gretap, gre or ipip device types,
so for GENEVE and gretap `tun0` is a TAP device and this script is the tunnel endpoint: it
reads each Ethernet frame the kernel sends into the TAP, prepends the GENEVE header (VNI, type
0x6558) and sends it with a UDP socket to port 6081, or prepends the GRE header (key, type
0x6558) and sends it with a raw IP protocol 47 socket; the other side strips the header and
writes the frame into its TAP. The TCP, the inner Ethernet frames and the outer IP/UDP headers
are the kernel's; only the 8-byte tunnel header is written here, as RFC 8926 and RFC 2890 lay
it out (tshark dissects them as GENEVE and GRE).
Like samples/make_samples.py, the capture stops 0.3 s after the scenario and before leftover
sockets are closed. Both namespaces are deleted at the end, whatever happens.

The failures are those of `refused_no_listener` and `peer_reset_linger0` (samples/README.md):
a correct analyser reports the same findings on the tunnelled capture as on the untunnelled one.

Crafted scenarios (`crafted_*`, written to `crafted/` under --out): encapsulations the kernel
does not make on demand (MPLS, PPPoE, ERSPAN I/II/III, IP-in-IP, 6in4, Teredo, an ICMP error in GRE,
two VXLAN tenants with the same inner 4-tuple) are made by re-wrapping the packets of the
committed kernel samples with dpkt, so their TCP is still the kernel's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = SCRIPT.parent
SNAPLEN = 192  # the outer headers (up to 54 bytes of tunnel) and the inner TCP headers
UNDERLAY = ("192.168.77.1", "192.168.77.2")
OVERLAY = ("10.77.0.1", "10.77.0.2")
VNI = 4242
GRE_KEY = 77
TUNNELS = ("vxlan", "geneve", "gretap")
FAILURES = {
    "refused": "refused_no_listener",
    "peer_reset_linger0": "peer_reset_linger0",
}
CLONE_NEWNET = 0x40000000
STEP_TIMEOUT = 10.0  # every wait is bounded


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=STEP_TIMEOUT)


# --------------------------------------------------------------------------------------------
# Namespaces and tunnels
# --------------------------------------------------------------------------------------------


@contextmanager
def namespaces(tunnel: str, tag: str) -> Iterator[tuple[str, str]]:
    a, b = f"tcpdiag-tun-{tag}-a", f"tcpdiag-tun-{tag}-b"
    try:
        run("ip", "netns", "add", a)
        run("ip", "netns", "add", b)
        run("ip", "link", "add", "tdv-a", "type", "veth", "peer", "name", "tdv-b")
        run("ip", "link", "set", "tdv-a", "netns", a)
        run("ip", "link", "set", "tdv-b", "netns", b)
        for ns, dev, me, peer in ((a, "tdv-a", 0, 1), (b, "tdv-b", 1, 0)):
            ex = ("ip", "netns", "exec", ns)
            # No IPv6: no router solicitations or MLD reports in the capture.
            run(*ex, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
            run(*ex, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
            run(*ex, "ip", "link", "set", "lo", "up")
            run(*ex, "ip", "addr", "add", f"{UNDERLAY[me]}/24", "dev", dev)
            run(*ex, "ip", "link", "set", dev, "up")
            local, remote = UNDERLAY[me], UNDERLAY[peer]
            if tunnel == "vxlan":
                spec = [
                    "vxlan",
                    "id",
                    str(VNI),
                    "local",
                    local,
                    "remote",
                    remote,
                    "dstport",
                    "4789",
                    "dev",
                    dev,
                ]
            elif tunnel == "geneve":
                spec = ["geneve", "id", str(VNI), "remote", remote]
            else:
                spec = ["gretap", "local", local, "remote", remote, "key", str(GRE_KEY)]
            if tunnel == "vxlan":
                run(*ex, "ip", "link", "add", "tun0", "type", *spec)
            else:
                run(*ex, "ip", "tuntap", "add", "dev", "tun0", "mode", "tap")
            run(*ex, "ip", "link", "set", "tun0", "mtu", "1400", "up")
            run(*ex, "ip", "addr", "add", f"{OVERLAY[me]}/24", "dev", "tun0")
        stop = threading.Event()
        endpoints = []
        if tunnel != "vxlan":
            endpoints = [
                in_namespace(ns, lambda me=me: tap_endpoint(tunnel, me, stop))
                for ns, me in ((a, 0), (b, 1))
            ]
            time.sleep(0.3)
        try:
            yield a, b
        finally:
            stop.set()
            for thread in endpoints:
                thread.join(STEP_TIMEOUT)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=STEP_TIMEOUT)


_libc = ctypes.CDLL(None, use_errno=True)
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
GENEVE_PORT = 6081
IPPROTO_GRE = 47
ETH_BRIDGING = 0x6558


def tap_endpoint(tunnel: str, me: int, stop: threading.Event) -> None:
    """The userspace tunnel endpoint of one side (GENEVE or gretap), until `stop`."""
    import fcntl
    import select

    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH22x", b"tun0", IFF_TAP | IFF_NO_PI))
    peer = UNDERLAY[1 - me]
    if tunnel == "geneve":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((UNDERLAY[me], GENEVE_PORT))
        # Version 0, no options, no flags, protocol type, VNI, reserved.
        header = struct.pack("!BBHI", 0, 0, ETH_BRIDGING, VNI << 8)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)
        sock.bind((UNDERLAY[me], 0))
        header = struct.pack("!HHI", 0x2000, ETH_BRIDGING, GRE_KEY)  # K bit, type, key
    deadline = time.monotonic() + 60.0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([tap, sock], [], [], 0.05)
            if tap in ready:
                frame = os.read(tap, 65536)
                sock.sendto(header + frame, (peer, GENEVE_PORT if tunnel == "geneve" else 0))
            if sock in ready:
                packet, (source, _) = sock.recvfrom(65536)
                if source != peer:
                    continue
                if tunnel == "gretap":
                    packet = packet[(packet[0] & 0x0F) * 4 :]  # raw sockets get the IP header
                if packet[: len(header)] == header:
                    os.write(tap, packet[len(header) :])
    finally:
        sock.close()
        os.close(tap)


def enter(ns: str) -> None:
    """Move the calling thread (only it) into network namespace `ns`."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def in_namespace(ns: str, job: Callable[[], None]) -> threading.Thread:
    def body() -> None:
        enter(ns)
        job()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------
# The applications
# --------------------------------------------------------------------------------------------


class Log:
    def __init__(self) -> None:
        self.t0 = time.time()
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, app: str, conn: str, call: str, result: str) -> None:
        with self.lock:
            self.entries.append(
                {
                    "app": app,
                    "conn": conn,
                    "call": call,
                    "result": result,
                    "t": round(time.time() - self.t0, 3),
                }
            )


def errno_name(exc: OSError) -> str:
    import errno

    return errno.errorcode.get(exc.errno or 0, "timeout (no result)")


def refused(a: str, b: str, port: int, log: Log, leftovers: list[socket.socket]) -> str:
    conn: dict[str, str] = {}

    def client() -> None:
        s = socket.socket()
        s.settimeout(STEP_TIMEOUT)
        leftovers.append(s)
        s.bind((OVERLAY[0], 0))
        conn["client"] = f"{OVERLAY[0]}:{s.getsockname()[1]}"
        try:
            s.connect((OVERLAY[1], port))
            log.add("client", conn["client"], "connect", "ok")
        except OSError as exc:
            log.add("client", conn["client"], "connect", errno_name(exc))

    in_namespace(a, client).join(STEP_TIMEOUT)
    return conn["client"]


def peer_reset_linger0(a: str, b: str, port: int, log: Log, leftovers: list[socket.socket]) -> str:
    ready = threading.Event()
    conn: dict[str, str] = {}

    def server() -> None:
        listener = socket.socket()
        leftovers.append(listener)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((OVERLAY[1], port))
        listener.listen(1)
        listener.settimeout(STEP_TIMEOUT)
        ready.set()
        s, peer = listener.accept()
        name = f"{peer[0]}:{peer[1]}"
        log.add("server", name, "accept", "ok")
        data = s.recv(1000)
        log.add("server", name, "recv", f"{len(data)} bytes")
        reply = b"HTTP/1.0 200 OK\r\n\r\nhi\n"
        s.sendall(reply)
        log.add("server", name, "send", f"sent {len(reply)} bytes")
        time.sleep(0.15)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        log.add("server", name, "close (SO_LINGER 1,0)", "ok")

    def client() -> None:
        ready.wait(STEP_TIMEOUT)
        s = socket.socket()
        s.settimeout(STEP_TIMEOUT)
        leftovers.append(s)
        s.bind((OVERLAY[0], 0))
        name = conn["client"] = f"{OVERLAY[0]}:{s.getsockname()[1]}"
        s.connect((OVERLAY[1], port))
        log.add("client", name, "connect", "ok")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        log.add("client", name, "send", "sent 18 bytes")
        data = s.recv(1000)
        log.add("client", name, "recv", f"{len(data)} bytes")
        try:
            data = s.recv(1000)
            log.add("client", name, "recv", "EOF" if not data else f"{len(data)} bytes")
        except OSError as exc:
            log.add("client", name, "recv", errno_name(exc))

    threads = [in_namespace(b, server), in_namespace(a, client)]
    for thread in threads:
        thread.join(STEP_TIMEOUT)
    return conn["client"]


SCENARIO_APPS = {"refused": refused, "peer_reset_linger0": peer_reset_linger0}
ERRNOS = {"refused": ("ECONNREFUSED", None), "peer_reset_linger0": ("ECONNRESET", None)}
CATEGORIES = {"refused": "refused", "peer_reset_linger0": "peer_reset"}
ZEEK = {"refused": ("REJ", "Sr"), "peer_reset_linger0": ("RSTR", "ShADadr")}


def make_kernel(tunnel: str, failure: str, out: Path, rng: random.Random) -> None:
    name = f"{tunnel}_{failure}"
    port = rng.randrange(10000, 30000)
    pcap = out / f"{name}.pcap"
    leftovers: list[socket.socket] = []
    with namespaces(tunnel, f"{os.getpid()}") as (a, b):
        dump = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                a,
                "tcpdump",
                "-i",
                "tdv-a",
                "-s",
                str(SNAPLEN),
                "-U",
                "--immediate-mode",
                "-w",
                str(pcap),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)  # tcpdump is listening
            log = Log()
            client = SCENARIO_APPS[failure](a, b, port, log, leftovers)
            time.sleep(0.3)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(STEP_TIMEOUT)
        for s in leftovers:
            s.close()
    client_errno, server_errno = ERRNOS[failure]
    state, history = ZEEK[failure]
    server = f"{OVERLAY[1]}:{port}"
    untunnelled = FAILURES[failure]
    expected = {
        "scenario": name,
        "description": (
            f"The {untunnelled} scenario (samples/README.md) between {OVERLAY[0]} and "
            f"{OVERLAY[1]} inside a {tunnel} tunnel ({tunnel_text(tunnel)}) between two "
            f"network namespaces ({UNDERLAY[0]} and {UNDERLAY[1]} on a veth pair); captured "
            "on the veth, so every packet has its outer headers."
        ),
        # The tunnel header of GENEVE and gretap is this script's (see the module docstring).
        "source": "kernel" if tunnel == "vxlan" else "kernel+userspace-tunnel",
        "untunnelled": untunnelled,
        "findings": [
            {
                "category": CATEGORIES[failure],
                "client": client,
                "server": server,
                "client_errno": client_errno,
                "server_errno": server_errno,
            }
        ],
        "observed": log.entries,
        "kernel": platform.release(),
        "capture": {"iface": "tdv-a (veth, outer headers)", "snaplen": SNAPLEN, "linktype": 1},
        "zeek_flows": [
            {"client": client, "server": server, "conn_state": state, "history": history}
        ],
    }
    (out / f"{name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"{name}: {pcap} ({pcap.stat().st_size} bytes)")


def tunnel_text(tunnel: str) -> str:
    if tunnel == "vxlan":
        return f"the kernel's vxlan device, VNI {VNI}, UDP 4789"
    if tunnel == "geneve":
        return f"a TAP device and this script's GENEVE endpoint, VNI {VNI}, UDP 6081"
    return f"a TAP device and this script's GRE endpoint, key {GRE_KEY}, type 0x6558"


# --------------------------------------------------------------------------------------------
# Crafted encapsulations: the kernel samples' packets, re-wrapped
# --------------------------------------------------------------------------------------------

# name -> (kernel sample whose packets are wrapped, encapsulation)
CRAFTED = {
    "crafted_mpls_refused": ("refused_no_listener", "mpls"),
    "crafted_pppoe_peer_reset_linger0": ("peer_reset_linger0", "pppoe"),
    "crafted_erspan1_refused": ("refused_no_listener", "erspan1"),
    "crafted_erspan2_peer_reset_linger0": ("peer_reset_linger0", "erspan2"),
    "crafted_erspan3_peer_reset_linger0": ("peer_reset_linger0", "erspan3"),
    "crafted_ipip_refused": ("refused_no_listener", "ipip"),
    "crafted_6in4_refused_ipv6": ("refused_ipv6", "6in4"),
    "crafted_teredo_refused_ipv6": ("refused_ipv6", "teredo"),
    "crafted_gre_icmp_port_unreachable_syn": ("icmp_port_unreachable_syn", "gre"),
    "crafted_vxlan_two_tenants": ("vxlan_peer_reset_linger0", "second_tenant"),
}
OUTER = ("198.51.100.1", "198.51.100.2")  # the crafted tunnels' endpoints (documentation net)
# The second tenant's copy lags by more than tcpdiag's RST-burst window (10 ms): the tracker
# tells hosts apart by address alone there, and two tenants' equal addresses resetting in the
# same instant would look like one host killing its sockets (local_abort).
TENANT_DELAY = 1.0
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int) -> bytes:
    import dpkt

    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    checksum = dpkt.in_cksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def ethernet(ethertype: int, payload: bytes, forward: bool) -> bytes:
    dst, src = (MAC_B, MAC_A) if forward else (MAC_A, MAC_B)
    return dst + src + struct.pack("!H", ethertype) + payload


def wrap(kind: str, frame: bytes, ip: bytes, forward: bool, n: int) -> bytes:
    """One crafted frame: the kernel's IP packet `ip` (from Ethernet `frame`) encapsulated."""
    src, dst = OUTER if forward else OUTER[::-1]
    if kind == "mpls":
        # Labels differ per direction, as on a real LSP; bottom-of-stack bit on the second.
        top, bottom = (16, 1001) if forward else (17, 2002)
        stack = struct.pack("!II", top << 12 | 64, bottom << 12 | 0x100 | 64)
        return ethernet(0x8847, stack + ip, forward)
    if kind == "pppoe":
        ppp = struct.pack("!H", 0x0021) + ip
        return ethernet(0x8864, struct.pack("!BBHH", 0x11, 0, 0x002A, len(ppp)) + ppp, forward)
    if kind == "erspan2":
        # GRE with sequence number, type 0x88BE; ERSPAN II: version 1, VLAN 0, session 5.
        gre = struct.pack("!HHI", 0x1000, 0x88BE, n)
        span = struct.pack("!HHI", 0x1000, 5, 0)
        return ethernet(0x0800, ipv4(src, dst, 47, gre + span + frame, n), True)
    if kind == "erspan1":
        # Type I: GRE type 0x88BE without a sequence number, and no ERSPAN header.
        gre = struct.pack("!HH", 0, 0x88BE)
        return ethernet(0x0800, ipv4(src, dst, 47, gre + frame, n), True)
    if kind == "erspan3":
        # Type III: version 2, session 9, a timestamp, and the O flag: an 8-byte platform
        # subheader follows.
        gre = struct.pack("!HHI", 0x1000, 0x22EB, n)
        span = struct.pack("!HHIHH", 0x2000, 9, 1000 * n, 0, 0x0001) + bytes(8)
        return ethernet(0x0800, ipv4(src, dst, 47, gre + span + frame, n), True)
    if kind == "ipip":
        return ethernet(0x0800, ipv4(src, dst, 4, ip, n), forward)
    if kind == "6in4":
        return ethernet(0x0800, ipv4(src, dst, 41, ip, n), forward)
    if kind == "teredo":
        ports = (40001, 3544) if forward else (3544, 40001)
        udp = struct.pack("!HHHH", *ports, 8 + len(ip), 0)
        return ethernet(0x0800, ipv4(src, dst, 17, udp + ip, n), forward)
    if kind == "gre":
        return ethernet(0x0800, ipv4(src, dst, 47, struct.pack("!HH", 0, 0x0800) + ip, n), forward)
    raise ValueError(kind)


def second_tenant(frame: bytes) -> bytes:
    """The same VXLAN frame in VNI 4243 (another tenant with the same inner 4-tuple)."""
    vni_at = 14 + 20 + 8 + 4
    return frame[:vni_at] + struct.pack("!I", (VNI + 1) << 8)[:3] + frame[vni_at + 3 :]


def make_crafted(name: str, out: Path) -> None:
    import dpkt

    source, kind = CRAFTED[name]
    with open(DEFAULT_OUT / f"{source}.pcap", "rb") as f:
        records = list(dpkt.pcap.Reader(f))
    frames: list[tuple[float, bytes]] = []
    for n, (ts, frame) in enumerate(records, 1):
        if kind == "second_tenant":
            frames.append((ts, frame))
            frames.append((ts + TENANT_DELAY, second_tenant(frame)))
            continue
        ip = frame[14:]
        # On loopback both ends share an address: the direction is the client port's.
        forward = _from_client(ip, records[0][1][14:])
        frames.append((ts, wrap(kind, frame, ip, forward, n)))
    if kind == "second_tenant":
        frames.sort(key=lambda item: item[0])
    out = out / "crafted"
    out.mkdir(exist_ok=True)
    pcap = out / f"{name}.pcap"
    with open(pcap, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in frames:
            writer.writepkt(frame, ts)
    expected = json.loads((DEFAULT_OUT / f"{source}.expected.json").read_text())
    findings, zeek = expected["findings"], expected["zeek_flows"]
    if kind == "second_tenant":
        findings, zeek = findings * 2, zeek * 2
    what = (
        f"a second VXLAN tenant (VNI 4243) with the same inner 4-tuple, {TENANT_DELAY} s behind"
        if kind == "second_tenant"
        else f"re-wrapped in {kind} by this script (outer {OUTER[0]}<->{OUTER[1]} where IP)"
    )
    crafted = {
        "scenario": name,
        "description": f"The packets of the kernel sample {source}, {what}. "
        + expected["description"],
        "source": "kernel+crafted-encapsulation",
        "untunnelled": expected.get("untunnelled", source),
        "findings": findings,
        "observed": expected["observed"],
        "kernel": expected["kernel"],
        "capture": {"iface": f"crafted from {source}.pcap", "snaplen": 262144, "linktype": 1},
        "zeek_flows": zeek,
    }
    (out / f"{name}.expected.json").write_text(json.dumps(crafted, indent=2) + "\n")
    print(f"{name}: {pcap} ({pcap.stat().st_size} bytes)")


def _from_client(ip: bytes, first: bytes) -> bool:
    """Whether IP packet `ip` goes the way the capture's first packet (the SYN) went: same
    source port (IPv4 or IPv6, no options or extension headers in these samples; for an ICMP
    error, which is sent towards the client, False)."""

    def sport(packet: bytes) -> tuple[int, int]:
        if packet[0] >> 4 == 4:
            return packet[9], struct.unpack_from("!H", packet, (packet[0] & 0x0F) * 4)[0]
        return packet[6], struct.unpack_from("!H", packet, 40)[0]

    proto, port = sport(ip)
    return proto in (6,) and port == sport(first)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("scenarios", nargs="*")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    kernel = [f"{t}_{f}" for t in TUNNELS for f in FAILURES]
    if args.list:
        print("\n".join(kernel + list(CRAFTED)))
        return 0
    wanted = args.scenarios or kernel + list(CRAFTED)
    unknown = sorted(set(wanted) - set(kernel) - set(CRAFTED))
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in [w for w in wanted if w in CRAFTED]:
        make_crafted(name, args.out)
    wanted = [w for w in wanted if w not in CRAFTED]
    if not wanted:
        return 0
    if os.geteuid() != 0:
        print("kernel scenarios need root (network namespaces, tcpdump)", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        tunnel, failure = name.split("_", 1)
        make_kernel(tunnel, failure, args.out, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
