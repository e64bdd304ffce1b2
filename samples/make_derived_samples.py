#!/usr/bin/env python3
"""Make the samples of other stacks' behaviour: a kernel sample's packets, edited with dpkt.

Usage (no root, no network; needs dpkt):

    python3 samples/make_derived_samples.py [--out DIR]

Some failures differ from what the Linux kernel makes only in when a packet leaves, or in which
packet another stack sends where Linux sends its own. Each sample here is a kernel sample with
the fewest edits that make the other stack's packets; `derived_from` names the source, and
`observed` keeps what the Linux programs of the source capture really got, for reference.

- `retransmission_stack_reset` (retimed): a Windows, macOS or BSD stack whose retransmission
  limit runs out aborts the connection with a RST, sent when its next retransmission was due
  (Windows after 5 retransmissions, the BSDs after 12 (TCP_MAXRXTSHIFT)), and its program's
  call fails with ETIMEDOUT; Linux sends no RST then. So it is `retransmission_then_abort` (a
  Linux client that gave up on a timer of its own and aborted with SO_LINGER {1,0}) with its
  RST moved to when that client's next retransmission was due: twice the last gap after the
  last retransmission. Only that timestamp is written here. The client gets ETIMEDOUT (that
  stack's), the server nothing.
- `mptcp_fastclose_ack` (rewritten): Linux aborts a Multipath TCP connection with a RST that
  carries MP_FASTCLOSE on every subflow; MPTCP v0 stacks (the out-of-tree multipath-tcp.org
  kernel) use the protocol's other form, an ACK with MP_FASTCLOSE on one subflow and a plain RST
  on the others, the peer answering the ACK with a RST (RFC 8684 3.5, RFC 6824 3.5). So it is
  `mptcp_fastclose` with the server's first RST made that ACK (its MP_TCPRST dropped), its
  second a RST without MPTCP options, and the client's answering RST added (the client's last
  segment on that subflow, made a RST). The client gets ECONNRESET, the server nothing.
- `icmp_syn_retried` (retried): Linux fails connect() on the first ICMP error that answers its
  SYN; Windows, macOS and the BSDs keep it as a soft error and send the SYN again, and their
  connect() fails only when the SYN retries run out (with the error kept). So it is
  `icmp_host_unreachable_syn` with the SYN sent again 1 s and 3 s after the first (new IP IDs,
  the timestamp clock on), each answered by the same ICMP host unreachable quoting it. The client
  gets EHOSTUNREACH, when its retries run out; the server nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import dpkt

SCRIPT = Path(__file__).resolve()
SAMPLES = SCRIPT.parent


def _packets(path: Path) -> tuple[list[tuple[float, bytes]], int]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        return [(ts, bytes(buf)) for ts, buf in reader], reader.datalink()


def _tcp(frame: bytes) -> dpkt.tcp.TCP:
    tcp = dpkt.ethernet.Ethernet(frame).data.data
    assert isinstance(tcp, dpkt.tcp.TCP)
    return tcp


def retransmission_stack_reset(out: Path) -> None:
    source = "retransmission_then_abort"
    packets, linktype = _packets(SAMPLES / f"{source}.pcap")
    segments = [_tcp(frame) for _, frame in packets]
    rst_at = max(i for i, tcp in enumerate(segments) if tcp.flags & dpkt.tcp.TH_RST)
    # The client's data segments before the RST, by time: the first transmission and its
    # retransmissions (the same sequence number, with payload).
    rst, last = segments[rst_at], segments[rst_at - 1]
    sends = [
        ts
        for (ts, _), tcp in zip(packets[:rst_at], segments, strict=False)
        if tcp.sport == rst.sport and tcp.data and tcp.seq == last.seq
    ]
    assert len(sends) >= 4, "the source capture has no retransmission stall"
    due = sends[-1] + 2 * (sends[-1] - sends[-2])
    packets[rst_at] = (due, packets[rst_at][1])
    name = "retransmission_stack_reset"
    _write(out / f"{name}.pcap", linktype, packets)
    expected: dict[str, Any] = json.loads((SAMPLES / f"{source}.expected.json").read_text())
    findings = [
        {**item, "client_errno": "ETIMEDOUT", "server_errno": None} for item in expected["findings"]
    ]
    retimed = {
        "scenario": name,
        "description": (
            f"The packets of the kernel sample {source}, its client's RST moved to when its next "
            f"retransmission was due ({due - sends[-1]:.3f} s after the last one, twice the gap "
            "before it), as a Windows, macOS or BSD stack sends it when its retransmission limit "
            "runs out: that stack's program gets ETIMEDOUT (the server's, nothing). "
            + expected["description"]
        ),
        "source": f"kernel, retimed (samples/{SCRIPT.name})",
        "derived_from": source,
        "findings": findings,
        "observed": expected["observed"],
        "kernel": expected["kernel"],
        "capture": expected["capture"],
        "zeek_flows": expected["zeek_flows"],
    }
    (out / f"{name}.expected.json").write_text(json.dumps(retimed, indent=2) + "\n")


def mptcp_fastclose_ack(out: Path) -> None:
    source = "mptcp_fastclose"
    packets, linktype = _packets(SAMPLES / f"{source}.pcap")
    frames = [dpkt.ethernet.Ethernet(frame) for _, frame in packets]
    resets = [i for i, eth in enumerate(frames) if eth.data.data.flags & dpkt.tcp.TH_RST]
    # The server's two RSTs with MP_FASTCLOSE, one per subflow, last in the capture.
    first, second = resets[-2:]
    assert second == len(frames) - 1 and _mptcp_subtypes(frames[first]) == {7, 8}
    fastclose = frames[first]
    _set_options(fastclose, [o for o in _options(fastclose) if _subtype(o) != 8])
    fastclose.data.data.flags = dpkt.tcp.TH_ACK
    plain = frames[second]
    _set_options(plain, [o for o in _options(plain) if o[0] != _MPTCP])
    # The client's answer on the first subflow: its last segment there, at the same numbers
    # (its SND.NXT, the server's), made a RST a little after the server's packets.
    sub = fastclose.data.data
    last = max(
        i
        for i, eth in enumerate(frames[:first])
        if (eth.data.data.sport, eth.data.data.dport) == (sub.dport, sub.sport)
    )
    answer = dpkt.ethernet.Ethernet(bytes(frames[last]))
    answer_time = packets[second][0] + 15e-6
    elapsed_ms = round((answer_time - packets[last][0]) * 1000)
    _clock_on(answer, elapsed_ms)
    answer.data.data.flags = dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK
    answer.data.id = (answer.data.id + 1) & 0xFFFF
    rewritten = [(ts, eth) for (ts, _), eth in zip(packets, frames, strict=True)]
    rewritten.append((answer_time, answer))
    name = "mptcp_fastclose_ack"
    _write(out / f"{name}.pcap", linktype, [(ts, bytes(eth)) for ts, eth in rewritten])
    expected: dict[str, Any] = json.loads((SAMPLES / f"{source}.expected.json").read_text())
    client = f"{_address(answer.data.src)}:{sub.dport}"
    zeek_flows = [
        # The client, the originator, now sends the RST.
        {**flow, "conn_state": "RSTO", "history": flow["history"].replace("r", "R")}
        if flow["client"] == client
        else flow
        for flow in expected["zeek_flows"]
    ]
    # The other subflows' RSTs end subflows only: nobody is told.
    findings = [
        item
        if item["client"] == client
        else {**item, "category": "subflow_reset", "client_errno": None, "server_errno": None}
        for item in expected["findings"]
    ]
    derived = {
        "scenario": name,
        "description": (
            f"The packets of the kernel sample {source}, rewritten as an MPTCP v0 stack aborts "
            "(RFC 8684 3.5's other form): the server's RST on the first subflow made an ACK "
            "with MP_FASTCLOSE, its RST on the joined subflow a plain RST, and the client's "
            "stack answering the ACK with a RST on the first subflow. The client's program "
            "gets ECONNRESET, once; the server's, nothing; the joined subflow's RST is the "
            "MPTCP connection's teardown (subflow_reset). " + expected["description"]
        ),
        "source": f"kernel, rewritten (samples/{SCRIPT.name})",
        "derived_from": source,
        "findings": findings,
        "observed": expected["observed"],
        "kernel": expected["kernel"],
        "capture": expected["capture"],
        "zeek_flows": zeek_flows,
    }
    (out / f"{name}.expected.json").write_text(json.dumps(derived, indent=2) + "\n")


def icmp_syn_retried(out: Path) -> None:
    source = "icmp_host_unreachable_syn"
    packets, linktype = _packets(SAMPLES / f"{source}.pcap")
    (syn_time, syn_frame), (icmp_time, icmp_frame) = packets
    syn = dpkt.ethernet.Ethernet(syn_frame)
    assert syn.data.data.flags == dpkt.tcp.TH_SYN
    assert isinstance(dpkt.ethernet.Ethernet(icmp_frame).data.data, dpkt.icmp.ICMP)
    answer = icmp_time - syn_time
    rewritten = list(packets)
    for number, after in enumerate((1.0, 3.0), start=1):
        again = dpkt.ethernet.Ethernet(bytes(syn))
        again.data.id = (again.data.id + number) & 0xFFFF
        _clock_on(again, round(after * 1000))
        again.data.data.sum = 0
        error = dpkt.ethernet.Ethernet(icmp_frame)
        error.data.id = (error.data.id + number) & 0xFFFF
        error.data.data.data.data = dpkt.ip.IP(bytes(again.data))  # the SYN it quotes
        error.data.data.sum = 0
        error.data.len = len(error.data)
        error.data.sum = 0
        rewritten += [(syn_time + after, bytes(again)), (syn_time + after + answer, bytes(error))]
    name = "icmp_syn_retried"
    _write(out / f"{name}.pcap", linktype, rewritten)
    expected: dict[str, Any] = json.loads((SAMPLES / f"{source}.expected.json").read_text())
    derived = {
        "scenario": name,
        "description": (
            f"The packets of the kernel sample {source}, with the client's SYN sent again 1 s "
            "and 3 s after the first (new IP IDs, its timestamp clock on), each answered by the "
            "same ICMP host unreachable quoting it: as Windows, macOS and the BSDs keep an ICMP "
            "error that answers a SYN as a soft error and retry, where Linux fails connect() "
            "at once. Such a client's connect() fails when its SYN retries run out, with the "
            "error it kept (EHOSTUNREACH); the server's program sees nothing. "
            + expected["description"]
        ),
        "source": f"kernel, retried (samples/{SCRIPT.name})",
        "derived_from": source,
        "findings": expected["findings"],
        "observed": expected["observed"],
        "kernel": expected["kernel"],
        "capture": expected["capture"],
        "zeek_flows": expected["zeek_flows"],
    }
    (out / f"{name}.expected.json").write_text(json.dumps(derived, indent=2) + "\n")


_MPTCP = 30  # TCP option kind of Multipath TCP


def _options(eth: dpkt.ethernet.Ethernet) -> list[tuple[int, bytes]]:
    return [(kind, bytes(data)) for kind, data in dpkt.tcp.parse_opts(eth.data.data.opts)]


def _subtype(option: tuple[int, bytes]) -> int | None:
    kind, data = option
    return data[0] >> 4 if kind == _MPTCP and data else None


def _mptcp_subtypes(eth: dpkt.ethernet.Ethernet) -> set[int | None]:
    return {_subtype(o) for o in _options(eth) if o[0] == _MPTCP}


def _set_options(eth: dpkt.ethernet.Ethernet, options: list[tuple[int, bytes]]) -> None:
    """Write these options (NOP without data) into the segment, padded to whole words, and
    make its lengths and checksums right again."""
    raw = b"".join(
        bytes([kind]) if kind == dpkt.tcp.TCP_OPT_NOP else bytes([kind, len(data) + 2]) + data
        for kind, data in options
    )
    raw += bytes(-len(raw) % 4)
    ip, tcp = eth.data, eth.data.data
    tcp.opts = raw
    tcp.off = (20 + len(raw)) // 4
    tcp.sum = 0
    ip.len = 20 + len(ip.opts) + len(tcp)
    ip.sum = 0


def _clock_on(eth: dpkt.ethernet.Ethernet, milliseconds: int) -> None:
    """Move the segment's timestamp option (TSval) on by this many milliseconds: the clock of a
    segment its stack sends that much later."""
    options = []
    for kind, data in _options(eth):
        if kind == dpkt.tcp.TCP_OPT_TIMESTAMP:
            tsval = (int.from_bytes(data[:4], "big") + milliseconds) & 0xFFFFFFFF
            data = tsval.to_bytes(4, "big") + data[4:]
        options.append((kind, data))
    _set_options(eth, options)


def _write(path: Path, linktype: int, packets: list[tuple[float, bytes]]) -> None:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype)
        for ts, frame in packets:
            writer.writepkt(frame, ts)


def _address(raw: bytes) -> str:
    return ".".join(map(str, raw))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SAMPLES, help="output folder (samples/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for make in (retransmission_stack_reset, mptcp_fastclose_ack, icmp_syn_retried):
        make(args.out)
        print(f"wrote {args.out / make.__name__}.pcap")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
