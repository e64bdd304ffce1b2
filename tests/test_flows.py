"""Connection records (tcpdiag.flows) made in bulk are the ones made one connection at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tcpdiag.attempts import HeldSyns, endpoints_hash
from tcpdiag.columns import ipv4_int
from tcpdiag.flows import FlowRecord
from tcpdiag.packets import SYN, SynOptions, TcpSegment
from tcpdiag.tracker import RetiredSyns, lone_syn_connection


@pytest.mark.parametrize("zeek", [False, True], ids=["analyze", "with Zeek's view"])
def test_records_of_unanswered_syns_are_those_of_their_connections(zeek: bool) -> None:
    store = HeldSyns()
    syns = [
        TcpSegment(
            frame=k + 1,
            time=1_700_000_000.5 + k,
            src=f"198.51.100.{k}",
            dst="192.0.2.1",
            sport=40_000 + k,
            dport=80 if k % 2 else 443,
            seq=k * 1000,
            ack=0,
            flags=SYN,
            window=1024,
            payload_len=0,
            ttl=64,
            ip_version=4,
            ip_id=k,
            syn_options=SynOptions(mss=1460) if k % 3 else None,
        )
        for k in range(1, 7)
    ]
    for conn_id, syn in enumerate(syns, 1):
        src, dst = ipv4_int(syn.src), ipv4_int(syn.dst)
        options = store.options_index(syn.syn_options)
        assert options is not None
        key = endpoints_hash(src, syn.sport, dst, syn.dport)
        store.add(key, syn, src, dst, options, conn_id, syn.time)
    columns = store.take_columns()
    assert columns is not None
    retired = RetiredSyns(columns, zeek)
    expected = [FlowRecord.from_connection(conn) for conn in retired.connections()]
    assert [[record] for record in FlowRecord.unanswered(retired)] == expected
    assert [lone_syn_connection(held, zeek).ref.conn_id for held in columns.held()] == list(
        np.arange(1, 7)
    )


def test_an_unanswered_syn_tells_the_capture_quality_nothing() -> None:
    """Why bare SYNs retired together skip CaptureQuality.observe_connection (analyze.Pipeline):
    a connection of one SYN changes none of its counts."""
    from dataclasses import asdict

    from tcpdiag.attempts import HeldSyn
    from tcpdiag.quality import CaptureQuality

    syn = TcpSegment(
        frame=1, time=1_700_000_000.0, src="198.51.100.1", dst="192.0.2.1", sport=40_000,
        dport=80, seq=1, ack=0, flags=SYN, window=1024, payload_len=0, ttl=64, ip_version=4,
        ip_id=7, syn_options=SynOptions(mss=1460),
    )  # fmt: skip
    quality = CaptureQuality()
    before = asdict(quality)
    for zeek in (False, True):
        quality.observe_connection(lone_syn_connection(HeldSyn(1, syn, syn.time), zeek))
    assert asdict(quality) == before
