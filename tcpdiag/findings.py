"""Findings: what tcpdiag concluded about one connection, as plain data any reporter can use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from tcpdiag.events import Evidence


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC; a timestamp no calendar can hold (a corrupt capture) stays a number."""
    # datetime.fromtimestamp's own split (CPython's _PyTime_ObjectToTimeval, ROUND_HALF_EVEN),
    # so that the calendar part of each second is formatted once: reports give every finding,
    # evidence item and flow a time, most of them within a few seconds of each other.
    if 0.0 <= epoch < _ISO_FAST_BELOW:  # (false for NaN)
        # For a non-negative float, epoch - floor(epoch) is exact: modf's fraction.
        whole = math.floor(epoch)
        micro = round((epoch - whole) * 1e6)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
    elif epoch != epoch or epoch in (float("inf"), float("-inf")):
        return _iso_time_slow(epoch)
    else:
        fraction, whole_float = math.modf(epoch)
        micro = round(fraction * 1e6)
        whole = int(whole_float)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        elif micro < 0:
            whole, micro = whole - 1, micro + 1_000_000
    second = _ISO_SECONDS.get(whole)
    if second is None:
        try:
            moment = datetime.fromtimestamp(whole, UTC)
        except (OverflowError, OSError, ValueError):
            return f"{epoch:.6f}"
        if len(_ISO_SECONDS) >= _ISO_SECONDS_KEPT:
            _ISO_SECONDS.clear()
        second = _ISO_SECONDS[whole] = moment.isoformat(timespec="seconds")[:-6]
    return f"{second}.{micro:06d}Z"


def _iso_time_slow(epoch: float) -> str:
    """iso_time as datetime gives it, for what the fast split does not take (and the tests)."""
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.6f}"
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


_ISO_SECONDS: dict[int, str] = {}  # whole epoch second -> "YYYY-MM-DDTHH:MM:SS"
_ISO_FAST_BELOW = 2.0**52  # beyond, a float has no fraction (and no calendar holds it)
_ISO_SECONDS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class AppView:
    """What one side's application observed."""

    errno: str | None  # errno name, e.g. "ECONNRESET"; None when the app saw nothing
    linux: str = ""  # the message strerror() gives on Linux
    windows: str = ""  # the Winsock error a Windows program would get
    when: str = ""  # on which call it shows, or why nothing shows
    # The side's operating-system family as its TTL suggests (linux, windows, network-device,
    # unknown): a Windows program reports the `windows` error, not the Linux one.
    os: str = "unknown"
    # What it saw when that is no errno ("EOF": its recv() returned 0); "" with an errno, or
    # when it saw nothing.
    label: str = ""

    def short(self) -> str:
        return self.errno or self.label or "nothing"

    def __reduce__(self) -> tuple[type[AppView], tuple[str | None, str, str, str, str, str]]:
        # Findings wait in a pickled spool (tcpdiag.spool); the generic pickling of frozen
        # slotted dataclasses looks their fields up again for every object, several times per
        # finding: a plain tuple of values is several times cheaper.
        return (AppView, (self.errno, self.linux, self.windows, self.when, self.os, self.label))


class Cause(NamedTuple):
    """A likely cause of a finding, as its rule words it for this connection. (A named tuple:
    a finding makes about two, and a frozen dataclass's __init__ costs several times more.)"""

    id: str
    text: str
    confidence: float

    def __reduce__(self) -> tuple[type[Cause], tuple[object, ...]]:
        return (Cause, tuple(self))  # see Evidence.__reduce__


# A finding's evidence is its event's (frame, time, what): the same immutable items, not copies.
EvidenceItem = Evidence


@dataclass(slots=True)
class Finding:
    category: str
    rule: str
    title: str
    client: str
    server: str
    initiator_known: bool
    frames: list[int]
    time: float  # time of the frame the finding is about
    evidence: list[EvidenceItem]
    client_state: str
    server_state: str
    client_sees: AppView
    server_sees: AppView
    explanation: str
    cause: Cause | None
    confidence: float
    alternatives: list[Cause]
    next_step: str
    references: list[str]
    conn_id: int
    community_id: str
    id: str = ""  # "F1", "F2", ... in report order within one capture
    facts: dict[str, Any] = field(default_factory=dict)
    # Did an application get an error because of this? "error_seen", "none" (nobody was told
    # anything), or "unknown" (the capture cannot tell).
    impact: str = "none"
    conn_first_time: float | None = None  # the connection's first packet, for relative times
    tunnel: str = ""  # the tunnel it was carried in (outer endpoints, VNI/key), "" if none

    def to_dict(self, head: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON shape; key names are a stable interface (see README). Spelled out rather
        than dataclasses.asdict, which deep-copies every value and costs more than the
        analysis of the connection. `head`: keys to put first (a JSON Lines record's type,
        tool and capture), cheaper than copying the whole record after them."""
        return {
            **(head or {}),
            "category": self.category,
            "rule": self.rule,
            "title": self.title,
            "client": self.client,
            "server": self.server,
            "initiator_known": self.initiator_known,
            "frames": list(self.frames),
            "time": iso_time(self.time),
            "evidence": [
                {"frame": e.frame, "time": iso_time(e.time), "what": e.what, "epoch": e.time}
                for e in self.evidence
            ],
            "client_state": self.client_state,
            "server_state": self.server_state,
            "client_sees": _app_view(self.client_sees),
            "server_sees": _app_view(self.server_sees),
            "explanation": self.explanation,
            "cause": _cause(self.cause) if self.cause is not None else None,
            "confidence": self.confidence,
            "alternatives": [_cause(c) for c in self.alternatives],
            "next_step": self.next_step,
            "references": list(self.references),
            "conn_id": self.conn_id,
            "community_id": self.community_id,
            "id": self.id,
            "facts": dict(self.facts),
            "impact": self.impact,
            "tunnel": self.tunnel,
            "epoch": self.time,
        }


class FindingFacts(Protocol):
    """What the passes over a capture's findings that only count, filter and group them read
    (--fail-on, the batch summary, which groups are aggregated): a `Finding`, or its
    `FindingDigest`."""

    @property
    def category(self) -> str: ...
    @property
    def client(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def impact(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def facts(self) -> Mapping[str, Any]: ...


# The facts a digest keeps: those the aggregated kinds group by (tcpdiag.aggregate) and the
# digest reporter counts aborting hosts by (tests/test_aggregate.py fails without them).
DIGEST_FACTS = ("sender", "aborter", "icmp_source")


def digest_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a finding that a digest keeps (DIGEST_FACTS)."""
    return {name: facts[name] for name in DIGEST_FACTS if name in facts}


@dataclass(slots=True)
class FindingDigest:
    """The few fields of a finding that counting, filtering and grouping read
    (`FindingFacts`): a capture's findings are read several times before and after the report
    is written, and reading these is several times cheaper than whole findings."""

    category: str
    client: str
    server: str
    time: float
    impact: str
    confidence: float
    first_frame: list[int]  # the first of `frames` (empty if none): the report order's key
    facts: dict[str, Any]

    @staticmethod
    def of(finding: Finding | EncodedFinding) -> FindingDigest:
        return FindingDigest(
            finding.category,
            finding.client,
            finding.server,
            finding.time,
            finding.impact,
            finding.confidence,
            finding.frames[:1],
            digest_facts(finding.facts),
        )


@dataclass(slots=True)
class EncodedFinding:
    """A finding as the JSON reports write it, made when it is spooled (see
    `tcpdiag.spool.FindingSpool`'s `encode`): its JSON text, in the two parts around its `id`
    (known only in report order), and the few fields that filtering, counting and aggregating
    read (`FindingFacts`, what each side saw, its frames). A report of many findings turned
    them into JSON after reading each back from the spool; spooling that text instead takes
    the same JSON once and reads back a string."""

    category: str
    client: str
    server: str
    time: float
    impact: str
    confidence: float
    frames: list[int]
    facts: dict[str, Any]  # only DIGEST_FACTS
    client_sees: AppView
    server_sees: AppView
    before_id: str  # the JSON object's members before "id", without the opening brace
    after_id: str  # its members after "id" (starting with a comma), without the closing brace
    id: str = ""

    def json(self, head: str = "", tail: str = "") -> str:
        """The finding's JSON object: `head` (members, each followed by a comma) first,
        `tail` (members, each preceded by a comma) last."""
        return f'{{{head}{self.before_id},"id":"{self.id}"{self.after_id}{tail}}}'


def _app_view(view: AppView) -> dict[str, Any]:
    return {
        "errno": view.errno,
        "linux": view.linux,
        "windows": view.windows,
        "when": view.when,
        "os": view.os,
        "label": view.label,
    }


def _cause(cause: Cause) -> dict[str, Any]:
    return {"id": cause.id, "text": cause.text, "confidence": cause.confidence}
