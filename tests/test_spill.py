"""What goes to temporary files stays bounded, and a full temporary directory loses nothing."""

from __future__ import annotations

import dataclasses

import pytest
from flowbuilder import Capture, Conversation, FullDisk, findings

from tcpdiag import spool as spool_module
from tcpdiag import tracker as tracker_module
from tcpdiag.packets import ACK
from tcpdiag.spool import FindingSpool
from tcpdiag.tracker import IDLE_SPILL_SECONDS, FlowTable


def _largest_spill_file(compaction_bytes: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """20 connections, 15 times idle (so spilled to disk) and woken again: the largest the
    idle-connection file gets."""
    monkeypatch.setattr(tracker_module, "SPILL_COMPACT_BYTES", compaction_bytes)
    cap = Capture()
    convs = [Conversation(cap, client=("10.0.0.1", 40000 + i)) for i in range(20)]
    for conv in convs:
        conv.handshake()
    for _ in range(15):  # each round: everybody idle for a while, then one segment each
        convs[0].send("c", ACK, dt=IDLE_SPILL_SECONDS + 1)
        for conv in convs[1:]:
            conv.send("c", ACK)
    table = FlowTable(zeek=False)
    largest = 0
    for packet in cap.packets:
        table.advance(packet.time)
        table.feed(packet)
        list(table.retire_due(check=True))
        largest = max(largest, table.spill_bytes)
    assert table.live_count == 20
    return largest


def test_the_idle_spill_file_is_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections that sleep (to disk), wake and sleep again are written again each time; the
    file is rewritten with only the sleeping ones once half of it is garbage, so it follows
    the idle connections (one round's entries, at most twice), not the length of the capture."""
    compacted = _largest_spill_file(1 << 10, monkeypatch)
    growing = _largest_spill_file(1 << 40, monkeypatch)  # a threshold never reached
    assert growing > 10 * compacted / 2, "without compaction the file grows round by round"
    assert compacted * 7 < growing


def test_a_full_temporary_directory_keeps_every_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = Capture()
    for i in range(30):
        conv = Conversation(cap, client=("10.0.0.1", 41000 + i))
        conv.handshake()
        conv.data("c", 10)
        conv.data("s", 10)
        conv.rst("s", dt=1.0)
    made = findings(cap)
    assert len(made) == 30
    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", FullDisk)
    kept = FindingSpool(memory_limit=8)
    for finding in made:
        kept.extend([finding])
    assert kept.spill_failed.startswith("findings kept in memory: No space left on device")
    assert len(kept) == 30
    assert [f.id for f in kept] == [f"F{n}" for n in range(1, 31)]


def test_findings_come_back_from_the_spool_exactly() -> None:
    """Findings wait on disk pickled (with their own compact pickling of the small parts)."""
    cap = Capture()
    for i in range(12):
        conv = Conversation(cap, client=("10.0.0.1", 42000 + i))
        conv.handshake()
        conv.data("c", 10)
        conv.rst("s", dt=1.0)
    made = findings(cap)
    spool = FindingSpool(memory_limit=4)
    spool.extend(made)
    back = [dataclasses.replace(f, id="") for f in spool]  # ids are given on the way out
    expected = [dataclasses.replace(f, id="") for f in made]
    assert back == sorted(expected, key=lambda f: (f.time, f.frames[:1]))
    assert all(f.evidence and f.client_sees.os == "linux" for f in back)
