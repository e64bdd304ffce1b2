#!/usr/bin/env python3
"""Regenerate tcpdiag's sample captures from the real Linux kernel.

Usage (as root):

    sudo python3 samples/make_samples.py [--out DIR] [--seed N] [SCENARIO ...]
    sudo python3 samples/make_samples.py --list

Every scenario runs in a network namespace of its own (``tcpdiag-smp-<pid>-<n>``) with only the
loopback interface up; all traffic goes to 127.0.0.1 / ::1 inside that namespace.  The script
re-executes itself inside the namespace (``ip netns exec NS python3 make_samples.py --in-netns
NAME``); that process starts tcpdump, runs the applications (real sockets, in threads or in a
child process when a process must be SIGKILLed), applies iptables rules / ``ss -K`` / scapy
injections, stops the capture and only then tears the sockets down, so closing leftovers never
adds packets to the capture.  The namespace (and with it every iptables rule) is deleted at the
end.

For each scenario it writes ``<name>.pcap`` and ``<name>.expected.json`` (the findings a correct
analyser must report, with the errnos the applications really got, plus the raw log of every
application call).  Ports and small timing pauses are randomised per run (``--seed`` fixes
them), so ``--out /tmp/x`` gives an independently generated hold-out set.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import platform
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = SCRIPT.parent
NS_PREFIX = "tcpdiag-smp"
SNAPLEN = 128
SCENARIO_TIMEOUT = 90.0  # hard limit for one scenario, enforced by the host-side parent
PORT_SLOTS = 10  # server ports reserved per scenario
PORT_BASE_RANGE = (10000, 30000)  # below the ephemeral range, so a client never picks a server port
ERRNO_NAMES = frozenset(errno.errorcode.values())
BLOCKED = "blocked (no result before the capture ended)"

LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}
V4, V6 = socket.AF_INET, socket.AF_INET6


# --------------------------------------------------------------------------------------------
# Recording what every application call returned
# --------------------------------------------------------------------------------------------


def fmt_addr(addr: tuple[Any, ...]) -> str:
    """'127.0.0.1:40112' or '[::1]:40112'."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def errno_name(exc: OSError) -> str:
    """errno name of an exception; Python's own socket timeout has no errno."""
    if exc.errno is None:
        return "timeout (no result)"
    return errno.errorcode.get(exc.errno, f"errno {exc.errno}")


@dataclass
class Event:
    """One application call and what it returned."""

    t: float  # time.time() when the call started
    app: str
    conn: str
    call: str
    result: str = "pending"
    t_done: float | None = None  # time.time() when the result came back

    @property
    def when(self) -> float:
        return self.t if self.t_done is None else self.t_done

    def as_json(self, t0: float) -> dict[str, Any]:
        """`t`: seconds from the capture start until the call returned (or began, if blocked)."""
        return {
            "app": self.app,
            "conn": self.conn,
            "call": self.call,
            "result": self.result,
            "t": round(self.when - t0, 3),
        }


class Recorder:
    """Thread-safe log of application calls.

    After freeze() (called when the capture stops) late results are no longer recorded and calls
    still blocked are marked as such: the log then describes exactly the captured period.
    """

    def __init__(self, sink: Callable[[Event], None] | None = None) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._frozen = False
        self._sink = sink

    def start(self, app: str, conn: str, call: str) -> Event:
        ev = Event(time.time(), app, conn, call)
        with self._lock:
            if not self._frozen:
                self.events.append(ev)
        return ev

    def finish(self, ev: Event, result: str, conn: str | None = None) -> None:
        with self._lock:
            if self._frozen:
                return
            ev.result = result
            ev.t_done = time.time()
            if conn is not None:
                ev.conn = conn
        if self._sink:
            self._sink(ev)

    def note(self, app: str, conn: str, call: str, result: str) -> None:
        self.finish(self.start(app, conn, call), result)

    def add(self, ev: Event) -> None:
        with self._lock:
            self.events.append(ev)

    def freeze(self) -> None:
        with self._lock:
            self._frozen = True
            for ev in self.events:
                if ev.result == "pending":
                    ev.result = BLOCKED

    def first_error(self, app: str, conn: str) -> str | None:
        """errno name of the first failing call of `app` on `conn`, or None."""
        with self._lock:
            for ev in sorted(self.events, key=lambda e: e.when):
                if ev.app == app and ev.conn == conn and ev.result in ERRNO_NAMES:
                    return ev.result
        return None

    def error_time(self, app: str, conn: str) -> float | None:
        """time.time() at which `app`'s first failing call on `conn` returned."""
        with self._lock:
            for ev in sorted(self.events, key=lambda e: e.when):
                if ev.app == app and ev.conn == conn and ev.result in ERRNO_NAMES:
                    return ev.when
        return None

    def as_json(self, t0: float) -> list[dict[str, Any]]:
        with self._lock:
            return [ev.as_json(t0) for ev in sorted(self.events, key=lambda e: e.when)]


class Endpoint:
    """One application's end of a TCP connection; every call is logged with its result."""

    def __init__(self, rec: Recorder, app: str, sock: socket.socket, conn: str) -> None:
        self.rec, self.app, self.sock, self.conn = rec, app, sock, conn
        self.last_error: str | None = None

    def _do(self, call: str, fn: Callable[[], Any], ok: Callable[[Any], str]) -> Any:
        """Run one socket call; log its result; None (and last_error set) if it failed."""
        ev = self.rec.start(self.app, self.conn, call)
        self.last_error = None
        try:
            value = fn()
        except OSError as exc:
            self.last_error = errno_name(exc)
            self.rec.finish(ev, self.last_error)
            return None
        self.rec.finish(ev, ok(value))
        return value

    def send(self, data: bytes, timeout: float = 5.0) -> int | None:
        self.sock.settimeout(timeout)
        return self._do("send", lambda: self.sock.send(data), lambda n: f"sent {n} bytes")

    def recv(self, timeout: float = 10.0, size: int = 65536) -> bytes | None:
        """Returns the bytes, b'' on EOF, None on error or our own timeout."""
        self.sock.settimeout(timeout)
        return self._do(
            "recv", lambda: self.sock.recv(size), lambda b: f"{len(b)} bytes" if b else "EOF"
        )

    def recv_exactly(self, total: int, timeout: float = 10.0, max_calls: int = 64) -> int:
        """recv until `total` bytes arrived, EOF, error or `max_calls` calls; returns bytes got."""
        got = 0
        for _ in range(max_calls):
            data = self.recv(timeout, min(65536, total - got))
            if not data:
                break
            got += len(data)
            if got >= total:
                break
        return got

    def so_error(self) -> None:
        """getsockopt(SO_ERROR): returns (and clears) a pending error, including a stored soft ICMP
        error the app's other calls never reported. Logged as `SO_ERROR = NAME` or `SO_ERROR = 0`
        (the call itself succeeded)."""

        def name(value: int) -> str:
            return "SO_ERROR = " + (errno.errorcode.get(value, str(value)) if value else "0")

        self._do(
            "getsockopt(SO_ERROR)",
            lambda: self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR),
            name,
        )

    def shutdown_wr(self) -> None:
        self._do("shutdown(SHUT_WR)", lambda: self.sock.shutdown(socket.SHUT_WR), lambda _: "ok")

    def close(self) -> None:
        self._do("close", self.sock.close, lambda _: "ok")

    def close_linger0(self) -> None:
        """close() with SO_LINGER {1, 0}: the kernel aborts the connection with a RST."""

        def abort() -> None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()

        self._do("close (SO_LINGER 1,0)", abort, lambda _: "ok")


# --------------------------------------------------------------------------------------------
# Expected findings and per-scenario context
# --------------------------------------------------------------------------------------------


@dataclass
class Finding:
    category: str
    client: str
    server: str
    client_errno: str | None
    server_errno: str | None


@dataclass
class Outcome:
    """What a scenario function hands back to the runner."""

    source: str  # "kernel" | "kernel+injected" | "crafted"
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # run-time facts appended to the description
    # Evaluated after the capture stopped, with the pcap path (for findings only the wire knows).
    post: Callable[[Path], tuple[list[Finding], list[str]]] | None = None


class Ctx:
    """Everything a scenario needs: ports, timing jitter, sockets, threads, tools, the log."""

    def __init__(self, name: str, ports: list[int], rng: random.Random, pcap: Path) -> None:
        self.name, self.ports, self.rng, self.pcap = name, ports, rng, pcap
        self.rec = Recorder()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.failures: list[str] = []
        # Starts tcpdump; only scenarios registered with deferred_capture=True call it themselves
        # (the runner calls it before every other scenario).
        self.start_capture: Callable[[], None] = lambda: None

    # ---- small helpers
    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, jittered by -20 %..+50 % so every run has its own timing."""
        time.sleep(seconds * self.rng.uniform(0.8, 1.5))

    def server_addr(self, family: int, port: int) -> str:
        return fmt_addr((LOOPBACK[family], port))

    def tool(self, cmd: list[str], app: str = "admin", check: bool = True) -> str:
        """Run a command inside the namespace, log it, return its stdout."""
        ev = self.rec.start(app, "", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        out = (proc.stdout + proc.stderr).strip()
        self.rec.finish(ev, f"rc={proc.returncode}" + (f": {out}" if out else ""))
        if check and proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {out}")
        return proc.stdout

    def iptables(self, *args: str) -> None:
        self.tool(["iptables", "-w", *args])

    # ---- sockets
    def listen(self, family: int, port: int, proto: int = 0, backlog: int = 16) -> socket.socket:
        lst = socket.socket(family, socket.SOCK_STREAM, proto)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((LOOPBACK[family], port))
        lst.listen(backlog)
        self.sockets.append(lst)
        return lst

    def connect(
        self,
        family: int,
        port: int,
        opts: Iterable[tuple[int, int, int]] = (),
        timeout: float | None = 5.0,
        app: str = "client",
        proto: int = 0,
    ) -> tuple[Endpoint, bool]:
        """Bind an ephemeral port (so the log knows the client's ip:port), then connect."""
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        self.sockets.append(sock)
        for level, opt, value in opts:
            sock.setsockopt(level, opt, value)
        sock.bind((LOOPBACK[family], 0))
        ep = Endpoint(self.rec, app, sock, fmt_addr(sock.getsockname()))
        sock.settimeout(timeout)
        ep._do("connect", lambda: sock.connect((LOOPBACK[family], port)), lambda _: "ok")
        return ep, ep.last_error is None

    def accept(self, lst: socket.socket, timeout: float = 5.0, app: str = "server") -> Endpoint:
        lst.settimeout(timeout)
        ev = self.rec.start(app, f"listener {fmt_addr(lst.getsockname())}", "accept")
        try:
            sock, addr = lst.accept()
        except OSError as exc:
            self.rec.finish(ev, errno_name(exc))
            raise
        self.sockets.append(sock)
        conn = fmt_addr(addr)
        self.rec.finish(ev, "ok", conn=conn)
        return Endpoint(self.rec, app, sock, conn)

    # ---- threads
    def spawn(self, fn: Callable[..., None], *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # a scenario bug, not a network result: fail the scenario
                self.failures.append(traceback.format_exc())

        th = threading.Thread(target=guarded, name=getattr(fn, "__name__", "app"), daemon=True)
        self.threads.append(th)
        th.start()
        return th

    @staticmethod
    def join(threads: Iterable[threading.Thread], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))

    def finding(self, category: str, client: Endpoint | str, family: int, port: int) -> Finding:
        """A finding whose errnos are the first errors the two apps really got."""
        conn = client.conn if isinstance(client, Endpoint) else client
        return Finding(
            category,
            conn,
            self.server_addr(family, port),
            self.rec.first_error("client", conn),
            self.rec.first_error("server", conn),
        )

    # ---- teardown (only after the capture stopped)
    def teardown(self) -> None:
        self.rec.freeze()
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # wakes threads still blocked in recv/accept
                sock.shutdown(socket.SHUT_RDWR)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self.join(self.threads, 10.0)
        for sock in self.sockets:
            sock.close()


# --------------------------------------------------------------------------------------------
# Capture (tcpdump inside the namespace)
# --------------------------------------------------------------------------------------------


class Capture:
    """tcpdump writing headers only (-s 128), packet-buffered, started before the scenario."""

    def __init__(self, path: Path, iface: str, linktype: str | None) -> None:
        self.path, self.iface, self.linktype = path, iface, linktype
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    def start(self, timeout: float = 10.0) -> None:
        cmd = ["tcpdump", "-i", self.iface, "-s", str(SNAPLEN), "-U", "--immediate-mode", "-n"]
        cmd += ["-Z", "root", "-w", str(self.path)]
        if self.linktype:
            cmd += ["-y", self.linktype]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready:
                line = self.proc.stderr.readline()
                self.stderr += line
                if "listening on" in line:
                    return
                if not line:
                    break
        raise RuntimeError(f"tcpdump did not start: {self.stderr}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr += err


def pcap_linktype(path: Path) -> int:
    with path.open("rb") as fh:
        header = fh.read(24)
    magic = header[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    return struct.unpack(endian + "I", header[20:24])[0]


@dataclass
class Pkt:
    """The few header fields the run-time notes need (IPv4 on an Ethernet-framed lo capture)."""

    ts: float
    src: str
    dst: str
    ttl: int
    proto: int  # 6 TCP, 1 ICMP
    sport: int = 0
    dport: int = 0
    flags: int = 0
    seq: int = 0
    ack: int = 0
    length: int = 0  # TCP payload length, from the IP total length (the capture is truncated)


def read_packets(path: Path) -> list[Pkt]:
    """Parse a pcap written by `tcpdump -i lo` (Ethernet link type); IPv4 only."""
    data = path.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    packets, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        frame = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl, total, ttl, proto = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0], ip[8], ip[9]
        pkt = Pkt(
            sec + frac / (1e9 if nano else 1e6),
            socket.inet_ntoa(ip[12:16]),
            socket.inet_ntoa(ip[16:20]),
            ttl,
            proto,
        )
        if proto == 6 and len(ip) >= ihl + 20:
            sport, dport, seq, ack, doff, flags = struct.unpack("!HHIIBB", ip[ihl : ihl + 14])
            pkt.sport, pkt.dport, pkt.seq, pkt.ack, pkt.flags = sport, dport, seq, ack, flags
            pkt.length = total - ihl - (doff >> 4) * 4
        packets.append(pkt)
    return packets


def flow(packets: list[Pkt], port: int) -> list[Pkt]:
    return [p for p in packets if p.proto == 6 and port in (p.sport, p.dport)]


def stall_notes(pcap: Path, rec: Recorder, client: str) -> list[str]:
    """Retransmissions of the client's last data segment, ICMP errors, RSTs, app error time."""
    cport = split_conn(client)[1]
    packets = read_packets(pcap)
    data = [p for p in flow(packets, cport) if p.sport == cport and p.length > 0]
    tx = [p.ts for p in data if p.seq == data[-1].seq]
    icmps = sum(p.proto == 1 for p in packets)
    rsts = sum(1 for p in flow(packets, cport) if p.flags & 0x04)
    err_at = rec.error_time("client", client)
    offsets = ", ".join(f"{t - tx[0]:.3f}" for t in tx[1:])
    return [
        f"Measured: the {data[-1].length}-byte request was retransmitted {len(tx) - 1} times, at "
        f"+{offsets} s after its first transmission; {icmps} ICMP error(s) and {rsts} RST(s) "
        f"were captured; the client's recv failed "
        + (
            f"{err_at - tx[0]:.3f} s after the first transmission."
            if err_at
            else "with no errno (on its own timeout, if any)."
        )
    ]


def keepalive_notes(pcap: Path, rec: Recorder, client: str) -> list[str]:
    cport = split_conn(client)[1]
    segs = flow(read_packets(pcap), cport)
    mine = [p for p in segs if p.sport == cport]
    snd_nxt = max(p.seq + p.length for p in mine if p.length or p.flags & 0x02)
    probes = [p for p in mine if p.length == 0 and p.seq == (snd_nxt - 1) % 2**32]
    idle_from = max(p.ts for p in segs if p not in probes and not p.flags & 0x04)
    rst = [p for p in mine if p.flags & 0x04]
    err_at = rec.error_time("client", client)
    return [
        f"Measured: {len(probes)} keepalive probes (seq = SND.NXT-1, no payload) at "
        + ", ".join(f"+{p.ts - idle_from:.3f}" for p in probes)
        + " s after the last real segment; "
        + (
            f"RST,ACK from the client (seq = SND.NXT) at +{rst[0].ts - idle_from:.3f} s; "
            if rst
            else "no RST; "
        )
        + (f"client recv failed at +{err_at - idle_from:.3f} s." if err_at else "")
    ]


def frag_notes(pcap: Path, client: str) -> list[str]:
    cport = split_conn(client)[1]
    packets = read_packets(pcap)
    icmp = next((p for p in packets if p.proto == 1), None)
    if icmp is None:
        return ["No ICMP was captured."]
    data = [p for p in flow(packets, cport) if p.sport == cport and p.length > 100]
    return [
        "Measured client data segments (time relative to the ICMP: payload bytes): "
        + ", ".join(f"{p.ts - icmp.ts:+.3f} s: {p.length}" for p in data)
        + "."
    ]


def syn_notes(pcap: Path, rec: Recorder, client: str) -> list[str]:
    """SYN (re)transmission times, anything else on the flow, when connect() failed."""
    cport = split_conn(client)[1]
    segs = flow(read_packets(pcap), cport)
    syns = [p.ts for p in segs if p.sport == cport and p.flags & 0x12 == 0x02]
    if not syns:
        return ["No SYN was captured."]
    others = len(segs) - len(syns)
    err_at = rec.error_time("client", client)
    return [
        f"Measured: {len(syns)} SYNs; the retransmissions at "
        + ", ".join(f"+{t - syns[0]:.3f}" for t in syns[1:])
        + f" s after the first; {others} other segment(s) on the connection; connect() failed "
        + (f"{err_at - syns[0]:.3f} s after the first SYN." if err_at else "never.")
    ]


def transient_notes(pcap: Path, rec: Recorder, client: str) -> list[str]:
    """(Re)transmissions of the client's last data segment, ICMPs, the rule's removal, the ACK."""
    cport = split_conn(client)[1]
    packets = read_packets(pcap)
    segs = flow(packets, cport)
    data = [p for p in segs if p.sport == cport and p.length > 0]
    tx = [p.ts for p in data if p.seq == data[-1].seq]
    end = (data[-1].seq + data[-1].length) % 2**32
    acked = next((p.ts for p in segs if p.dport == cport and p.flags & 0x10 and p.ack == end), None)
    icmps = [p.ts for p in packets if p.proto == 1]
    removed = next(
        (ev.when for ev in rec.events if ev.app == "admin" and " -D " in f" {ev.call} "), None
    )

    def rel(t: float | None) -> str:
        return "never" if t is None else f"+{t - tx[0]:.3f} s"

    return [
        f"Measured: the {data[-1].length}-byte request was retransmitted {len(tx) - 1} times, at "
        + ", ".join(f"+{t - tx[0]:.3f}" for t in tx[1:])
        + f" s after its first transmission; {len(icmps)} ICMP error(s) were captured (at "
        + ", ".join(f"+{t - tx[0]:.3f}" for t in icmps)
        + f" s); the REJECT rule was deleted at {rel(removed)}; the request was ACKed at "
        + f"{rel(acked)}."
    ]


# --------------------------------------------------------------------------------------------
# scapy: watching a live flow and injecting into it
# --------------------------------------------------------------------------------------------


class FlowWatcher:
    """Sniffs TCP port `port` on lo and remembers, per sender, the next sequence number (SND.NXT
    as seen on the wire, which is the receiver's RCV.NXT once the segment arrived) and the last
    data segment."""

    def __init__(self, port: int) -> None:
        from scapy.all import AsyncSniffer  # imported lazily: scapy is slow to import

        self.port = port
        self.next_seq: dict[tuple[str, int], int] = {}
        self.last_data: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()
        started = threading.Event()
        self._sniffer = AsyncSniffer(
            iface="lo",
            filter=f"tcp port {port}",
            prn=self._on_packet,
            store=False,
            started_callback=started.set,
        )
        self._sniffer.start()
        if not started.wait(10):
            raise RuntimeError("scapy sniffer did not start")

    def _on_packet(self, pkt: Any) -> None:
        from scapy.all import IP, TCP

        if IP not in pkt or TCP not in pkt:
            return
        ip, tcp = pkt[IP], pkt[TCP]
        payload = ip.len - ip.ihl * 4 - tcp.dataofs * 4
        flags = int(tcp.flags)
        nxt = (tcp.seq + payload + (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)) % 2**32
        key = (ip.src, tcp.sport)
        with self._lock:
            old = self.next_seq.get(key)
            if old is None or 0 < (nxt - old) % 2**32 < 2**31:
                self.next_seq[key] = nxt
            if payload > 0:
                self.last_data[key] = ip.copy()

    def seq_after(self, host: str, port: int) -> int:
        with self._lock:
            return self.next_seq[(host, port)]

    def wait_data(self, host: str, port: int, min_len: int, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pkt = self.last_data.get((host, port))
            if pkt is not None and len(pkt.payload.payload) >= min_len:
                return pkt
            time.sleep(0.01)
        raise RuntimeError(f"no data segment >= {min_len} bytes from {host}:{port} seen")

    def stop(self) -> None:
        self._sniffer.stop()


def inject(ctx: Ctx, conn: str, packets: list[Any]) -> None:
    """Send crafted IPv4 packets into the namespace's loopback (raw socket, IP_HDRINCL)."""
    from scapy.supersocket import L3RawSocket

    raw = L3RawSocket()
    try:
        for pkt in packets:
            raw.send(pkt)
            ctx.rec.note("injector", conn, f"send {describe(pkt)}", "sent")
    finally:
        raw.close()


def describe(pkt: Any) -> str:
    """One line for the log: addresses, TCP flags/seq/ack or ICMP type/code, TTL."""
    from scapy.all import ICMP, TCP

    line = f"{pkt.src} -> {pkt.dst} ttl={pkt.ttl}"
    if TCP in pkt:
        tcp = pkt[TCP]
        line += f" TCP {tcp.sport}->{tcp.dport} flags={tcp.flags} seq={tcp.seq} ack={tcp.ack}"
    elif ICMP in pkt:
        icmp = pkt[ICMP]
        line += f" ICMP type={icmp.type} code={icmp.code} mtu={icmp.nexthopmtu} (quoting a segment)"
    return line


def rst(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int | None, ttl: int) -> Any:
    from scapy.all import IP, TCP

    flags = "RA" if ack is not None else "R"
    return IP(src=src[0], dst=dst[0], ttl=ttl) / TCP(
        sport=src[1], dport=dst[1], flags=flags, seq=seq % 2**32, ack=(ack or 0) % 2**32, window=0
    )


def split_conn(conn: str) -> tuple[str, int]:
    host, _, port = conn.rpartition(":")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------------------------
# Reusable application pairs (each runs a client and a server; used alone and in `mixed`)
# --------------------------------------------------------------------------------------------

KEEPALIVE_OPTS = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
]
USER_TIMEOUT_OPTS = [(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3000)]


def pair_refused(ctx: Ctx, family: int, port: int, category: str = "refused") -> list[Finding]:
    """A client connects to `port`; whatever answers, connect() fails."""
    client, _ = ctx.connect(family, port)
    client.close()
    return [ctx.finding(category, client, family, port)]


def pair_graceful(ctx: Ctx, family: int, port: int, lst: socket.socket | None = None) -> None:
    """Request / response, then the client closes, the server reads EOF and closes."""
    lst = lst or ctx.listen(family, port)

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"HTTP/1.0 200 OK\r\n\r\nhello\n")
        conn.recv()  # EOF
        conn.close()

    def client() -> None:
        conn, ok = ctx.connect(family, port)
        if ok:
            conn.send(b"GET / HTTP/1.0\r\n\r\n")
            conn.recv()
            ctx.pause(0.05)
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])


def pair_linger0(ctx: Ctx, family: int, port: int) -> list[Finding]:
    """Request / response; the server then closes with SO_LINGER {1,0} while the client waits."""
    lst = ctx.listen(family, port)
    replied = threading.Event()
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"HTTP/1.0 200 OK\r\n\r\nbye\n")
        replied.wait(5)
        ctx.pause(0.15)  # the client is now blocked in its next recv
        conn.close_linger0()

    def client() -> None:
        conn, _ = ctx.connect(family, port)
        client_conn.append(conn)
        conn.send(b"GET / HTTP/1.0\r\n\r\n")
        conn.recv()
        replied.set()
        conn.recv()  # -> ECONNRESET
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return [ctx.finding("peer_reset", client_conn[0], family, port)]


def pair_broken_pipe(ctx: Ctx, family: int, port: int) -> list[Finding]:
    """Download: the server streams two chunks, the client reads exactly those and closes (FIN,
    empty receive buffer); the server keeps streaming: chunk 3 draws a bare RST from the client's
    kernel, chunk 4's send() fails."""
    lst = ctx.listen(family, port)
    closed = threading.Event()
    chunk = b"x" * 1000
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        for _ in range(2):
            conn.send(chunk)
            ctx.pause(0.05)
        closed.wait(5)
        ctx.pause(0.2)
        for _ in range(2):  # chunk 3 (accepted by the local kernel) and chunk 4 (EPIPE)
            if conn.send(chunk) is None:
                break
            ctx.pause(0.1)
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(family, port)
        client_conn.append(conn)
        conn.recv_exactly(2 * len(chunk))
        conn.close()
        closed.set()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return [ctx.finding("broken_pipe", client_conn[0], family, port)]


def pair_idle_exchange(
    ctx: Ctx,
    family: int,
    port: int,
    lst: socket.socket,
    client_opts: Iterable[tuple[int, int, int]] = (),
    then_client: Callable[[Endpoint], None] | None = None,
    idle: threading.Event | None = None,
    server_wait: float = 20.0,
    client_wait: float = 20.0,
    abort: bool = False,
) -> tuple[Endpoint, threading.Thread, threading.Thread]:
    """A small exchange, then both apps block in recv (the server with `server_wait`, the client
    with `client_wait`); `then_client` runs in the client thread between the exchange and its
    blocking recv; `idle` is set once the exchange is done. A client whose recv fails or times
    out closes, with SO_LINGER {1,0} if `abort`."""
    idle = idle or threading.Event()
    client_conn: list[Endpoint] = []
    connected = threading.Event()

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"pong\n")
        conn.recv(timeout=server_wait)

    def client() -> None:
        conn, _ = ctx.connect(family, port, client_opts)
        client_conn.append(conn)
        connected.set()
        conn.send(b"ping\n")
        conn.recv()
        idle.set()
        if then_client:
            then_client(conn)
        if conn.recv(timeout=client_wait) is None:
            if abort:
                conn.close_linger0()
            else:
                conn.close()

    th_server, th_client = ctx.spawn(server), ctx.spawn(client)
    if not connected.wait(5) or not idle.wait(5):
        raise RuntimeError("idle exchange did not complete")
    return client_conn[0], th_server, th_client


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    fn: Callable[[Ctx], Outcome]
    iface: str = "lo"
    linktype: str | None = None
    deferred_capture: bool = False  # the scenario calls ctx.start_capture() itself

    @property
    def description(self) -> str:
        return " ".join(textwrap.dedent(self.fn.__doc__ or "").split())


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, iface: str = "lo", linktype: str | None = None, deferred_capture: bool = False
) -> Callable[[Callable[[Ctx], Outcome]], Callable[[Ctx], Outcome]]:
    def register(fn: Callable[[Ctx], Outcome]) -> Callable[[Ctx], Outcome]:
        SCENARIOS[name] = Scenario(name, fn, iface, linktype, deferred_capture)
        return fn

    return register


@scenario("refused_no_listener")
def refused_no_listener(ctx: Ctx) -> Outcome:
    """The client connects to 127.0.0.1 on a port where nothing listens; connect() fails with
    ECONNREFUSED. Wire: SYN answered by RST,ACK (ack = ISS+1), no SYN retry."""
    return Outcome("kernel", pair_refused(ctx, V4, ctx.ports[0]))


@scenario("refused_ipv6")
def refused_ipv6(ctx: Ctx) -> Outcome:
    """The client connects to [::1] on a port where nothing listens; connect() fails with
    ECONNREFUSED. Wire: IPv6 SYN answered by RST,ACK (ack = ISS+1)."""
    return Outcome("kernel", pair_refused(ctx, V6, ctx.ports[0]))


@scenario("refused_firewall_reset")
def refused_firewall_reset(ctx: Ctx) -> Outcome:
    """A server listens (and never sees anything) but an iptables rule `INPUT -p tcp --dport P -j
    REJECT --reject-with tcp-reset` answers the client's SYN; connect() fails with ECONNREFUSED.
    Wire: SYN answered by RST,ACK generated by netfilter."""
    return Outcome("kernel", pair_refused(ctx, V4, listen_but_reject(ctx, "tcp-reset")))


@scenario("syn_scan")
def syn_scan(ctx: Ctx) -> Outcome:
    """`nmap -sS -Pn -n -p OPEN,CLOSED 127.0.0.1` against one listening port (whose server app
    never accepts, so it sees nothing) and one closed port. Wire: raw nmap SYNs (window 1024, MSS
    only); OPEN answers SYN-ACK and nmap's own kernel, having no socket, answers that with a bare
    RST (half-open scan); CLOSED answers RST,ACK (refused)."""
    open_port, closed_port = ctx.ports[0], ctx.ports[1]
    ctx.listen(V4, open_port)
    ctx.pause(0.05)
    out = ctx.tool(
        ["nmap", "-sS", "-Pn", "-n", "-p", f"{open_port},{closed_port}", "127.0.0.1"], app="nmap"
    )

    def from_wire(pcap: Path) -> tuple[list[Finding], list[str]]:
        findings, notes, seen, ttls = [], [], [], []
        ports = (open_port, closed_port)
        for pkt in read_packets(pcap):
            if pkt.proto == 6 and pkt.flags & 0x12 == 0x02 and pkt.dport in ports:
                seen.append((pkt.sport, pkt.dport))
                ttls.append(pkt.ttl)
        for sport, dport in dict.fromkeys(seen):
            cat = "half_open_scan" if dport == open_port else "refused"
            findings.append(Finding(cat, f"127.0.0.1:{sport}", f"127.0.0.1:{dport}", None, None))
        notes.append(
            f"nmap sent {len(seen)} SYN(s) from source port(s) "
            f"{sorted({s for s, _ in seen})} with IP TTL(s) {ttls}; nmap reported: "
            + "; ".join(ln for ln in out.splitlines() if "/tcp" in ln)
        )
        return findings, notes

    return Outcome("kernel", post=from_wire)


@scenario("peer_reset_linger0")
def peer_reset_linger0(ctx: Ctx) -> Outcome:
    """The client sends a request, the server replies and then closes with SO_LINGER {1,0} while
    the client is blocked in recv; the client's recv fails with ECONNRESET, the server saw no
    error. Wire: RST,ACK from the server with seq = its SND.NXT, no FIN."""
    return Outcome("kernel", pair_linger0(ctx, V4, ctx.ports[0]))


@scenario("peer_reset_unread_data")
def peer_reset_unread_data(ctx: Ctx) -> Outcome:
    """The client sends request 1, gets its reply, sends request 2 and waits; the server read
    only request 1 and close()s normally with request 2 still unread in its receive buffer, so
    Linux sends RST instead of FIN; the client's recv fails with ECONNRESET. Wire: request 2
    ACKed but never answered, then RST,ACK from the server (seq = its SND.NXT)."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    sent2 = threading.Event()
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"reply 1\n")
        sent2.wait(5)
        ctx.pause(0.15)
        conn.close()  # request 2 is still unread -> RST

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"request 1\n")
        conn.recv()
        conn.send(b"request 2\n")
        sent2.set()
        conn.recv()  # -> ECONNRESET
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("peer_reset", client_conn[0], V4, port)])


@scenario("unaccepted_reset")
def unaccepted_reset(ctx: Ctx) -> Outcome:
    """A server that stops listening before it accept()s a waiting connection (a restart, an
    accept loop that hung): the client connects (the kernel completes the handshake and queues
    the connection), sends its request and waits; the server's kernel ACKs it. About 4 s later
    the server closes its listening socket without ever calling accept(), and its kernel resets
    the queued connection (RST,ACK, seq = its SND.NXT). The client's recv fails with
    ECONNRESET; no server application ever saw the connection."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        ctx.pause(4.0)
        ev = ctx.rec.start("server", f"listener {fmt_addr(lst.getsockname())}", "close")
        lst.close()  # the queued connection was never accept()ed -> RST
        ctx.rec.finish(ev, "ok")

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        conn.recv(timeout=15.0)  # -> ECONNRESET
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)], timeout=25.0)
    return Outcome("kernel", [ctx.finding("peer_reset", client_conn[0], V4, port)])


@scenario("accept_queue_overflow")
def accept_queue_overflow(ctx: Ctx) -> Outcome:
    """A server whose accept queue is full: it listens with backlog 0 and its accept loop is
    stuck, so the one connection already waiting fills the queue. In the namespace `sysctl
    net.ipv4.tcp_synack_retries=2`. The late client connects; its first SYN-ACK is dropped on
    the way in (`iptables -I INPUT -p tcp --sport P --tcp-flags SYN,ACK SYN,ACK -j DROP` for
    about 0.1 s), and right after, the waiting client connects, sends its request and fills the
    queue. The server's kernel repeats the late client's SYN-ACK at 1 s; the client's ACK
    completes connect() and it sends its request, but the server's kernel drops the ACK and the
    data (accept queue full, net.ipv4.tcp_abort_on_overflow = 0: nstat TcpExtListenOverflows),
    repeats its SYN-ACK again at 3 s and lets the half-open entry expire at about 7 s. The
    client's next retransmission of its request meets the listener, which answers with a RST
    (no ACK): the client's recv() fails with ECONNRESET; no server application ever had the
    connection. Then the server's accept loop recovers: it accepts the waiting client, reads
    its request, answers and closes, and that client reads the answer and closes (no error)."""
    port = ctx.ports[0]
    ctx.tool(["sysctl", "-w", "net.ipv4.tcp_synack_retries=2"])
    lst = ctx.listen(V4, port, backlog=0)
    synack = ["INPUT", "-p", "tcp", "--sport", str(port), "--tcp-flags", "SYN,ACK", "SYN,ACK",
              "-j", "DROP"]  # fmt: skip
    late: list[Endpoint] = []
    reset = threading.Event()

    def late_client() -> None:
        conn, ok = ctx.connect(V4, port, timeout=5.0)
        late.append(conn)
        if ok and conn.send(b"GET /late HTTP/1.1\r\nHost: example\r\n\r\n") is not None:
            conn.recv(timeout=25.0)  # -> ECONNRESET, once the half-open entry expired
        reset.set()
        conn.close()

    def waiting_client() -> None:
        conn, ok = ctx.connect(V4, port, timeout=5.0)
        if ok and conn.send(b"GET /first HTTP/1.1\r\nHost: example\r\n\r\n") is not None:
            conn.recv(timeout=30.0)  # the answer, once the server accepts
        conn.close()

    def server() -> None:
        reset.wait(25.0)
        ctx.pause(0.5)
        conn = ctx.accept(lst)
        conn.recv(timeout=5.0)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    ctx.iptables("-I", *synack)
    threads = [ctx.spawn(late_client)]
    ctx.pause(0.1)
    ctx.iptables("-D", *synack)  # (long before the server repeats its SYN-ACK, at 1 s)
    ctx.pause(0.05)
    threads += [ctx.spawn(waiting_client), ctx.spawn(server)]
    ctx.join(threads, timeout=40.0)
    return Outcome("kernel", [ctx.finding("peer_reset", late[0], V4, port)])


@scenario("reset_on_accept")
def reset_on_accept(ctx: Ctx) -> Outcome:
    """A server that turns connections away as soon as it has them (at its connection limit, or
    a proxy with no backend to hand them to): it accept()s and at once closes with SO_LINGER
    {1,0}. The client's connect() succeeded; about 50 ms later it sends its request, which
    fails with ECONNRESET (the RST came first). Wire: SYN, SYN-ACK, ACK, then RST,ACK from the
    server, no data either way."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        ctx.accept(lst).close_linger0()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        ctx.pause(0.05)
        if conn.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n") is not None:
            conn.recv(timeout=5.0)
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("peer_reset", client_conn[0], V4, port)])


def start_kill_server(ctx: Ctx, port: int) -> subprocess.Popen[str]:
    """The server as a separate process (this script, --app kill-server) that can be SIGKILLed.
    It accepts one connection, reads one request, replies, then sleeps."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--app", "kill-server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ctx.procs.append(proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready or proc.stdout.readline().strip() != "READY":
        raise RuntimeError("kill-server did not start")
    return proc


def kill_server(ctx: Ctx, proc: subprocess.Popen[str], conn: str) -> None:
    """SIGKILL the server process and merge its call log into ours."""
    ctx.rec.note("admin", conn, f"kill -KILL {proc.pid} (server process)", "ok")
    proc.kill()
    out, _ = proc.communicate(timeout=5)
    for line in out.splitlines():
        ctx.rec.add(Event(**json.loads(line)))
    ctx.rec.note("server", conn, "process", "killed by SIGKILL")


def kill_server_app(port: int) -> None:
    """Body of the `--app kill-server` child process (runs in the caller's namespace)."""

    def sink(ev: Event) -> None:
        print(json.dumps(asdict(ev)), flush=True)

    rec = Recorder(sink)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(4)
    print("READY", flush=True)
    lst.settimeout(10)
    sock, addr = lst.accept()
    rec.note("server", fmt_addr(addr), "accept", "ok")
    conn = Endpoint(rec, "server", sock, fmt_addr(addr))
    conn.recv()
    conn.send(b"reply 1\n")
    time.sleep(30)  # killed long before this ends


@scenario("sigkill_unread_data")
def sigkill_unread_data(ctx: Ctx) -> Outcome:
    """The server is a separate process. The client sends request 1, gets the reply, sends
    request 2 (never read by the server) and waits; the server process is SIGKILLed. The kernel
    closes the socket with unread data, so it sends RST; the client's recv fails with
    ECONNRESET; the killed server had no error. Wire identical to peer_reset_unread_data."""
    port = ctx.ports[0]
    proc = start_kill_server(ctx, port)
    client, _ = ctx.connect(V4, port)
    client.send(b"request 1\n")
    client.recv()
    client.send(b"request 2\n")
    ctx.pause(0.15)
    th = ctx.spawn(lambda: (client.recv(), client.close()))
    ctx.pause(0.1)
    kill_server(ctx, proc, client.conn)
    ctx.join([th])
    return Outcome("kernel", [ctx.finding("peer_reset", client, V4, port)])


@scenario("sigkill_no_unread")
def sigkill_no_unread(ctx: Ctx) -> Outcome:
    """Negative control. The server is a separate process; the client sends a request, gets the
    reply and waits; the server process is SIGKILLed with an empty receive buffer. The kernel
    closes it with a normal FIN: the client's recv returns 0 (EOF) and the client closes too.
    No error anywhere, no RST."""
    port = ctx.ports[0]
    proc = start_kill_server(ctx, port)
    client, _ = ctx.connect(V4, port)
    client.send(b"request 1\n")
    client.recv()
    th = ctx.spawn(lambda: (client.recv(), client.close()))
    ctx.pause(0.15)
    kill_server(ctx, proc, client.conn)
    ctx.join([th])
    return Outcome("kernel", [])


@scenario("broken_pipe")
def broken_pipe(ctx: Ctx) -> Outcome:
    """Download: the server streams 1000-byte chunks; the client reads the two that arrived and
    closes normally (FIN, its receive buffer empty). After a pause the server sends chunk 3 (the
    local send succeeds), the client's kernel answers with a bare RST (no ACK flag, seq = the
    data's ack, window 0) and the server's send of chunk 4 fails with EPIPE. The client saw no
    error."""
    return Outcome("kernel", pair_broken_pipe(ctx, V4, ctx.ports[0]))


@scenario("fin_wait_reset")
def fin_wait_reset(ctx: Ctx) -> Outcome:
    """The client sends its request, shutdown(SHUT_WR) (FIN) and waits in recv; the server reads
    the request and the EOF, then closes with SO_LINGER {1,0}: RST,ACK from the server while the
    client is in FIN-WAIT-2; the client's recv fails with ECONNRESET."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.recv()  # EOF: the client half-closed
        ctx.pause(0.1)
        conn.close_linger0()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"GET / HTTP/1.0\r\n\r\n")
        conn.shutdown_wr()
        conn.recv()  # -> ECONNRESET
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("fin_wait_reset", client_conn[0], V4, port)])


@scenario("keepalive_timeout")
def keepalive_timeout(ctx: Ctx) -> Outcome:
    """The client enables SO_KEEPALIVE with TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=3; after
    a small exchange both apps block in recv and `iptables -I OUTPUT -p tcp --sport P -j DROP`
    silences the server (dropped before the capture tap). Wire: keepalive probes (seq = SND.NXT-1)
    every second, unanswered, then RST,ACK from the client. The client's recv fails with
    ETIMEDOUT; the RST reaches the server, whose recv fails with ECONNRESET."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    idle = threading.Event()

    def drop_server_output(_: Endpoint) -> None:
        ctx.iptables("-I", "OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP")

    client, th_s, th_c = pair_idle_exchange(
        ctx, V4, port, lst, KEEPALIVE_OPTS, drop_server_output, idle
    )
    ctx.join([th_c, th_s], 25)
    return Outcome(
        "kernel",
        [ctx.finding("keepalive_timeout", client, V4, port)],
        post=lambda pcap: ([], keepalive_notes(pcap, ctx.rec, client.conn)),
    )


def stalled_sender(
    ctx: Ctx,
    rule: list[str],
    category: str,
    client_opts: Iterable[tuple[int, int, int]] = USER_TIMEOUT_OPTS,
    client_wait: float = 15,
    abort: bool = False,
) -> Outcome:
    """Shared body: exchange, add `rule` (on INPUT, dport P), client sends and waits in recv
    (`client_wait`; then it closes, abortively if `abort`)."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)

    def block_then_send(conn: Endpoint) -> None:
        ctx.iptables("-I", "INPUT", "-p", "tcp", "--dport", str(port), *rule)
        ctx.pause(0.1)
        conn.send(b"request 2: never delivered\n")

    client, _, th_c = pair_idle_exchange(
        ctx, V4, port, lst, client_opts, block_then_send, server_wait=30,
        client_wait=client_wait, abort=abort,
    )  # fmt: skip
    ctx.join([th_c], 20)
    return Outcome(
        "kernel",
        [ctx.finding(category, client, V4, port)],
        post=lambda pcap: ([], stall_notes(pcap, ctx.rec, client.conn)),
    )


@scenario("idle_state_expired")
def idle_state_expired(ctx: Ctx) -> Outcome:
    """A stateful firewall that forgets idle connections: conntrack in the namespace with
    `net.netfilter.nf_conntrack_tcp_timeout_established=50` and `nf_conntrack_tcp_loose=0` (a
    segment of a connection it does not know is INVALID, as on a firewall that admits only
    connections it saw open), and `iptables -I INPUT -m conntrack --ctstate INVALID -j DROP`.
    The client (TCP_USER_TIMEOUT 3000 ms) makes a small exchange, stays idle 60 s (no
    keepalive), then sends its next request: the firewall has forgotten the connection and
    drops it, and every retransmission, without a word. The client's recv() fails with
    ETIMEDOUT; the server app, blocked in recv, sees nothing."""
    port = ctx.ports[0]
    ctx.tool(["sysctl", "-w", "net.netfilter.nf_conntrack_tcp_loose=0",
              "net.netfilter.nf_conntrack_tcp_timeout_established=50"])  # fmt: skip
    ctx.iptables("-I", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
    lst = ctx.listen(V4, port)

    def after_idle(conn: Endpoint) -> None:
        time.sleep(60.0)  # (not ctx.pause: the idle time must stay beyond the timeout)
        conn.send(b"request 2, after an idle minute\n")

    client, _, th_c = pair_idle_exchange(
        ctx, V4, port, lst, USER_TIMEOUT_OPTS, after_idle, server_wait=120, client_wait=15
    )
    ctx.join([th_c], 90)
    return Outcome("kernel", [ctx.finding("retransmission_timeout", client, V4, port)])


@scenario("pmtu_black_hole")
def pmtu_black_hole(ctx: Ctx) -> Outcome:
    """A path MTU black hole: the namespace's loopback gets an Ethernet MTU (`ip link set lo mtu
    1500`, MSS 1448 with timestamps) and `iptables -I INPUT -p tcp --sport P -m length --length
    1401:65535 -j DROP` drops the server's packets longer than 1400 bytes without a word, as a
    link with a smaller MTU (a tunnel, a VPN) does when the ICMP "fragmentation needed" that
    would tell the sender is filtered. The handshake and the client's small request pass; the
    server (TCP_USER_TIMEOUT 3000 ms) answers with 4000 bytes, which loopback's GSO hands over
    as one segment (as a sender's own capture shows TSO's), dropped; its tail loss probe resends
    the last 1104 bytes, which pass and draw the client's duplicate ACK (SACK). The server then
    retransmits 1448-byte segments, never acknowledged, until its recv() fails with ETIMEDOUT;
    no RST. The client's recv() gets nothing (the data before the hole never came) and gives up
    on its own 6 s timeout, with no error from TCP."""
    port = ctx.ports[0]
    ctx.tool(["ip", "link", "set", "lo", "mtu", "1500"])
    ctx.iptables("-I", "INPUT", "-p", "tcp", "--sport", str(port), "-m", "length", "--length",
                 "1401:65535", "-j", "DROP")  # fmt: skip
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn._do(
            "setsockopt(TCP_USER_TIMEOUT, 3000)",
            lambda: conn.sock.setsockopt(*USER_TIMEOUT_OPTS[0]),
            lambda _: "ok",
        )
        conn.recv(timeout=5.0)  # the request
        conn.send(b"x" * 4000)  # the response: 1448 + 1448 + 1104 bytes on a real link
        conn.recv(timeout=15.0)  # -> ETIMEDOUT, when the user timeout runs out

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok and conn.send(b"GET /big HTTP/1.1\r\nHost: example\r\n\r\n") is not None:
            conn.recv(timeout=6.0)  # nothing in order ever arrives; (closed after the capture)

    ctx.join([ctx.spawn(server), ctx.spawn(client)], timeout=25.0)
    return Outcome(
        "kernel",
        [ctx.finding("retransmission_timeout", client_conn[0], V4, port)],
    )


@scenario("retransmission_timeout")
def retransmission_timeout(ctx: Ctx) -> Outcome:
    """The client sets TCP_USER_TIMEOUT=3000 ms; after a small exchange `iptables -I INPUT -p tcp
    --dport P -j DROP` black-holes everything the client sends (captured on the way out, dropped
    on input). The client sends a request and blocks in recv: the request is retransmitted with
    exponential backoff, never ACKed, until the client's recv fails with ETIMEDOUT. No RST. The
    server app stays blocked in recv and sees nothing."""
    return stalled_sender(ctx, ["-j", "DROP"], "retransmission_timeout")


@scenario("retransmission_then_abort")
def retransmission_then_abort(ctx: Ctx) -> Outcome:
    """After a small exchange, `iptables -I INPUT -p tcp --dport P -j DROP` black-holes
    everything the client sends. The client sends a request and waits for the reply on a
    timer of its own (a 4 s socket timeout, no TCP_USER_TIMEOUT): the request is
    retransmitted with exponential backoff, never ACKed; when the timer fires the client gives
    up and closes with SO_LINGER {1,0}, so a RST ends the stall (the shape a Windows stack
    makes on its own when its retransmission limit runs out). The client's recv fails on its
    own timeout (no errno from TCP); the server app stays blocked in recv and sees nothing."""
    return stalled_sender(ctx, ["-j", "DROP"], "retransmission_timeout", (), 4.0, abort=True)


def closed_then_stalled(
    ctx: Ctx, rule: list[str], category: str, last: bytes = b"goodbye: never delivered\n"
) -> Outcome:
    """Shared body: exchange, add `rule` (on INPUT, dport P), the client sends a last message
    (`last`) and closes at once; the capture runs on about 4 s."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    closed = threading.Event()
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"pong\n")
        conn.recv(timeout=30)

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"ping\n")
        conn.recv()
        ctx.iptables("-I", "INPUT", "-p", "tcp", "--dport", str(port), *rule)
        ctx.pause(0.1)
        conn.send(last)
        conn.close()
        closed.set()

    ctx.spawn(server)
    th_c = ctx.spawn(client)
    ctx.join([th_c], 10)
    if not closed.wait(1):
        raise RuntimeError("the client did not close")
    ctx.pause(4.0)  # the orphaned socket's retransmissions
    return Outcome("kernel", [ctx.finding(category, client_conn[0], V4, port)])


@scenario("retransmission_after_close")
def retransmission_after_close(ctx: Ctx) -> Outcome:
    """After a small exchange `iptables -I INPUT -p tcp --dport P -j DROP` black-holes everything
    the client sends. The client sends its last 20 log records (620 bytes) and closes its
    socket at once: close() succeeds (the records are only queued). The kernel goes on
    retransmitting them and the FIN from the orphaned socket (FIN-WAIT-1) with exponential
    backoff, never acknowledged, for as long as the capture runs (about 4 s); no call of the
    client is left to fail. The server app stays blocked in recv and sees nothing, and never
    gets the records."""
    records = b"".join(b"log record %02d: never delivered\n" % i for i in range(20))
    return closed_then_stalled(ctx, ["-j", "DROP"], "retransmission_timeout", records)


@scenario("icmp_host_unreachable_after_close")
def icmp_host_unreachable_after_close(ctx: Ctx) -> Outcome:
    """As retransmission_after_close, but `iptables -I INPUT -p tcp --dport P -j REJECT
    --reject-with icmp-host-unreachable` answers each of the client's segments with an ICMP
    host unreachable: a soft error for the orphaned socket (FIN-WAIT-1), which keeps
    retransmitting its last message and FIN (every ~200 ms, RFC 6069). The client had closed:
    no call of its is left to get the error. The server app sees nothing."""
    return closed_then_stalled(
        ctx, ["-j", "REJECT", "--reject-with", "icmp-host-unreachable"], "icmp_error"
    )


@scenario("icmp_host_unreachable_established")
def icmp_host_unreachable_established(ctx: Ctx) -> Outcome:
    """The client sets TCP_USER_TIMEOUT=3000 ms; after a small exchange `iptables -I INPUT -p tcp
    --dport P -j REJECT --reject-with icmp-host-unreachable` rejects every client segment. The
    client sends a request and blocks in recv: each (re)transmission draws an ICMP host
    unreachable, which is a soft error on an established connection; retransmissions continue
    (without exponential backoff, RFC 6069) until the user timeout, then the client's recv fails
    with the stored ICMP error. No RST. The server app sees nothing."""
    return stalled_sender(
        ctx, ["-j", "REJECT", "--reject-with", "icmp-host-unreachable"], "icmp_error"
    )


@scenario("local_abort_ss_kill")
def local_abort_ss_kill(ctx: Ctx) -> Outcome:
    """Three clients connect to one server, exchange a line each and then all six apps block in
    recv. `ss -K dst 127.0.0.1 dport = :P` (inside the namespace) destroys the three client
    sockets at once: each client's recv fails with ECONNABORTED and the kernel sends a RST,ACK
    (seq = SND.NXT) on each, so each server-side recv fails with ECONNRESET."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    pairs = []
    for _ in range(3):
        pairs.append(pair_idle_exchange(ctx, V4, port, lst))
        ctx.pause(0.05)
    ctx.pause(0.3)
    ctx.tool(["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{port}"], check=False)
    ctx.join([th for _, s, c in pairs for th in (c, s)], 10)
    return Outcome("kernel", [ctx.finding("local_abort", c, V4, port) for c, _, _ in pairs])


def listen_but_reject(ctx: Ctx, reject_with: str) -> int:
    """A listener on the scenario's port, behind an iptables REJECT rule; returns the port."""
    port = ctx.ports[0]
    ctx.listen(V4, port)
    ctx.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                 "--reject-with", reject_with)  # fmt: skip
    return port


def icmp_reject_syn(ctx: Ctx, reject_with: str) -> Outcome:
    port = listen_but_reject(ctx, reject_with)
    return Outcome("kernel", pair_refused(ctx, V4, port, "icmp_error"))


@scenario("icmp_port_unreachable_syn")
def icmp_port_unreachable_syn(ctx: Ctx) -> Outcome:
    """A server listens but `iptables -A INPUT -p tcp --dport P -j REJECT --reject-with
    icmp-port-unreachable` answers the client's SYN with an ICMP port unreachable quoting it;
    connect() fails at once with ECONNREFUSED, no SYN retry."""
    return icmp_reject_syn(ctx, "icmp-port-unreachable")


@scenario("icmp_host_unreachable_syn")
def icmp_host_unreachable_syn(ctx: Ctx) -> Outcome:
    """A server listens but `iptables -A INPUT -p tcp --dport P -j REJECT --reject-with
    icmp-host-unreachable` answers the client's SYN with an ICMP host unreachable quoting it;
    connect() fails at once with EHOSTUNREACH, no SYN retry."""
    return icmp_reject_syn(ctx, "icmp-host-unreachable")


@scenario("stale_connection_reuse")
def stale_connection_reuse(ctx: Ctx) -> Outcome:
    """A kept-alive connection: request 1 and its reply; the server closes the idle connection
    about 1 s later (FIN), as a keep-alive timeout does; the client, which does not read in
    between, sends request 2 on the same connection about 2 s after that FIN. The server's closed
    socket answers with a RST: the client's send() succeeded and its recv() returns 0 (EOF) with
    no response, so the request failed without an errno; the server sees nothing."""
    return stale_reuse_run(ctx, half_close=False)


def stale_reuse_run(ctx: Ctx, half_close: bool) -> Outcome:
    """stale_connection_reuse, or with `half_close`, stale_connection_half_closed."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        ctx.pause(1.0)  # the keep-alive timeout
        if not half_close:
            conn.close()
            return
        conn.shutdown_wr()
        for _ in range(4):  # (the lingering close: read and discard until EOF)
            if not conn.recv():
                break
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"GET /1 HTTP/1.1\r\nHost: sample\r\n\r\n")
        conn.recv()
        ctx.pause(3.0)  # (at least 2.4 s: the FIN comes at most 1.5 s after the reply)
        conn.send(b"GET /2 HTTP/1.1\r\nHost: sample\r\n\r\n")
        conn.recv()  # -> EOF
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    category = "premature_close" if half_close else "broken_pipe"
    return Outcome("kernel", [ctx.finding(category, client_conn[0], V4, port)])


@scenario("server_closed_request_unanswered")
def server_closed_request_unanswered(ctx: Ctx) -> Outcome:
    """The server reads the client's request and, about 0.3 s later, closes without a word
    (as nginx's `return 444` does, or a worker that fails on the request): a plain FIN, nothing
    unread, so no RST. The client, blocked in recv() for the answer, gets 0 (EOF) and closes:
    its request failed without an errno ("Empty reply from server"); the server sees nothing."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        ctx.pause(0.3)  # (the worker's time on the request)
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"GET /report HTTP/1.1\r\nHost: sample\r\nAccept: */*\r\n\r\n")
        conn.recv()  # -> EOF
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("premature_close", client_conn[0], V4, port)])


@scenario("stale_connection_half_closed")
def stale_connection_half_closed(ctx: Ctx) -> Outcome:
    """A kept-alive connection: request 1 and its reply; about 1 s later the server ends the
    idle connection as Apache and lighttpd do: shutdown(SHUT_WR) (FIN), then it reads on until
    the client closes (a lingering close), so no RST comes. The client, which does not read in
    between, sends request 2 about 2 s after the FIN: its send() succeeds, its recv() returns 0
    (EOF), and it closes. The server reads request 2 and then EOF, and closes; it sees nothing
    wrong, the client's request failed without an errno."""
    return stale_reuse_run(ctx, half_close=True)


@scenario("response_then_server_abort")
def response_then_server_abort(ctx: Ctx) -> Outcome:
    """The server sends its whole response (`Content-Length: 3`, `Connection: close`) and at
    once closes with SO_LINGER {1,0} (as IIS, a Java server or a load balancer may, to skip
    TIME-WAIT): RST,ACK right after the response. The client had the response queued; it reads
    it, then reads on for the end of file and gets ECONNRESET. A client that stops at the
    response's length sees nothing, so the finding's impact is unknown."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(response)
        conn.close_linger0()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"GET / HTTP/1.1\r\nHost: sample\r\n\r\n")
        ctx.pause(0.1)  # (the RST is there before it reads)
        conn.recv_exactly(len(response))
        conn.recv()  # -> ECONNRESET (the end of file it read on for)
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("peer_reset", client_conn[0], V4, port)])


@scenario("late_reply_reset")
def late_reply_reset(ctx: Ctx) -> Outcome:
    """The client sends a request and waits for the reply for 0.5 s at most (its own timeout),
    then closes (FIN); the server, slower, replies about 1 s after the request, in one segment
    after the client's FIN, and the client's closed socket answers with a RST. The server's
    send() succeeded and its next recv() returns 0 (EOF): no EPIPE, which only a further send()
    would get. The client's recv() timed out on its own timer (no errno)."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        ctx.pause(1.0)  # (at least 0.8 s: the client closes at 0.5 s)
        conn.send(b"result: 42\n")
        conn.recv()  # -> EOF
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"SELECT slow()\n")
        conn.recv(timeout=0.5)  # -> its own timeout
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    return Outcome("kernel", [ctx.finding("broken_pipe", client_conn[0], V4, port)])


def download_to_stalled_reader(
    ctx: Ctx,
    send_timeout: float,
    server_end: Callable[[Endpoint], object],
    after_read: Callable[[Endpoint], object],
    wait: float = 20.0,
) -> Endpoint:
    """Shared body: the server send()s 64 KiB chunks (4 MiB at most), each with `send_timeout`,
    until one fails or times out, then `server_end`s; the client (SO_RCVBUF 64 KiB) reads the
    first 64 KiB and then does `after_read` instead of reading on (its window closes). Waits up
    to `wait` seconds for both; returns the client's socket."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []
    chunk = b"x" * 65536

    def server() -> None:
        conn = ctx.accept(lst)
        for _ in range(64):
            if conn.send(chunk, timeout=send_timeout) is None:
                break
        server_end(conn)

    def client() -> None:
        conn, _ = ctx.connect(V4, port, [(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
        client_conn.append(conn)
        conn.recv_exactly(len(chunk))
        after_read(conn)

    ctx.join([ctx.spawn(server), ctx.spawn(client)], wait)
    return client_conn[0]


def download_to_slow_reader(
    ctx: Ctx,
    send_timeout: float,
    server_end: Callable[[Endpoint], object],
    pause: float,
    client_end: Callable[[Endpoint], object],
) -> Outcome:
    """download_to_stalled_reader whose client does not read for `pause` seconds, then
    `client_end`s: a peer_reset."""

    def after_read(conn: Endpoint) -> None:
        ctx.pause(pause)
        client_end(conn)

    client = download_to_stalled_reader(ctx, send_timeout, server_end, after_read)
    return Outcome("kernel", [ctx.finding("peer_reset", client, V4, ctx.ports[0])])


@scenario("download_abandoned")
def download_abandoned(ctx: Ctx) -> Outcome:
    """Download: the server send()s 4 MiB in 64 KiB calls; the client (SO_RCVBUF 64 KiB)
    reads the first 64 KiB and stops reading: its receive buffer fills, it advertises a zero
    window and the server's send() blocks. About 0.5 s later the client closes with that data
    unread: its kernel sends a RST,ACK instead of a FIN, and the server's blocked send() fails
    with ECONNRESET. Cause `quit-with-full-buffer` (not linger 0)."""
    return download_to_slow_reader(ctx, 10.0, Endpoint.close, 0.5, Endpoint.close)


@scenario("send_timeout_reset")
def send_timeout_reset(ctx: Ctx) -> Outcome:
    """Download to a client that stops reading: the server send()s 64 KiB chunks; the client
    (SO_RCVBUF 64 KiB) reads the first 64 KiB and then does not read for 4 s (hung, or busy):
    its window closes and the server's kernel sends zero-window probes. The server's send()
    has a 2 s timeout of its own (as nginx's send_timeout); when it expires the server aborts
    with SO_LINGER {1,0}: RST,ACK. The client, reading again, gets the buffered data and then
    ECONNRESET. Cause `peer-stopped-reading` (not an idle connection, not linger 0 alone)."""
    return download_to_slow_reader(
        ctx,
        2.0,
        Endpoint.close_linger0,
        4.0,
        lambda conn: conn.recv_exactly(64 * 65536, timeout=5.0),
    )


@scenario("reader_stopped_hang")
def reader_stopped_hang(ctx: Ctx) -> Outcome:
    """A hang, no failure: the server send()s 64 KiB chunks with an 8 s timeout; the client
    (SO_RCVBUF 64 KiB) reads the first 64 KiB and then stops reading for good (it returns
    without reading or closing: stuck, as far as the wire shows). Its window closes, the
    server's kernel sends zero-window probes with growing gaps, each answered with the window
    still 0, and the server's send() blocks until its own timeout (no result: the call only
    timed out, no errno). The capture stops while the connection still hangs (the sockets are
    closed only afterwards): no RST, no FIN, nothing failed. tcpdiag reports no finding and
    one hang (the client stopped reading, the server probed it)."""
    download_to_stalled_reader(ctx, 8.0, lambda conn: None, lambda conn: None, 15)
    return Outcome("kernel", [])


@scenario("reader_vanished_zero_window")
def reader_vanished_zero_window(ctx: Ctx) -> Outcome:
    """The reader vanished with its window closed: the server send()s 64 KiB chunks with a 30 s
    timeout; the client (SO_RCVBUF 64 KiB) reads the first 64 KiB and stops reading, its
    window closes and the server's kernel probes it (0 bytes at SND.NXT-1, doubling gaps from
    about 0.2 s). The client's kernel answers the first probe (window still 0) and not the
    second, under half a second later (tcp_invalid_ratelimit). 1 s after its read the
    client's host goes away, as seen from the wire (`iptables -I INPUT -p tcp --sport P -j
    DROP` on its side: the probes reach no socket, nothing answers them). The server's kernel
    probes on until `net.ipv4.tcp_retries2` (4 in the namespace) probes went unanswered, then
    gives up without a RST: its blocked send() fails with ETIMEDOUT. The client's program,
    stuck, sees nothing."""
    port = ctx.ports[0]
    ctx.tool(["sysctl", "-w", "net.ipv4.tcp_retries2=4"])

    def vanish(conn: Endpoint) -> None:
        time.sleep(1.0)  # (not ctx.pause: between the second probe and the third)
        ctx.iptables("-I", "INPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP")

    client = download_to_stalled_reader(ctx, 30.0, lambda conn: None, vanish, 40)
    return Outcome("kernel", [ctx.finding("retransmission_timeout", client, V4, port)])


@scenario("reader_vanished_then_abort")
def reader_vanished_then_abort(ctx: Ctx) -> Outcome:
    """As reader_vanished_zero_window (default tcp_retries2), but the server's send() has a
    3.9 s timeout of its own, after which it closes with SO_LINGER {1,0}: a RST, sent about
    4 s in, after three probes went unanswered (the second one skipped by the client's
    tcp_invalid_ratelimit, the next two after the client's host went away) and well before the
    next probe was due. The server's program only saw its own send timeout (no errno); the
    client's, stuck, sees nothing, nor most likely the RST. A retransmission_timeout that its
    sender ended (rule retransmission-timeout-reset), not a peer_reset: the reader is gone."""
    port = ctx.ports[0]

    def vanish(conn: Endpoint) -> None:
        time.sleep(1.0)  # (not ctx.pause: between the second probe and the third)
        ctx.iptables("-I", "INPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP")

    client = download_to_stalled_reader(ctx, 3.9, Endpoint.close_linger0, vanish, 15)
    return Outcome("kernel", [ctx.finding("retransmission_timeout", client, V4, port)])


@scenario("graceful_close")
def graceful_close(ctx: Ctx) -> Outcome:
    """Negative control: one request / response, the client closes, the server reads EOF and
    closes. FIN both ways, no RST, no error."""
    pair_graceful(ctx, V4, ctx.ports[0])
    return Outcome("kernel", [])


@scenario("mixed")
def mixed(ctx: Ctx) -> Outcome:
    """Several apps at once in one namespace: a graceful request/response on port A, a connect
    to port B where nothing listens (ECONNREFUSED), a linger-0 server reset on port C (client
    recv ECONNRESET), a download on port D whose client quits (server send EPIPE), and a second
    graceful connection to port A started a little later."""
    pa, pb, pc, pd = ctx.ports[:4]
    lst_a = ctx.listen(V4, pa)
    results: dict[str, list[Finding]] = {}

    def run(key: str, fn: Callable[[], list[Finding] | None], delay: float) -> None:
        time.sleep(delay)
        results[key] = fn() or []

    jobs = [
        ("graceful1", lambda: pair_graceful(ctx, V4, pa, lst_a), 0.0),
        ("refused", lambda: pair_refused(ctx, V4, pb), 0.05),
        ("linger0", lambda: pair_linger0(ctx, V4, pc), 0.1),
        ("broken_pipe", lambda: pair_broken_pipe(ctx, V4, pd), 0.15),
        ("graceful2", lambda: pair_graceful(ctx, V4, pa, lst_a), 0.5),
    ]
    threads = [
        ctx.spawn(run, key, fn, delay * ctx.rng.uniform(0.8, 1.5)) for key, fn, delay in jobs
    ]
    ctx.join(threads, 30)
    findings = [f for key, _, _ in jobs for f in results.get(key, [])]
    return Outcome("kernel", findings)


@scenario("peer_reset_ipv6_any", iface="any", linktype="LINUX_SLL2")
def peer_reset_ipv6_any(ctx: Ctx) -> Outcome:
    """The linger-0 reset over IPv6 ([::1]), captured with `tcpdump -i any` (Linux cooked v2,
    SLL2 link type): the client sends a request, the server replies and closes with SO_LINGER
    {1,0}; the client's recv fails with ECONNRESET."""
    return Outcome("kernel", pair_linger0(ctx, V6, ctx.ports[0]))


IPPROTO_MPTCP = 262  # (socket.IPPROTO_MPTCP where Python names it: Linux 5.6 and later)
SUBFLOW_ADDR = "127.0.0.2"  # the client's second address, for a second subflow


def mptcp_connection(ctx: Ctx, port: int, endpoints: tuple[str, ...]) -> tuple[Endpoint, Endpoint]:
    """A Multipath TCP connection from 127.0.0.1 to 127.0.0.1:port whose path managers may add
    subflows from `endpoints` (`ip mptcp endpoint add ADDR dev lo subflow`, each), and one
    request/reply over it: the client's and the server's endpoints."""
    ctx.tool(["ip", "mptcp", "limits", "set", "subflow", "2", "add_addr_accepted", "2"])
    for addr in endpoints:
        ctx.tool(["ip", "mptcp", "endpoint", "add", addr, "dev", "lo", "subflow"])
    lst = ctx.listen(V4, port, IPPROTO_MPTCP)
    client, ok = ctx.connect(V4, port, proto=IPPROTO_MPTCP)
    if not ok:
        raise RuntimeError("MPTCP connect() failed")
    server = ctx.accept(lst)
    client.send(b"ping\n")
    server.recv()
    server.send(b"pong\n")
    client.recv()
    return client, server


def mptcp_two_subflows(ctx: Ctx, port: int) -> tuple[Endpoint, Endpoint, str]:
    """A Multipath TCP connection from 127.0.0.1 to 127.0.0.1:port, one request/reply over it,
    and a second subflow from SUBFLOW_ADDR (`ip mptcp endpoint add 127.0.0.2 dev lo subflow`)
    that the client's path manager opens once the connection is established: the client's and
    the server's endpoints, and the joined subflow's client ip:port."""
    client, server = mptcp_connection(ctx, port, (SUBFLOW_ADDR,))
    query = ["ss", "-tnH", "state", "established", "src", SUBFLOW_ADDR]
    for _ in range(40):  # (at most 2 s)
        listed = ctx.tool(query, check=False).split()
        if len(listed) >= 3:
            host, _, subflow_port = listed[2].rpartition(":")  # "127.0.0.2%lo:40112"
            return client, server, f"{host.split('%')[0]}:{subflow_port}"
        time.sleep(0.05)
    raise RuntimeError("no second MPTCP subflow joined")


def refused_joins(
    client: str, addrs: tuple[str, ...] = (SUBFLOW_ADDR,)
) -> Callable[[Path], tuple[list[Finding], list[str]]]:
    """Post hook of the MPTCP scenarios: the namespace's subflow endpoints (`addrs`) serve the
    server's path manager too, which may try to join the connection from one of them to the
    client's own port; nothing listens there, so the client's kernel refuses that SYN
    (MP_JOIN). No application asked for that subflow, so none sees anything."""
    host, port = split_conn(client)

    def from_wire(pcap: Path) -> tuple[list[Finding], list[str]]:
        packets = flow(read_packets(pcap), port)
        refused = {
            (p.dst, p.dport)
            for p in packets
            if p.flags & 0x04 and p.src == host and p.sport == port and p.dst in addrs
        }
        joins = sorted(
            {(p.src, p.sport) for p in packets if p.flags == 0x02 and p.dport == port} & refused
        )
        findings = [Finding("subflow_reset", f"{a}:{b}", client, None, None) for a, b in joins]
        notes = [
            f"the server's path manager tried to join from {a}:{b} to {client}: refused"
            for a, b in joins
        ]
        return findings, notes

    return from_wire


@scenario("mptcp_fastclose")
def mptcp_fastclose(ctx: Ctx) -> Outcome:
    """A Multipath TCP connection with two subflows (the second from 127.0.0.2: `ip mptcp
    endpoint add 127.0.0.2 dev lo subflow`). After a request/reply the server closes its MPTCP
    socket with SO_LINGER {1,0} while the client blocks in recv: the kernel sends a RST carrying
    MP_FASTCLOSE and MP_TCPRST on both subflows in the same instant, and the client's recv fails
    with ECONNRESET, once; the server sees nothing."""
    port = ctx.ports[0]
    client, server, joined = mptcp_two_subflows(ctx, port)

    def client_waits() -> None:
        client.recv()  # -> ECONNRESET
        client.close()

    waiting = ctx.spawn(client_waits)
    ctx.pause(0.2)
    server.close_linger0()
    ctx.join([waiting], 10)
    first = ctx.finding("peer_reset", client, V4, port)
    # The joined subflow's reset is the same abort of the same socket.
    second = Finding("peer_reset", joined, first.server, first.client_errno, first.server_errno)
    return Outcome("kernel", [first, second], post=refused_joins(client.conn))


@scenario("mptcp_subflow_reset")
def mptcp_subflow_reset(ctx: Ctx) -> Outcome:
    """A Multipath TCP connection with two subflows (as mptcp_fastclose). After a request/reply,
    `ss -K src 127.0.0.2` destroys the client's joined subflow: its kernel sends a RST carrying
    MP_TCPRST on that subflow alone. The MPTCP connection goes on over the first subflow: a
    second request/reply, then the client closes, the server reads EOF and closes. No
    application sees an error. (The server's path manager may also try to join from 127.0.0.2
    to the client's port, where nothing listens: refused, and nobody sees that either.)"""
    port = ctx.ports[0]
    client, server, joined = mptcp_two_subflows(ctx, port)
    ctx.tool(["ss", "-K", "src", SUBFLOW_ADDR], check=False)
    ctx.pause(0.2)
    client.send(b"ping 2\n")
    server.recv()
    server.send(b"pong 2\n")
    client.recv()
    client.close()
    server.recv()  # EOF
    server.close()
    server_addr = ctx.server_addr(V4, port)
    return Outcome(
        "kernel",
        [Finding("subflow_reset", joined, server_addr, None, None)],
        post=refused_joins(client.conn),
    )


DROPPED_JOIN_ADDR = "127.0.0.2"  # a subflow endpoint whose joins a firewall rule drops
REJECTED_JOIN_ADDR = "127.0.0.3"  # one whose joins a rule rejects with ICMP host unreachable


@scenario("mptcp_join_failed")
def mptcp_join_failed(ctx: Ctx) -> Outcome:
    """A Multipath TCP connection whose client's path manager tries to add two subflows that
    fail (`ip mptcp endpoint add 127.0.0.2 dev lo subflow`, the same for 127.0.0.3): iptables
    drops the SYNs of joins from 127.0.0.2 to the server's port (retransmitted, never answered)
    and rejects those from 127.0.0.3 with ICMP host unreachable. The connection goes on over its
    first subflow: a request/reply, a pause of 3.5 s while the dropped join's SYN is
    retransmitted, a second request/reply, then the client closes and the server reads EOF and
    closes. No application sees an error. (The server's path manager may also try to join from
    those addresses to the client's port, where nothing listens: refused, seen by nobody.)"""
    port = ctx.ports[0]
    syn_to_server = ["-p", "tcp", "--dport", str(port), "--syn"]
    ctx.iptables("-I", "INPUT", "-s", DROPPED_JOIN_ADDR, *syn_to_server, "-j", "DROP")
    ctx.iptables(
        "-I", "INPUT", "-s", REJECTED_JOIN_ADDR, *syn_to_server,
        "-j", "REJECT", "--reject-with", "icmp-host-unreachable",
    )  # fmt: skip
    client, server = mptcp_connection(ctx, port, (DROPPED_JOIN_ADDR, REJECTED_JOIN_ADDR))
    ctx.pause(3.5)
    client.send(b"ping 2\n")
    server.recv()
    server.send(b"pong\n")
    client.recv()
    client.close()
    server.recv()  # EOF
    server.close()
    return Outcome("kernel", [], post=failed_joins(ctx, client, port, "tried to join"))


def failed_joins(
    ctx: Ctx, client: Endpoint, port: int, what: str
) -> Callable[[Path], tuple[list[Finding], list[str]]]:
    """Post hook of the scenarios whose client's joins from DROPPED_JOIN_ADDR and
    REJECTED_JOIN_ADDR fail: a subflow_failed finding for each join on the wire, and the
    server's joins refused (refused_joins)."""
    server_addr = ctx.server_addr(V4, port)
    refused = refused_joins(client.conn, (DROPPED_JOIN_ADDR, REJECTED_JOIN_ADDR))

    def from_wire(pcap: Path) -> tuple[list[Finding], list[str]]:
        joins = sorted(
            {
                (p.src, p.sport)
                for p in flow(read_packets(pcap), port)
                if p.flags == 0x02 and p.dport == port
                and p.src in (DROPPED_JOIN_ADDR, REJECTED_JOIN_ADDR)
            }
        )  # fmt: skip
        findings = [
            Finding("subflow_failed", f"{a}:{b}", server_addr, None, None) for a, b in joins
        ]
        notes = [f"the client's path manager {what} from {a}:{b}: failed" for a, b in joins]
        more, more_notes = refused(pcap)
        return findings + more, notes + more_notes

    return from_wire


@scenario("mptcp_subflow_lost")
def mptcp_subflow_lost(ctx: Ctx) -> Outcome:
    """A Multipath TCP connection with three subflows: the first, and joins from 127.0.0.2 and
    127.0.0.3 (`ip mptcp endpoint add ... dev lo subflow`). After a request/reply, iptables
    drops everything from 127.0.0.2 and rejects everything from 127.0.0.3 with ICMP host
    unreachable: both joined paths break. The client then sends 256 KiB, the server reads it
    all and answers; the MPTCP stacks retransmit what those subflows carried over the first
    one, and after 4 s the client closes and the server reads EOF and closes. No application
    sees an error."""
    port = ctx.ports[0]
    client, server = mptcp_connection(ctx, port, (DROPPED_JOIN_ADDR, REJECTED_JOIN_ADDR))
    for _ in range(40):  # (at most 2 s: both joins established)
        listed = ctx.tool(["ss", "-tnH", "state", "established"], check=False)
        if DROPPED_JOIN_ADDR in listed and REJECTED_JOIN_ADDR in listed:
            break
        time.sleep(0.05)
    ctx.iptables("-I", "INPUT", "-s", DROPPED_JOIN_ADDR, "-p", "tcp", "-j", "DROP")
    ctx.iptables(
        "-I", "INPUT", "-s", REJECTED_JOIN_ADDR, "-p", "tcp",
        "-j", "REJECT", "--reject-with", "icmp-host-unreachable",
    )  # fmt: skip

    def server_reads() -> None:
        got = 0
        while got < 256 * 1024:
            data = server.recv()
            if not data:
                break
            got += len(data)
        server.send(b"done\n")

    reader = ctx.spawn(server_reads)
    client.send(b"x" * (256 * 1024))
    ctx.join([reader], 20)
    client.recv()
    ctx.pause(4.0)
    client.close()
    server.recv()  # EOF
    server.close()
    return Outcome("kernel", [], post=failed_joins(ctx, client, port, "joined"))


def reset_then_continue(ctx: Ctx, seq_offset: int) -> Outcome:
    """Shared body of the ignored-reset scenarios: exchange, inject a RST (claiming to come from
    the client) into the server with seq = server's RCV.NXT + seq_offset, then carry on and close
    gracefully."""
    port = ctx.ports[0]
    watcher = FlowWatcher(port)
    lst = ctx.listen(V4, port)
    phase1, injected = threading.Event(), threading.Event()
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"reply 1\n")
        conn.recv()  # request 2, sent after the injected RST
        conn.send(b"reply 2\n")
        conn.recv()  # EOF
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"request 1\n")
        conn.recv()
        phase1.set()
        injected.wait(5)
        conn.send(b"request 2\n")
        conn.recv()
        conn.close()

    threads = [ctx.spawn(server), ctx.spawn(client)]
    if not phase1.wait(5):
        raise RuntimeError("exchange did not happen")
    ctx.pause(0.2)
    chost, cport = split_conn(client_conn[0].conn)
    rcv_nxt = watcher.seq_after(chost, cport)
    inject(
        ctx,
        client_conn[0].conn,
        [rst((chost, cport), ("127.0.0.1", port), rcv_nxt + seq_offset, None, 64)],
    )
    ctx.pause(0.3)
    injected.set()
    ctx.join(threads)
    watcher.stop()
    note = f"Injected RST seq = server RCV.NXT {rcv_nxt} + {seq_offset}."
    return Outcome(
        "kernel+injected", [ctx.finding("ignored_reset", client_conn[0], V4, port)], [note]
    )


@scenario("ignored_reset_out_of_window")
def ignored_reset_out_of_window(ctx: Ctx) -> Outcome:
    """After request/reply 1, a RST claiming to come from the client (TTL 64, no ACK flag) is
    injected with scapy into the server with a sequence number 2^30 beyond its RCV.NXT, far
    outside the window: the kernel drops it silently. The apps then exchange request/reply 2
    and close gracefully; nobody sees an error. (Wireshark's analysis takes the RST's seq at face
    value and labels the next client segments "TCP Retransmission"; they are first
    transmissions.)"""
    return reset_then_continue(ctx, 2**30)


@scenario("ignored_reset_challenge_ack")
def ignored_reset_challenge_ack(ctx: Ctx) -> Outcome:
    """After request/reply 1, a RST claiming to come from the client (TTL 64, no ACK flag) is
    injected with scapy into the server with seq = RCV.NXT + 1000: inside the window but not
    exact, so (RFC 5961) the server's kernel answers with a challenge ACK (seq = SND.NXT, ack =
    RCV.NXT) and keeps the connection. The apps exchange request/reply 2 and close gracefully;
    nobody sees an error. (Wireshark labels the challenge ACK a duplicate ACK and the next client
    segments "TCP Retransmission"; they are first transmissions.)"""
    return reset_then_continue(ctx, 1000)


@scenario("injected_reset_ttl")
def injected_reset_ttl(ctx: Ctx) -> Outcome:
    """After a small exchange both apps block in recv. An injector (scapy) sends two RST,ACK
    segments with IP TTL 50 (the kernel's own packets have TTL 64): one to the server claiming
    to come from the client, one to the client claiming to come from the server, each with seq =
    the receiver's exact RCV.NXT. Both kernels accept them: both recv calls fail with
    ECONNRESET, nobody sends anything afterwards."""
    port = ctx.ports[0]
    watcher = FlowWatcher(port)
    lst = ctx.listen(V4, port)
    client, th_s, th_c = pair_idle_exchange(ctx, V4, port, lst)
    ctx.pause(0.2)
    chost, cport = split_conn(client.conn)
    server = ("127.0.0.1", port)
    c_nxt, s_nxt = watcher.seq_after(chost, cport), watcher.seq_after(*server)
    inject(
        ctx,
        client.conn,
        [
            rst((chost, cport), server, c_nxt, s_nxt, 50),
            rst(server, (chost, cport), s_nxt, c_nxt, 50),
        ],
    )
    ctx.join([th_c, th_s], 10)
    watcher.stop()
    return Outcome("kernel+injected", [ctx.finding("injected_reset", client, V4, port)])


@scenario("icmp_frag_needed")
def icmp_frag_needed(ctx: Ctx) -> Outcome:
    """After a small exchange, `iptables -I INPUT -p tcp --dport P -j DROP` makes the path lose
    the client's next segment; the client sends 1400 bytes (DF set); scapy injects an ICMP
    destination unreachable / fragmentation needed (type 3 code 4, next-hop MTU 1280) quoting
    that real segment's IP+TCP header, to the client; 0.1 s later the DROP rule is removed. The
    client's kernel accepts it (the route to 127.0.0.1 gets a cached mtu 1280). On 6.18 it first
    resends the full 1400-byte segment at once (still using the socket's cached route), then its
    next retransmission timeout sends the data as 1228 + 172 bytes, which the server receives;
    the server replies and both close gracefully. No app error."""
    from scapy.all import ICMP, IP, raw

    port = ctx.ports[0]
    watcher = FlowWatcher(port)
    lst = ctx.listen(V4, port)
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    blocked, payload = threading.Event(), b"u" * 1400
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"send the upload\n")
        conn.recv_exactly(len(payload), timeout=10)
        conn.send(b"upload ok\n")
        conn.recv()  # EOF
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"upload 1400\n")
        conn.recv()
        ctx.iptables("-I", *rule)
        blocked.set()
        conn.send(payload)
        conn.recv()
        conn.close()

    threads = [ctx.spawn(server), ctx.spawn(client)]
    if not blocked.wait(5):
        raise RuntimeError("exchange did not happen")
    chost, cport = split_conn(client_conn[0].conn)
    segment = watcher.wait_data(chost, cport, len(payload))
    quote = raw(segment)[: segment.ihl * 4 + segment.payload.dataofs * 4]
    icmp = IP(src="127.0.0.1", dst=chost) / ICMP(type=3, code=4, nexthopmtu=1280) / quote
    inject(ctx, client_conn[0].conn, [icmp])
    ctx.pause(0.1)
    ctx.iptables("-D", *rule)
    ctx.join(threads)
    watcher.stop()
    route = ctx.tool(["ip", "route", "get", "127.0.0.1"], check=False)
    note = "Route after the ICMP: " + " ".join(route.split()) + "."
    conn = client_conn[0].conn
    return Outcome(
        "kernel+injected",
        [ctx.finding("icmp_error", client_conn[0], V4, port)],
        [note],
        post=lambda pcap: ([], frag_notes(pcap, conn)),
    )


@scenario("connect_timeout")
def connect_timeout(ctx: Ctx) -> Outcome:
    """A server listens (and never sees anything: it never accepts) but `iptables -A INPUT -p tcp
    --dport P --syn -j DROP` silently drops every SYN to it. The client sets TCP_SYNCNT=2 and
    calls a blocking connect() (no Python timeout). Nothing ever answers: no SYN-ACK, no RST, no
    ICMP. The kernel bounds the attempt by time rather than by count: on 6.18 the first SYN
    retransmissions come at a fixed 1 s interval (`net.ipv4.tcp_syn_linear_timeouts`, default 4),
    so 6 SYNs go out at about 0, 1, 2, 3, 4 and 5 s, and connect() fails with ETIMEDOUT about 7 s
    after the first SYN (the time 1 + 2 SYNs with classic 1 s, 2 s, 4 s backoff would take)."""
    port = ctx.ports[0]
    ctx.listen(V4, port)
    ctx.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(port), "--syn", "-j", "DROP")
    opts = [(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 2)]
    client, _ = ctx.connect(V4, port, opts, timeout=None)  # blocking: the kernel decides
    linear = Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
    sysctl = linear.read_text().strip() if linear.exists() else "absent"
    return Outcome(
        "kernel",
        [ctx.finding("retransmission_timeout", client, V4, port)],
        [f"net.ipv4.tcp_syn_linear_timeouts in the namespace: {sysctl}."],
        post=lambda pcap: ([], syn_notes(pcap, ctx.rec, client.conn)),
    )


def syn_sent_port(port: int, timeout: float) -> int | None:
    """The local port of this namespace's socket in SYN-SENT towards 127.0.0.1:`port`, read from
    /proc/net/tcp (hex fields: local, remote address:port, then the state, 02 = SYN-SENT) until
    it shows or `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "02" and int(fields[2].split(":")[1], 16) == port:
                return int(fields[1].split(":")[1], 16)
        time.sleep(0.02)
    return None


@scenario("connect_abandoned")
def connect_abandoned(ctx: Ctx) -> Outcome:
    """A program gives up on connect() before the kernel does. A server listens behind `iptables
    -A INPUT -p tcp --dport P --syn -j DROP`; the client is OpenSSH's `ssh -o ConnectTimeout=5`
    (default SYN retries): its non-blocking connect() sends a SYN, retried unanswered (on 6.18
    at about +1, +2, +3 and +4 s: `net.ipv4.tcp_syn_linear_timeouts`), and after 5 s of poll()
    ssh closes the socket, which sends nothing in SYN-SENT, and reports "connect to host ...:
    Connection timed out" (it sets errno ETIMEDOUT itself; the kernel would have gone on for
    about two minutes). The client then falls back to a server on port Q that answers: eight
    request/replies 0.5 s apart and a graceful close, so the capture goes on about 5 s after the
    last SYN, past when the kernel's next retry was due (about +6 s). The ssh connection's local
    port is read from /proc/net/tcp while it waits; its result is ssh's message mapped back to
    the errno name."""
    port, fallback = ctx.ports[0], ctx.ports[1]
    ctx.listen(V4, port)
    lst = ctx.listen(V4, fallback)
    ctx.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(port), "--syn", "-j", "DROP")
    cmd = ["ssh", "-F", "/dev/null", "-o", "ConnectTimeout=5", "-o", "BatchMode=yes"]
    cmd += ["-o", "ConnectionAttempts=1", "-p", str(port), "127.0.0.1", "true"]
    event = ctx.rec.start("client", "", " ".join(cmd) + " (connect)")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ctx.procs.append(proc)
    local = syn_sent_port(port, 3.0)
    _, stderr = proc.communicate(timeout=20)
    if local is None:
        raise RuntimeError("ssh's connection never showed in SYN-SENT")
    conn = fmt_addr(("127.0.0.1", local))
    by_text = {os.strerror(code): name for code, name in errno.errorcode.items()}
    said = stderr.strip().rpartition(": ")[2]
    ctx.rec.finish(event, by_text.get(said, f"exit {proc.returncode}: {stderr.strip()}"), conn)

    def server() -> None:
        peer = ctx.accept(lst)
        while peer.recv():
            peer.send(b"reply\n")
        peer.close()

    def client() -> None:
        peer, _ = ctx.connect(V4, fallback)
        for _ in range(8):
            peer.send(b"request\n")
            peer.recv()
            time.sleep(0.5)
        peer.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)], 15)
    return Outcome(
        "kernel",
        [ctx.finding("retransmission_timeout", conn, V4, port)],
        [f"ssh said: {stderr.strip()}"],
        post=lambda pcap: ([], syn_notes(pcap, ctx.rec, conn)),
    )


@scenario("icmp_host_unreachable_transient")
def icmp_host_unreachable_transient(ctx: Ctx) -> Outcome:
    """After request/reply 1, `iptables -I INPUT -p tcp --dport P -j REJECT --reject-with
    icmp-host-unreachable` rejects every client segment. The client sends request 2 and blocks in
    recv: each (re)transmission draws an ICMP host unreachable, a soft error on an established
    connection; the retransmissions keep a fixed interval of about 0.2 s (no backoff, RFC 6069).
    About 0.6 s later the rule is deleted; the next retransmission gets through and is ACKed, the
    server replies and both close gracefully. No call of either app fails. The client finally
    reads getsockopt(SO_ERROR) (logged as a successful call): it is 0, because the ACK of new data
    cleared the stored soft error."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT"]
    rule += ["--reject-with", "icmp-host-unreachable"]
    sent = threading.Event()
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"reply 1\n")
        conn.recv()  # request 2, delivered once the rule is gone
        conn.send(b"reply 2\n")
        conn.recv()  # EOF
        conn.close()

    def client() -> None:
        conn, _ = ctx.connect(V4, port)
        client_conn.append(conn)
        conn.send(b"request 1\n")
        conn.recv()
        ctx.iptables("-I", *rule)
        conn.send(b"request 2\n")
        sent.set()
        conn.recv()
        conn.so_error()
        conn.close()

    threads = [ctx.spawn(server), ctx.spawn(client)]
    if not sent.wait(5):
        raise RuntimeError("exchange did not happen")
    ctx.pause(0.6)
    ctx.iptables("-D", *rule)
    ctx.join(threads)
    conn = client_conn[0].conn
    return Outcome(
        "kernel",
        [ctx.finding("icmp_error", client_conn[0], V4, port)],
        post=lambda pcap: ([], transient_notes(pcap, ctx.rec, conn)),
    )


# --------------------------------------------------------------------------------------------
# Scenarios added for the rule rework: scan without a RST, abortive teardowns that are (or are
# not) failures, a capture that starts mid-connection
# --------------------------------------------------------------------------------------------

FLAG_NAMES = ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"))


def flags_text(flags: int) -> str:
    return ",".join(name for bit, name in FLAG_NAMES if flags & bit) or "none"


def conn_flow(pcap: Path, conn: str) -> list[Pkt]:
    """Every TCP segment of the connection whose client is `conn`."""
    cport = split_conn(conn)[1]
    return flow(read_packets(pcap), cport)


def resets(segs: list[Pkt]) -> list[Pkt]:
    return [p for p in segs if p.flags & 0x04]


def reset_notes(pcap: Path, conns: list[str], port: int) -> list[str]:
    """For each connection: who sent the RST, its flags, seq vs. the sender's SND.NXT, and how long
    after the last segment carrying data (or FIN) it came; and the spread of all those RSTs."""
    notes, first_rst = [], []
    for conn in conns:
        segs = conn_flow(pcap, conn)
        rst = resets(segs)
        if not rst:
            notes.append(f"{conn}: no RST captured.")
            continue
        r = rst[0]
        sender = "client" if r.dport == port else "server"
        # next sequence number after each side's last segment (no wrap on these short flows)
        snd_nxt = max(
            (p.seq + p.length + bool(p.flags & 0x03)) % 2**32
            for p in segs
            if p.sport == r.sport and not p.flags & 0x04
        )
        peer_nxt = max(
            (p.seq + p.length + bool(p.flags & 0x03)) % 2**32 for p in segs if p.sport != r.sport
        )
        last_data = max((p.ts for p in segs if p.length or p.flags & 0x01), default=None)
        before = [p for p in segs if p.ts <= r.ts and p is not r]
        first_rst.append(r.ts)
        notes.append(
            f"{conn}: {len(rst)} RST(s); the first from the {sender}, flags {flags_text(r.flags)}, "
            f"seq {'=' if r.seq == snd_nxt else '!='} its SND.NXT, ack "
            + ("= " if r.ack == peer_nxt else "!= ")
            + "the peer's SND.NXT (everything it sent, SYN/FIN counted)"
            + (
                f", {1000 * (r.ts - last_data):.2f} ms after the last segment carrying data or FIN"
                if last_data
                else ""
            )
            + f"; {len(before)} segment(s) before it, {len(segs) - len(before) - 1} after it."
        )
    if len(first_rst) > 1:
        notes.append(
            f"The {len(first_rst)} RSTs span {1000 * (max(first_rst) - min(first_rst)):.2f} ms."
        )
    return ["Measured: " + " ".join(notes)]


@scenario("half_open_scan_unanswered")
def half_open_scan_unanswered(ctx: Ctx) -> Outcome:
    """`nmap -sS -Pn -n -p OPEN 127.0.0.1` against one listening port whose server app never
    accepts (it sees nothing). In the namespace `sysctl net.ipv4.tcp_synack_retries=2` and
    `iptables -A OUTPUT -p tcp --tcp-flags RST RST --dport OPEN -j DROP` drops the RST that
    nmap's own kernel sends in answer to the SYN-ACK (dropped before the capture tap, so the
    capture has no RST). The server's kernel therefore retransmits its SYN-ACK (twice, with
    backoff) and then silently drops the half-open entry. The capture runs about 4.2 s after
    nmap returned. Wire: one raw nmap SYN (window 1024, MSS only), SYN-ACK, two SYN-ACK
    retransmissions, no ACK and no RST from the scanner. No app error anywhere."""
    port = ctx.ports[0]
    ctx.tool(["sysctl", "-w", "net.ipv4.tcp_synack_retries=2"])
    ctx.listen(V4, port)
    ctx.iptables("-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "--dport", str(port),
                 "-j", "DROP")  # fmt: skip
    ctx.pause(0.05)
    out = ctx.tool(["nmap", "-sS", "-Pn", "-n", "-p", str(port), "127.0.0.1"], app="nmap")
    time.sleep(4.2)  # SYN-ACK retransmissions come about 1 s and 3 s after the first SYN-ACK
    counters = ctx.tool(["iptables", "-w", "-L", "OUTPUT", "-v", "-n", "-x"])
    dropped = next(
        (ln.split()[0] for ln in counters.splitlines() if "DROP" in ln and f"dpt:{port}" in ln),
        "?",
    )
    capture_end = time.time() + 0.3  # the runner stops tcpdump 0.3 s after the scenario returns

    def from_wire(pcap: Path) -> tuple[list[Finding], list[str]]:
        segs = [p for p in read_packets(pcap) if p.proto == 6 and port in (p.sport, p.dport)]
        syns = [p for p in segs if p.dport == port and p.flags & 0x12 == 0x02]
        if not syns:
            return [], ["No SYN was captured."]
        synacks = [p.ts for p in segs if p.sport == port and p.flags & 0x12 == 0x12]
        rsts = sum(1 for p in segs if p.flags & 0x04)
        others = len(segs) - len(syns) - len(synacks)
        sports = sorted({p.sport for p in syns})
        findings = [
            Finding("half_open_scan", f"127.0.0.1:{sport}", f"127.0.0.1:{port}", None, None)
            for sport in sports
        ]
        note = (
            f"Measured: nmap sent {len(syns)} SYN(s) from source port(s) {sports} with IP TTL(s) "
            f"{[p.ttl for p in syns]}; {len(synacks)} SYN-ACKs at "
            + ", ".join(f"+{t - syns[0].ts:.3f}" for t in synacks)
            + f" s after the SYN; {rsts} RST(s) and {others} other segment(s) captured; the "
            f"iptables rule dropped {dropped} outgoing RST(s); the capture ran until about "
            f"+{capture_end - syns[0].ts:.1f} s after the SYN; "
            "nmap reported: " + "; ".join(ln for ln in out.splitlines() if "/tcp" in ln)
        )
        return findings, [note]

    return Outcome("kernel", post=from_wire)


@scenario("app_abort_burst")
def app_abort_burst(ctx: Ctx) -> Outcome:
    """One client application opens 3 connections to one server port, one after the other, and
    does one request / response on each (it reads each reply completely). Immediately after
    reading the last reply it closes all three with SO_LINGER {1,0}, one right after the other:
    three RST,ACK from the client (seq = SND.NXT) within about a millisecond, the pattern of an
    application that tears its sessions down abortively (SMB logoff, nmap connect probes). The
    server threads of connections 1 and 2 are blocked in recv; the third may still be between
    its send and its recv when the RST arrives (see the log); each server recv fails with
    ECONNRESET. The client saw no error. Nothing outside the app killed the sockets: this is
    peer_reset, not local_abort."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    reply = b"reply: ok\n"
    conns: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(reply)
        conn.recv()  # blocked -> ECONNRESET

    def client() -> None:
        for i in range(3):
            conn, ok = ctx.connect(V4, port)
            if not ok:
                return
            conns.append(conn)
            conn.send(f"request {i + 1}\n".encode())
            conn.recv_exactly(len(reply))
        for conn in conns:
            conn.close_linger0()

    servers = [ctx.spawn(server) for _ in range(3)]
    th = ctx.spawn(client)
    ctx.join([th, *servers], 15)
    names = [c.conn for c in conns]
    return Outcome(
        "kernel",
        [ctx.finding("peer_reset", c, V4, port) for c in conns],
        post=lambda pcap: ([], reset_notes(pcap, names, port)),
    )


@scenario("connect_probe_linger0")
def connect_probe_linger0(ctx: Ctx) -> Outcome:
    """A connect probe (like nmap -sT): the client's connect() succeeds and it immediately closes
    with SO_LINGER {1,0}, without sending anything: SYN, SYN-ACK, ACK, then RST,ACK from the
    client. The server app calls accept() only about 0.1 s later, after the RST: the reset
    connection is still in the accept queue, accept() succeeds and the first recv() fails with
    ECONNRESET (as logged). The client saw no error."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client, ok = ctx.connect(V4, port)
    if ok:
        client.close_linger0()
    ctx.pause(0.1)
    try:
        server = ctx.accept(lst, timeout=1.0)
    except OSError:
        server = None  # logged by accept(); nothing was left to accept
    if server is not None:
        server.recv(timeout=1.0)
        server.close()
    return Outcome(
        "kernel",
        [ctx.finding("peer_reset", client, V4, port)],
        post=lambda pcap: ([], reset_notes(pcap, [client.conn], port)),
    )


def reply_and_close(ctx: Ctx, lst: socket.socket, reply: bytes) -> Callable[[], None]:
    """A server thread's body: accept one connection, read the request, send `reply` whole and
    close() at once (FIN right after the reply)."""

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(reply)
        conn.close()

    return server


@scenario("response_then_reset_teardown")
def response_then_reset_teardown(ctx: Ctx) -> Outcome:
    """Negative control. The client sends a request; the server sends a 2019-byte response and
    close()s at once (FIN right after the response). The client reads only the first 100 bytes
    and close()s with the rest unread, so its kernel sends RST,ACK instead of a FIN. The server
    app had already closed and the client app chose to stop reading: neither app gets an error;
    the exchange completed from the server's point of view. No finding."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    response = b"HTTP/1.0 200 OK\r\n\r\n" + b"r" * 2000
    client_conn: list[Endpoint] = []
    server = reply_and_close(ctx, lst, response)

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.send(b"GET / HTTP/1.0\r\n\r\n")
            conn.recv(size=100)
            ctx.pause(0.1)  # the rest of the response and the FIN are in by now
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    conns = [c.conn for c in client_conn]
    return Outcome("kernel", [], post=lambda pcap: ([], reset_notes(pcap, conns, port)))


@scenario("goodbye_then_abort")
def goodbye_then_abort(ctx: Ctx) -> Outcome:
    """Negative control, like an LDAP unbind. The client sends a request and reads the reply,
    then sends a short "BYE" message and close()s at once (FIN). The server reads the BYE and the
    EOF and at once closes with SO_LINGER {1,0}: RST,ACK from the server (its ack covers the
    client's FIN; the FIN gets no other ACK) to a client socket that the app has already closed
    (FIN-WAIT). No app gets an error; the client had finished. No finding."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(b"result: ok\n")
        conn.recv()  # BYE
        conn.recv()  # EOF
        conn.close_linger0()

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.send(b"search cn=x\n")
            conn.recv()
            conn.send(b"BYE\n")
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    conns = [c.conn for c in client_conn]
    return Outcome("kernel", [], post=lambda pcap: ([], reset_notes(pcap, conns, port)))


@scenario("idle_keepalive_drop")
def idle_keepalive_drop(ctx: Ctx) -> Outcome:
    """The client sends a request, reads the whole response, stays idle 2 to 4 s (no keepalive
    or other segment in between) and then closes with SO_LINGER {1,0}. The server app is blocked
    in recv the whole time; it fails with ECONNRESET. Wire: RST,ACK from the client (seq = SND.NXT)
    whose ack covers the response that arrived seconds earlier: an abortive close of an idle
    connection, not a close with unread data (the client's receive buffer was empty)."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    response = b"HTTP/1.0 200 OK\r\n\r\nhello\n"
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()
        conn.send(response)
        conn.recv(timeout=15)  # -> ECONNRESET

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.send(b"GET / HTTP/1.0\r\n\r\n")
            conn.recv_exactly(len(response))
            ctx.pause(2.6)  # 2.1 .. 3.9 s idle
        conn.close_linger0()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    conns = [c.conn for c in client_conn]
    return Outcome(
        "kernel",
        [ctx.finding("peer_reset", c, V4, port) for c in client_conn],
        post=lambda pcap: ([], reset_notes(pcap, conns, port)),
    )


def midstream_keepalive_notes(pcap: Path, rec: Recorder, client: str) -> list[str]:
    segs = conn_flow(pcap, client)
    cport = split_conn(client)[1]
    syns = sum(1 for p in segs if p.flags & 0x02)
    rst = [p for p in segs if p.flags & 0x04]
    probes = [p for p in segs if p.sport == cport and p.length == 0 and not p.flags & 0x07]
    from_server = sum(1 for p in segs if p.dport == cport)
    ka = next((e.when for e in rec.events if e.call.startswith("setsockopt(SO_KEEPALIVE")), None)
    last = max((e.when for e in rec.events if e.conn == client and e.result.endswith("bytes")),
               default=None)  # fmt: skip
    base = last or (segs[0].ts if segs else 0.0)
    err_at = rec.error_time("client", client)
    same_seq = bool(rst) and all(p.seq == (rst[0].seq - 1) % 2**32 for p in probes)
    return [
        f"Measured: {len(segs)} segments captured on the connection, {syns} with SYN, "
        f"{from_server} from the server; {len(probes)} keepalive probes (no payload, "
        + ("seq = the RST's seq - 1 = SND.NXT-1" if same_seq else "seq NOT = RST seq - 1")
        + ") at "
        + ", ".join(f"+{p.ts - base:.3f}" for p in probes)
        + " s after the last data exchange (before the capture began"
        + (f"; SO_KEEPALIVE was enabled at +{ka - base:.3f} s" if ka else "")
        + "); "
        + (f"RST,ACK from the client at +{rst[0].ts - base:.3f} s; " if rst else "no RST; ")
        + (f"client recv failed at +{err_at - base:.3f} s." if err_at else "")
    ]


@scenario("keepalive_timeout_midstream", deferred_capture=True)
def keepalive_timeout_midstream(ctx: Ctx) -> Outcome:
    """keepalive_timeout, but the capture starts mid-connection: the handshake and a small
    exchange happen before tcpdump runs (their calls have a negative `t`). The client has set
    TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=3 at connect time. After the exchange tcpdump is
    started (and waited for), `iptables -I OUTPUT -p tcp --sport P -j DROP` silences the server
    (dropped before the capture tap) and only then the client turns SO_KEEPALIVE on. Wire: no
    SYN, no data and nothing from the server: only the client's keepalive probes (zero-length,
    seq = SND.NXT-1) about a second apart, unanswered, then its RST,ACK. The client's recv fails
    with ETIMEDOUT; the RST reaches the server, whose recv fails with ECONNRESET."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    opts = [o for o in KEEPALIVE_OPTS if o[1] != socket.SO_KEEPALIVE]

    def begin_keepalive_phase(conn: Endpoint) -> None:
        ctx.start_capture()
        ctx.iptables("-I", "OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP")
        conn._do(
            "setsockopt(SO_KEEPALIVE, 1)",
            lambda: conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            lambda _: "ok",
        )

    client, th_s, th_c = pair_idle_exchange(ctx, V4, port, lst, opts, begin_keepalive_phase)
    ctx.join([th_c, th_s], 25)
    return Outcome(
        "kernel",
        [ctx.finding("keepalive_timeout", client, V4, port)],
        post=lambda pcap: ([], midstream_keepalive_notes(pcap, ctx.rec, client.conn)),
    )


@scenario("fin_wait_reset_after_banner")
def fin_wait_reset_after_banner(ctx: Ctx) -> Outcome:
    """Like fin_wait_reset, with a server that speaks first (SMTP-like): the server sends a
    banner line, the client reads it, sends one request and shutdown(SHUT_WR) (FIN) and waits in
    recv; the server reads the request and the EOF, then closes with SO_LINGER {1,0}: RST,ACK from
    the server while the client is in FIN-WAIT-2; the client's recv fails with ECONNRESET. The
    server saw no error."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    client_conn: list[Endpoint] = []

    def server() -> None:
        conn = ctx.accept(lst)
        conn.send(b"220 mail.example ESMTP ready\r\n")
        conn.recv()
        conn.recv()  # EOF: the client half-closed
        ctx.pause(0.1)
        conn.close_linger0()

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.recv()  # the banner
            conn.send(b"HELO client.example\r\n")
            conn.shutdown_wr()
            conn.recv()  # -> ECONNRESET
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    conns = [c.conn for c in client_conn]
    return Outcome(
        "kernel",
        [ctx.finding("fin_wait_reset", c, V4, port) for c in client_conn],
        post=lambda pcap: ([], reset_notes(pcap, conns, port)),
    )


# --------------------------------------------------------------------------------------------
# A host firewall that rejects its own host's SYN; a closing write after the peer's reply and FIN
# --------------------------------------------------------------------------------------------

OWN_HOST_CLIENT, OWN_HOST_SERVER = "127.0.0.1", "127.0.0.2"


def icmp_errors(path: Path) -> list[dict[str, Any]]:
    """Every IPv4 ICMP error in a `tcpdump -i lo` capture, with the TCP header it quotes."""
    data = path.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    found, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        frame = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 1:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        icmp = ip[ihl:]
        item: dict[str, Any] = {
            "src": socket.inet_ntoa(ip[12:16]),
            "dst": socket.inet_ntoa(ip[16:20]),
            "type": icmp[0],
            "code": icmp[1],
        }
        inner = icmp[8:]
        if len(inner) >= 20 and inner[9] == 6:
            qihl = (inner[0] & 15) * 4
            tcp = inner[qihl:]
            sport, dport = struct.unpack("!HH", tcp[0:4])
            src, dst = socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20])
            item["quoted"] = f"{src}:{sport} -> {dst}:{dport}"
            item["quoted_flags"] = flags_text(tcp[13]) if len(tcp) >= 14 else "not captured"
        found.append(item)
    return found


def own_host_reject_notes(pcap: Path, conns: list[str], counters: str) -> list[str]:
    """TCP segments of each attempt on the wire, every ICMP error and what it quotes, and how
    many SYNs the OUTPUT rules rejected."""
    packets = read_packets(pcap)
    parts = []
    for conn in conns:
        cport = split_conn(conn)[1]
        segs = [p for p in packets if p.proto == 6 and cport in (p.sport, p.dport)]
        parts.append(
            f"{conn}: {len(segs)} TCP segment(s) captured"
            + (" (" + ", ".join(flags_text(p.flags) for p in segs) + ")" if segs else "")
        )
    icmps = icmp_errors(pcap)
    parts.append(
        f"{len(icmps)} ICMP error(s): "
        + "; ".join(
            f"{i['src']} -> {i['dst']} type {i['type']} code {i['code']} quoting "
            f"{i.get('quoted', 'no TCP header')} flags {i.get('quoted_flags', '-')}"
            for i in icmps
        )
    )
    rejected = [
        f"{ln.split()[0]} packet(s) by the {ln.split('reject-with')[-1].strip()} rule"
        for ln in counters.splitlines()
        if "REJECT" in ln and "reject-with" in ln
    ]
    parts.append("the OUTPUT rules rejected " + ", ".join(rejected))
    return ["Measured: " + "; ".join(parts) + "."]


@scenario("own_host_firewall_reject")
def own_host_firewall_reject(ctx: Ctx) -> Outcome:
    """A firewall on the client's own host rejects its SYN before it reaches the wire (as Android
    firewalls and ad blockers do with REJECT rules in OUTPUT). Two servers listen on 127.0.0.2
    (a loopback address other than the client's) and never see anything. `iptables -A OUTPUT -p
    tcp -s 127.0.0.1 -d 127.0.0.2 --dport P --tcp-flags SYN,ACK SYN -j REJECT --reject-with
    icmp-port-unreachable` (port 1) and the same with icmp-host-prohibited (port 2) reject the
    clients' SYNs in the OUTPUT chain, before the capture tap. Each client binds 127.0.0.1 and
    connects to 127.0.0.2, one after the other: connect() fails at once (ECONNREFUSED for port
    unreachable, EHOSTUNREACH for host prohibited). Wire: no SYN, only the ICMP error the host
    sent itself, quoting the SYN; its source is 127.0.0.2, the SYN's destination, not the client's
    127.0.0.1: the kernel's icmp_send takes the quoted packet's destination as the source when the
    route is local, and every route over lo is (with 127.0.0.2 made non-local, no ICMP is sent at
    all and connect() times out). A firewall rejecting a SYN to a remote address would send the
    ICMP from the host's own address instead."""
    cases = [("icmp-port-unreachable", ctx.ports[0]), ("icmp-host-prohibited", ctx.ports[1])]
    for _, port in cases:
        lst = socket.socket(V4, socket.SOCK_STREAM)
        ctx.sockets.append(lst)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((OWN_HOST_SERVER, port))
        lst.listen(16)
    for reject_with, port in cases:
        ctx.iptables("-A", "OUTPUT", "-p", "tcp", "-s", OWN_HOST_CLIENT, "-d", OWN_HOST_SERVER,
                     "--dport", str(port), "--tcp-flags", "SYN,ACK", "SYN",
                     "-j", "REJECT", "--reject-with", reject_with)  # fmt: skip
    ctx.pause(0.05)
    findings, conns = [], []
    for _, port in cases:
        sock = socket.socket(V4, socket.SOCK_STREAM)
        ctx.sockets.append(sock)
        sock.bind((OWN_HOST_CLIENT, 0))
        client = Endpoint(ctx.rec, "client", sock, fmt_addr(sock.getsockname()))
        sock.settimeout(5.0)
        target = (OWN_HOST_SERVER, port)
        client._do("connect", lambda s=sock, a=target: s.connect(a), lambda _: "ok")
        client.close()
        conns.append(client.conn)
        findings.append(
            Finding(
                "icmp_error",
                client.conn,
                fmt_addr(target),
                ctx.rec.first_error("client", client.conn),
                ctx.rec.first_error("server", client.conn),
            )
        )
        ctx.pause(0.1)
    counters = ctx.tool(["iptables", "-w", "-L", "OUTPUT", "-v", "-n", "-x"])
    return Outcome(
        "kernel", findings, post=lambda pcap: ([], own_host_reject_notes(pcap, conns, counters))
    )


@scenario("closing_write_teardown")
def closing_write_teardown(ctx: Ctx) -> Outcome:
    """Negative control, like a TLS client's close_notify. The client sends a request; the server
    reads it, sends its whole reply and close()s (FIN right after the reply). The client reads
    the reply and the EOF (recv returns 0), then writes one 31-byte closing message (the size of
    a TLS 1.2 close_notify alert record): send() succeeds, and the server's closed socket answers
    it with a RST. The client, 0.05 s later, calls recv(): it returns 0 (the FIN is read before
    the error the RST left), and close()s. No call of either app fails; the client only wrote to
    say goodbye and learns nothing of the RST. No finding."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
    closing = b"\x15\x03\x03\x00\x1a" + bytes(ctx.rng.getrandbits(8) for _ in range(26))
    client_conn: list[Endpoint] = []
    server = reply_and_close(ctx, lst, reply)

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            conn.recv_exactly(len(reply))
            conn.recv()  # EOF: the server's FIN
            conn.send(closing)  # -> RST from the server's closed socket
            ctx.pause(0.05)
            conn.recv()  # EOF again: the FIN is read before the RST's error
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    conns = [c.conn for c in client_conn]
    return Outcome("kernel", [], post=lambda pcap: ([], reset_notes(pcap, conns, port)))


# --------------------------------------------------------------------------------------------
# The HTTP keep-alive race: the server's idle close crosses the client's next request
# --------------------------------------------------------------------------------------------

NFQ_NUM = 7  # the NFQUEUE queue number the delayer binds (its own namespace: nothing else uses it)


class NfqDelay:
    """A userspace netem: holds every packet that an `-j NFQUEUE --queue-num NFQ_NUM` rule queues
    for `delay` seconds, then accepts it, in arrival order (raw nfnetlink_queue, stdlib only).

    The VM kernel these samples are made on has no netem (`CONFIG_NET_SCH_NETEM` is not set and
    there are no modules), so `tc qdisc add dev lo root netem delay 50ms` fails. Queueing in the
    OUTPUT chain holds each packet before the capture tap, exactly as a netem root qdisc on lo
    would: the capture sees it when it is released, and the receiver a few microseconds later."""

    NETLINK_NETFILTER, NFNL_SUBSYS_QUEUE = 12, 3
    MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
    NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 1, 4, 2
    CFG_CMD, CFG_PARAMS, CFG_CMD_BIND, COPY_META = 1, 2, 1, 1
    PACKET_HDR, VERDICT_HDR, NF_ACCEPT = 1, 2, 1

    def __init__(self, delay: float, max_seconds: float = 60.0) -> None:
        self.delay, self.max_seconds = delay, max_seconds
        self.held = 0  # packets delayed so far
        self.max_late = 0.0  # worst lateness of a release beyond `delay`, in seconds
        self._seq = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self.NETLINK_NETFILTER)
        self._sock.bind((0, 0))
        self._request(
            self.MSG_CONFIG,
            self._attr(self.CFG_CMD, struct.pack("!BxH", self.CFG_CMD_BIND, socket.AF_INET)),
        )
        self._request(
            self.MSG_CONFIG, self._attr(self.CFG_PARAMS, struct.pack("!IB", 0, self.COPY_META))
        )
        self._thread = threading.Thread(target=self._run, name="nfq-delay", daemon=True)
        self._thread.start()

    @staticmethod
    def _attr(kind: int, payload: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(payload), kind) + payload
        return raw + b"\0" * (-len(raw) % 4)

    def _message(self, msg: int, body: bytes, flags: int) -> bytes:
        self._seq += 1
        nfgen = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(NFQ_NUM))
        kind = (self.NFNL_SUBSYS_QUEUE << 8) | msg
        return struct.pack("=IHHII", 16 + 4 + len(body), kind, flags, self._seq, 0) + nfgen + body

    def _request(self, msg: int, body: bytes) -> None:
        """Send a config request and wait for the kernel's ack (an NLMSG_ERROR with error 0)."""
        self._sock.sendto(self._message(msg, body, self.NLM_F_REQUEST | self.NLM_F_ACK), (0, 0))
        self._sock.settimeout(2.0)
        data = self._sock.recv(65536)
        kind, err = struct.unpack("=H", data[4:6])[0], struct.unpack("=i", data[16:20])[0]
        if kind != self.NLMSG_ERROR or err != 0:
            raise RuntimeError(f"nfnetlink_queue config failed: type {kind} error {err}")

    def _packet_ids(self, data: bytes) -> list[int]:
        ids, off = [], 0
        while off + 16 <= len(data):
            length, kind = struct.unpack("=IH", data[off : off + 6])
            if length < 16:
                break
            if kind == (self.NFNL_SUBSYS_QUEUE << 8) | self.MSG_PACKET:
                aoff, end = off + 20, off + length
                while aoff + 4 <= end:
                    alen, atype = struct.unpack("=HH", data[aoff : aoff + 4])
                    if alen < 4:
                        break
                    if atype & 0x7FFF == self.PACKET_HDR:
                        ids.append(struct.unpack("!I", data[aoff + 4 : aoff + 8])[0])
                    aoff += (alen + 3) & ~3
            off += (length + 3) & ~3
        return ids

    def _run(self) -> None:
        held: list[tuple[float, int]] = []  # (due, packet id), in arrival order
        self._sock.setblocking(False)
        deadline = time.monotonic() + self.max_seconds
        while time.monotonic() < deadline and not (self._stop.is_set() and not held):
            now = time.monotonic()
            while held and held[0][0] <= now:
                due, pid = held.pop(0)
                self.max_late = max(self.max_late, now - due)
                verdict = self._attr(self.VERDICT_HDR, struct.pack("!II", self.NF_ACCEPT, pid))
                self._sock.sendto(
                    self._message(self.MSG_VERDICT, verdict, self.NLM_F_REQUEST), (0, 0)
                )
            wait = min(0.01, max(0.0, held[0][0] - now)) if held else 0.01
            ready, _, _ = select.select([self._sock], [], [], wait)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    data = self._sock.recv(65536)
                    arrived = time.monotonic()
                    for pid in self._packet_ids(data):
                        held.append((arrived + self.delay, pid))
                        self.held += 1

    def stop(self) -> None:
        """Release what is still held (on time), then unbind by closing the socket."""
        self._stop.set()
        self._thread.join(self.delay + 2.0)
        self._sock.close()


def keepalive_race_notes(pcap: Path, conn: str, port: int, delay: NfqDelay) -> list[str]:
    """Every segment from the server's FIN on, with its time from the FIN; whether request 2
    ACKs the FIN (it does not if it left before the FIN arrived); the delayer's own figures."""
    segs = conn_flow(pcap, conn)
    fin = next((p for p in segs if p.sport == port and p.flags & 0x01), None)
    reqs = [p for p in segs if p.dport == port and p.length > 0]
    if fin is None or len(reqs) < 2:
        return [f"Measured: {'no server FIN' if fin is None else 'no request 2'} captured."]
    req2 = reqs[-1]
    parts = []
    for p in segs:
        if p.ts < fin.ts:
            continue
        who = "client" if p.dport == port else "server"
        what = (
            "request 2"
            if p is req2
            else (flags_text(p.flags) + (f" {p.length} bytes" if p.length else ""))
        )
        parts.append(
            f"{1000 * (p.ts - fin.ts):+.2f} ms {who} {what} (flags {flags_text(p.flags)}, "
            f"seq {p.seq}, ack {p.ack})"
        )
    acks = (
        "= the FIN's seq: it left before the FIN arrived"
        if req2.ack == fin.seq
        else "!= the FIN's seq"
    )
    return [
        "Measured (times from the server's FIN): "
        + "; ".join(parts)
        + f". Request 2 ({req2.length} bytes) has ack {acks}; the RSTs' seqs: "
        + ", ".join(str(p.seq) for p in resets(segs))
        + f". The delayer held {delay.held} packets {1000 * delay.delay:.0f} ms each "
        f"(released at most {1000 * delay.max_late:.2f} ms late)."
    ]


@scenario("keepalive_race")
def keepalive_race(ctx: Ctx) -> Outcome:
    """The HTTP keep-alive race. Every packet of the flow is held 50 ms before the capture tap
    (one-way delay 50 ms, RTT 100 ms): `iptables -A OUTPUT -p tcp --dport P` and `--sport P` `-j
    NFQUEUE`, and the script's own nfnetlink_queue delayer releases each one 50 ms later, in
    order (the kernel these are made on has no netem qdisc). The client sends request 1 on a
    keep-alive connection; the server reads it and sends response 1, which the client reads
    whole. The connection then idles; after about 1.5 s the server's idle timeout close()s it
    (FIN). 10-20 ms later, while that FIN is still in flight, the client sends request 2 on the
    same connection: send() succeeds. Its segment ACKs the server's data but not the FIN, which
    it has not seen. The FIN reaches the client first, and its recv() for response 2 returns 0
    (EOF); it close()s at once: its FIN, which also ACKs the server's FIN. Request 2 reaches the
    server's closed (orphaned, FIN-WAIT-1) socket, which answers it with a bare RST (seq =
    request 2's ack) and is gone; the client's FIN then reaches no socket and draws a second
    bare RST (seq = the FIN's ack). The client's socket is reset by the first RST in LAST-ACK,
    after its close() returned. The delay rules are deleted at the end of the scenario, once the
    flow is quiet. The server saw no error; request 2 was lost, and the client saw only an EOF
    where a response should be (an HTTP client would retry or report "server closed the
    connection"). Expected: broken_pipe (FIN from the server, data from the client, RST)."""
    return keepalive_race_run(ctx, half_close=False)


@scenario("keepalive_race_half_closed")
def keepalive_race_half_closed(ctx: Ctx) -> Outcome:
    """The HTTP keep-alive race against a server that half-closes, as Apache and lighttpd end
    an idle kept-alive connection (a lingering close). The same set-up as keepalive_race
    (every packet held 50 ms before the capture tap by an NFQUEUE delayer: RTT 100 ms;
    request 1 and response 1 on a keep-alive connection). After about 1.5 s idle the server
    calls shutdown(SHUT_WR) (FIN) and reads on; 10-20 ms later, while that FIN is still in
    flight, the client sends request 2: send() succeeds, and its segment ACKs the server's
    data but not the FIN. The FIN reaches the client first, and its recv() for response 2
    returns 0 (EOF); it close()s at once: its FIN ACKs the server's FIN. The server's
    half-closed socket takes request 2 (no RST: it is still open for reading), reads it and
    then the client's EOF, and closes; it saw no error. Request 2 was lost: the client saw only
    an EOF where a response should be (Python's http.client: RemoteDisconnected). Expected:
    premature_close (the server's FIN, the client's request crossing it, no RST)."""
    return keepalive_race_run(ctx, half_close=True)


def keepalive_race_run(ctx: Ctx, half_close: bool) -> Outcome:
    """keepalive_race, or with `half_close`, keepalive_race_half_closed."""
    port = ctx.ports[0]
    lst = ctx.listen(V4, port)
    request1 = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    request2 = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    response1 = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nKeep-Alive: timeout=1\r\n\r\nhello\n"
    idle = 1.5 * ctx.rng.uniform(0.95, 1.1)
    lag = ctx.rng.uniform(0.010, 0.020)  # the client's request 2 comes this long after close()
    closed = threading.Event()
    client_conn: list[Endpoint] = []
    delay = NfqDelay(0.050)
    rules = [["--dport", str(port)], ["--sport", str(port)]]
    for match in rules:
        ctx.iptables("-A", "OUTPUT", "-o", "lo", "-p", "tcp", *match,
                     "-j", "NFQUEUE", "--queue-num", str(NFQ_NUM))  # fmt: skip

    def server() -> None:
        conn = ctx.accept(lst)
        conn.recv()  # request 1
        conn.send(response1)
        ready, _, _ = select.select([conn.sock], [], [], idle)  # the keep-alive idle timeout
        if ready:
            raise RuntimeError("the connection was not idle")
        if not half_close:
            conn.close()  # FIN
            closed.set()
            return
        conn.shutdown_wr()  # FIN; the server reads on (a lingering close)
        closed.set()
        for _ in range(4):  # request 2, then the client's EOF
            if not conn.recv():
                break
        conn.close()

    def client() -> None:
        conn, ok = ctx.connect(V4, port)
        client_conn.append(conn)
        if ok:
            conn.send(request1)
            conn.recv_exactly(len(response1))
            if not closed.wait(10.0):
                raise RuntimeError("the server never closed")
            time.sleep(lag)
            conn.send(request2)  # crosses the server's FIN
            conn.recv()  # response 2: EOF (the FIN arrives before the RST)
        conn.close()

    ctx.join([ctx.spawn(server), ctx.spawn(client)])
    time.sleep(0.4)  # every held packet released and answered (RTT 100 ms)
    for match in rules:
        ctx.iptables("-D", "OUTPUT", "-o", "lo", "-p", "tcp", *match,
                     "-j", "NFQUEUE", "--queue-num", str(NFQ_NUM))  # fmt: skip
    delay.stop()
    conns = [c.conn for c in client_conn]
    return Outcome(
        "kernel",
        [
            ctx.finding("premature_close" if half_close else "broken_pipe", c, V4, port)
            for c in client_conn
        ],
        notes=[
            f"Idle timeout {idle:.3f} s; request 2 sent {1000 * lag:.1f} ms after "
            + ("shutdown(SHUT_WR)." if half_close else "close().")
        ],
        post=lambda pcap: ([], keepalive_race_notes(pcap, conns[0], port, delay)),
    )


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------


def scenario_ports(seed: int, name: str) -> list[int]:
    base = random.Random(seed).randrange(
        PORT_BASE_RANGE[0], PORT_BASE_RANGE[1] - PORT_SLOTS * len(SCENARIOS), PORT_SLOTS
    )
    index = list(SCENARIOS).index(name)
    return [base + PORT_SLOTS * index + i for i in range(PORT_SLOTS)]


HOST_NETNS_ENV = "TCPDIAG_SAMPLES_HOST_NETNS"


def netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def assert_private_netns() -> None:
    """Refuse to generate traffic in the namespace the generator was started from."""
    host = os.environ.get(HOST_NETNS_ENV)
    if host is None or int(host) == netns_inode():
        raise SystemExit("refusing to run a scenario outside a namespace of our own")


def run_in_netns(name: str, out: Path, seed: int) -> int:
    """Runs inside the scenario's fresh namespace: capture, apps, stop capture, teardown."""
    assert_private_netns()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    sc = SCENARIOS[name]
    pcap, tmp_pcap = out / f"{name}.pcap", out / f".{name}.pcap.tmp"
    ctx = Ctx(name, scenario_ports(seed, name), random.Random(f"{seed}/{name}"), tmp_pcap)
    capture = Capture(tmp_pcap, sc.iface, sc.linktype)
    clock: dict[str, float] = {}

    def start_capture() -> None:
        if "t0" in clock:
            raise RuntimeError("capture already started")
        capture.start()
        clock["t0"] = time.time()
        if sc.deferred_capture:  # calls before this have a negative `t`
            ctx.rec.note("admin", "", "tcpdump started (capture begins)", "ok")

    ctx.start_capture = start_capture
    if not sc.deferred_capture:
        start_capture()
    outcome: Outcome | None = None
    error = ""
    try:
        outcome = sc.fn(ctx)
        if "t0" not in clock:
            raise RuntimeError("the scenario never started the capture")
    except Exception:
        error = traceback.format_exc()
    finally:
        time.sleep(0.3)
        capture.stop()  # stop the capture BEFORE closing leftover sockets
        ctx.teardown()
    if error or ctx.failures or outcome is None:
        print(f"[{name}] FAILED\n{error}{''.join(ctx.failures)}", file=sys.stderr)
        tmp_pcap.unlink(missing_ok=True)
        return 1
    findings, notes = outcome.findings, list(outcome.notes)
    if outcome.post:
        extra, extra_notes = outcome.post(tmp_pcap)
        findings, notes = findings + extra, notes + extra_notes
    linktype = pcap_linktype(tmp_pcap)
    if sc.linktype:
        notes.append(f"Capture link type {linktype} ({sc.linktype} = 276 expected).")
    expected = {
        "scenario": name,
        "description": " ".join([sc.description, *notes]),
        "source": outcome.source,
        "findings": [asdict(f) for f in findings],
        "observed": ctx.rec.as_json(clock["t0"]),
        "kernel": platform.release(),
        "capture": {"iface": sc.iface, "snaplen": SNAPLEN, "linktype": linktype},
    }
    tmp_pcap.replace(pcap)
    (out / f"{name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    stats = " ".join(ln for ln in capture.stderr.splitlines() if "captured" in ln)
    print(
        f"[{name}] {stats}; findings: "
        + (
            ", ".join(
                f"{f.category} {f.client}->{f.server} "
                f"client={f.client_errno} server={f.server_errno}"
                for f in findings
            )
            or "none"
        )
    )
    return 0


def run_scenario(name: str, index: int, out: Path, seed: int) -> bool:
    """Host side: create a namespace, run the scenario inside it, always delete it."""
    ns = f"{NS_PREFIX}-{os.getpid()}-{index}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cmd = [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            str(SCRIPT),
            "--in-netns",
            name,
            "--out",
            str(out),
            "--seed",
            str(seed),
        ]
        env = {**os.environ, HOST_NETNS_ENV: str(netns_inode())}
        return subprocess.run(cmd, timeout=SCENARIO_TIMEOUT, env=env).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"[{name}] timed out after {SCENARIO_TIMEOUT}s", file=sys.stderr)
        return False
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in pids.split():  # only processes we started live in our namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    p.add_argument("--seed", type=int, help="fix ports and timing jitter")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("--in-netns", metavar="NAME", help=argparse.SUPPRESS)
    p.add_argument("--app", choices=["kill-server"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.app == "kill-server":
        kill_server_app(args.port)
        return 0
    if args.list:
        for sc in SCENARIOS.values():
            print(f"{sc.name:36} {sc.description[:80]}...")
        return 0
    out: Path = args.out.resolve()
    if args.in_netns:
        return run_in_netns(args.in_netns, out, args.seed)
    if os.geteuid() != 0:
        raise SystemExit("run as root (network namespaces, tcpdump, iptables)")
    for tool in ("tcpdump", "iptables", "ip", "ss", "nmap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found")
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {unknown}; see --list")
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed {seed}, output {out}, kernel {platform.release()}")
    names = args.scenarios or list(SCENARIOS)
    failed = [n for i, n in enumerate(names) if not run_scenario(n, i, out, seed)]
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
