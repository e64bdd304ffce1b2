"""Cross-check tcpdiag's decoder against Wireshark's dissectors (tshark, through pyshark).

For every sample capture, each frame tcpdiag decodes must be the frame Wireshark numbers the same
way, with the same addresses, ports, raw sequence and acknowledgement numbers, flags, payload
length, TTL and time (of the innermost IP/TCP in tunnelled frames); ICMP errors must quote the
same TCP ports.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpdiag.decode import Decoder
from tcpdiag.packets import IcmpError, TcpSegment
from tcpdiag.reader import CaptureReader

pyshark = pytest.importorskip("pyshark")

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted(p for p in (ROOT / "samples").iterdir() if p.name.endswith((".pcap", ".pcapng")))

if shutil.which("tshark") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tshark is required in CI (.ci/run installs it)")
    pytest.skip("tshark is not installed", allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def _asyncio_signal_handling_restored() -> Iterator[None]:
    """pyshark drives tshark through an asyncio event loop, which installs a SIGCHLD handler and
    a signal wakeup fd. Left behind, every later child process's exit (tshark in other tests)
    writes to that fd and prints "Exception ignored ..." into those tests' stderr."""
    yield
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def wireshark_view(path: Path) -> dict[int, tuple]:
    view: dict[int, tuple] = {}
    cap = pyshark.FileCapture(str(path), keep_packets=False)
    try:
        for pkt in cap:
            number = int(pkt.number)
            ip = pkt.ip if hasattr(pkt, "ip") else pkt.ipv6 if hasattr(pkt, "ipv6") else None
            if ip is None:
                continue
            ttl = int(ip.ttl) if hasattr(pkt, "ip") else int(ip.hlim)
            if hasattr(pkt, "icmp") or hasattr(pkt, "icmpv6"):
                icmp = pkt.icmp if hasattr(pkt, "icmp") else pkt.icmpv6
                # The quoted TCP header shows up as icmp.tcp_* fields (icmpv6 nests a tcp layer).
                quoted_sport = getattr(icmp, "tcp_srcport", None) or (
                    pkt.tcp.srcport if hasattr(pkt, "tcp") else None
                )
                if quoted_sport is not None:
                    view[number] = ("icmp", int(icmp.type), int(icmp.code), int(quoted_sport))
                continue
            if not hasattr(pkt, "tcp"):
                continue
            # Inside tunnels the segment's own IP header is the innermost one.
            ip = [layer for layer in pkt.layers if layer.layer_name in ("ip", "ipv6")][-1]
            ttl = int(ip.ttl) if ip.layer_name == "ip" else int(ip.hlim)
            tcp = pkt.tcp
            view[number] = (
                "tcp",
                ip.src,
                ip.dst,
                int(tcp.srcport),
                int(tcp.dstport),
                int(tcp.seq_raw),
                int(tcp.ack_raw),
                int(tcp.flags, 16) & 0xFF,
                int(tcp.len),
                ttl,
                round(float(pkt.sniff_timestamp), 6),
            )
    finally:
        cap.close()
    return view


def tcpdiag_view(path: Path) -> dict[int, tuple]:
    view: dict[int, tuple] = {}
    decoder = Decoder()
    with CaptureReader(path) as reader:
        for frame in reader:
            pkt = decoder.decode(frame)
            if isinstance(pkt, TcpSegment):
                view[pkt.frame] = (
                    "tcp", pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.seq,
                    pkt.ack if pkt.flags & 0x10 else 0, pkt.flags, pkt.payload_len, pkt.ttl,
                    round(pkt.time, 6),
                )  # fmt: skip
            elif isinstance(pkt, IcmpError) and pkt.quoted is not None:
                view[pkt.frame] = ("icmp", pkt.icmp_type, pkt.icmp_code, pkt.quoted.sport)
    return view


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_decoder_agrees_with_wireshark(path: Path) -> None:
    ours, theirs = tcpdiag_view(path), wireshark_view(path)
    assert ours, "nothing decoded"
    assert ours == theirs
