"""The native decoder and the pyshark (tshark) engine give the same findings on every capture.

Findings are compared as category, rule, client, server, errnos and frames; the decoded records
themselves are compared on every sample too (the one known difference is documented below).
Then `auto`: a capture the native decoder cannot read is handed to tshark, and the report says
so; and a missing tshark is one clear line.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pytest

from tcpdiag import tshark_engine
from tcpdiag.analyze import AnalysisOptions, CaptureReport, analyze_capture
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decode import Decoder
from tcpdiag.detect import RuleEngine
from tcpdiag.fastpath import FastPathTracker
from tcpdiag.findings import Finding
from tcpdiag.reader import CaptureReader
from tcpdiag.reporters.digest import digest
from tcpdiag.reporters.selection import Selection
from tcpdiag.rules import load_rules
from tcpdiag.tracker import FlowTable
from tcpdiag.tshark_engine import TsharkDecoder

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = ROOT / "tests" / "data"
CAPTURES = [
    *sorted(SAMPLES.glob("*.pcap")),
    *sorted(SAMPLES.glob("crafted/*.pcap")),
    *sorted(DATA.glob("decode_*.pcap*")),
]
ENGINE = RuleEngine(load_rules())

if shutil.which("tshark") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tshark is required in CI (.ci/run installs it)")
    pytest.skip("tshark is not installed", allow_module_level=True)


def native_findings(path: Path) -> list[tuple[object, ...]]:
    report = analyze_capture(path, ENGINE, AnalysisOptions(engine="native"))
    assert report.error is None, report.error
    return [finding_key(f) for f in report.findings]


def finding_key(f: Finding) -> tuple[object, ...]:
    return (f.category, f.rule, f.client, f.server, f.client_sees.errno, f.server_sees.errno,
            tuple(f.frames))  # fmt: skip


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_both_engines_decode_the_same_records_and_find_the_same(path: Path) -> None:
    """One tshark run per capture (its start-up is most of the time): the records are
    compared, then tracked and judged exactly as `analyze --engine pyshark` does."""
    decoder = Decoder()
    with CaptureReader(path) as reader:
        native = [p for p in map(decoder.decode, reader) if p is not None]
    tshark = list(TsharkDecoder(str(path)).packets())
    # The fast path's columns give back exactly tshark's records.
    columns = ColumnDecoder().from_packets(tshark)
    assert columns.packets(np.arange(len(columns)), {}) == tshark
    table = FlowTable(zeek=False)
    tshark_findings = [
        finding_key(f) for conn in table.track(tshark) for f in ENGINE.findings_for(conn)
    ]
    tshark_findings.sort(key=lambda k: (min(k[6]), k))
    want = sorted(native_findings(path), key=lambda k: (min(k[6]), k))
    assert tshark_findings == want
    if path.name == "decode_snaplen.pcap":
        # Its SYN's timestamps option is cut by the snaplen: tcpdiag reads only whole options,
        # Wireshark shows the cut one. SYN options never decide a finding on their own.
        assert native[0].syn_options.timestamps is False  # type: ignore[union-attr]
        assert tshark[0].syn_options.timestamps is True  # type: ignore[union-attr]
        native, tshark = native[1:], tshark[1:]
    assert native == tshark


@pytest.mark.parametrize(
    "name", ["vxlan_peer_reset_linger0", "crafted/crafted_gre_icmp_port_unreachable_syn", "mixed"]
)
def test_analyze_with_the_pyshark_engine(name: str) -> None:
    path = SAMPLES / f"{name}.pcap"
    report = analyze_capture(path, ENGINE, AnalysisOptions(engine="pyshark"))
    assert report.error is None
    assert report.decode["engine"] == "pyshark"
    assert [finding_key(f) for f in report.findings] == native_findings(path)


def _relinked(source: Path, out: Path, linktype: int, header: bytes) -> Path:
    """The source sample's IP packets, each after `header`, on another link type."""
    import dpkt

    with open(source, "rb") as f:
        records = list(dpkt.pcap.Reader(f))
    with open(out, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype)
        for ts, frame in records:
            writer.writepkt(header + frame[14:], ts)
    return out


# An 802.11 data frame's header (to the AP, addresses made up) and LLC/SNAP for IPv4: a link
# type the native decoder does not know and Wireshark does.
WLAN_IPV4 = (
    struct.pack("<HH6s6s6sH", 0x0008, 0, b"\x02" * 6, b"\x04" * 6, b"\x06" * 6, 0)
    + b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
)


def _wlan_capture(source: Path, out: Path) -> Path:
    return _relinked(source, out, 105, WLAN_IPV4)


@pytest.mark.parametrize(
    ("linktype", "header"),
    [
        (9, b"\xff\x03\x00\x21"),  # PPP in RFC 1662 framing
        (9, b"\x00\x21"),  # PPP without it
        (50, b"\xff\x03\x00\x21"),  # PPP in HDLC framing
        (50, b"\x0f\x00\x08\x00"),  # Cisco PPP in HDLC framing
        (104, b"\x0f\x00\x08\x00"),  # Cisco HDLC
    ],
    ids=["ppp", "ppp-unframed", "ppp-hdlc", "cisco-ppp", "cisco-hdlc"],
)
def test_a_routers_serial_link_is_read_natively(
    linktype: int, header: bytes, tmp_path: Path
) -> None:
    """A kernel sample's packets on the serial link types of routers and PPP hosts give the
    same findings natively as on Ethernet, and through tshark."""
    source = SAMPLES / "peer_reset_linger0.pcap"
    path = _relinked(source, tmp_path / "serial.pcap", linktype, header)
    native = analyze_capture(path, ENGINE, AnalysisOptions(engine="native"))
    assert native.decode["engine"] == "native" and not native.decode["unknown_linktypes"]
    plain = analyze_capture(source, ENGINE)

    def found(report: CaptureReport) -> list[tuple[object, ...]]:
        return [(f.category, f.rule, f.client, f.server, f.frames) for f in report.findings]

    assert found(native) == found(plain) != []
    assert native_findings(path) == [
        finding_key(f)
        for f in analyze_capture(path, ENGINE, AnalysisOptions(engine="pyshark")).findings
    ]


def test_auto_hands_an_undecodable_capture_to_tshark_and_says_so(tmp_path: Path) -> None:
    source = SAMPLES / "peer_reset_linger0.pcap"
    path = _wlan_capture(source, tmp_path / "wlan.pcap")
    native = analyze_capture(path, ENGINE, AnalysisOptions(engine="native"))
    assert not native.findings
    assert native.decode["unknown_linktypes"] == {"105": 8}
    assert any("may be incomplete" in w and "--engine pyshark" in w for w in native.warnings)

    auto = analyze_capture(path, ENGINE, AnalysisOptions(engine="auto"))
    assert auto.decode["engine"] == "pyshark"
    assert any("read with the pyshark engine" in w for w in auto.warnings)
    plain = analyze_capture(source, ENGINE)
    assert [(f.category, f.rule, f.client, f.server, f.frames) for f in auto.findings] == [
        (f.category, f.rule, f.client, f.server, f.frames) for f in plain.findings
    ]


def test_show_finds_what_analyze_found_through_tshark(tmp_path: Path) -> None:
    """`tcpdiag show` analyses with the same engine as analyze (auto) and reads the ladder
    again with the engine that decoded the capture: a finding analyze reported on a PPP
    capture is shown, not "no finding"."""
    from typer.testing import CliRunner

    from tcpdiag.cli import app

    path = _wlan_capture(SAMPLES / "peer_reset_linger0.pcap", tmp_path / "wlan.pcap")
    result = CliRunner().invoke(app, ["show", str(path), "F1"])
    assert result.exit_code == 0, result.output
    assert "finding F1 peer_reset" in result.output
    assert "VERDICT: RST from server" in result.output


def test_auto_keeps_the_native_decoder_when_it_reads_the_capture() -> None:
    report = analyze_capture(SAMPLES / "vxlan_refused.pcap", ENGINE, AnalysisOptions(engine="auto"))
    assert report.decode["engine"] == "native"


def test_missing_tshark_is_one_line_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    report = analyze_capture(
        SAMPLES / "refused_no_listener.pcap", ENGINE, AnalysisOptions(engine="pyshark")
    )
    assert report.error is not None
    assert "\n" not in report.error
    assert "apt install tshark" in report.error
    with pytest.raises(tshark_engine.TsharkUnavailable):
        tshark_engine.tshark_path()


def test_a_file_tshark_cannot_read_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "not_capture.pcap"
    path.write_text("hello, this is not a capture\n")
    report = analyze_capture(path, ENGINE, AnalysisOptions(engine="pyshark"))
    assert report.error is not None
    assert "\n" not in report.error


def test_the_command_line_says_tshark_is_missing_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tcpdiag.cli import app

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    result = CliRunner().invoke(
        app, ["analyze", "--engine", "pyshark", str(SAMPLES / "refused_no_listener.pcap")]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("tcpdiag: error")]
    assert len(errors) == 1
    assert "tshark not found" in errors[0] and "apt install tshark" in errors[0]
    assert "Traceback" not in result.output


def test_vxlan_on_another_port_in_both_engines(tmp_path: Path) -> None:
    """--vxlan-port 8472 (Linux's old default): both engines read the moved VXLAN alike."""
    import dpkt

    moved = tmp_path / "vxlan8472.pcap"
    with open(SAMPLES / "vxlan_peer_reset_linger0.pcap", "rb") as f, open(moved, "wb") as g:
        writer = dpkt.pcap.Writer(g, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in dpkt.pcap.Reader(f):
            data = bytearray(frame)
            if data[12:14] == b"\x08\x00" and data[23] == 17:
                data[36:38] = struct.pack("!H", 8472)
            writer.writepkt(bytes(data), ts)
    ports = frozenset((4789, 8472))
    native = analyze_capture(moved, ENGINE, AnalysisOptions(engine="native", vxlan_ports=ports))
    tshark = analyze_capture(moved, ENGINE, AnalysisOptions(engine="pyshark", vxlan_ports=ports))
    assert [finding_key(f) for f in native.findings] == [finding_key(f) for f in tshark.findings]
    assert [f.category for f in native.findings] == ["peer_reset"]
    assert native.decode["tunnels"] == tshark.decode["tunnels"]
    unasked = analyze_capture(moved, ENGINE, AnalysisOptions(engine="native"))
    assert not unasked.findings


def test_segment_routing_is_no_tunnel_in_both_engines() -> None:
    """IPv6 with a routing header carrying IP (SRv6) names no tunnel context (its outer header
    differs per direction), IPv6-in-IPv6 behind a hop-by-hop header does: both engines count
    and name them alike."""
    path = DATA / "decode_srv6.pcap"
    native = analyze_capture(path, ENGINE, AnalysisOptions(engine="native"))
    tshark = analyze_capture(path, ENGINE, AnalysisOptions(engine="pyshark"))
    assert native.decode["encapsulations"] == tshark.decode["encapsulations"]
    assert native.decode["encapsulations"] == {"srv6": 2, "ipip": 1}
    assert native.decode["tunnels"] == tshark.decode["tunnels"]


def test_a_clean_read_has_no_tshark_warning_and_is_not_truncated() -> None:
    decoder = TsharkDecoder(str(SAMPLES / "mixed.pcap"))
    assert len(list(decoder.packets())) == 41
    assert (decoder.truncated, decoder.warnings) == (False, [])


def test_the_users_wireshark_preferences_cannot_hide_or_move_a_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fields come out as custom columns; a preferences file that hides one of them or
    lists other columns changes nothing (the command gives the list and empties the hidden)."""
    path = str(SAMPLES / "mixed.pcap")
    want = list(TsharkDecoder(path).packets())
    config = tmp_path / ".config" / "wireshark"
    config.mkdir(parents=True)
    (config / "preferences").write_text(
        'gui.column.format: "No.", "%m", "Source", "%s"\n'
        "gui.column.hidden: %Cus:ip.src:0:U,%Cus:tcp.seq:0:U\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    decoder = TsharkDecoder(path)
    assert list(decoder.packets()) == want
    assert decoder.stats.tcp == len(want)


def _tshark_lines(path: Path) -> list[str]:
    command = tshark_engine.tshark_command(
        tshark_engine.tshark_path(), str(path), frozenset((4789,))
    )
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return out.decode().splitlines()


@pytest.mark.parametrize(
    "name", ["mixed", "refused_ipv6", "vxlan_peer_reset_linger0", "icmp_frag_needed"]
)
def test_the_inline_common_frame_equals_the_general_record(name: str) -> None:
    """`records` builds plain IPv4 TCP frames itself: the same records and the same counts as
    `record`, line by line, including lines whose plain-looking values do not parse."""
    lines = _tshark_lines(SAMPLES / f"{name}.pcap")
    plain = next(
        line for line in _tshark_lines(SAMPLES / "mixed.pcap") if "\teth:ethertype:ip:tcp\t" in line
    )
    values = plain.split("\t")
    bad_port = "\t".join([*values[:10], "http", *values[11:]])  # a port that is not a number
    no_flags = "\t".join([*values[:14], "", *values[15:]])
    lines += [bad_port, no_flags, "too\tfew\tcolumns"]
    inline = TsharkDecoder("unused", tshark="tshark")
    general = TsharkDecoder("unused", tshark="tshark")
    got = list(inline.records(lines))
    want = [p for p in (general.record(line.split("\t")) for line in lines) if p is not None]
    assert got == want
    assert inline.stats == general.stats
    assert inline.stats.frames == len(lines)


class _Trickle:
    """A stream that hands out its bytes a few at a time, as a pipe may."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def read(self, n: int = -1) -> bytes:
        block, self.data = self.data[: self.size], self.data[self.size :]
        return block


@pytest.mark.parametrize("size", [1, 3, 7, 1 << 20])
def test_lines_are_whole_however_the_pipe_splits_them(size: int) -> None:
    text = "1\ta\tb\n2\t\u00e9t\u00e9\n\n3\tlast without newline"
    stream = cast(IO[bytes], _Trickle(text.encode(), size))
    lines = [line for block in tshark_engine._line_blocks(stream) for line in block]
    assert lines == text.split("\n")


def test_the_common_frame_fields_come_first_in_the_order_records_unpacks() -> None:
    assert tshark_engine.FIELDS[: tshark_engine._HEAD] == (
        "frame.number", "frame.time_epoch", "frame.protocols", "ip.src", "ip.dst", "ip.ttl",
        "ip.id", "ipv6.src", "ipv6.dst", "ipv6.hlim", "tcp.srcport", "tcp.dstport", "tcp.seq",
        "tcp.ack", "tcp.flags", "tcp.window_size_value", "tcp.len",
    )  # fmt: skip


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated capture like the benchmark's: thousands of healthy connections and every
    failure category, IPv6 and VLAN tags included."""
    path = tmp_path_factory.mktemp("busy") / "busy.pcap"
    spec = importlib.util.spec_from_file_location("make_capture", ROOT / "bench/make_capture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_capture", module)
    spec.loader.exec_module(module)
    module.generate(30_000, path, seed=11, knobs=module.Knobs(ipv6=0.3))
    return path


@pytest.mark.parametrize(
    "name", ["busy", "graceful_close.pcap", "vxlan_refused.pcap", "peer_reset_ipv6_any.pcap"]
)
def test_the_pyshark_engine_takes_the_fast_path_with_the_same_report(
    name: str, busy_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tshark's records go through the fast path as the native decoder's columns do: the
    report is the one every record through the tracker gives, and the bulk path took
    connections (where a connection was healthy)."""
    path = busy_capture if name == "busy" else SAMPLES / name
    pyshark = AnalysisOptions(engine="pyshark")
    reference = analyze_capture(path, ENGINE, replace(pyshark, fast_path=False)).to_dict()
    taken: list[int] = []

    class Counting(FastPathTracker):
        def track(self, batches: Any) -> Iterator[Any]:
            yield from super().track(batches)
            taken.append(self.fast_connections)

    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", Counting)
    fast = analyze_capture(path, ENGINE, pyshark).to_dict()
    assert fast == reference
    assert len(taken) == 1
    assert (taken[0] > 0) is (name in ("busy", "graceful_close.pcap"))


# Multipath TCP options (kind 30, RFC 8684 3.1, 3.2, 3.5, 3.6).
_MP_CAPABLE = bytes([30, 12, 0x01, 0x81]) + bytes(8)  # subtype 0, version 1, flags, key
_MP_JOIN = bytes([30, 12, 0x10, 0x00]) + bytes(8)  # subtype 1, address id, token, nonce
_MP_FASTCLOSE = bytes([30, 12, 0x70, 0x00]) + bytes(8)  # subtype 7, receiver's key
_MP_TCPRST = bytes([30, 4, 0x80, 0x00])  # subtype 8, reason 0 (unspecified)


def _mptcp_capture(
    out: Path,
    rst_options: bytes | None = None,
    syn: bytes = _MP_CAPABLE,
    client_ack: bytes | None = None,
    client_fin: bool = False,
) -> Path:
    """A handshake whose SYN and SYN-ACK carry `syn` (MP_CAPABLE: a Multipath TCP connection's
    first subflow), then a plain ACK; with `rst_options`, a request and the server's RST+ACK
    carrying them 0.2 s later, the client idle but, with `client_ack`, for an ACK carrying
    these options just before the RST (after its FIN, with `client_fin`)."""
    import dpkt

    mss = bytes([2, 4, 0x05, 0xB4])
    client, server = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    syn_flag, ack, rst, psh = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH
    segments = [
        (client, server, 40000, 80, 1000, 0, syn_flag, mss + syn, b""),
        (server, client, 80, 40000, 5000, 1001, syn_flag | ack, mss + syn, b""),
        (client, server, 40000, 80, 1001, 5001, ack, b"", b""),
    ]
    if rst_options is not None:
        segments += [
            (client, server, 40000, 80, 1001, 5001, ack | psh, b"", b"GET /\r\n"),
            (server, client, 80, 40000, 5001, 1008, ack, b"", b""),
        ]
        if client_fin:
            fin = dpkt.tcp.TH_FIN
            segments.append((client, server, 40000, 80, 1008, 5001, ack | fin, b"", b""))
        if client_ack is not None:
            seq = 1008 + client_fin
            segments.append((client, server, 40000, 80, seq, 5001, ack, client_ack, b""))
        segments.append((server, client, 80, 40000, 5001, 1008, ack | rst, rst_options, b""))
    with open(out, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for k, (src, dst, sport, dport, seq, ack, flags, opts, data) in enumerate(segments):
            tcp = dpkt.tcp.TCP(
                sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, opts=opts, data=data
            )
            tcp.off = (20 + len(opts)) // 4
            ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=tcp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(
                src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
            )
            closing = (client_ack is not None) + client_fin
            late = rst_options is not None and k >= len(segments) - 1 - closing
            writer.writepkt(bytes(eth), 1_700_000_000.0 + k * 0.001 + late * 0.2)
    return out


DECODERS = [AnalysisOptions(), AnalysisOptions(fast_path=False), AnalysisOptions(engine="pyshark")]
DECODER_IDS = ["columns", "packets", "tshark"]


@pytest.mark.parametrize("options", DECODERS, ids=DECODER_IDS)
@pytest.mark.parametrize(
    ("syn", "rst_options", "rule", "client_errno"),
    [
        (_MP_CAPABLE, _MP_FASTCLOSE + _MP_TCPRST, "mptcp-fastclose", "ECONNRESET"),
        (_MP_CAPABLE, _MP_TCPRST, "mptcp-subflow-reset", None),
        (_MP_JOIN, b"", "mptcp-join-reset", None),
        (_MP_CAPABLE, b"", "peer-reset-established", "ECONNRESET"),
    ],
    ids=["fastclose", "subflow-reset", "join-plain-rst", "first-subflow-plain-rst"],
)
def test_a_subflows_rst_is_judged_by_its_multipath_tcp_options(
    tmp_path: Path,
    options: AnalysisOptions,
    syn: bytes,
    rst_options: bytes,
    rule: str,
    client_errno: str | None,
) -> None:
    """Every decoder reads a RST's Multipath TCP options: MP_FASTCLOSE aborts the MPTCP
    connection (the client's application sees ECONNRESET); other MPTCP options, or any RST on
    a subflow that MP_JOIN added, end one subflow, which no application sees; a plain RST on
    a first subflow is judged as TCP's."""
    path = _mptcp_capture(tmp_path / "rst.pcap", rst_options, syn)
    report = analyze_capture(path, ENGINE, options)
    assert report.error is None and report.decode["tcp"] == 6
    (finding,) = report.findings
    assert finding.rule == rule
    assert finding.client_sees.errno == client_errno
    assert finding.server_sees.errno is None


_TIMESTAMPS = bytes([1, 1, 8, 10]) + bytes(8)
_DSS_ACK = bytes([30, 8, 0x20, 0x01]) + bytes(4)  # subtype 2, a 4-byte data ACK


@pytest.mark.parametrize("options", DECODERS, ids=DECODER_IDS)
@pytest.mark.parametrize(
    ("client_ack", "client_fin", "rule", "server_errno"),
    [
        (_TIMESTAMPS + _MP_FASTCLOSE, False, "mptcp-fastclose-answered", "ECONNRESET"),
        # (Timestamps whose value holds MP_FASTCLOSE's first bytes, 30 and 12: no option.)
        (bytes([1, 1, 8, 10, 30, 12, 0x70, 0]) + bytes(4), False, "mptcp-subflow-reset", None),
        (_TIMESTAMPS + _MP_FASTCLOSE, True, "mptcp-subflow-reset", None),
    ],
    ids=["fastclose-on-ack", "look-alike-timestamp", "fastclose-after-fin"],
)
def test_a_rst_answering_an_ack_with_mp_fastclose_is_the_acks_senders_abort(
    tmp_path: Path,
    options: AnalysisOptions,
    client_ack: bytes,
    client_fin: bool,
    rule: str,
    server_errno: str | None,
) -> None:
    """Real traffic (tcpdump's test capture mptcp-fclose.pcap, an MPTCP v0 stack): the client
    aborts the MPTCP connection with MP_FASTCLOSE on an ACK, and the server's stack answers
    with a RST carrying DSS (RFC 8684 3.5). Every decoder reads the option on the ACK: the
    client aborted, the server's program is told (ECONNRESET); read as the RST's own MPTCP
    options it was one subflow closing, nobody told. Bytes that only look like the option's
    start, inside a timestamp, are no MP_FASTCLOSE. Nor is it an abort the peer hears of when
    its sender had closed first (mptcpanalyzer's iperf3 captures: the server's FIN with
    DATA_FIN, then MP_FASTCLOSE for the client's data still arriving, and the client's RST)."""
    path = _mptcp_capture(
        tmp_path / "fclose.pcap", _DSS_ACK, client_ack=client_ack, client_fin=client_fin
    )
    report = analyze_capture(path, ENGINE, options)
    assert report.error is None and report.decode["tcp"] == 7 + client_fin
    (finding,) = report.findings
    assert finding.rule == rule
    assert finding.facts["sender"] == "server"
    assert finding.facts["receiver_fastclosed"] is (client_ack == _TIMESTAMPS + _MP_FASTCLOSE)
    assert (finding.client_sees.errno, finding.server_sees.errno) == (None, server_errno)
    fastclose_frame = 6 + client_fin
    assert (fastclose_frame in finding.frames) is finding.facts["receiver_fastclosed"]
    # The client ended it whenever it sent MP_FASTCLOSE; the summary counts it, not the RST's
    # sender, among the hosts aborting connections (when the finding is an abort).
    aborter = "client" if finding.facts["receiver_fastclosed"] else "server"
    assert finding.facts["aborter"] == aborter
    if finding.category == "peer_reset":
        assert digest(report, Selection()).aborting_hosts == {"10.0.0.1": 1}


@pytest.mark.parametrize("options", DECODERS, ids=DECODER_IDS)
def test_multipath_tcp_subflows_are_said_to_be_judged_one_by_one(
    tmp_path: Path, options: AnalysisOptions
) -> None:
    """Every decoder counts the SYNs that carry a Multipath TCP option, and the report warns
    that each subflow is diagnosed as a TCP connection of its own (a subflow's RST may be the
    MPTCP stack closing it, not an error a program saw)."""
    report = analyze_capture(_mptcp_capture(tmp_path / "mptcp.pcap"), ENGINE, options)
    assert report.error is None and report.decode["tcp"] == 3
    assert report.decode["mptcp_syns"] == 2
    assert any("Multipath TCP" in w and "2 SYNs" in w for w in report.warnings)
    plain = analyze_capture(SAMPLES / "graceful_close.pcap", ENGINE, options)
    assert plain.decode["mptcp_syns"] == 0
    assert not any("Multipath" in w for w in plain.warnings)
