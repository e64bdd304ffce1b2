"""Tests for tcpdiag.decode against the committed fixtures in tests/data/.

Field values were cross-checked once with tshark 4.0.17 (ip/ipv6 src+dst, tcp ports, raw
seq/ack, flags, window, tcp.len, ttl/hlim, ip.id, MSS, window scale, icmp(v6).mtu) and are
hard-coded here. Where tshark differs it is said below.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.decode import Decoder, DecodeStats, reset_text
from tcpdiag.decode import ip6_text as _ip6_text
from tcpdiag.packets import ACK, PSH, RST, SYN, IcmpError, QuotedTcp, SynOptions, TcpSegment
from tcpdiag.reader import CaptureReader, RawFrame

DATA = Path(__file__).parent / "data"
T0 = 1_700_000_000
C, S = "10.0.0.1", "10.0.0.2"
C6, S6, R6 = "2001:db8::1", "2001:db8::2", "2001:db8::fe"

FULL_SYN_OPTIONS = SynOptions(mss=1460, window_scale=7, sack_permitted=True, timestamps=True)


def decode_file(name: str) -> tuple[list[TcpSegment | IcmpError | None], DecodeStats]:
    decoder = Decoder()
    with CaptureReader(DATA / name) as r:
        records = [decoder.decode(frame) for frame in r]
    return records, decoder.stats


def check_stats_add_up(stats: DecodeStats) -> None:
    parts = stats.tcp + stats.icmp_errors + stats.other + stats.undecodable
    assert stats.frames == parts + sum(stats.unknown_linktypes.values())


def seg(frame: int, time: float, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
        flags: int, window: int, payload_len: int, ttl: int, version: int, ip_id: int | None,
        syn: SynOptions | None = None) -> TcpSegment:  # fmt: skip
    return TcpSegment(
        frame, time, src, dst, sport, dport, seq, ack, flags, window, payload_len, ttl, version,
        ip_id, syn,
    )  # fmt: skip


def test_ethernet_fixture_frame_by_frame() -> None:
    records, stats = decode_file("decode_eth.pcap")
    # Quoted payload lengths from the quoted IP headers (tshark: inner ip.len 1440, ipv6.plen 1320);
    # flags where the quote reaches them (frame 9 quotes only the 8 bytes RFC 792 promises).
    quoted6 = QuotedTcp(C6, S6, 50000, 443, 2_000_000_000, payload_len=1300, flags=ACK)
    expected = [
        seg(1, T0 + 0.001, C, S, 40000, 80, 1000, 0, SYN, 64240, 0, 64, 4, 0x1234,
            FULL_SYN_OPTIONS),
        # one 802.1Q tag
        seg(2, T0 + 0.002, S, C, 80, 40000, 5000, 1001, SYN | ACK, 64240, 0, 63, 4, 0,
            SynOptions(mss=1400, window_scale=0)),
        # QinQ: 802.1ad outer tag + 802.1Q inner tag
        seg(3, T0 + 0.003, C, S, 40000, 80, 1001, 5001, ACK, 502, 100, 64, 4, 0x1235),
        # IPv4 header with a Router Alert option (IHL 6)
        seg(4, T0 + 0.004, C, S, 40000, 80, 1101, 5001, PSH | ACK, 64240, 10, 64, 4, 0x1236),
        # IPv6 with hop-by-hop and destination-options extension headers
        seg(5, T0 + 0.005, C6, S6, 50000, 443, 77777, 0, SYN, 64240, 0, 255, 6, None,
            SynOptions(mss=1440)),
        None,  # 6: UDP
        None,  # 7: ARP
        None,  # 8: ICMP echo request
        IcmpError(9, T0 + 0.009, "192.0.2.1", C, 4, 3, 4, 254,
                  QuotedTcp(C, S, 40000, 80, 1001, payload_len=1400), mtu=1400),
        IcmpError(10, T0 + 0.010, R6, C6, 6, 1, 1, 60, quoted6),
        IcmpError(11, T0 + 0.011, R6, C6, 6, 2, 0, 64, quoted6, mtu=1280),
        IcmpError(12, T0 + 0.012, "192.0.2.1", C, 4, 11, 0, 254, None),  # quotes UDP
        None,  # 13: non-first IPv4 fragment
        # IPv4 total length 0 (TSO): payload from the captured bytes (tshark agrees: 3000)
        seg(14, T0 + 0.014, C, S, 40000, 80, 1201, 5001, ACK, 64240, 3000, 64, 4, 0x1234),
        None,  # 15: 10-byte runt
        None,  # 16: TCP header cut after 10 bytes
        # IPv4-mapped and IPv4-compatible addresses (tshark writes both dotted)
        seg(17, T0 + 0.017, "::ffff:10.0.0.1", "::a00:2", 1, 2, 9, 0, SYN, 64240, 0, 64, 6,
            None, SynOptions()),
        None,  # 18: unknown ethertype 0x0801
        # frag-needed with MTU 0 (pre-RFC 1191 router) quoting only 4 TCP bytes
        IcmpError(19, T0 + 0.019, "192.0.2.1", C, 4, 3, 4, 64, None, mtu=None),
    ]  # fmt: skip
    assert records == expected
    assert stats == DecodeStats(
        frames=19, tcp=7, icmp_errors=5, other=5, undecodable=2, first_undecodable=15
    )
    check_stats_add_up(stats)


def test_headers_only_capture_uses_ip_lengths() -> None:
    records, stats = decode_file("decode_snaplen.pcap")
    assert records == [
        # SYN options cut by the snaplen: MSS and SACK-permitted captured, timestamps not
        seg(1, T0 + 0.0, C, S, 40000, 80, 1000, 0, SYN, 64240, 0, 64, 4, 0x1234,
            SynOptions(mss=1460, sack_permitted=True)),
        seg(2, T0 + 0.000001, C, S, 40000, 80, 1001, 5001, ACK, 64240, 1448, 64, 4, 0x1234),
        seg(3, T0 + 0.000002, C6, S6, 50000, 443, 5, 6, ACK, 64240, 1000, 64, 6, None),
    ]  # fmt: skip
    assert stats == DecodeStats(frames=3, tcp=3)


# The same two packets (an IPv4 data segment and an IPv6 SYN) under different link layers.
PPPOE_SESSION = "pppoe session 0x002a"  # (decode_ppp_ether.pcap's: no Ethernet around it)
L2TP_TUNNEL = "l2tp 192.0.2.10<->192.0.2.20"  # (decode_l2tp.pcap's)
GTP_U_TUNNEL = "gtp-u 192.0.2.30<->192.0.2.40"  # (decode_gtpu.pcap's)


def data4(frame: int, time: float) -> TcpSegment:
    return seg(frame, time, C, S, 40000, 80, 1001, 5001, ACK, 502, 100, 64, 4, 0x1234)


def syn6(frame: int, time: float) -> TcpSegment:
    return seg(frame, time, C6, S6, 50000, 443, 77777, 0, SYN, 64240, 0, 64, 6, None,
               SynOptions(mss=1440))  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected", "stats"),
    [
        (
            "decode_sll.pcap",  # 113; frame 4 keeps an 802.1Q tag after the SLL header
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6), None, data4(4, T0 + 4e-6)],
            DecodeStats(frames=4, tcp=3, other=1),
        ),
        (
            "decode_sll2.pcap",  # 276
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6)],
            DecodeStats(frames=2, tcp=2),
        ),
        (
            "decode_raw.pcap",  # 101; frame 3 claims IP version 5
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6), None],
            DecodeStats(frames=3, tcp=2, undecodable=1, first_undecodable=3),
        ),
        (
            "decode_null.pcap",  # 0: AF in either byte order; AF 7 is not IP
            [
                data4(1, T0 + 1e-6),
                syn6(2, T0 + 2e-6),
                data4(3, T0 + 3e-6),
                syn6(4, T0 + 4e-6),
                None,
            ],
            DecodeStats(frames=5, tcp=4, other=1),
        ),
        (
            "decode_loop.pcap",  # 108: AF in network order
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6)],
            DecodeStats(frames=2, tcp=2),
        ),
        (
            "decode_ppp.pcap",  # 9: framed, unframed, compressed, LCP, Cisco HDLC, MPLS
            [
                data4(1, T0 + 1e-6),
                syn6(2, T0 + 2e-6),
                data4(3, T0 + 3e-6),
                None,
                data4(5, T0 + 5e-6),
                data4(6, T0 + 6e-6),
            ],
            DecodeStats(frames=6, tcp=5, other=1, encapsulations={"mpls": 1}),
        ),
        (
            "decode_ppp_hdlc.pcap",  # 50: PPP in HDLC-like framing, Cisco PPP in HDLC framing
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6)],
            DecodeStats(frames=2, tcp=2),
        ),
        (
            "decode_chdlc.pcap",  # 104: Cisco HDLC; its SLARP keepalive is not IP
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6), None],
            DecodeStats(frames=3, tcp=2, other=1),
        ),
        (
            "decode_ppp_ether.pcap",  # 51: a PPPoE session, named as on Ethernet; MPLS in
            [  # it, a compressed protocol field
                replace(data4(1, T0 + 1e-6), tunnel=PPPOE_SESSION),
                replace(syn6(2, T0 + 2e-6), tunnel=PPPOE_SESSION),
                replace(data4(3, T0 + 3e-6), tunnel=PPPOE_SESSION),
                replace(data4(4, T0 + 4e-6), tunnel=PPPOE_SESSION),
            ],
            DecodeStats(
                frames=4,
                tcp=4,
                encapsulations={"pppoe": 4, "mpls": 1},
                tunnels={PPPOE_SESSION: 4},
            ),
        ),
        (
            "decode_ipoib.pcap",  # 242: IP over InfiniBand
            [data4(1, T0 + 1e-6), syn6(2, T0 + 2e-6)],
            DecodeStats(frames=2, tcp=2),
        ),
        (
            "decode_l2tp.pcap",  # L2TPv2 data messages in every header form; a control message
            [
                replace(data4(1, T0 + 1e-6), tunnel=L2TP_TUNNEL),
                replace(syn6(2, T0 + 2e-6), tunnel=L2TP_TUNNEL),
                replace(data4(3, T0 + 3e-6), tunnel=L2TP_TUNNEL),
                None,
            ],
            DecodeStats(
                frames=4, tcp=3, other=1, encapsulations={"l2tp": 3}, tunnels={L2TP_TUNNEL: 3}
            ),
        ),
        (
            "decode_gtpu.pcap",  # G-PDUs, plain and with an extension header; an echo request
            [
                replace(data4(1, T0 + 1e-6), tunnel=GTP_U_TUNNEL),
                replace(syn6(2, T0 + 2e-6), tunnel=GTP_U_TUNNEL),
                None,
            ],
            DecodeStats(
                frames=3, tcp=2, other=1, encapsulations={"gtp-u": 2}, tunnels={GTP_U_TUNNEL: 2}
            ),
        ),
        (
            "decode_srv6.pcap",  # IPv6 carrying IP: SRv6 (no context), hop-by-hop only (ipip)
            [
                syn6(1, T0 + 1e-6),
                replace(syn6(2, T0 + 2e-6), tunnel="ipip 2001:db8:ff::1<->2001:db8:ff::2"),
                data4(3, T0 + 3e-6),
            ],
            DecodeStats(
                frames=3,
                tcp=3,
                encapsulations={"srv6": 2, "ipip": 1},
                tunnels={"ipip 2001:db8:ff::1<->2001:db8:ff::2": 1},
            ),
        ),
        (
            "decode_rawmix.pcapng",  # interfaces 228, 229, 12, 14 and 147 (not decoded)
            [
                data4(1, T0 + 1e-6),
                syn6(2, T0 + 2e-6),
                data4(3, T0 + 3e-6),
                syn6(4, T0 + 4e-6),
                None,
            ],
            DecodeStats(frames=5, tcp=4, unknown_linktypes={147: 1}),
        ),
    ],
)
def test_link_types(name: str, expected: list[TcpSegment | None], stats: DecodeStats) -> None:
    records, got = decode_file(name)
    assert records == expected
    assert got == stats
    check_stats_add_up(got)


# -- crafted single frames ----------------------------------------------------------------------


def raw4_tcp(tcp: bytes, total: int | None = None, frag: int = 0) -> RawFrame:
    """A raw-IP (101) frame: IPv4 10.0.0.1 -> 10.0.0.2 around `tcp`."""
    length = 20 + len(tcp) if total is None else total
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 7, frag, 64, 6, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))  # fmt: skip
    data = ip + tcp
    return RawFrame(1, 1.5, 101, data, len(data))


def syn_with_options(options: bytes, doff_words: int | None = None) -> bytes:
    words = doff_words if doff_words is not None else 5 + (len(options) + 3) // 4
    options += b"\0" * (-len(options) % 4)
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 0, words << 4, SYN, 100, 0, 0) + options


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (b"", SynOptions()),
        (b"\x02\x04\x05\xb4", SynOptions(mss=1460)),
        (b"\x01\x01\x03\x03\x0e", SynOptions(window_scale=14)),
        (b"\x03\x03\x0f", SynOptions(window_scale=15)),  # out of range: kept as sent
        (b"\x03\x04\x07\x00\x04\x02", SynOptions(sack_permitted=True)),  # bad-size wscale
        (b"\x02\x03\x05\x04\x02", SynOptions(sack_permitted=True)),  # MSS of wrong size skipped
        (b"\x02\x04\x05\xb4\x00\x03\x03\x07", SynOptions(mss=1460)),  # end-of-list stops
        (b"\x02\x00\x04\x02", SynOptions()),  # length 0: garbage ends the scan
        (b"\x04\x02\x08\x0a\x00\x00", SynOptions(sack_permitted=True)),  # timestamps overrun
        (b"\x13\x12" + bytes(16) + b"\x04\x02", SynOptions(sack_permitted=True)),  # MD5 skipped
    ],
)
def test_syn_options(options: bytes, expected: SynOptions) -> None:
    record = Decoder().decode(raw4_tcp(syn_with_options(options)))
    assert isinstance(record, TcpSegment)
    assert record.syn_options == expected


def test_options_only_on_syn_and_data_offset_checks() -> None:
    decoder = Decoder()
    ack = bytearray(syn_with_options(b"\x02\x04\x05\xb4"))
    ack[13] = ACK
    record = decoder.decode(raw4_tcp(bytes(ack) + b"xyz"))
    assert isinstance(record, TcpSegment)
    assert (record.syn_options, record.payload_len, record.flags) == (None, 3, ACK)
    # data offset below 5 words, or beyond the IP-stated length: undecodable
    assert decoder.decode(raw4_tcp(syn_with_options(b"", doff_words=4))) is None
    assert decoder.decode(raw4_tcp(syn_with_options(b"", doff_words=6))) is None
    # IP total length shorter than its own header
    assert decoder.decode(raw4_tcp(syn_with_options(b""), total=12)) is None
    assert decoder.stats == DecodeStats(frames=4, tcp=1, undecodable=3, first_undecodable=1)


@pytest.mark.parametrize(
    ("frag", "is_tcp"),
    [
        (0x2000, True),  # first fragment (MF set, offset 0): its TCP header is here
        (0x4000, True),  # DF only
        (0x0001, False),  # offset 8 bytes
        (0x1000, False),  # offset 32768 bytes: the top bit of the 13-bit offset
        (0x3FFF, False),
    ],
)
def test_ipv4_fragments(frag: int, is_tcp: bool) -> None:
    decoder = Decoder()
    record = decoder.decode(raw4_tcp(syn_with_options(b""), frag=frag))
    assert isinstance(record, TcpSegment) is is_tcp
    assert decoder.stats.other == (0 if is_tcp else 1)


def raw6(chain: list[tuple[int, bytes]], upper: int, l4: bytes) -> RawFrame:
    """A raw IPv6 (229) frame 2001:db8::1 -> ::2; chain is (type, bytes after next-header)."""
    types = [t for t, _ in chain] + [upper]
    exts = b"".join(bytes([types[i + 1]]) + body for i, (_, body) in enumerate(chain))
    src, dst = ipaddress.IPv6Address(C6).packed, ipaddress.IPv6Address(S6).packed
    head = struct.pack("!IHBB16s16s", 0x60000000, len(exts) + len(l4), types[0], 9, src, dst)
    data = head + exts + l4
    return RawFrame(3, 2.0, 229, data, len(data))


AH = (51, b"\x04" + bytes(22))  # payload length 4: (4 + 2) * 4 = 24 bytes
HOP_BY_HOP = (0, b"\x00\x01\x04" + bytes(4))
ROUTING = (43, b"\x00\x00\x00" + bytes(4))
FIRST_FRAGMENT = (44, b"\x00\x00\x01" + bytes(4))  # offset 0, more fragments
LATER_FRAGMENT = (44, b"\x00\x05\x28" + bytes(4))  # offset 165 * 8


@pytest.mark.parametrize(
    ("chain", "upper", "outcome"),
    [
        ([HOP_BY_HOP, AH], 6, "tcp"),
        ([ROUTING, FIRST_FRAGMENT], 6, "tcp"),
        ([LATER_FRAGMENT], 6, "other"),
        ([HOP_BY_HOP], 59, "other"),  # no next header
        ([AH], 17, "other"),  # UDP
    ],
)
def test_ipv6_extension_chains(chain: list[tuple[int, bytes]], upper: int, outcome: str) -> None:
    tcp = syn_with_options(b"\x02\x04\x05\x00") + b"data"
    decoder = Decoder()
    record = decoder.decode(raw6(chain, upper, tcp))
    if outcome == "tcp":
        assert record == seg(3, 2.0, C6, S6, 1, 2, 3, 0, SYN, 100, 4, 9, 6, None,
                             SynOptions(mss=1280))  # fmt: skip
    else:
        assert record is None
        assert decoder.stats.other == 1


def test_ipv6_chain_cut_short_is_undecodable() -> None:
    frame = raw6([HOP_BY_HOP, AH], 6, syn_with_options(b""))
    decoder = Decoder()
    assert decoder.decode(RawFrame(1, 0.0, 229, frame.data[:60], 80)) is None  # inside the AH
    assert decoder.stats == DecodeStats(
        frames=1, undecodable=1, first_undecodable=1, truncated=1  # cut by the snaplen
    )


def test_rst_and_all_flag_bits_pass_through() -> None:
    tcp = bytearray(syn_with_options(b""))
    tcp[13] = 0xFF
    record = Decoder().decode(raw4_tcp(bytes(tcp)))
    assert isinstance(record, TcpSegment)
    assert record.flags == 0xFF
    assert record.flags & RST


# What decode_rst_text.pcap's RSTs say (tshark's tcp.reset_cause, cleaned alike: test_engines).
RST_TEXTS = [
    "No pool member available",
    "[F5RST: Port denied]",  # (its CR LF made spaces, then stripped)
    "Idle timeout",  # (up to the NUL bytes that pad it, as Wireshark reads it)
    "[x](https://evil.example/) <b>x</b> =cmd|' /C calc'!A0",  # (escaped by each report)
    "",  # 40 random bytes: no text
    "",  # 360 bytes: data, not a reason
]


def test_a_rsts_text_is_its_reason() -> None:
    records, stats = decode_file("decode_rst_text.pcap")
    rsts = [r for r in records if isinstance(r, TcpSegment) and r.flags & RST]
    assert [r.rst_text for r in rsts] == RST_TEXTS
    assert [r.payload_len for r in rsts] == [24, 22, 16, 54, 40, 360]
    others = [r for r in records if isinstance(r, TcpSegment) and not r.flags & RST]
    assert others and all(r.rst_text == "" for r in others)  # (data segments hold none)
    assert stats.tcp == len(records)


def _wireshark_control(byte: int) -> str:
    """A control byte as Wireshark writes it: CR, LF, TAB as \\r \\n \\t, others in octal."""
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(byte, f"\\{byte:03o}")


@pytest.mark.parametrize(
    ("payload", "wireshark", "expected"),
    [
        (b"Idle timeout\r\n", "Idle timeout\\r\\n", "Idle timeout"),
        (b"No\tpool \x01member\x7f", "No\\tpool \\001member\\177", "No pool member"),
        (b"caf\xc3\xa9 closed", "caf\ufffd\ufffd closed", "caf closed"),
        (b"ab", "ab", ""),  # fewer than three letters
        (b"%$#@!&*()_+=-" * 2, "%$#@!&*()_+=-" * 2, ""),  # no words
        (bytes(range(1, 40)), "".join(map(_wireshark_control, range(1, 32))) + " !\"#$%&'", ""),
        (b"x" * 257, "x" * 257, ""),  # longer than a reason
        (b"y" * 120, "y" * 120, "y" * 97 + "..."),
    ],
)
def test_rst_text_is_the_same_from_bytes_and_from_wiresharks_rendering(
    payload: bytes, wireshark: str, expected: str
) -> None:
    assert reset_text(payload.split(b"\0")[0].decode("latin-1"), len(payload)) == expected
    assert reset_text(wireshark, len(payload)) == expected


# -- robustness and address text ----------------------------------------------------------------

LINKTYPES = [0, 1, 9, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 242, 276, 147]


@settings(max_examples=400, deadline=None)
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=120))
def test_decode_never_raises_on_random_bytes(linktype: int, data: bytes) -> None:
    decoder = Decoder()
    decoder.decode(RawFrame(1, 0.0, linktype, data, len(data)))
    assert decoder.stats.frames == 1
    check_stats_add_up(decoder.stats)


def _fixture_frames() -> list[RawFrame]:
    frames: list[RawFrame] = []
    for name in ("decode_eth.pcap", "decode_sll2.pcap", "decode_null.pcap", "decode_raw.pcap"):
        with CaptureReader(DATA / name) as r:
            frames.extend(r)
    return frames


FIXTURE_FRAMES = _fixture_frames()


@settings(max_examples=500, deadline=None)
@given(
    index=st.integers(0, len(FIXTURE_FRAMES) - 1),
    cut=st.integers(0, 200),
    flips=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4),
)
def test_decode_never_raises_on_damaged_real_frames(
    index: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    frame = FIXTURE_FRAMES[index]
    data = bytearray(frame.data[:cut])
    for where, value in flips:
        if where < len(data):
            data[where] = value
    decoder = Decoder()
    decoder.decode(RawFrame(frame.number, frame.time, frame.linktype, bytes(data), 0))
    check_stats_add_up(decoder.stats)


def expected_ip6_text(raw: bytes) -> str:
    address = ipaddress.IPv6Address(raw)
    if address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # RFC 5952 section 5, on every Python version
    return address.compressed


words = st.sampled_from([0, 0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001, 0xA00])


@settings(max_examples=2000)
@given(
    st.one_of(
        st.lists(words, min_size=8, max_size=8).map(lambda w: struct.pack("!8H", *w)),
        st.binary(min_size=4, max_size=4).map(lambda v4: bytes(10) + b"\xff\xff" + v4),
        st.binary(min_size=4, max_size=4).map(lambda v4: bytes(12) + v4),
        st.binary(min_size=16, max_size=16),
    )
)
def test_ip6_text_matches_ipaddress(raw: bytes) -> None:
    assert _ip6_text(raw) == expected_ip6_text(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::1", "::1"),
        ("::", "::"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # first longest zero run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # a single zero group stays
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("::192.0.2.1", "::c000:201"),  # deprecated IPv4-compatible: hex, as ipaddress writes
        ("::ffff:0:0", "::ffff:0.0.0.0"),
        ("fe80::ffff:1", "fe80::ffff:1"),
    ],
)
def test_ip6_text_examples(text: str, expected: str) -> None:
    assert _ip6_text(ipaddress.IPv6Address(text).packed) == expected
