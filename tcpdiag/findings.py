"""Findings: what tcpdiag concluded about one connection, as plain data any reporter can use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC; a timestamp no calendar can hold (a corrupt capture) stays a number."""
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.6f}"
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AppView:
    """What one side's application observed."""

    errno: str | None  # errno name, e.g. "ECONNRESET"; None when the app saw nothing
    linux: str = ""  # the message strerror() gives on Linux
    windows: str = ""  # the Winsock error a Windows program would get
    when: str = ""  # on which call it shows, or why nothing shows

    def short(self) -> str:
        return self.errno or "nothing"


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    frame: int
    time: float
    what: str


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

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape; key names are a stable interface (see README)."""
        data = asdict(self)
        data["time"] = iso_time(self.time)
        data["epoch"] = self.time
        for item in data["evidence"]:
            item["epoch"] = item["time"]
            item["time"] = iso_time(item["time"])
        return data
