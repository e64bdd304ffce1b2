"""The compact store of bare SYNs (tcpdiag.attempts): what goes in comes out unchanged, is found
either way round and never mistaken for another 4-tuple, and leaves in order of arrival."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from tcpdiag import attempts
from tcpdiag.attempts import HeldSyns, endpoints_hash, pair_hash, pair_hash_one
from tcpdiag.columns import ipv4_int, ipv4_text
from tcpdiag.packets import SYN, SynOptions, TcpSegment


def test_one_pair_hashes_as_the_arrays_do() -> None:
    rng = random.Random(3)
    edge = [0, 1, (1 << 48) - 1, 0x0A000001 << 16 | 443]
    pairs = [(a, b) for a in edge for b in edge]
    pairs += [(rng.randrange(1 << 48), rng.randrange(1 << 48)) for _ in range(2000)]
    lo = np.array([a for a, _ in pairs], np.int64)
    hi = np.array([b for _, b in pairs], np.int64)
    assert pair_hash(lo, hi).tolist() == [pair_hash_one(a, b) for a, b in pairs]


def _syn(k: int, time: float = 1_700_000_000.0) -> TcpSegment:
    return TcpSegment(
        frame=k + 1,
        time=time + k * 1e-3,
        src=f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}",
        dst="192.0.2.7",
        sport=1024 + k % 50_000,
        dport=443,
        seq=(k * 2_654_435_761) & 0xFFFFFFFF,
        ack=k & 0xFFFF,
        flags=SYN,
        window=64_240,
        payload_len=0,
        ttl=64 - k % 3,
        ip_version=4,
        ip_id=k & 0xFFFF,
        syn_options=SynOptions(mss=1460 - k % 2, window_scale=7, sack_permitted=True),
    )


def _hold(store: HeldSyns, syn: TcpSegment, conn_id: int) -> int:
    src, dst = ipv4_int(syn.src), ipv4_int(syn.dst)
    key = endpoints_hash(src, syn.sport, dst, syn.dport)
    options = store.options_index(syn.syn_options)
    assert options is not None and not store.holds_key(key)
    store.add(key, syn, src, dst, options, conn_id, syn.time + 0.5)
    return key


def _find(store: HeldSyns, syn: TcpSegment, reverse: bool = False) -> int:
    src, dst = ipv4_int(syn.src), ipv4_int(syn.dst)
    key = endpoints_hash(src, syn.sport, dst, syn.dport)
    if reverse:
        return store.find(key, dst, syn.dport, src, syn.sport)
    return store.find(key, src, syn.sport, dst, syn.dport)


@pytest.fixture(params=["merged often", "merged rarely"])
def small_bounds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merges into the sorted index and compactions after a handful of entries, or never."""
    if request.param == "merged often":
        monkeypatch.setattr(attempts, "_RECENT_MAX", 5)
        monkeypatch.setattr(attempts, "_COMPACT_MIN", 7)


def test_syns_come_back_as_they_went_in_and_in_order(small_bounds: None) -> None:
    store = HeldSyns()
    syns = [_syn(k) for k in range(300)]
    for k, syn in enumerate(syns):
        _hold(store, syn, conn_id=k + 1)
    assert len(store) == 300
    # Anything else on the 4-tuple (a SYN-ACK: the other way round) finds its SYN.
    promoted = {k for k in range(0, 300, 7)}
    for k in sorted(promoted):
        at = _find(store, syns[k], reverse=k % 2 == 1)
        assert at >= 0
        held = store.take(at)
        assert (held.conn_id, held.syn, held.now) == (k + 1, syns[k], syns[k].time + 0.5)
        assert _find(store, syns[k]) == -1  # gone
    rest = [held for held in store.drain()]
    assert [h.conn_id for h in rest] == [k + 1 for k in range(300) if k not in promoted]
    assert all(h.syn == syns[h.conn_id - 1] for h in rest)
    assert len(store) == 0 and store.oldest() is None


def test_a_colliding_key_is_a_miss_not_another_connection() -> None:
    store = HeldSyns()
    first, second = _syn(1), _syn(2)
    key = _hold(store, first, conn_id=1)
    src, dst = ipv4_int(second.src), ipv4_int(second.dst)
    assert store.find(key, src, second.sport, dst, second.dport) == -1
    assert store.holds_key(key)  # (so the tracker holds the second one elsewhere)


def test_bulk_entries_and_due_ones(small_bounds: None) -> None:
    store = HeldSyns()
    for k in range(20):
        _hold(store, _syn(k), conn_id=k + 1)
    n = 50
    rng = np.random.default_rng(5)
    rows: dict[str, Any] = {
        "src": rng.integers(1, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
        "dst": np.full(n, ipv4_int("192.0.2.9"), np.uint32),
        "sport": np.arange(n, dtype=np.uint16) + 1000,
        "dport": np.full(n, 80, np.uint16),
        "seq": np.arange(n, dtype=np.uint32), "ack": np.zeros(n, np.uint32),
        "flags": np.full(n, SYN, np.uint8), "window": np.full(n, 1024, np.uint16),
        "ttl": np.full(n, 255, np.uint8), "ip_id": np.zeros(n, np.uint16),
        "frame": np.arange(n) + 100, "time": 1_700_000_100.0 + np.arange(n),
        "now": 1_700_000_100.0 + np.arange(n), "conn_id": np.arange(n) + 21,
        "options": np.full(n, store.options_index(None), np.uint16),
    }  # fmt: skip
    given = dict(rows)
    store.extend(given, since_frame=100)
    assert not given  # (each column is freed once held)
    assert len(store) == 70
    bulk = rows["src"].tolist()
    assert store.find(
        endpoints_hash(bulk[9], 1009, int(rows["dst"][0]), 80), bulk[9], 1009,
        int(rows["dst"][0]), 80,
    ) >= 0  # fmt: skip
    # Due: the first 20 (held since 1_700_000_000) and bulk ones up to 1_700_000_104 by 110.
    taken = store.take_columns(now=1_700_000_110.0, idle=6.0)
    assert taken is not None
    assert taken.rows["conn_id"].tolist() == list(range(1, 26))
    held = list(taken.held())
    assert held[0].syn == _syn(0) and held[0].now == _syn(0).time + 0.5
    assert held[-1].syn.syn_options is None and held[-1].syn.src == ipv4_text({}, bulk[4])
    assert store.take_columns(now=1_700_000_110.0, idle=6.0) is None  # nothing else is due
    rest = store.take_columns()
    assert rest is not None and rest.rows["conn_id"].tolist() == list(range(26, 71))
    assert len(store) == 0


def test_bulk_entries_take_their_places_in_capture_order(small_bounds: None) -> None:
    """SYNs added one by one while a window was read, then the window's own in bulk: the store
    puts them in the order of their frames, as if each had come at its frame (the oldest is the
    first to be evicted), and still finds every one."""
    store = HeldSyns()
    early = [_syn(k) for k in range(10)]  # frames 1-10, before the window
    for k, syn in enumerate(early):
        _hold(store, syn, conn_id=k + 1)
    store.take(_find(store, early[3]))  # (a dead entry before the window)
    one_by_one = [_syn(k) for k in (14, 17, 20)]  # frames 15, 18, 21: in the window
    for syn in one_by_one:
        _hold(store, syn, conn_id=100 + syn.frame)
    bulk = [_syn(k) for k in (11, 12, 15, 16, 19, 22)]  # frames 12, 13, 16, 17, 20, 23
    numbers = [(ipv4_int(s.src), ipv4_int(s.dst)) for s in bulk]
    rows: dict[str, Any] = {
        "src": np.array([a for a, _ in numbers], np.uint32),
        "dst": np.array([b for _, b in numbers], np.uint32),
        "conn_id": np.array([100 + s.frame for s in bulk]),
        "now": np.array([s.time + 0.5 for s in bulk]),
        "options": np.array([store.options_index(s.syn_options) for s in bulk], np.uint16),
        "ip_id": np.array([s.ip_id for s in bulk], np.uint16),
    }
    for name in ("sport", "dport", "seq", "ack", "flags", "window", "ttl", "frame", "time"):
        rows[name] = np.array([getattr(s, name) for s in bulk])
    store.extend(rows, since_frame=11)
    everything = sorted([*early[:3], *early[4:], *one_by_one, *bulk], key=lambda s: s.frame)
    for syn in everything:
        assert _find(store, syn, reverse=True) >= 0, syn.frame
    oldest = store.oldest()
    assert oldest is not None and oldest[1] == early[0].time
    assert [held.syn for held in store.drain()] == everything
