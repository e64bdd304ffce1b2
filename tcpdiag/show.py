"""`tcpdiag show`: one connection's packets as a ladder in the terminal, with each side's TCP
state after every packet and the frame where the verdict was made.

The states come from running the tracker (tcpdiag.tracker.FlowTable) on that connection's
packets alone, so they are the states the analysis itself inferred.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tcpdiag.aggregate import Aggregate
from tcpdiag.findings import Finding
from tcpdiag.ladder import Key, connection_packets, flag_names, split_endpoint
from tcpdiag.packets import ACK, SYN, IcmpError, Packet, TcpSegment
from tcpdiag.reporters import units
from tcpdiag.reporters.common import safe, safe_line, tabulate, wireshark_filter, wireshark_frames
from tcpdiag.tracker import FlowTable


class ShowError(ValueError):
    """What was asked for is not in the capture; the message says what."""


@dataclass(frozen=True, slots=True)
class Row:
    frame: int
    time: float
    direction: str  # "C->S", "S->C", "ICMP"
    flags: str
    seq: int | None
    ack: int | None
    length: int
    ttl: int
    client_state: str
    server_state: str
    note: str


def parse_endpoint(text: str) -> tuple[str, int]:
    """`10.0.0.1:80` or `[::1]:80`; ShowError if it is neither."""
    import ipaddress

    try:
        host, port = split_endpoint(text)
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ShowError(f"{text!r} is not an endpoint like 10.0.0.1:80 or [::1]:80") from None


def _one_connection(packets: list[Packet], key: Key, around: int | None) -> list[Packet]:
    """The packets of the connection (one generation of the 4-tuple) that holds frame `around`,
    or the last one: a new SYN from the client with a new ISN starts another."""
    starts = [0]
    syn_seq: int | None = None
    for index, p in enumerate(packets):
        if isinstance(p, TcpSegment) and p.flags & SYN and not p.flags & ACK:
            if (p.src, p.sport) == (key[0], key[1]) and syn_seq is not None and p.seq != syn_seq:
                starts.append(index)
            syn_seq = p.seq if (p.src, p.sport) == (key[0], key[1]) else syn_seq
    bounds = [*starts, len(packets)]
    chosen = len(starts) - 1
    if around is not None:
        for number in range(len(starts)):
            frames = [p.frame for p in packets[bounds[number] : bounds[number + 1]]]
            if frames and frames[0] <= around <= frames[-1]:
                chosen = number
    return packets[bounds[chosen] : bounds[chosen + 1]]


def ladder_rows(packets: list[Packet], key: Key, finding: Finding | None) -> list[Row]:
    table = FlowTable(zeek=False)
    base: dict[bool, int] = {}
    evidence = {e.frame: e.what for e in finding.evidence} if finding else {}
    decisive = next(
        (e.frame for e in finding.evidence if e.time == finding.time), finding.frames[-1]
    ) if finding and finding.frames else None  # fmt: skip
    rows: list[Row] = []
    for p in packets:
        table.feed(p)
        client_state, server_state = _states(table, key, p.tunnel)
        note = evidence.get(p.frame, "")
        if p.frame == decisive:
            note = ("VERDICT: " + note).strip()
        if isinstance(p, IcmpError):
            flags = f"ICMP {p.icmp_type}/{p.icmp_code} from {p.src}"
            rows.append(Row(p.frame, p.time, "ICMP", flags, None, None, 0, p.ttl,
                            client_state, server_state, note))  # fmt: skip
            continue
        side = (p.src, p.sport) == (key[0], key[1])
        if p.flags & SYN or side not in base:
            base[side] = p.seq
        seq = (p.seq - base[side]) % (1 << 32)
        ack = (p.ack - base.get(not side, p.ack)) % (1 << 32) if p.flags & ACK else None
        rows.append(Row(p.frame, p.time, "C->S" if side else "S->C", flag_names(p.flags), seq,
                        ack, p.payload_len, p.ttl, client_state, server_state, note))  # fmt: skip
    return rows


def _states(table: FlowTable, key: Key, tunnel: str) -> tuple[str, str]:
    conn = table.lookup(*key, tunnel)
    if conn is None:
        return "?", "?"
    client, server = conn.client, conn.server
    if (client.addr, client.port) != (key[0], key[1]):
        client, server = server, client
    return client.state.value, server.state.value


def show_text(
    path: str | os.PathLike[str], key: Key, finding: Finding | None, engine: str = "native"
) -> str:
    """The ladder of one connection, read again with the engine that analysed the capture."""
    packets = connection_packets(path, key, engine)
    if not packets:
        raise ShowError(f"no packet of {_endpoint(key[:2])} <-> {_endpoint(key[2:])} in {path}")
    packets = _one_connection(
        packets, key, finding.frames[0] if finding and finding.frames else None
    )
    rows = ladder_rows(packets, key, finding)
    start = packets[0].time
    lines = [safe_line(f"== {os.fspath(path)}")]
    lines.append(f"connection: client {_endpoint(key[:2])}  server {_endpoint(key[2:])}")
    lines.append(f"first packet: {units.clock(start)}; {units.plural(len(rows), 'packet')}")
    if finding is not None:
        lines.append(safe_line(f"finding {finding.id} {finding.category}: {finding.title}"))
        lines.append(f"wireshark: {wireshark_filter(finding)}")
        lines.append(f"           {wireshark_frames(finding)}")
    lines.append("")
    table = [
        [r.frame, units.offset(r.time - start), r.direction, r.flags,
         "" if r.seq is None else r.seq, "" if r.ack is None else r.ack, r.length, r.ttl,
         r.client_state, r.server_state, r.note]
        for r in rows
    ]  # fmt: skip
    headers = ["frame", "time", "dir", "flags", "seq", "ack", "len", "ttl", "client state",
               "server state", "note"]  # fmt: skip
    lines.append(safe(tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True)))
    lines.append("")
    lines.append(
        "seq/ack are relative to each side's first sequence number (as Wireshark shows them); "
        "states are each side's TCP state after the packet, as tcpdiag inferred it."
    )
    return "\n".join(lines) + "\n"


def aggregate_text(aggregate: Aggregate, path: str | os.PathLike[str]) -> str:
    """What an aggregated finding groups, before the ladder of its first member."""
    first = aggregate.first[0]
    lines = [
        safe_line(
            f"aggregated finding {aggregate.id} {aggregate.category}: {aggregate.headline()}"
        ),
        safe_line(f"members: {aggregate.members_text()}"),
        f"wireshark: {aggregate.wireshark_filter()}",
        safe_line(
            f"the ladder below is its first member, {first.id}; every member: "
            f"tcpdiag analyze -f jsonl {os.fspath(path)}, the lines with "
            f'"aggregate": "{aggregate.id}"'
        ),
        "",
    ]
    return "\n".join(lines) + "\n"


def _endpoint(pair: tuple[str, int] | tuple[str, int, str, int]) -> str:
    host, port = pair[0], pair[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
