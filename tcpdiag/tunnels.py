"""Names and numbers of the tunnels tcpdiag looks through, shared by every decoding engine.

A packet that travelled in a tunnel is diagnosed as its innermost TCP segment; the tunnel it
came in is kept as a short text, the *tunnel context* (`TcpSegment.tunnel`), which is part of
the connection key. Both directions of a connection must get the same context, so it names the
outer endpoints as an unordered pair and only identifiers that both directions carry (VNI, GRE
key, ERSPAN session, PPPoE session). MPLS labels differ per direction and are not part of it.

Both `tcpdiag.decode` (the native decoder) and `tcpdiag.tshark_engine` build contexts here, so
the two engines key connections identically.
"""

from __future__ import annotations

from typing import Final

VXLAN_PORT: Final = 4789  # IANA; Linux's old default 8472 can be added with --vxlan-port
GENEVE_PORT: Final = 6081
TEREDO_PORT: Final = 3544
L2TP_PORT: Final = 1701  # L2TPv2 (RFC 2661) over UDP: PPP sessions from an access concentrator
GTP_U_PORT: Final = 2152  # GTP-U (3GPP TS 29.281): a mobile network's user plane

# UDP ports of tunnels that may carry TCP but that no engine of tcpdiag decodes natively: frames
# on them are reported as undecodable (with the name) rather than silently skipped.
UNSUPPORTED_UDP: Final = {
    4790: "VXLAN-GPE (UDP 4790)",
}

# Kinds, as they appear at the start of a context and in DecodeStats.encapsulations.
VXLAN: Final = "vxlan"
GENEVE: Final = "geneve"
GRE: Final = "gre"
ERSPAN: Final = "erspan"
IPIP: Final = "ipip"  # IPv4 or IPv6 directly in IPv4 or IPv6 (protocols 4 and 41)
TEREDO: Final = "teredo"
L2TP: Final = "l2tp"
GTP_U: Final = "gtp-u"
PPPOE: Final = "pppoe"
MPLS: Final = "mpls"  # counted, never part of a context (labels differ per direction)
# IPv6 with a routing header carrying an IP packet (SRv6, RFC 8986 H.Encaps): counted, never part
# of a context (the outer addresses and segment list steer it, and differ per direction).
SRV6: Final = "srv6"

SEPARATOR: Final = " / "  # between nested tunnels, outermost first


def context_text(outer: str, kind: str, a: str, b: str, ident: str = "") -> str:
    """The context of a tunnel of `kind` between addresses a and b (either order), inside
    `outer` (the context of the tunnels around it, "" if none)."""
    lo, hi = (a, b) if a <= b else (b, a)
    text = f"{kind} {lo}<->{hi}" + (f" {ident}" if ident else "")
    return outer + SEPARATOR + text if outer else text


def pppoe_text(outer: str, session: int) -> str:
    """PPPoE has no IP endpoints of its own: the session id names it."""
    text = f"{PPPOE} session 0x{session:04x}"
    return outer + SEPARATOR + text if outer else text


def kind_of(context: str) -> str:
    """The innermost tunnel's kind, for counting."""
    return context.rsplit(SEPARATOR, 1)[-1].split(" ", 1)[0]
