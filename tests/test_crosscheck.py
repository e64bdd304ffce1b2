"""Cross-check tcpdiag's decoder against Wireshark's dissectors (tshark).

For every sample capture, each frame tcpdiag decodes must be the frame Wireshark numbers the same
way, with the same addresses, ports, raw sequence and acknowledgement numbers, flags, payload
length, TTL and time (of the innermost IP/TCP in tunnelled frames); ICMP errors must quote the
same TCP ports.

Wireshark's view comes from `tshark -T fields` run here, not through pyshark's FileCapture: that
one reaps tshark racily (at the end of a file it kills a tshark that has exited but that its
asyncio child watcher has not yet reaped; `Popen.send_signal` polls, so reaps it, and the watcher
then reports exit status 255 and pyshark a "TShark crashed"), which failed a CI run at random.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tcpdiag.decode import Decoder
from tcpdiag.packets import IcmpError, TcpSegment
from tcpdiag.reader import CaptureReader
from tcpdiag.tshark_engine import TsharkUnavailable, tshark_path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted(p for p in (ROOT / "samples").iterdir() if p.name.endswith((".pcap", ".pcapng")))

try:
    TSHARK = tshark_path()
except TsharkUnavailable:
    if os.environ.get("CI"):
        raise RuntimeError("tshark is required in CI (.ci/run installs it)") from None
    pytest.skip("tshark is not installed", allow_module_level=True)

# Wireshark's fields, one tab-separated line per frame; a field that occurs more than once
# (the outer and inner IP header of a tunnelled frame) lists every occurrence, comma-separated.
FIELDS = (
    "frame.number", "frame.time_epoch", "frame.protocols",
    "ip.src", "ip.dst", "ip.ttl", "ipv6.src", "ipv6.dst", "ipv6.hlim",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
)  # fmt: skip


def wireshark_view(path: Path) -> dict[int, tuple]:
    command = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t"]
    for field in FIELDS:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    view: dict[int, tuple] = {}
    for line in out.splitlines():
        f = dict(zip(FIELDS, line.split("\t"), strict=True))
        layers = f["frame.protocols"].split(":")
        if "ip" not in layers and "ipv6" not in layers:
            continue
        number = int(f["frame.number"])
        if "icmp" in layers or "icmpv6" in layers:
            kind = "icmp" if "icmp" in layers else "icmpv6"
            # The quoted TCP header is dissected as a tcp layer inside the ICMP error.
            if f["tcp.srcport"]:
                icmp_type, icmp_code = f[f"{kind}.type"], f[f"{kind}.code"]
                view[number] = ("icmp", int(icmp_type), int(icmp_code), int(f["tcp.srcport"]))
            continue
        if "tcp" not in layers:
            continue
        # Inside tunnels the segment's own IP header is the innermost one: the last IP layer,
        # and the last occurrence of its fields.
        inner = [layer for layer in layers if layer in ("ip", "ipv6")][-1]
        src, dst, ttl = (
            (f["ip.src"], f["ip.dst"], f["ip.ttl"])
            if inner == "ip"
            else (f["ipv6.src"], f["ipv6.dst"], f["ipv6.hlim"])
        )
        view[number] = (
            "tcp",
            src.split(",")[-1],
            dst.split(",")[-1],
            int(f["tcp.srcport"]),
            int(f["tcp.dstport"]),
            int(f["tcp.seq_raw"]),
            int(f["tcp.ack_raw"]),
            int(f["tcp.flags"], 16) & 0xFF,
            int(f["tcp.len"]),
            int(ttl.split(",")[-1]),
            round(float(f["frame.time_epoch"]), 6),
        )
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
