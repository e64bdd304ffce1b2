"""TCP failures inside tunnels are diagnosed like the same failures without a tunnel.

The tunnel samples (samples/make_tunnel_samples.py) name their untunnelled equivalent in
`untunnelled`; both captures are analysed here, in the same run, and their findings compared on
what does not depend on addresses: category, rule, each side's errno, whether the roles are known,
and the number of findings. Then the decoder's own handling of the encapsulations: tenants kept
apart, unsupported and cut-short tunnels counted and reported, never silently dropped.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pytest

from tcpdiag.analyze import AnalysisOptions, analyze_capture
from tcpdiag.decode import Decoder, DecodeStats
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import RST, IcmpError, TcpSegment
from tcpdiag.reader import CaptureReader, RawFrame
from tcpdiag.rules import load_rules

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENGINE = RuleEngine(load_rules())
NATIVE = AnalysisOptions(engine="native")
# Kernel tunnel samples in samples/, crafted encapsulations in samples/crafted/.
TUNNELLED = {
    p.name.removesuffix(".expected.json"): p.parent
    for p in [*SAMPLES.glob("*.expected.json"), *SAMPLES.glob("crafted/*.expected.json")]
    if "untunnelled" in json.loads(p.read_text())
}


def shape(path: Path, options: AnalysisOptions = NATIVE) -> list[tuple[object, ...]]:
    report = analyze_capture(path, ENGINE, options)
    assert report.error is None
    return sorted(
        (f.category, f.rule, f.client_sees.errno, f.server_sees.errno, f.initiator_known)
        for f in report.findings
    )


def frames_of(path: Path, decoder: Decoder) -> list[TcpSegment | IcmpError]:
    with CaptureReader(path) as reader:
        return [p for p in map(decoder.decode, reader) if p is not None]


def check_stats_add_up(stats: DecodeStats) -> None:
    parts = stats.tcp + stats.icmp_errors + stats.other + stats.undecodable
    assert stats.frames == parts + stats.not_decoded - stats.undecodable


def test_every_kind_of_tunnel_has_samples() -> None:
    kernel = {"vxlan", "geneve", "gretap"}
    assert {f"{k}_refused" for k in kernel} <= set(TUNNELLED)
    assert {f"{k}_peer_reset_linger0" for k in kernel} <= set(TUNNELLED)
    crafted = {"mpls", "pppoe", "erspan1", "erspan2", "erspan3", "ipip", "6in4", "teredo", "gre"}
    crafted.add("vxlan")
    assert crafted == {n.split("_")[1] for n in TUNNELLED if n.startswith("crafted_")}


@pytest.mark.parametrize("name", sorted(TUNNELLED))
def test_tunnelled_failure_is_diagnosed_like_the_untunnelled_one(name: str) -> None:
    expected = json.loads((TUNNELLED[name] / f"{name}.expected.json").read_text())
    report = analyze_capture(TUNNELLED[name] / f"{name}.pcap", ENGINE, NATIVE)
    want = Counter((f["category"], f["client"], f["server"]) for f in expected["findings"])
    assert Counter((f.category, f.client, f.server) for f in report.findings) == want
    tunnelled = shape(TUNNELLED[name] / f"{name}.pcap")
    plain = shape(SAMPLES / f"{expected['untunnelled']}.pcap")
    assert tunnelled, "no finding inside the tunnel"
    if name == "crafted_vxlan_two_tenants":
        plain = sorted(plain * 2)  # the same failure in each of two tenants
    assert tunnelled == plain


@pytest.mark.parametrize("name", sorted(TUNNELLED))
def test_fast_path_and_reference_path_agree_in_tunnels(name: str) -> None:
    slow = AnalysisOptions(engine="native", fast_path=False)
    assert shape(TUNNELLED[name] / f"{name}.pcap") == shape(TUNNELLED[name] / f"{name}.pcap", slow)


@pytest.mark.parametrize("name", sorted(TUNNELLED))
def test_every_tunnelled_segment_carries_its_tunnel(name: str) -> None:
    decoder = Decoder()
    records = frames_of(TUNNELLED[name] / f"{name}.pcap", decoder)
    check_stats_add_up(decoder.stats)
    assert decoder.stats.not_decoded == 0
    contexts = {r.tunnel for r in records}
    if "mpls" in name:
        # Labels differ per direction, so MPLS is counted but never part of the key.
        assert contexts == {""}
        assert decoder.stats.encapsulations == {"mpls": len(records)}
    else:
        assert "" not in contexts
        assert set(decoder.stats.tunnels) == contexts


def test_two_tenants_with_the_same_inner_four_tuple_are_two_connections() -> None:
    path = SAMPLES / "crafted" / "crafted_vxlan_two_tenants.pcap"
    report = analyze_capture(path, ENGINE, AnalysisOptions(engine="native", keep_flows=True))
    assert report.flows == 2
    assert len({(c.client, c.server) for c in report.connections}) == 1
    assert len(report.findings) == 2
    assert report.decode["tunnels"] == {
        "vxlan 192.168.77.1<->192.168.77.2 vni 4242": 10,
        "vxlan 192.168.77.1<->192.168.77.2 vni 4243": 10,
    }
    assert any("vni 4243" in w for w in report.warnings), "the report names the tunnels"
    # Each finding and each flow names its own tenant's tunnel.
    tunnels = set(report.decode["tunnels"])
    assert {f.tunnel for f in report.findings} == tunnels
    assert {c.tunnel for c in report.connections} == tunnels
    assert {f.to_dict()["tunnel"] for f in report.findings} == tunnels


def test_vxlan_on_another_port_only_when_asked() -> None:
    """--vxlan-port: Linux's old default 8472 is read as VXLAN only when named."""
    with CaptureReader(SAMPLES / "vxlan_refused.pcap") as reader:
        frames = list(reader)
    moved = []
    for frame in frames:
        data = bytearray(frame.data)
        if data[12:14] == b"\x08\x00" and data[23] == 17:
            data[36:38] = struct.pack("!H", 8472)
        moved.append(RawFrame(frame.number, frame.time, frame.linktype, bytes(data), 0))
    plain = Decoder()
    assert not [p for p in map(plain.decode, moved) if p is not None]
    told = Decoder(frozenset((4789, 8472)))
    records = [p for p in map(told.decode, moved) if p is not None]
    assert [r.flags & RST for r in records] == [0, RST]


def _udp_frame(dport: int, payload: bytes, sport: int = 40000) -> RawFrame:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(4), bytes(4))
    return RawFrame(1, 0.0, 101, ip + udp, 20 + len(udp))


def _gre_frame(flags: int, protocol: int, payload: bytes) -> RawFrame:
    gre = struct.pack("!HH", flags, protocol) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(gre), 1, 0, 64, 47, 0, bytes(4), bytes(4))
    return RawFrame(1, 0.0, 101, ip + gre, 20 + len(gre))


@pytest.mark.parametrize(
    ("frame", "name"),
    [
        (_udp_frame(1701, b"\x00\x03" + bytes(38)), "L2TPv3 (UDP 1701)"),
        (_udp_frame(4790, bytes(40)), "VXLAN-GPE (UDP 4790)"),
        (_gre_frame(0x3081, 0x880B, bytes(40)), "GRE version 1 (PPTP)"),
        (_gre_frame(0, 0x8137, bytes(40)), "GRE protocol 0x8137"),
        (_udp_frame(6081, struct.pack("!BBHI", 0, 0, 0x1234, 7 << 8)), "GENEVE protocol 0x1234"),
    ],
)
def test_unsupported_encapsulations_are_counted_by_name(frame: RawFrame, name: str) -> None:
    decoder = Decoder()
    assert decoder.decode(frame) is None
    assert decoder.stats.unsupported == {name: 1}
    assert decoder.stats.not_decoded == 1
    check_stats_add_up(decoder.stats)


def test_tcp_inside_cisco_fabricpath_is_decoded_as_the_hosts_own_frame() -> None:
    """nDPI's ajp.pcap: a third of its frames are Ethernet with ethertype 0x8903 (FabricPath:
    outer switch addresses, FTag/TTL, then the host's frame, here VLAN-tagged). The segment is
    the host's, with no tunnel context (both directions carry the same framing)."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 8009, 1000, 0, 5 << 4, 0x02, 512, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
        bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
    )  # fmt: skip
    inner = bytes(12) + struct.pack("!HHH", 0x8100, 100, 0x0800) + ip + tcp
    outer = bytes(12) + struct.pack("!HH", 0x8903, 0x0140) + inner
    decoder = Decoder()
    seg = decoder.decode(RawFrame(1, 0.0, 1, outer, len(outer)))
    assert isinstance(seg, TcpSegment)
    assert (seg.src, seg.sport, seg.dst, seg.dport, seg.tunnel) == (
        "10.0.0.1",
        40000,
        "10.0.0.2",
        8009,
        "",
    )
    assert decoder.stats.tcp == 1 and decoder.stats.other == 0
    check_stats_add_up(decoder.stats)


def test_a_tunnel_cut_short_by_the_snaplen_is_undecodable_and_says_so() -> None:
    with CaptureReader(SAMPLES / "geneve_refused.pcap") as reader:
        syn = next(f for f in reader if len(f.data) > 100)
    decoder = Decoder()
    cut = RawFrame(syn.number, syn.time, syn.linktype, syn.data[:60], syn.wire_len)
    assert decoder.decode(cut) is None
    assert (decoder.stats.undecodable, decoder.stats.truncated) == (1, 1)
    assert decoder.stats.encapsulations == {"geneve": 1}


def test_the_report_says_what_was_not_decoded_and_that_the_diagnosis_may_be_incomplete(
    tmp_path: Path,
) -> None:
    """A capture that is mostly L2TPv3: the report counts it by name, warns that the diagnosis
    may be incomplete and names the engine that would read it."""
    import dpkt

    path = tmp_path / "l2tp.pcap"
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_RAW)
        for n in range(4):
            writer.writepkt(_udp_frame(1701, b"\x00\x03" + bytes(38)).data, 1.0 + n)
    report = analyze_capture(path, ENGINE, NATIVE)
    assert report.decode["unsupported"] == {"L2TPv3 (UDP 1701)": 4}
    assert report.decode["not_decoded"] == 4
    assert any("4 frames in L2TPv3 (UDP 1701) not decoded" in w for w in report.warnings)
    assert any("may be incomplete" in w and "--engine pyshark" in w for w in report.warnings)


def _wrapped(source: Path, out: Path, kind: str) -> Path:
    """Every frame of an Ethernet capture in a tunnel over Ethernet/IPv4 192.0.2.1<->.2:
    VXLAN (VNI 7), GENEVE (VNI 7), gretap (GRE key 7, bridged Ethernet) or GRE carrying the
    IPv4 packet itself."""
    import dpkt

    with open(source, "rb") as f, open(out, "wb") as g:
        writer = dpkt.pcap.Writer(g, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in dpkt.pcap.Reader(f):
            if kind == "vxlan":
                body = struct.pack("!HHHH", 50000, 4789, 16 + len(frame), 0)
                body += struct.pack("!II", 0x08000000, 7 << 8) + frame
            elif kind == "geneve":
                body = struct.pack("!HHHH", 50000, 6081, 16 + len(frame), 0)
                body += struct.pack("!BBHI", 0, 0, 0x6558, 7 << 8) + frame
            elif kind == "gretap":
                body = struct.pack("!HHI", 0x2000, 0x6558, 7) + frame
            else:
                body = struct.pack("!HH", 0, 0x0800) + frame[14:]
            outer = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, 64,
                47 if kind.startswith("gre") else 17, 0,
                bytes((192, 0, 2, 1)), bytes((192, 0, 2, 2)),
            )  # fmt: skip
            writer.writepkt(bytes(12) + b"\x08\x00" + outer + body, ts)
    return out


CONTEXTS = {
    "vxlan": "vxlan 192.0.2.1<->192.0.2.2 vni 7",
    "geneve": "geneve 192.0.2.1<->192.0.2.2 vni 7",
    "gretap": "gre 192.0.2.1<->192.0.2.2 key 7",
    "gre": "gre 192.0.2.1<->192.0.2.2",
}


@pytest.fixture(scope="module")
def busy_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "make_capture", SAMPLES.parent / "bench" / "make_capture.py"
    )
    assert spec is not None and spec.loader is not None
    make_capture = importlib.util.module_from_spec(spec)
    sys.modules["make_capture"] = make_capture
    spec.loader.exec_module(make_capture)
    plain = tmp_path_factory.mktemp("busy") / "plain.pcap"
    make_capture.generate(12_000, plain, seed=3)
    return plain


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_fixed_layout_tunnels_take_the_array_fast_path_and_report_what_the_reference_does(
    kind: str, busy_plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy generated capture, all in one tunnel: the healthy connections are decided in bulk
    (the layout is fixed), the report is the reference path's, and the findings are those of
    the same capture without the tunnel."""
    from tcpdiag import fastpath

    wrapped = _wrapped(busy_plain, tmp_path / f"{kind}.pcap", kind)
    taken: list[int] = []

    class Counting(fastpath.FastPathTracker):
        def track(self, batches):  # type: ignore[no-untyped-def]
            yield from super().track(batches)
            taken.append(self.fast_connections)

    reference = analyze_capture(wrapped, ENGINE, AnalysisOptions(fast_path=False))
    monkeypatch.setattr("tcpdiag.analyze.FastPathTracker", Counting)
    fast = analyze_capture(wrapped, ENGINE, NATIVE)
    assert fast.to_dict() == reference.to_dict()
    assert taken[0] > 0.5 * fast.flows
    assert fast.decode["tunnels"] == {CONTEXTS[kind]: fast.packets}
    assert fast.decode["encapsulations"] == {CONTEXTS[kind].split()[0]: fast.packets}
    without = analyze_capture(busy_plain, ENGINE, NATIVE)
    key = [(f.category, f.rule, f.client, f.server, tuple(f.frames)) for f in fast.findings]
    assert key == [(f.category, f.rule, f.client, f.server, tuple(f.frames))
                   for f in without.findings]  # fmt: skip
    assert len(key) > 10
