"""The pyshark engine: Wireshark's dissectors (tshark) decode the capture into tcpdiag's records.

For link types and encapsulations the native decoder does not know. The same `TcpSegment` and
`IcmpError` records come out as from `tcpdiag.decode`, so the same tracker and rules give the
same findings whichever engine read the capture; frame numbers are Wireshark's own.

pyshark's per-packet objects (`FileCapture`, PDML or JSON parsed per packet) run at a few hundred
packets a second. So tshark is asked only for the fields the records need, streamed through a
pipe, read in large blocks and split per line: tens of thousands of packets a second
(bench/tshark_engine.py). pyshark, when installed, only says where tshark is (its `config.ini`
may name another binary).

The fields come out as custom columns (`-T tabs`, `%Cus:field:0:U`), not `-T fields`: for
`-T fields` tshark builds every packet's whole, visible protocol tree, for columns only the
items of the fields asked for, which takes about a third less of its CPU time for the same
text (only `tcp.flags` is written differently, 0x002 for 0x0002). Every occurrence of a field
is written, joined by commas, as `-T fields -E occurrence=a -E aggregator=,` does; the column
list is given whole and `gui.column.hidden` emptied, so the user's preferences cannot hide or
move a column.

Nested layers: tshark prints every occurrence of a field, in layer order, joined by commas.
`frame.protocols` (`eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp`) says which IP layer is
which, so the record takes the innermost IP and TCP and names the tunnels around them with
`tcpdiag.tunnels`, as the native decoder does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO, Final

from tcpdiag import tunnels
from tcpdiag.decode import DecodeStats, ip6_text, reset_text
from tcpdiag.packets import (
    RST,
    SYN,
    IcmpError,
    Packet,
    QuotedTcp,
    SynOptions,
    TcpSegment,
    segment_mptcp,
)

INSTALL_HINT: Final = "install Wireshark's tshark (Debian/Ubuntu: apt install tshark)"

FIELDS: Final = (
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.id",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.hlim",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq",
    "tcp.ack",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "icmpv6.type",
    "icmpv6.code",
    "icmpv6.mtu",
    "vxlan.vni",
    "geneve.vni",
    "gre.key",
    "erspan.spanid",
    "pppoe.session_id",
    # The quoted packet's lengths, for QuotedTcp.payload_len.
    "ip.len",
    "ip.hdr_len",
    "ipv6.plen",
    "tcp.hdr_len",
    # Multipath TCP options' subtypes (SynOptions.mptcp, TcpSegment.mptcp_options).
    "tcp.options.mptcp.subtype",
    # A RST's payload as text (TcpSegment.rst_text). Last: it is read whole, commas and all.
    "tcp.reset_cause",
)
_COLUMNS: Final = len(FIELDS)
_IP_SRC: Final = FIELDS.index("ip.src")  # then ip.dst, ip.ttl, ip.id
_IP6_SRC: Final = FIELDS.index("ipv6.src")  # then ipv6.dst, ipv6.hlim
_TCP_SRC: Final = FIELDS.index("tcp.srcport")  # then dstport, seq, ack
_TCP_FLAGS: Final = FIELDS.index("tcp.flags")
_TCP_WINDOW: Final = FIELDS.index("tcp.window_size_value")
_TCP_LEN: Final = FIELDS.index("tcp.len")
_MSS: Final = FIELDS.index("tcp.options.mss_val")  # then wscale.shift, sack_perm, tsval
_HEAD: Final = _TCP_LEN + 1  # frame.number to tcp.len: what a plain IPv4 segment needs
_MPTCP_SUBTYPE: Final = FIELDS.index("tcp.options.mptcp.subtype")
_RESET_CAUSE: Final = FIELDS.index("tcp.reset_cause")

# Dissection tcpdiag does not need, switched off for speed, and IP reassembly switched off so
# each frame is decoded on its own, as the native decoder does. TCP payload is never dissected
# (decode-as "data" on every port keeps HTTP, TLS and the heuristics out of it).
_PREFERENCES: Final = (
    "tcp.desegment_tcp_streams:FALSE",
    "tcp.analyze_sequence_numbers:FALSE",
    "tcp.relative_sequence_numbers:FALSE",  # so tcp.seq and tcp.ack are the raw numbers
    "tcp.calculate_timestamps:FALSE",
    "tcp.track_bytes_in_flight:FALSE",
    "tcp.try_heuristic_first:FALSE",
    "ip.defragment:FALSE",
    "ipv6.defragment:FALSE",
)

_ICMP4_ERRORS: Final = frozenset((3, 11, 12))
_ICMP6_ERRORS: Final = frozenset((1, 2, 3, 4))
_IP_LAYERS: Final = frozenset(("ip", "ipv6"))
# Tunnels whose layer names them only in front of what they carry (tshark's layer, the tunnel,
# the next layers that make it one): L2TP's data messages (its control channel is followed by
# no PPP), GTP-U's G-PDUs (its echoes and error indications by no IP).
_CARRYING_TUNNELS: Final = {
    "l2tp": (tunnels.L2TP, frozenset(("ppp",))),
    "gtp": (tunnels.GTP_U, _IP_LAYERS),
}


class TsharkUnavailable(Exception):
    """tshark cannot be run; the message is one line for the user."""


class TsharkFailed(Exception):
    """tshark refused the file; the message is its own one-line explanation."""


def tshark_path() -> str:
    """The tshark binary: pyshark's choice when pyshark is installed, else the one on PATH."""
    path: str | None = None
    try:
        from pyshark.tshark.tshark import get_process_path  # type: ignore[import-untyped]

        path = get_process_path()
    except Exception:  # pyshark missing, or it found no tshark: try PATH ourselves
        path = None
    path = path or shutil.which("tshark")
    if path is None or shutil.which(path) is None:
        raise TsharkUnavailable(f"tshark not found: {INSTALL_HINT}")
    return path


# One custom column per field, every occurrence (0), unresolved values (U); tab-separated.
_COLUMN_FORMAT: Final = ",".join(f'"{name}","%Cus:{name}:0:U"' for name in FIELDS)


def tshark_command(path: str, capture: str, vxlan_ports: frozenset[int]) -> list[str]:
    command = [path, "-n", "-r", capture, "-T", "tabs"]
    command += ["-o", "gui.column.hidden:", "-o", f"gui.column.format:{_COLUMN_FORMAT}"]
    for preference in _PREFERENCES:
        command += ["-o", preference]
    command += ["-d", "tcp.port==1-65535,data"]
    for port in sorted(vxlan_ports - {tunnels.VXLAN_PORT}):
        command += ["-d", f"udp.port=={port},vxlan"]
    return command


_F_SETPIPE_SZ: Final = 1031  # Linux fcntl
_PIPE_BYTES: Final = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Let tshark run ahead by about 7,000 packets while Python tracks: with the default 64 KiB
    pipe it stalls whenever the tracker is busy. Linux only; elsewhere a no-op."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, OSError):
        pass


class TsharkDecoder:
    """Reads one capture through tshark; `packets()` yields the records, `stats` counts frames
    as `tcpdiag.decode.DecodeStats` does (with what tshark calls malformed as undecodable)."""

    def __init__(
        self,
        capture: str,
        vxlan_ports: frozenset[int] = frozenset((tunnels.VXLAN_PORT,)),
        tshark: str | None = None,
    ) -> None:
        self.capture = capture
        self.vxlan_ports = vxlan_ports
        self.tshark = tshark or tshark_path()
        self.stats = DecodeStats()
        self.warnings: list[str] = []  # what tshark said on stderr about a damaged file
        self.truncated = False  # tshark stopped at damage part-way
        self._v6: dict[str, str] = {}  # tshark's IPv6 text -> the native decoder's
        self._plain: dict[str, bool] = {}  # frame.protocols -> _plain_protocols (a few kinds)

    def packets(self) -> Iterator[Packet]:
        command = tshark_command(self.tshark, self.capture, self.vxlan_ports)
        # stderr goes to a file: a pipe nobody reads until the end could fill and stall tshark.
        with (
            tempfile.TemporaryFile() as errors,
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, bufsize=0
            ) as proc,
        ):
            assert proc.stdout is not None
            _widen_pipe(proc.stdout.fileno())
            done = False
            try:
                for lines in _line_blocks(proc.stdout):
                    yield from self.records(lines)
                done = True
            finally:
                if not done:  # the consumer stopped early, or failed: stop tshark too
                    proc.kill()
            status = proc.wait()
            errors.seek(0)
            error = errors.read(1 << 16).decode("utf-8", "replace")
        messages = [m.strip() for m in error.splitlines() if m.strip()]
        messages = [m for m in messages if "Running as user" not in m]
        if status != 0 and not self.stats.frames:
            raise TsharkFailed(messages[0] if messages else f"tshark exited with status {status}")
        if status != 0 or messages:
            self.truncated = status != 0
            self.warnings.extend(f"{self.capture}: tshark: {m}" for m in messages[:3])

    # -- one frame ----------------------------------------------------------------------------

    def records(self, lines: list[str]) -> Iterator[Packet]:
        """The records of lines of tshark's output, in order: `record` for each line, with the
        common frame (one IP layer and TCP, nothing around them) built right here."""
        stats, plain, record = self.stats, self._plain, self.record
        for line in lines:
            v = line.split("\t")
            if len(v) == _COLUMNS:
                # The first _HEAD fields, by name (FIELDS' order).
                (number, time, protocols, src, dst, ttl, ip_id, src6, _, _,
                 sport, dport, seq, ack, flags, window, length) = v[:_HEAD]  # fmt: skip
                simple = plain.get(protocols)
                if simple is None:
                    if len(plain) > 1 << 12:
                        plain.clear()
                    simple = plain[protocols] = _plain_protocols(protocols)
                # The conditions of `_record` and `_plain_segment`, for IPv4 (IPv6: `record`).
                if simple and src and not src6 and flags and length and "," not in src:
                    try:
                        bits = int(flags, 16) & 0xFF
                        segment = TcpSegment(
                            int(number),
                            float(time),
                            src,
                            dst,
                            int(sport),
                            int(dport),
                            int(seq),
                            int(ack) if ack else 0,
                            bits,
                            int(window),
                            int(length),
                            int(ttl),
                            4,
                            int(ip_id, 16),
                            _syn_options(v) if bits & SYN else None,
                            "",
                            _segment_mptcp(bits, v[_MPTCP_SUBTYPE]),
                            _rst_text(bits, length, v[_RESET_CAUSE]),
                        )
                    except ValueError:
                        pass  # `record` counts it as it should
                    else:
                        stats.frames += 1
                        stats.tcp += 1
                        if segment.syn_options is not None and segment.syn_options.mptcp:
                            stats.mptcp_syns += 1  # (see DecodeStats.mptcp_syns)
                        yield segment
                        continue
            packet = record(v)
            if packet is not None:
                yield packet

    def record(self, values: list[str]) -> Packet | None:
        """The record of one line of tshark's output (None: counted in stats)."""
        stats = self.stats
        stats.frames += 1
        if len(values) != _COLUMNS:
            stats.undecodable += 1
            return None
        try:
            result = self._record(values)
        except (ValueError, IndexError):
            result = None
        if type(result) is TcpSegment:
            stats.tcp += 1
        elif type(result) is IcmpError:
            stats.icmp_errors += 1
        elif result is None:
            protocols = values[2]
            if "_ws.malformed" in protocols or "_ws.short" in protocols:
                stats.undecodable += 1
                if "_ws.short" in protocols:
                    stats.truncated += 1
                if stats.first_undecodable is None:
                    stats.first_undecodable = int(values[0])
            else:
                stats.other += 1
        return result

    def _record(self, v: list[str]) -> Packet | None:
        protocols = v[2]
        # The common frame, one IP layer and TCP, no tunnel: straight from the columns.
        if (
            _plain_protocols(protocols)
            and "," not in v[_IP_SRC]
            and "," not in v[_IP6_SRC]
            and not (v[_IP_SRC] and v[_IP6_SRC])
        ):
            return self._plain_segment(v)
        return self._layered(v)

    def _plain_segment(self, v: list[str]) -> TcpSegment | None:
        if not v[_TCP_FLAGS] or not v[_TCP_LEN]:
            return None
        flags = int(v[_TCP_FLAGS], 16) & 0xFF
        if v[_IP_SRC]:
            src, dst, ttl, version = v[_IP_SRC], v[_IP_SRC + 1], int(v[_IP_SRC + 2]), 4
            ip_id: int | None = int(v[_IP_SRC + 3], 16)
        else:
            src, dst = self._v6_text(v[_IP6_SRC]), self._v6_text(v[_IP6_SRC + 1])
            ttl, version, ip_id = int(v[_IP6_SRC + 2]), 6, None
        options = None
        if flags & SYN:
            options = _syn_options(v)
            if options.mptcp:
                self.stats.mptcp_syns += 1
        ack = v[_TCP_SRC + 3]
        return TcpSegment(
            int(v[0]),
            float(v[1]),
            src,
            dst,
            int(v[_TCP_SRC]),
            int(v[_TCP_SRC + 1]),
            int(v[_TCP_SRC + 2]),
            int(ack) if ack else 0,
            flags,
            int(v[_TCP_WINDOW]),
            int(v[_TCP_LEN]),
            ttl,
            version,
            ip_id,
            options,
            "",
            _segment_mptcp(flags, v[_MPTCP_SUBTYPE]),
            _rst_text(flags, v[_TCP_LEN], v[_RESET_CAUSE]),
        )

    def _layered(self, v: list[str]) -> Packet | None:
        """Any frame: walk frame.protocols, naming tunnels, to the innermost TCP or ICMP."""
        layers = v[2].split(":")
        f = {name: (v[k].split(",") if v[k] else []) for k, name in enumerate(FIELDS)}
        counts = dict.fromkeys(("ip", "ipv6", "vxlan", "geneve", "gre", "erspan", "pppoes"), 0)
        context = ""
        carrier: tuple[str, int] | None = None  # (ip or ipv6, occurrence) of the last IP layer
        previous = ""
        routed = False  # the last IPv6 layer had a routing header
        for position, layer in enumerate(layers):
            if layer.startswith("ipv6."):
                # An IPv6 extension header: part of the IPv6 layer before it (as `previous`).
                routed = routed or layer == "ipv6.routing"
                continue
            if layer in _IP_LAYERS:
                if previous in _IP_LAYERS and carrier is not None:
                    if routed:  # segment routing: no tunnel context (see decode.py)
                        self._count(tunnels.SRV6)
                    else:
                        context = self._tunnel(context, tunnels.IPIP, f, carrier, "")
                        self._count(tunnels.IPIP)
                routed = False
                carrier = (layer, counts[layer])
                counts[layer] += 1
            elif layer in ("vxlan", "geneve") and carrier is not None:
                vni = int(f[f"{layer}.vni"][counts[layer]], 0)
                counts[layer] += 1
                context = self._tunnel(context, layer, f, carrier, f"vni {vni}")
                self._count(layer)
            elif layer == "gre" and carrier is not None:
                if position + 1 < len(layers) and layers[position + 1] == "erspan":
                    pass  # named by the ERSPAN layer
                else:
                    keys = f["gre.key"]
                    key = f"key {int(keys[-1], 0)}" if keys else ""
                    context = self._tunnel(context, tunnels.GRE, f, carrier, key)
                    self._count(tunnels.GRE)
            elif layer == "erspan" and carrier is not None:
                spans = f["erspan.spanid"]
                session = f"session {int(spans[counts['erspan']], 0)}" if spans else ""
                counts["erspan"] += 1
                context = self._tunnel(context, tunnels.ERSPAN, f, carrier, session)
                self._count(tunnels.ERSPAN)
            elif layer in _CARRYING_TUNNELS and carrier is not None:
                name, carried = _CARRYING_TUNNELS[layer]
                if position + 1 < len(layers) and layers[position + 1] in carried:
                    context = self._tunnel(context, name, f, carrier, "")
                    self._count(name)
            elif layer == "teredo" and carrier is not None:
                context = self._tunnel(context, tunnels.TEREDO, f, carrier, "")
                self._count(tunnels.TEREDO)
            elif layer == "pppoes":
                session_id = int(f["pppoe.session_id"][counts["pppoes"]], 0)
                counts["pppoes"] += 1
                context = self._context(tunnels.pppoe_text(context, session_id))
                self._count(tunnels.PPPOE)
            elif layer == "mpls" and previous != "mpls":
                self._count(tunnels.MPLS)
            elif layer == "tcp" and carrier is not None:
                return self._segment(v, f, carrier, context)
            elif layer in ("icmp", "icmpv6") and carrier is not None:
                return self._icmp(v, f, layer, layers[position + 1 :], carrier, counts, context)
            previous = layer
        return None

    def _segment(
        self, v: list[str], f: dict[str, list[str]], carrier: tuple[str, int], context: str
    ) -> TcpSegment | None:
        if not f["tcp.flags"] or not f["tcp.len"]:
            return None
        layer, k = carrier
        src, dst = self._addr(f, layer, "src", k), self._addr(f, layer, "dst", k)
        if layer == "ip":
            ttl, version, ip_id = int(f["ip.ttl"][k]), 4, int(f["ip.id"][k], 16)
        else:
            ttl, version, ip_id = int(f["ipv6.hlim"][k]), 6, None
        flags = int(f["tcp.flags"][-1], 16) & 0xFF
        options = None
        if flags & SYN:
            mss = f["tcp.options.mss_val"]
            scale = f["tcp.options.wscale.shift"]
            options = SynOptions(
                int(mss[-1]) if mss else None,
                int(scale[-1]) if scale else None,
                bool(f["tcp.options.sack_perm"]),
                bool(f["tcp.options.timestamp.tsval"]),
                _mptcp_bits(v[_MPTCP_SUBTYPE]),
            )
            if options.mptcp:
                self.stats.mptcp_syns += 1
        ack = f["tcp.ack"]
        return TcpSegment(
            int(v[0]),
            float(v[1]),
            src,
            dst,
            int(f["tcp.srcport"][-1]),
            int(f["tcp.dstport"][-1]),
            int(f["tcp.seq"][-1]),
            int(ack[-1]) if ack else 0,
            flags,
            int(f["tcp.window_size_value"][-1]),
            int(f["tcp.len"][-1]),
            ttl,
            version,
            ip_id,
            options,
            context,
            _segment_mptcp(flags, v[_MPTCP_SUBTYPE]),
            _rst_text(flags, f["tcp.len"][-1], v[_RESET_CAUSE]),
        )

    def _icmp(
        self,
        v: list[str],
        f: dict[str, list[str]],
        layer: str,
        rest: list[str],
        carrier: tuple[str, int],
        counts: dict[str, int],
        context: str,
    ) -> IcmpError | None:
        icmp_type = int(f[f"{layer}.type"][0])
        code = int(f[f"{layer}.code"][0])
        version = 4 if layer == "icmp" else 6
        if icmp_type not in (_ICMP4_ERRORS if version == 4 else _ICMP6_ERRORS):
            return None
        ip, k = carrier
        ttl = int(f["ip.ttl"][k]) if ip == "ip" else int(f["ipv6.hlim"][k])
        mtu_field = f[f"{layer}.mtu"]
        mtu: int | None = None
        if version == 4 and icmp_type == 3 and code == 4:
            mtu = (int(mtu_field[0]) if mtu_field else 0) or None
        elif version == 6 and icmp_type == 2 and mtu_field:
            mtu = int(mtu_field[0])
        quoted = None
        # The quoted packet: the IP layer right after the ICMP one, then TCP.
        if len(rest) >= 2 and rest[0] in _IP_LAYERS and "tcp" in rest[1:3]:
            q = counts[rest[0]]  # the next occurrence of that IP family
            seqs, quoted_flags = f["tcp.seq"], f["tcp.flags"]
            if seqs and len(f[f"{rest[0]}.src"]) > q:
                quoted = QuotedTcp(
                    self._addr(f, rest[0], "src", q),
                    self._addr(f, rest[0], "dst", q),
                    int(f["tcp.srcport"][-1]),
                    int(f["tcp.dstport"][-1]),
                    int(seqs[-1]),
                    _quoted_payload(f, rest[0], q),
                    int(quoted_flags[-1], 16) & 0xFF if quoted_flags else None,
                )
        return IcmpError(
            int(v[0]),
            float(v[1]),
            self._addr(f, ip, "src", k),
            self._addr(f, ip, "dst", k),
            version,
            icmp_type,
            code,
            ttl,
            quoted,
            mtu,
            context,
        )

    # -- tunnels ------------------------------------------------------------------------------

    def _addr(self, f: dict[str, list[str]], layer: str, end: str, k: int) -> str:
        """Address text as the native decoder writes it: Wireshark writes IPv4-compatible
        IPv6 addresses (::a.b.c.d) dotted, tcpdiag in hex, like Python's ipaddress."""
        text = f[f"{layer}.{end}"][k]
        return text if layer == "ip" else self._v6_text(text)

    def _v6_text(self, text: str) -> str:
        if "." not in text:
            return text
        same = self._v6.get(text)
        if same is None:
            if len(self._v6) > 1 << 12:
                self._v6.clear()
            same = self._v6[text] = ip6_text(socket.inet_pton(socket.AF_INET6, text))
        return same

    def _tunnel(
        self, outer: str, kind: str, f: dict[str, list[str]], carrier: tuple[str, int], ident: str
    ) -> str:
        layer, k = carrier
        return self._context(
            tunnels.context_text(
                outer, kind, self._addr(f, layer, "src", k), self._addr(f, layer, "dst", k), ident
            )
        )

    def _count(self, kind: str) -> None:
        counts = self.stats.encapsulations
        counts[kind] = counts.get(kind, 0) + 1

    def _context(self, context: str) -> str:
        self.stats.count_tunnel(context)
        return context


def _plain_protocols(protocols: str) -> bool:
    """frame.protocols of a frame `_plain_segment` can read: TCP, no ICMP around it, no PPPoE
    or MPLS (which the native decoder counts) on the way (the addresses still decide)."""
    return (
        ":tcp" in protocols
        and "icmp" not in protocols
        and "pppoes" not in protocols
        and "mpls" not in protocols
    )


def _syn_options(v: list[str]) -> SynOptions:
    """A plain frame's SYN options (one TCP layer: each field has one occurrence at most)."""
    mss, scale = v[_MSS], v[_MSS + 1]
    return SynOptions(
        int(mss) if mss else None,
        int(scale) if scale else None,
        bool(v[_MSS + 2]),
        bool(v[_MSS + 3]),
        _mptcp_bits(v[_MPTCP_SUBTYPE]),
    )


def _rst_text(flags: int, length: str, cause: str) -> str:
    """TcpSegment.rst_text from tcp.reset_cause (Wireshark's text of a RST's payload)."""
    if not (flags & RST and cause):
        return ""
    return reset_text(cause, int(length))


def _segment_mptcp(flags: int, subtypes: str) -> int:
    """TcpSegment.mptcp_options from the segment's tcp.options.mptcp.subtype values."""
    return segment_mptcp(flags, _mptcp_bits(subtypes)) if subtypes else 0


def _mptcp_bits(subtypes: str) -> int:
    """The Multipath TCP options of a segment as a bit (1 << subtype) each (SynOptions.mptcp)
    from its tcp.options.mptcp.subtype values ("7,8")."""
    bits = 0
    for subtype in subtypes.split(","):
        if subtype.isdigit():
            bits |= 1 << int(subtype)
    return bits


_BLOCK: Final = 1 << 20


def _line_blocks(stream: IO[bytes]) -> Iterator[list[str]]:
    """The lines of a stream in lists, as whole lines arrive: one read and one decode per
    block of up to a megabyte instead of per line. A last line without a newline counts."""
    pending = b""
    while block := stream.read(_BLOCK):
        end = block.rfind(b"\n")
        if end < 0:
            pending += block
            continue
        text = (pending + block[:end] if pending else block[:end]).decode("utf-8", "replace")
        pending = block[end + 1 :]
        yield text.split("\n")
    if pending:
        yield [pending.decode("utf-8", "replace")]


def _quoted_payload(f: dict[str, list[str]], layer: str, q: int) -> int | None:
    """The quoted packet's TCP payload length from its IP header, as the native decoder
    computes it (a TCP header the quote cuts short counts as 20 bytes)."""
    try:
        if layer == "ip":
            segment = int(f["ip.len"][q]) - int(f["ip.hdr_len"][q])
        else:
            segment = int(f["ipv6.plen"][q])
    except (IndexError, ValueError):
        return None
    header = f["tcp.hdr_len"]
    payload = segment - max(int(header[-1]) if header else 20, 20)
    return payload if payload >= 0 else None
