"""Community ID v1 (https://github.com/corelight/community-id-spec) of a TCP connection.

The hash Zeek, Suricata and Arkime log for every flow, so tcpdiag's flows and findings can be
joined to their records. Default seed 0.

Spelled out with hashlib rather than taken from the `communityid` package: the package checks
and converts its inputs so generally that it cost more per finding than the whole analysis of
the connection. The test suite checks this against the spec's published vectors and against
the package.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct

_TCP = 6
_SEED = 0


def _packed(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def community_id(src: str, sport: int, dst: str, dport: int) -> str:
    """The same value whichever side is given first."""
    a, b = _packed(src), _packed(dst)
    # The spec orders the endpoints so that both directions hash alike: the smaller address
    # first, or on equal addresses the smaller port.
    if (a, sport) > (b, dport):
        a, b, sport, dport = b, a, dport, sport
    digest = hashlib.sha1(
        struct.pack("!H", _SEED) + a + b + struct.pack("!BBHH", _TCP, 0, sport, dport)
    ).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")


_V4_TUPLE = struct.Struct("!HIIBBHH")


def community_id_v4(src: int, sport: int, dst: int, dport: int) -> str:
    """community_id of IPv4 addresses given as numbers (as tcpdiag's columns hold them): the
    same hash without formatting and parsing their text, for a flood's million SYNs."""
    # A smaller number is a smaller 4-byte big-endian address: the spec's order.
    if (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    digest = hashlib.sha1(_V4_TUPLE.pack(_SEED, src, dst, _TCP, 0, sport, dport)).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")
