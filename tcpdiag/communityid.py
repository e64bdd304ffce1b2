"""Community ID v1 (https://github.com/corelight/community-id-spec) of a TCP connection.

The hash Zeek, Suricata and Arkime log for every flow, so tcpdiag's flows and findings can be
joined to their records. Computed by the `communityid` package with the default seed 0.
"""

from __future__ import annotations

import communityid

_CALCULATOR = communityid.CommunityID(seed=0)


def community_id(src: str, sport: int, dst: str, dport: int) -> str:
    """The same value whichever side is given first."""
    return _CALCULATOR.calc(communityid.FlowTuple.make_tcp(src, dst, sport, dport))
