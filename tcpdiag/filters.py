"""Which connections a report covers: --host, --port, --net (and --state for flows).

One implementation shared by `analyze` and `flows`; a connection matches when every given kind of
criterion matches (any listed value of a kind will do) on either endpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FilterError(ValueError):
    """A filter value that cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ConnectionFilter:
    hosts: frozenset[str] = frozenset()  # address text as ipaddress prints it (as decoded)
    ports: frozenset[int] = frozenset()
    nets: tuple[IpNetwork, ...] = ()
    states: frozenset[str] = frozenset()  # Zeek conn_state values

    @classmethod
    def build(
        cls,
        hosts: Iterable[str] = (),
        ports: Iterable[int] = (),
        nets: Iterable[str] = (),
        states: Iterable[str] = (),
    ) -> ConnectionFilter:
        host_objects = []
        for host in hosts:
            try:
                host_objects.append(ipaddress.ip_address(host.strip("[]")))
            except ValueError:
                raise FilterError(f"--host {host!r} is not an IP address") from None
        for port in ports:
            if not 0 <= port <= 65535:
                raise FilterError(f"--port {port} is not a TCP port (0-65535)")
        networks = []
        for net in nets:
            try:
                networks.append(ipaddress.ip_network(net, strict=False))
            except ValueError:
                raise FilterError(f"--net {net!r} is not a network in CIDR notation") from None
        known_states = {
            "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
            "OTH",
        }  # fmt: skip
        upper = {s.upper() for s in states}
        unknown = upper - known_states
        if unknown:
            raise FilterError(
                f"--state {', '.join(sorted(unknown))}: not a Zeek conn_state "
                f"(one of {', '.join(sorted(known_states))})"
            )
        return cls(
            hosts=frozenset(str(h) for h in host_objects),
            ports=frozenset(ports),
            nets=tuple(networks),
            states=frozenset(upper),
        )

    @property
    def active(self) -> bool:
        return bool(self.hosts or self.ports or self.nets or self.states)

    def matches(
        self, addrs: tuple[str, str], ports: tuple[int, int], conn_state: str | None = None
    ) -> bool:
        if self.hosts and not any(a in self.hosts for a in addrs):
            return False
        if self.ports and not any(p in self.ports for p in ports):
            return False
        if self.nets and not any(
            ipaddress.ip_address(a) in net for a in addrs for net in self.nets
        ):
            return False
        return not (self.states and conn_state not in self.states)
