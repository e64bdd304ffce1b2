"""Did --host/--port/--net match anything at all? Asked of the packets as they stream past.

The fast path settles most connections in bulk without handing them to analyze.py, so counting
the connections that reach the rule engine cannot tell "the filter matched nothing" from "the
filter matched only healthy connections". A packet of a TCP connection matches exactly when its
connection does, so looking at the packets answers the question on both paths alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

import numpy as np

from tcpdiag.columns import Columns, ipv4_int
from tcpdiag.filters import ConnectionFilter
from tcpdiag.packets import Packet, TcpSegment


class FilterProbe:
    """Watches a stream (of packets or of column windows) until one TCP segment matches."""

    def __init__(self, wanted: ConnectionFilter) -> None:
        self.wanted = wanted
        # No address/port criterion: everything matches (a --state-only filter is judged on
        # the connections, by the caller).
        self.matched = not (wanted.hosts or wanted.ports or wanted.nets)
        self._v4_hosts = np.array(
            [ipv4_int(h) for h in wanted.hosts if ":" not in h], dtype=np.uint32
        )
        self._v4_nets = [n for n in wanted.nets if isinstance(n, ipaddress.IPv4Network)]

    def packets(self, packets: Iterable[Packet]) -> Iterator[Packet]:
        for packet in packets:
            if not self.matched and isinstance(packet, TcpSegment):
                self.matched = self._segment_matches(packet)
            yield packet

    def columns(self, windows: Iterable[Columns]) -> Iterator[Columns]:
        for window in windows:
            if not self.matched:
                self.matched = self._window_matches(window)
            yield window

    def _segment_matches(self, seg: TcpSegment) -> bool:
        return self.wanted.matches((seg.src, seg.dst), (seg.sport, seg.dport))

    def _window_matches(self, w: Columns) -> bool:
        if any(isinstance(p, TcpSegment) and self._segment_matches(p) for p in w.others):
            return True
        simple = w.simple.copy()
        wanted = self.wanted
        v6 = w.v6
        if wanted.ports:
            ports = np.array(sorted(wanted.ports), dtype=np.uint16)
            simple &= np.isin(w.sport, ports) | np.isin(w.dport, ports)
        if wanted.hosts:
            simple &= v6 | np.isin(w.src, self._v4_hosts) | np.isin(w.dst, self._v4_hosts)
        if wanted.nets:
            in_net = np.zeros(len(w), dtype=bool)
            for net in self._v4_nets:
                mask, base = np.uint32(int(net.netmask)), np.uint32(int(net.network_address))
                in_net |= ((w.src & mask) == base) | ((w.dst & mask) == base)
            simple &= v6 | in_net
        rows6 = simple & v6
        if (wanted.hosts or wanted.nets) and rows6.any():
            # IPv6 rows hold numbers for their addresses: each criterion is asked of the few
            # distinct addresses, by their text.
            numbers = np.unique(np.concatenate([w.src[rows6], w.dst[rows6]])).tolist()
            text = w.addresses6.text
            criteria = []
            if wanted.hosts:
                criteria.append([k for k in numbers if text[k] in wanted.hosts])
            if wanted.nets:
                nets = wanted.nets
                criteria.append(
                    [k for k in numbers if any(ipaddress.ip_address(text[k]) in n for n in nets)]
                )
            for hits in criteria:
                chosen = np.array(hits, np.uint32)
                simple &= ~v6 | np.isin(w.src, chosen) | np.isin(w.dst, chosen)
        return bool(simple.any())
