"""Zeek-compatible conn_state and history, Community ID, and the shared connection filters.

Expected values follow Zeek's own definitions: conn_state() in
scripts/base/protocols/conn/main.zeek and the TCP session adapter's endpoint states and history
letters (see tcpdiag/zeek.py for the references).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import communityid
import pytest
from flowbuilder import LINUX_SYN, Capture, Conversation, write_pcap
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tcpdiag.cli import app
from tcpdiag.communityid import community_id, community_id_v4
from tcpdiag.filters import ConnectionFilter, FilterError
from tcpdiag.packets import ACK, FIN, PSH, RST, SYN, URG, SegmentFields, TcpSegment
from tcpdiag.tracker import FlowTable
from tcpdiag.zeek import ZeekConnection

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def zeek_view(cap: Capture, zeek_split: bool = False) -> list[tuple[str, str]]:
    """conn_state and history per connection, from the tracker and, identically, from
    `tcpdiag flows` on the same segments written as a pcap (reader and decoder included)."""
    conns = FlowTable(zeek_split=zeek_split).track(cap.packets)
    in_memory = [(c.conn_state, c.history) for c in conns]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crafted.pcap"
        write_pcap(cap, path)
        args = ["flows", "-f", "json", str(path)] + (["--zeek-split"] if zeek_split else [])
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["captures"][0]["connections"]
    assert [(r["conn_state"], r["history"]) for r in rows] == in_memory
    return in_memory


def test_normal_close_is_sf() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    conv.data("c", 10)
    conv.data("s", 20)
    conv.close("c")
    assert zeek_view(cap) == [("SF", "ShADadFf")]


def test_syn_then_rst_from_originator_is_rstos0() -> None:
    cap = Capture()
    conv = Conversation(cap, server=("10.0.0.2", 5555))
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("c", RST, seq=conv.c.seq)
    assert zeek_view(cap) == [("RSTOS0", "SR")]


def test_synack_then_rst_without_syn_is_rstrh_flipped() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.send("s", SYN | ACK, options=LINUX_SYN, ack=1001)
    conv.send("s", RST | ACK, ack=1001, advance=False)
    # The SYN-ACK came from a likely server port: Zeek flips the roles ('^').
    assert zeek_view(cap) == [("RSTRH", "^hr")]


def test_one_sided_capture_of_the_originator_is_sh() -> None:
    cap = Capture()
    conv = Conversation(cap, server=("10.0.0.2", 5555))
    conv.send("c", SYN, options=LINUX_SYN)
    conv.send("c", ACK, ack=7001)
    conv.send("c", PSH | ACK, 30, ack=7001)
    conv.send("c", FIN | ACK, ack=7001)
    assert zeek_view(cap) == [("SH", "SADF")]


def test_one_sided_capture_from_a_server_port_is_flipped() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 50000), server=("10.0.0.2", 443))
    conv.send("s", PSH | ACK, 100)
    conv.send("s", PSH | ACK, 100)
    assert zeek_view(cap) == [("OTH", "^d")]


def test_lone_rst_between_unknown_ports_is_oth() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 50000))
    conv.send("c", RST | ACK)
    assert zeek_view(cap) == [("OTH", "R")]


def test_mid_stream_start_is_oth_and_partial() -> None:
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 50000), server=("10.0.0.2", 7000))
    conv.send("c", PSH | ACK, 10)
    conv.send("s", PSH | ACK, 10)
    conv.send("c", ACK)
    assert zeek_view(cap) == [("OTH", "DdA")]


def test_retried_refused_syn_is_one_rej_or_one_per_syn_with_zeek_split() -> None:
    cap = Capture()
    conv = Conversation(cap, server=("10.0.0.2", 5555))
    for _ in range(3):
        conv.send("c", SYN, options=LINUX_SYN, advance=False)
        conv.rst("s", seq=0, ack=conv.c.seq + 1)
    assert zeek_view(cap) == [("REJ", "Sr")]
    assert zeek_view(cap, zeek_split=True) == [("REJ", "Sr")] * 3


def test_retransmissions_are_logged_logarithmically() -> None:
    cap = Capture()
    conv = Conversation(cap)
    conv.handshake()
    seq = conv.c.seq
    conv.send("c", PSH | ACK, 100)
    for _ in range(12):
        conv.send("c", PSH | ACK, 100, seq=seq)
    assert zeek_view(cap) == [("S1", "ShADTT")]  # at the 1st and the 10th retransmission


# Values published with the Community ID spec (corelight/community-id-spec, baseline/).
@pytest.mark.parametrize(
    ("src", "sport", "dst", "dport", "expected"),
    [
        ("1.2.3.4", 1122, "5.6.7.8", 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
        ("128.232.110.120", 34855, "66.35.250.204", 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        (
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            63943,
            "2607:f8b0:400c:c03::1a",
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
        ),
    ],
)
def test_community_id_matches_the_spec_in_both_directions(
    src: str, sport: int, dst: str, dport: int, expected: str
) -> None:
    assert community_id(src, sport, dst, dport) == expected
    assert community_id(dst, dport, src, sport) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
        st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
    ),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.booleans(),
)
def test_community_id_agrees_with_the_communityid_package(
    addrs: tuple[Any, Any], sport: int, dport: int, same_address: bool
) -> None:
    src, dst = str(addrs[0]), str(addrs[1] if not same_address else addrs[0])
    reference = communityid.CommunityID(seed=0).calc(
        communityid.FlowTuple.make_tcp(src, dst, sport, dport)
    )
    assert community_id(src, sport, dst, dport) == reference


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 65535), st.integers(0, 65535))
def test_community_id_of_numbered_ipv4_addresses_is_the_same_hash(
    src: Any, dst: Any, sport: int, dport: int
) -> None:
    for a, b in ((src, dst), (src, src)):  # (equal addresses: ordered by port)
        assert community_id_v4(int(a), sport, int(b), dport) == community_id(
            str(a), sport, str(b), dport
        )
    assert (
        community_id_v4(0x01020304, 1122, 0x05060708, 3344)
        == (
            "1:wCb3OG7yAFWelaUydu0D+125CLM="  # the spec's first vector, given the other way round
        )
        == community_id_v4(0x05060708, 3344, 0x01020304, 1122)
    )


def test_findings_and_flows_carry_the_same_community_id() -> None:
    runner = CliRunner()
    path = str(SAMPLES / "mixed.pcap")
    flows = json.loads(runner.invoke(app, ["flows", "-f", "json", path]).stdout)
    found = json.loads(runner.invoke(app, ["analyze", "-f", "json", path]).stdout)
    by_id = {c["community_id"]: c for c in flows["captures"][0]["connections"]}
    findings = found["captures"][0]["findings"]
    assert len(findings) == 3
    for finding in findings:
        flow = by_id[finding["community_id"]]
        assert (flow["client"], flow["server"]) == (finding["client"], finding["server"])
        assert finding["id"] in flow["findings"]


def test_sample_flows_have_zeek_states() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["flows", "-f", "json", str(SAMPLES / "mixed.pcap")])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["captures"][0]["connections"]
    assert [(r["conn_state"], r["history"]) for r in rows] == [
        ("SF", "ShADadFf"),
        ("REJ", "Sr"),
        ("RSTR", "ShADadr"),
        ("RSTO", "ShAdFaR"),
        ("SF", "ShADadFf"),
    ]
    assert [r["findings"] for r in rows] == [[], ["F1"], ["F2"], ["F3"], []]


def test_state_filter_and_csv() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["flows", "-f", "csv", "--state", "rej", str(SAMPLES / "mixed.pcap")]
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("capture,first,duration,client,server")
    assert len(lines) == 2 and ",REJ,Sr," in lines[1]


def test_host_port_and_net_filters_are_shared_by_analyze() -> None:
    runner = CliRunner()
    path = str(SAMPLES / "mixed.pcap")
    by_port = json.loads(
        runner.invoke(app, ["analyze", "-f", "json", "--port", "27413", path]).stdout
    )
    assert [f["category"] for f in by_port["captures"][0]["findings"]] == ["broken_pipe"]
    by_net = runner.invoke(app, ["analyze", "-f", "json", "--net", "10.0.0.0/8", path])
    assert by_net.exit_code == 0 and json.loads(by_net.stdout)["captures"][0]["findings"] == []
    by_host = runner.invoke(app, ["flows", "-f", "json", "--host", "127.0.0.1", path])
    assert len(json.loads(by_host.stdout)["captures"][0]["connections"]) == 5


def test_connection_filter_matches_either_end() -> None:
    wanted = ConnectionFilter.build(hosts=["2001:db8::1"], nets=["2001:db8::/32"], ports=[443])
    assert wanted.matches(("2001:db8::1", "2001:db8::2"), (50000, 443))
    assert not wanted.matches(("2001:db8::1", "2001:db8::2"), (50000, 80))
    assert not wanted.matches(("2001:db9::1", "2001:db9::2"), (50000, 443))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hosts": ["example.com"]}, "--host 'example.com' is not an IP address"),
        ({"nets": ["10.0.0.0/33"]}, "--net '10.0.0.0/33' is not a network in CIDR notation"),
        ({"ports": [70000]}, "--port 70000 is not a TCP port (0-65535)"),
        ({"states": ["XYZ"]}, "--state XYZ: not a Zeek conn_state"),
    ],
)
def test_bad_filter_values_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(FilterError) as info:
        ConnectionFilter.build(**kwargs)
    assert str(info.value).startswith(message)


def test_flows_count_bytes_sent_and_acknowledged_each_way() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["flows", "-f", "json", str(SAMPLES / "retransmission_timeout.pcap")]
    )
    (flow,) = json.loads(result.stdout)["captures"][0]["connections"]
    # The client's last 27 bytes were retransmitted and never acknowledged.
    assert (flow["client_bytes"], flow["client_bytes_acked"]) == (32, 5)
    assert (flow["server_bytes"], flow["server_bytes_acked"]) == (5, 5)
    assert (flow["client_state"], flow["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert flow["duration"] > 3.0


class _StepByStep(ZeekConnection):
    """Zeek's view with every segment taken step by step (ZeekConnection._update_steps)."""

    __slots__ = ()

    def update(self, seg: SegmentFields, is_orig: bool) -> None:
        ep, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        self._update_steps(seg, ep, peer, is_orig)


_ZEEK_SEGMENTS = st.lists(
    st.tuples(
        st.booleans(),  # from the first packet's sender
        st.sampled_from([SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK, 0, FIN, URG]),
        st.integers(0, 3000),  # sequence number offset
        st.sampled_from([0, 0, 1, 100, 1448]),  # payload
        st.sampled_from([0, 512]),  # window
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(segments=_ZEEK_SEGMENTS, port=st.sampled_from([80, 22, 40001]))
def test_zeeks_view_takes_plain_segments_the_short_way_as_step_by_step(
    segments: list[tuple[bool, int, int, int, int]], port: int
) -> None:
    """ZeekConnection.update's short way for segments without SYN, FIN or RST changes the
    history, windows, retransmission counts and states exactly as the four steps do."""
    packets = [
        TcpSegment(
            frame=k + 1, time=1.0 + k, src="10.0.0.1" if forward else "10.0.0.2",
            dst="10.0.0.2" if forward else "10.0.0.1", sport=40000 if forward else port,
            dport=port if forward else 40000, seq=1000 + offset, ack=5000, flags=flags,
            window=window, payload_len=payload, ttl=64, ip_version=4,
            syn_options=LINUX_SYN if flags & SYN else None,
        )
        for k, (forward, flags, offset, payload, window) in enumerate(segments)
    ]  # fmt: skip
    short, steps = ZeekConnection(packets[0]), _StepByStep(packets[0])
    for seg in packets:
        short.update(seg, short.orig_is(seg.src, seg.sport))
        steps.update(seg, steps.orig_is(seg.src, seg.sport))
        assert short.history_text == steps.history_text
        for a, b in ((short.orig, steps.orig), (short.resp, steps.resp)):
            assert [getattr(a, n) for n in a.__slots__] == [getattr(b, n) for n in b.__slots__]
    assert short.conn_state(1, 1) == steps.conn_state(1, 1)


@pytest.mark.parametrize(
    ("server_port", "history"),
    [
        (80, "^hSADadFf"),  # flipped at once: the SYN-ACK came from a likely server port
        (50000, "Hs^ADadFf"),  # flipped by the SYN (the SYN-ACK's sender was the originator)
    ],
)
@pytest.mark.parametrize("zeek_split", [False, True])
def test_a_syn_captured_after_its_syn_ack_is_one_connection(
    server_port: int, history: str, zeek_split: bool
) -> None:
    """Two capture queues merged (or a SPAN port) can stamp the SYN-ACK before the SYN it
    answers. Zeek does not take that SYN for a reuse of the 4-tuple (TCPSessionAdapter::IsReuse:
    "the SYN & the SYN-ACK being flipped"): one connection, not a lone SYN-ACK and another."""
    cap = Capture()
    conv = Conversation(cap, client=("10.0.0.1", 40000), server=("10.0.0.2", server_port))
    conv.send("s", SYN | ACK, options=LINUX_SYN, ack=conv.c.seq + 1, advance=False)
    conv.send("c", SYN, options=LINUX_SYN)
    conv.s.seq += 1
    conv.send("c", ACK)
    conv.data("c", 10)
    conv.data("s", 20)
    conv.close("c")
    assert zeek_view(cap, zeek_split=zeek_split) == [("SF", history)]
