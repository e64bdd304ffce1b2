"""Build the capture fixtures in tests/data/ deterministically.

Run `python tests/data/make_fixtures.py` from the repository root after changing it; the tests
read the committed outputs and never regenerate them. Everything is packed with struct so each
byte is visible here (dpkt's builders hide the IPv6 extension headers and link layers we need).
"""

from __future__ import annotations

import gzip
import ipaddress
import random
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent

# -- packet builders --------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def tcp(
    seq: int,
    ack: int,
    flags: int,
    sport: int,
    dport: int,
    *,
    window: int = 64240,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    """A TCP header + payload with a zero checksum (filled in by ip4/ip6)."""
    assert len(options) % 4 == 0
    doff = (20 + len(options)) // 4
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
        + options
        + payload
    )


def _with_l4_checksum(proto: int, l4: bytes, pseudo: bytes) -> bytes:
    offset = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
    if offset is None:
        return l4
    if proto == 1:  # ICMPv4 has no pseudo-header
        pseudo = b""
    value = checksum(pseudo + l4)
    return l4[:offset] + struct.pack("!H", value) + l4[offset + 2 :]


def ip4(
    src: str,
    dst: str,
    proto: int,
    l4: bytes,
    *,
    ttl: int = 64,
    ip_id: int = 0x1234,
    options: bytes = b"",
    frag: int = 0x4000,  # DF
    total: int | None = None,
) -> bytes:
    assert len(options) % 4 == 0
    s, d = addr(src), addr(dst)
    ihl = 5 + len(options) // 4
    if total is None:
        total = ihl * 4 + len(l4)
    pseudo = s + d + struct.pack("!xBH", proto, len(l4))
    l4 = _with_l4_checksum(proto, l4, pseudo)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ip_id, frag, ttl, proto, 0, s, d)
    hdr += options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + l4


def ip6(
    src: str,
    dst: str,
    proto: int,
    l4: bytes,
    *,
    hlim: int = 64,
    exts: list[tuple[int, bytes]] | None = None,  # (header type, header bytes after nh)
) -> bytes:
    """IPv6; each extension is given as (its type, its bytes without the next-header byte)."""
    s, d = addr(src), addr(dst)
    pseudo = s + d + struct.pack("!I3xB", len(l4), proto)
    l4 = _with_l4_checksum(proto, l4, pseudo)
    exts = exts or []
    chain = b""
    types = [t for t, _ in exts] + [proto]
    for i, (_t, body) in enumerate(exts):
        chain += bytes([types[i + 1]]) + body
    first = types[0]
    return struct.pack("!IHBB16s16s", 0x60000000, len(chain) + len(l4), first, hlim, s, d) + (
        chain + l4
    )


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram (checksum 0: none, which IPv4 allows)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(payload: bytes, ethertype: int = 0x0800, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II; tags are (TPID, VLAN id) from the outside in."""
    hdr = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb"
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, proto: int = 0x0800, pkttype: int = 0) -> bytes:
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x00\x11\x22\x33\x44\x55\0\0", proto) + payload


def sll2(payload: bytes, proto: int = 0x0800, ifindex: int = 2) -> bytes:
    return (
        struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, 0, 6, b"\x00\x11\x22\x33\x44\x55\0\0")
        + payload
    )


MSS_SACK_TS_WS7 = (
    b"\x02\x04\x05\xb4"  # MSS 1460
    + b"\x04\x02"  # SACK permitted
    + b"\x08\x0a\x00\x00\x10\x00\x00\x00\x00\x00"  # timestamps
    + b"\x01"  # NOP
    + b"\x03\x03\x07"  # window scale 7
)
TS_OPTION = b"\x01\x01\x08\x0a\x00\x00\x10\x01\x00\x00\x20\x00"

SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04

# -- file writers -----------------------------------------------------------------------------


def pcap(
    frames: list[tuple[int, int, bytes] | tuple[int, int, bytes, int]],
    *,
    linktype: int = 1,
    endian: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """frames: (seconds, fraction, data[, wire length])."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for frame in frames:
        sec, frac, data = frame[:3]
        wire = frame[3] if len(frame) > 3 else len(data)
        out += struct.pack(endian + "IIII", sec, frac, len(data), wire) + data
    return out


def block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(endian: str = "<") -> bytes:
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return block(0x0A0D0D0A, body, endian)


def idb(linktype: int, *, snaplen: int = 0, options: bytes = b"", endian: str = "<") -> bytes:
    if options:
        options += option(0, b"", endian)
    return block(1, struct.pack(endian + "HHI", linktype, 0, snaplen) + options, endian)


def epb(iface: int, ticks: int, data: bytes, wire: int | None = None, endian: str = "<") -> bytes:
    wire = len(data) if wire is None else wire
    hdr = struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return block(6, hdr + data, endian)


def spb(data: bytes, endian: str = "<") -> bytes:
    return block(3, struct.pack(endian + "I", len(data)) + data, endian)


def obsolete_pb(iface: int, ticks: int, data: bytes, endian: str = "<") -> bytes:
    hdr = struct.pack(
        endian + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(2, hdr + data, endian)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


# -- fixtures ---------------------------------------------------------------------------------

T0 = 1_700_000_000


def handshake() -> list[bytes]:
    """Three Ethernet frames: SYN, SYN-ACK, ACK between 10.0.0.1:40000 and 10.0.0.2:80."""
    return [
        eth(ip4("10.0.0.1", "10.0.0.2", 6, tcp(1000, 0, SYN, 40000, 80, options=MSS_SACK_TS_WS7))),
        eth(ip4("10.0.0.2", "10.0.0.1", 6, tcp(5000, 1001, SYN | ACK, 80, 40000, window=65160))),
        eth(ip4("10.0.0.1", "10.0.0.2", 6, tcp(1001, 5001, ACK, 40000, 80, window=502))),
    ]


def reader_fixtures() -> dict[str, bytes]:
    f = handshake()
    usec = [(T0, 123456, f[0]), (T0 + 1, 5, f[1]), (T0 + 2, 999999, f[2])]
    nsec = [(T0, 123456789, f[0]), (T0 + 1, 5, f[1]), (T0 + 2, 999999999, f[2])]
    out: dict[str, bytes] = {
        "pcap_le_usec.pcap": pcap(usec),
        "pcap_be_usec.pcap": pcap(usec, endian=">"),
        "pcap_le_nsec.pcap": pcap(nsec, nano=True),
        # The link-type field's top bits say "4-byte FCS present"; the frames carry one.
        "pcap_be_nsec_fcs.pcap": pcap(
            [(s, n, d + b"\xde\xad\xbe\xef") for s, n, d in nsec],
            endian=">",
            nano=True,
            linktype=0x24000001,
        ),
    }
    out["pcap_le_usec.pcap.gz"] = gz(out["pcap_le_usec.pcap"])
    # Concatenated gzip members (as `cat a.gz b.gz` makes), split mid-record, then zero padding.
    le = out["pcap_le_usec.pcap"]
    out["multi_member.pcap.gz"] = gz(le[:100]) + gz(le[100:]) + bytes(8)

    raw_syn6 = ip6("2001:db8::1", "2001:db8::2", 6, tcp(7, 0, SYN, 50000, 443))
    raw_ack4 = ip4("10.0.0.1", "10.0.0.2", 6, tcp(1001, 5001, ACK, 40000, 80))
    sll_frame = sll(ip4("10.0.0.2", "10.0.0.1", 6, tcp(5001, 1001, FIN | ACK, 80, 40000)))
    unknown = block(0x00000F00, b"not a block tcpdiag knows")
    # Wireshark lists custom and systemd journal blocks as frames, but not secrets blocks.
    custom = block(0xBAD, struct.pack("<I", 32473) + b"example")  # PEN 32473: documentation
    journal = block(9, b"__REALTIME_TIMESTAMP=1700000002600000\nMESSAGE=hello\n")
    secrets = block(0x0A, struct.pack("<II", 0x544C534B, 0))  # empty TLS key log
    isb = block(5, struct.pack("<III", 0, 0, 0))
    ng = (
        shb()
        + idb(1, snaplen=262144)  # no if_tsresol: microseconds
        + idb(101, options=option(9, b"\x09"))  # nanoseconds
        + epb(0, T0 * 10**6 + 250000, f[0])  # frame 1: 1700000000.25, Ethernet
        + unknown
        + epb(1, (T0 + 1) * 10**9 + 1, raw_syn6)  # frame 2: 1700000001.000000001, raw IP
        + custom  # frame 3 (not yielded)
        + spb(f[1])  # frame 4: interface 0, no timestamp: frame 2's time
        + secrets
        + obsolete_pb(1, (T0 + 2) * 10**9 + 500000000, raw_ack4)  # frame 5: 1700000002.5
        + journal  # frame 6 (not yielded)
        + isb
        # A second section in the other byte order: interface numbering starts over.
        + shb(">")
        + idb(
            113,
            options=option(9, b"\x94", ">") + option(14, struct.pack(">q", 100), ">"),
            endian=">",
        )  # 2^-20 s ticks, +100 s
        + epb(0, T0 * 2**20 + 2**19, sll_frame, endian=">")  # frame 7: 1700000100.5, SLL
    )
    out["multi.pcapng"] = ng
    out["multi.pcapng.gz"] = gz(ng)

    # -- bad input --
    good = pcap(usec)
    out["not_capture.txt"] = b"this is a text file, not a capture\n"
    out["empty.pcap"] = b""
    out["trunc_header.pcap"] = good[:10]
    # header (24) + two records (16 + 74 + 16 + 74? sizes vary) then 10 bytes of a header
    two = pcap(usec[:2])
    out["trunc_rec_header.pcap"] = two + struct.pack("<IIII", T0 + 2, 0, 60, 60)[:10]
    out["trunc_body.pcap"] = good[: len(two) + 16 + 20]
    out["absurd_caplen.pcap"] = pcap(usec[:1]) + struct.pack("<IIII", T0 + 1, 0, 0xFFFFFFFF, 60)
    out["absurd_caplen.pcap"] += b"\0" * 64

    ng_good = shb() + idb(1) + epb(0, T0 * 10**6, f[0]) + epb(0, (T0 + 1) * 10**6, f[1])
    out["ng_blocklen0.pcapng"] = ng_good + struct.pack("<II", 6, 0) + b"\0" * 32
    odd = bytearray(epb(0, (T0 + 2) * 10**6, f[2]))
    struct.pack_into("<I", odd, 4, len(odd) - 2)
    out["ng_blocklen_odd.pcapng"] = ng_good + bytes(odd)
    out["ng_past_end.pcapng"] = ng_good + epb(0, (T0 + 2) * 10**6, f[2])[:40]
    bad_trailer = bytearray(epb(0, (T0 + 2) * 10**6, f[2]))
    struct.pack_into("<I", bad_trailer, len(bad_trailer) - 4, 12)
    out["ng_trailer_mismatch.pcapng"] = ng_good + bytes(bad_trailer)
    out["ng_undeclared_if.pcapng"] = ng_good + epb(3, (T0 + 2) * 10**6, f[2])
    out["ng_trunc_shb.pcapng"] = shb()[:20]
    out["ng_bad_bom.pcapng"] = shb()[:8] + b"\x01\x02\x03\x04" + shb()[12:] + idb(1)
    # A gzip'd pcap whose compressed stream stops partway: the frames it still holds are read.
    noise = random.Random(1)  # incompressible filler, so the cut lands mid-file
    big = pcap([(T0 + i, 0, f[i % 3] + noise.randbytes(1000)) for i in range(40)])
    z = gz(big)
    out["cut.pcap.gz"] = z[: len(z) // 2]
    return out


def decode_fixtures() -> dict[str, bytes]:
    c, s = "10.0.0.1", "10.0.0.2"
    c6, s6, r6 = "2001:db8::1", "2001:db8::2", "2001:db8::fe"
    syn = tcp(1000, 0, SYN, 40000, 80, options=MSS_SACK_TS_WS7)
    synack = tcp(5000, 1001, SYN | ACK, 80, 40000, options=b"\x02\x04\x05\x78\x03\x03\x00\x00")
    data100 = tcp(1001, 5001, ACK, 40000, 80, payload=bytes(100), window=502)
    quoted_v4 = ip4(c, s, 6, tcp(1001, 5001, ACK, 40000, 80, payload=bytes(1400)))[:28]
    syn6 = tcp(77777, 0, SYN, 50000, 443, options=b"\x02\x04\x05\xa0")
    hbh = (0, b"\x00\x01\x04\x00\x00\x00\x00")  # hop-by-hop: PadN, 8 bytes total
    dstopt = (60, b"\x01\x01\x0c" + bytes(12))  # destination options: PadN, 16 bytes
    quoted_v6 = ip6(c6, s6, 6, tcp(2_000_000_000, 1, ACK, 50000, 443, payload=bytes(1300)))
    dns = udp(53000, 53, bytes(12))
    arp = bytes.fromhex("0001080006040001001122334455") + addr(c) + bytes(6) + addr(s)
    tso_payload = bytes(3000)
    frames = [
        eth(ip4(c, s, 6, syn)),  # 1
        eth(ip4(s, c, 6, synack, ttl=63, ip_id=0), tags=((0x8100, 100),)),  # 2 VLAN
        eth(ip4(c, s, 6, data100, ip_id=0x1235), tags=((0x88A8, 200), (0x8100, 100))),  # 3 QinQ
        eth(  # 4: IPv4 with a Router Alert option (IHL 6)
            ip4(
                c,
                s,
                6,
                tcp(1101, 5001, PSH | ACK, 40000, 80, payload=b"0123456789"),
                options=b"\x94\x04\x00\x00",
                ip_id=0x1236,
            )
        ),
        eth(ip6(c6, s6, 6, syn6, hlim=255, exts=[hbh, dstopt]), 0x86DD),  # 5
        eth(ip4(c, "10.0.0.53", 17, dns)),  # 6 UDP
        eth(arp, 0x0806),  # 7 ARP
        eth(ip4(c, s, 1, b"\x08\x00\x00\x00\x00\x01\x00\x01" + bytes(8))),  # 8 echo request
        eth(  # 9: frag needed, MTU 1400, quoting frame 3's flow
            ip4("192.0.2.1", c, 1, b"\x03\x04\x00\x00\x00\x00\x05\x78" + quoted_v4, ttl=254)
        ),
        eth(  # 10: ICMPv6 destination unreachable (admin prohibited), whole packet quoted
            ip6(r6, c6, 58, b"\x01\x01\x00\x00\x00\x00\x00\x00" + quoted_v6[:1232], hlim=60),
            0x86DD,
        ),
        eth(  # 11: ICMPv6 packet too big, MTU 1280
            ip6(r6, c6, 58, b"\x02\x00\x00\x00\x00\x00\x05\x00" + quoted_v6[:1232]), 0x86DD
        ),
        eth(  # 12: time exceeded quoting UDP -> IcmpError with no quote
            ip4(
                "192.0.2.1",
                c,
                1,
                b"\x0b\x00\x00\x00\x00\x00\x00\x00" + ip4(c, "10.0.0.53", 17, dns)[:28],
                ttl=254,
            )
        ),
        eth(ip4(c, s, 6, bytes(40), frag=0x00B9)),  # 13: non-first fragment of TCP
        eth(ip4(c, s, 6, tcp(1201, 5001, ACK, 40000, 80, payload=tso_payload), total=0)),  # 14
        eth(b"")[:10],  # 15: runt
        eth(ip4(c, s, 6, syn))[:44],  # 16: TCP header cut at 10 bytes
        eth(ip6("::ffff:10.0.0.1", "::10.0.0.2", 6, tcp(9, 0, SYN, 1, 2)), 0x86DD),  # 17
        eth(ip4(c, "10.0.0.3", 6, tcp(1, 0, RST, 2, 3)), 0x0801),  # 18: unknown ethertype
        eth(  # 19: frag needed from a pre-RFC 1191 router (MTU 0) quoting a truncated header
            ip4("192.0.2.1", c, 1, b"\x03\x04\x00\x00\x00\x00\x00\x00" + quoted_v4[:24])
        ),
    ]
    out = {"decode_eth.pcap": pcap([(T0, i * 1000, d) for i, d in enumerate(frames, 1)])}

    # Headers-only capture (snaplen 66): payload lengths must come from the IP header.
    big_syn = eth(ip4(c, s, 6, syn))
    big_data = eth(
        ip4(c, s, 6, tcp(1001, 5001, ACK, 40000, 80, options=TS_OPTION, payload=bytes(1448)))
    )
    big6 = eth(ip6(c6, s6, 6, tcp(5, 6, ACK, 50000, 443, payload=bytes(1000))), 0x86DD)
    snap = [
        (T0, 0, big_syn[:66], len(big_syn)),
        (T0, 1, big_data[:66], len(big_data)),
        (T0, 2, big6[:74], len(big6)),
    ]
    out["decode_snaplen.pcap"] = pcap(snap, snaplen=66)

    p4 = ip4(c, s, 6, data100)
    p6 = ip6(c6, s6, 6, syn6)
    out["decode_sll.pcap"] = pcap(
        [
            (T0, 1, sll(p4)),
            (T0, 2, sll(p6, 0x86DD, pkttype=4)),
            (T0, 3, sll(arp, 0x0806)),
            (T0, 4, sll(struct.pack("!HH", 7, 0x0800) + p4, 0x8100)),  # VLAN tag kept
        ],
        linktype=113,
    )
    out["decode_sll2.pcap"] = pcap([(T0, 1, sll2(p4)), (T0, 2, sll2(p6, 0x86DD))], linktype=276)
    out["decode_raw.pcap"] = pcap(
        [(T0, 1, p4), (T0, 2, p6), (T0, 3, b"\x50" + p4[1:])], linktype=101
    )
    out["decode_null.pcap"] = pcap(
        [
            (T0, 1, struct.pack("<I", 2) + p4),  # little-endian writer
            (T0, 2, struct.pack("<I", 30) + p6),  # Darwin AF_INET6
            (T0, 3, struct.pack(">I", 2) + p4),  # big-endian writer
            (T0, 4, struct.pack(">I", 28) + p6),  # FreeBSD AF_INET6
            (T0, 5, struct.pack("<I", 7) + p4),  # some other family
        ],
        linktype=0,
    )
    out["decode_loop.pcap"] = pcap(
        [(T0, 1, struct.pack(">I", 2) + p4), (T0, 2, struct.pack(">I", 24) + p6)], linktype=108
    )
    # Serial links: PPP with and without RFC 1662's framing, one with its protocol field
    # compressed, its LCP (not IP), Cisco HDLC under the PPP link type, an MPLS label (bottom of
    # the stack) on PPP; PPP in HDLC framing and Cisco's PPP in that framing; Cisco HDLC and its
    # SLARP keepalive (not IP); a PPPoE session without its Ethernet header: IPv4, IPv6, an MPLS
    # label (an ISP's MPLS to a subscriber's router) and a compressed protocol field in it.
    lcp_echo = b"\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00"
    out["decode_ppp.pcap"] = pcap(
        [
            (T0, 1, b"\xff\x03\x00\x21" + p4),
            (T0, 2, b"\x00\x57" + p6),
            (T0, 3, b"\xff\x03\x21" + p4),
            (T0, 4, b"\xff\x03" + lcp_echo),
            (T0, 5, b"\x0f\x00\x08\x00" + p4),  # Cisco HDLC, as routers' captures label PPP
            (T0, 6, b"\xff\x03\x02\x81" + struct.pack("!I", 16 << 12 | 1 << 8 | 64) + p4),
        ],
        linktype=9,
    )
    out["decode_ppp_hdlc.pcap"] = pcap(
        [(T0, 1, b"\xff\x03\x00\x21" + p4), (T0, 2, b"\x0f\x00\x86\xdd" + p6)], linktype=50
    )
    slarp_keepalive = struct.pack("!IIIH", 2, 7, 6, 0xFFFF)
    out["decode_chdlc.pcap"] = pcap(
        [
            (T0, 1, b"\x0f\x00\x08\x00" + p4),
            (T0, 2, b"\x8f\x00\x86\xdd" + p6),
            (T0, 3, b"\x8f\x00\x80\x35" + slarp_keepalive),
        ],
        linktype=104,
    )

    def pppoe(ppp: bytes) -> bytes:
        return struct.pack("!BBHH", 0x11, 0, 0x2A, len(ppp)) + ppp

    out["decode_ppp_ether.pcap"] = pcap(
        [
            (T0, 1, pppoe(b"\x00\x21" + p4)),
            (T0, 2, pppoe(b"\x00\x57" + p6)),
            (T0, 3, pppoe(b"\x02\x81" + struct.pack("!I", 16 << 12 | 1 << 8 | 64) + p4)),
            (T0, 4, pppoe(b"\x21" + p4)),
        ],
        linktype=51,
    )

    # IP over InfiniBand, as Linux captures it: the destination's QPN and GID, then RFC 4391's
    # header (an ethertype, two reserved bytes).
    ib_dest = bytes(16) + bytes.fromhex("2fa3000a80000550fe800000000000000010e000664ab451")
    out["decode_ipoib.pcap"] = pcap(
        [
            (T0, 1, ib_dest + b"\x08\x00\x00\x00" + p4),
            (T0, 2, ib_dest + b"\x86\xdd\x00\x00" + p6),
        ],
        linktype=242,
    )

    # L2TPv2 (RFC 2661) between an access concentrator and its server, over UDP 1701: data
    # messages with length and sequence numbers, with nothing but the ids (PPP without its
    # address and control bytes), with an offset (the other way round); a control message.
    def l2tp(a: str, b: str, flags: int, ids: tuple[int, ...], ppp: bytes) -> bytes:
        """flags, the length if flags say so (filled in), then `ids` (tunnel and session ids,
        Ns and Nr, an offset size and its padding: 16 bits each), then the PPP frame."""
        rest = struct.pack(f"!{len(ids)}H", *ids) + ppp
        length = struct.pack("!H", 4 + len(rest)) if flags & 0x4000 else b""
        body = struct.pack("!H", flags) + length + rest
        return eth(ip4(a, b, 17, udp(1701, 1701, body)))

    lac, lns = "192.0.2.10", "192.0.2.20"
    ppp4 = b"\xff\x03\x00\x21" + p4
    out["decode_l2tp.pcap"] = pcap(
        [
            (T0, 1, l2tp(lac, lns, 0x4802, (7, 9, 0, 0), ppp4)),
            (T0, 2, l2tp(lac, lns, 0x0002, (7, 9), b"\x00\x57" + p6)),
            (T0, 3, l2tp(lns, lac, 0x0202, (3, 4, 2, 0), ppp4)),
            (T0, 4, l2tp(lac, lns, 0xC802, (7, 0, 1, 1), b"")),
        ]
    )

    # GTP-U (3GPP TS 29.281) between a base station and the core, over UDP 2152: a G-PDU with
    # nothing optional; one with a sequence number and a PDU session container extension
    # header (the other way round, with IPv6 inside); an echo request (not a user's packet).
    def gtp_u(a: str, b: str, flags: int, message: int, teid: int, rest: bytes) -> bytes:
        body = struct.pack("!BBHI", flags, message, len(rest), teid) + rest
        return eth(ip4(a, b, 17, udp(2152, 2152, body)))

    enb, upf = "192.0.2.30", "192.0.2.40"
    container = b"\x01\x00\x01\x00"  # (length 1 word: type-specific bytes, next type 0)
    out["decode_gtpu.pcap"] = pcap(
        [
            (T0, 1, gtp_u(enb, upf, 0x30, 0xFF, 0x1001, p4)),
            (T0, 2, gtp_u(upf, enb, 0x36, 0xFF, 0x2002, b"\x00\x07\x00\x85" + container + p6)),
            (T0, 3, gtp_u(enb, upf, 0x32, 0x01, 0, b"\x00\x08\x00\x00")),
        ]
    )
    # IPv6 carrying IP: with a segment routing header (SRv6, RFC 8754: type 4, one segment),
    # the inner packet is the connection's, with no tunnel context; without one (a hop-by-hop
    # header only), IPv6-in-IPv6 as any; a routing header after destination options, carrying
    # IPv4.
    srh = (43, bytes([2, 4, 0, 0, 0, 0, 0]) + addr("2001:db8:ff::9"))
    outer_a, outer_b = "2001:db8:ff::1", "2001:db8:ff::2"
    out["decode_srv6.pcap"] = pcap(
        [
            (T0, 1, eth(ip6(outer_a, outer_b, 41, p6, exts=[srh]), 0x86DD)),
            (T0, 2, eth(ip6(outer_a, outer_b, 41, p6, exts=[hbh]), 0x86DD)),
            (T0, 3, eth(ip6(outer_a, outer_b, 4, p4, exts=[dstopt, srh]), 0x86DD)),
        ]
    )
    # One pcapng, one interface per raw-ish link type, plus one the decoder does not know.
    out["decode_rawmix.pcapng"] = (
        shb()
        + idb(228)
        + idb(229)
        + idb(12)
        + idb(14)
        + idb(147)
        + epb(0, T0 * 10**6 + 1, p4)
        + epb(1, T0 * 10**6 + 2, p6)
        + epb(2, T0 * 10**6 + 3, p4)
        + epb(3, T0 * 10**6 + 4, p6)
        + epb(4, T0 * 10**6 + 5, p4)
    )
    return out


# Text a capture can carry (comments, interface names) that must never reach a terminal or a
# report as it is: ANSI escapes, other control characters, invalid UTF-8, HTML.
HOSTILE_TEXT = b"\x1b[2J\x1b[31mRED\x1b]0;title\x07 \r\x08 <script>alert(1)</script> \xff\xfe\xc0"


def hostile_fixtures() -> dict[str, bytes]:
    """A refused connection in a pcapng whose comments and interface names are hostile."""
    syn = handshake()[0]
    rst = eth(ip4("10.0.0.2", "10.0.0.1", 6, tcp(0, 1001, RST | ACK, 80, 40000, window=0)))
    section = block(
        0x0A0D0D0A,
        struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + option(1, HOSTILE_TEXT) + option(0, b""),
    )
    iface = idb(1, options=option(2, HOSTILE_TEXT) + option(3, HOSTILE_TEXT))
    packets = b""
    for i, frame in enumerate((syn, rst)):
        ticks = (T0 + i) * 1_000_000
        hdr = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
        body = hdr + frame + b"\0" * (-len(frame) % 4) + option(1, HOSTILE_TEXT) + option(0, b"")
        packets += block(6, body)
    return {"hostile_text.pcapng": section + iface + packets}


def rst_text_fixtures() -> dict[str, bytes]:
    """RSTs that carry their sender's reason as text (RFC 1122 4.2.2.12), as a load balancer in
    front of servers writes it (TTL 255, its own): the reset of a request no server could take,
    the refusal of a port, a reason padded with NUL bytes, markup where a report must not render
    it; a RST whose payload is binary (no text), and one carrying a long payload (data)."""
    client, lb = "10.0.0.1", "10.0.9.9"
    frames: list[bytes] = []

    def to_lb(port: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        if flags & SYN:
            segment = tcp(seq, ack, flags, port, 443, options=MSS_SACK_TS_WS7)
        else:
            segment = tcp(seq, ack, flags, port, 443, window=502, payload=payload)
        frames.append(eth(ip4(client, lb, 6, segment)))

    def from_lb(port: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        segment = tcp(seq, ack, flags, 443, port, window=0 if flags & RST else 65160,
                      payload=payload)  # fmt: skip
        frames.append(eth(ip4(lb, client, 6, segment, ttl=255)))

    def reset_after_request(port: int, reason: bytes) -> None:
        to_lb(port, 1000, 0, SYN)
        from_lb(port, 5000, 1001, SYN | ACK)
        to_lb(port, 1001, 5001, ACK)
        to_lb(port, 1001, 5001, PSH | ACK, bytes(120))
        from_lb(port, 5001, 1121, RST | ACK, reason)

    reset_after_request(40001, b"No pool member available")
    to_lb(40002, 7000, 0, SYN)
    from_lb(40002, 0, 7001, RST | ACK, b"[F5RST: Port denied]\r\n")
    reset_after_request(40003, b"Idle timeout\0\0\0\0")
    reset_after_request(40004, b"[x](https://evil.example/) <b>x</b> =cmd|' /C calc'!A0")
    reset_after_request(40005, bytes(random.Random(5).randrange(256) for _ in range(40)))
    reset_after_request(40006, b"resent data " * 30)
    return {"decode_rst_text.pcap": pcap([(T0, k * 1000, f) for k, f in enumerate(frames, 1)])}


def main() -> None:
    fixtures = {
        **reader_fixtures(),
        **decode_fixtures(),
        **hostile_fixtures(),
        **rst_text_fixtures(),
    }
    for name, data in fixtures.items():
        (OUT / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
