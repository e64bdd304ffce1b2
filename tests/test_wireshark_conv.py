"""tcpdiag's TCP connections against Wireshark's on every sample, tunnelled or not.

For each capture, `tcpdiag flows -f json` (native engine) is compared with tshark's
`-z conv,tcp` conversation table and with the frames tshark's `tcp.flags.reset==1` selects:

- the endpoint pairs (inner 4-tuples inside tunnels) are the same;
- per pair, the packets each way are the same;
- the RST frames are the same frame numbers.

Explained differences, checked rather than hidden:

- Wireshark's conversation table keys TCP by its 4-tuple only, not by tunnel: two tenants with
  the same inner 4-tuple (crafted_vxlan_two_tenants) are one conversation there and two
  connections in tcpdiag. Their packet counts are compared summed per 4-tuple, and tcpdiag
  must have one connection per tunnel the capture names.
- Packets are compared per 4-tuple, summed over the connections of that 4-tuple, because the
  two tools may split a reused 4-tuple at different places; no sample reuses one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app
from tcpdiag.decode import Decoder
from tcpdiag.packets import RST, TcpSegment
from tcpdiag.reader import CaptureReader

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CAPTURES = sorted(SAMPLES.glob("*.pcap")) + sorted(SAMPLES.glob("crafted/*.pcap"))
TWO_TENANTS = "crafted_vxlan_two_tenants.pcap"

if shutil.which("tshark") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tshark is required in CI (.ci/run installs it)")
    pytest.skip("tshark is not installed", allow_module_level=True)

# "A:port <-> B:port  frames(B->A) bytes unit  frames(A->B) bytes unit  total ..."
_CONV = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\d+")

Endpoint = tuple[str, int]
Pair = tuple[Endpoint, Endpoint]


def endpoint(text: str) -> Endpoint:
    """'10.0.0.1:80', '[::1]:80' (tcpdiag) or '::1:80' (tshark) as (normalised address, port)."""
    address, port = text.rsplit(":", 1)
    return str(ipaddress.ip_address(address.strip("[]"))), int(port)


def wireshark(path: Path) -> tuple[dict[Pair, Counter[Endpoint]], int, set[int]]:
    """Per endpoint pair (smaller first): packets sent by each endpoint; the number of
    conversations; the frame numbers of RSTs."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "tcp.flags.reset==1", "-T", "fields",
         "-e", "frame.number", "-z", "conv,tcp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pairs: dict[Pair, Counter[Endpoint]] = {}
    rows = 0
    rsts: set[int] = set()
    for line in out.splitlines():
        if line.strip().isdigit():
            rsts.add(int(line))
            continue
        match = _CONV.match(line)
        if match:
            a, b = endpoint(match[1]), endpoint(match[2])
            sent = pairs.setdefault((min(a, b), max(a, b)), Counter())
            sent[b] += int(match[3])  # the "<-" column: from B to A
            sent[a] += int(match[4])
            rows += 1
    return pairs, rows, rsts


def tcpdiag_flows(path: Path) -> tuple[dict[Pair, Counter[Endpoint]], int]:
    """The same from `tcpdiag flows -f json`."""
    result = CliRunner().invoke(app, ["flows", "-f", "json", "--engine", "native", str(path)])
    assert result.exit_code == 0, result.output
    capture = json.loads(result.stdout)["captures"][0]
    pairs: dict[Pair, Counter[Endpoint]] = {}
    for conn in capture["connections"]:
        a, b = endpoint(conn["client"]), endpoint(conn["server"])
        sent = pairs.setdefault((min(a, b), max(a, b)), Counter())
        sent[a] += conn["client_packets"]
        sent[b] += conn["server_packets"]
    # Rows that Zeek's removal timers split off one connection (an attempt unanswered for 5 s,
    # e.g. connect_timeout's last SYN) share its conn_id: count connections, not rows.
    return pairs, len({conn["conn_id"] for conn in capture["connections"]})


def tcpdiag_rsts(path: Path) -> tuple[set[int], int, int]:
    """The frame numbers of the RSTs tcpdiag decodes, the number of tunnels it saw, and the
    number of TCP segments (not counting those quoted in ICMP errors)."""
    decoder = Decoder()
    with CaptureReader(path) as reader:
        segments = [p for p in map(decoder.decode, reader) if type(p) is TcpSegment]
    rsts = {p.frame for p in segments if p.flags & RST}
    return rsts, len(decoder.stats.tunnels), len(segments)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_connections_match_wireshark_conversations(path: Path) -> None:
    theirs, conversations, their_rsts = wireshark(path)
    ours, connections = tcpdiag_flows(path)
    rsts, tunnels, segments = tcpdiag_rsts(path)
    # (A capture whose only TCP is quoted in ICMP errors has no conversation to list.)
    assert ours or not segments, "no connection"
    assert ours == theirs
    assert rsts == their_rsts
    if path.name == TWO_TENANTS:
        # One conversation in Wireshark, one connection per tenant in tcpdiag.
        assert (conversations, connections, tunnels) == (1, 2, 2)
    else:
        assert connections == conversations
