#!/usr/bin/env python3
"""Make the samples of other stacks' timing: a kernel sample's packets, one of them moved in time.

Usage (no root, no network; needs dpkt):

    python3 samples/make_retimed_samples.py [--out DIR]

Some failures differ from what the Linux kernel makes only in when a packet leaves. A Windows,
macOS or BSD stack whose retransmission limit runs out aborts the connection with a RST, sent
when its next retransmission was due (Windows after 5 retransmissions, the BSDs after 12
(TCP_MAXRXTSHIFT)), and its program's call fails with ETIMEDOUT; Linux sends no RST then. So
`retransmission_stack_reset` is `retransmission_then_abort` (a Linux client that gave up on
a timer of its own and aborted with SO_LINGER {1,0}) with its RST moved to when that client's
next retransmission was due: twice the last gap after the last retransmission. Every byte of
every packet is the kernel's; only that timestamp is written here. What each program saw is
then the other stack's: the client ETIMEDOUT, the server nothing; `observed` keeps what the
Linux programs of the source capture really got, for reference.
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
    with (out / f"{name}.pcap").open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype)
        for ts, frame in packets:
            writer.writepkt(frame, ts)
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
        "retimed_from": source,
        "findings": findings,
        "observed": expected["observed"],
        "kernel": expected["kernel"],
        "capture": expected["capture"],
        "zeek_flows": expected["zeek_flows"],
    }
    (out / f"{name}.expected.json").write_text(json.dumps(retimed, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SAMPLES, help="output folder (samples/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    retransmission_stack_reset(args.out)
    print(f"wrote {args.out / 'retransmission_stack_reset.pcap'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
