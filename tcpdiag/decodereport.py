"""What a report says about decoding: every frame that could not be read is counted, with why.

Shared by every engine (tcpdiag.analyze for the native decoder, tcpdiag.engines for tshark), so
`CaptureReport.decode` has the same keys and the warnings the same wording whichever read the
capture.
"""

from __future__ import annotations

from typing import Any, Final

from tcpdiag.decode import DecodeStats

# Every report warns when this share of the frames could not be decoded.
INCOMPLETE_SHARE: Final = 0.10
_TUNNELS_NAMED: Final = 5  # in the warning; `decode.tunnels` has them all


def frames(count: int) -> str:
    return f"{count} frame{'s' * (count != 1)}"


def share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.0f} %)"


def describe_decode(
    path: str, stats: DecodeStats, engine: str, warnings: list[str]
) -> dict[str, Any]:
    """The report's `decode` section; appends a warning for each reason frames were not
    decoded, for a diagnosis that may be incomplete, and naming the tunnels."""
    for linktype, count in sorted(stats.unknown_linktypes.items()):
        warnings.append(f"{path}: {frames(count)} with unsupported link type {linktype} skipped")
    for name, count in sorted(stats.unsupported.items()):
        warnings.append(
            f"{path}: {frames(count)} in {name} not decoded (tcpdiag does not look inside it)"
        )
    if stats.undecodable:
        cut = f"; {stats.truncated} cut short by the snaplen" if stats.truncated else ""
        warnings.append(
            f"{path}: {frames(stats.undecodable)} with malformed or truncated headers "
            f"skipped (first: frame {stats.first_undecodable}{cut})"
        )
    missed = stats.not_decoded
    if stats.frames and missed >= INCOMPLETE_SHARE * stats.frames:
        hint = (
            "; --engine pyshark reads them with Wireshark's dissectors (needs tshark)"
            if engine == "native"
            else ""
        )
        warnings.append(
            f"{path}: {share(missed, stats.frames)} of the frames could not be decoded: "
            f"the diagnosis may be incomplete{hint}"
        )
    if stats.tunnels:
        # Most frames first; names break ties, so every path and engine words it alike.
        ranked = sorted(stats.tunnels.items(), key=lambda kv: (-kv[1], kv[0]))
        named = ", ".join(f"{name} ({frames(n)})" for name, n in ranked[:_TUNNELS_NAMED])
        more = len(ranked) - _TUNNELS_NAMED
        warnings.append(
            f"{path}: connections inside tunnels are diagnosed by their inner TCP, one "
            f"connection per tunnel: {named}" + (f" and {more} more" if more > 0 else "")
        )
    if stats.mptcp_syns:
        warnings.append(
            f"{path}: {stats.mptcp_syns} SYN{'s' * (stats.mptcp_syns != 1)} carry Multipath TCP "
            "options (MP_CAPABLE/MP_JOIN): each MPTCP subflow is diagnosed as a connection of "
            "its own. A RST with MP_FASTCLOSE (or the RST answering an ACK with it) aborts the "
            "MPTCP connection; one with other MPTCP options, or on a subflow added by MP_JOIN, "
            "ends that subflow only (subflow_reset); a subflow added by MP_JOIN that nothing "
            "answers, whose data stalls or that an ICMP error hits fails alone (subflow_failed); "
            "a plain RST on a first subflow is judged as TCP's, though the application sees it "
            "only if no other subflow carries on"
        )
    return {
        "engine": engine,
        "tcp": stats.tcp,
        "icmp_errors": stats.icmp_errors,
        "other": stats.other,
        "undecodable": stats.undecodable,
        "truncated": stats.truncated,
        "unknown_linktypes": {str(k): v for k, v in sorted(stats.unknown_linktypes.items())},
        "unsupported": dict(sorted(stats.unsupported.items())),
        "not_decoded": missed,
        "encapsulations": dict(sorted(stats.encapsulations.items())),
        "tunnels": dict(sorted(stats.tunnels.items())),
        "mptcp_syns": stats.mptcp_syns,
    }
