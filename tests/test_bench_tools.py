"""The benchmark generators (bench/) write readable captures whose ground truth is right.

Every matrix shape of bench/make_capture.py is written at a tiny size, and tcpdiag's findings on
it must equal the injected failures connection by connection; every adversarial shape of
bench/adversarial.py is written at a tiny size and must read back with the packet count the
generator claims, correct checksums, and the timestamps in order.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import adversarial  # noqa: E402
import groundtruth  # noqa: E402
import make_capture  # noqa: E402

MATRIX_PACKETS = 2_500
ADVERSARIAL_SCALE = 0.002


def _tcpdiag_json(paths: list[Path], *options: str) -> dict:
    """The report with every finding: JSON Lines, read back as the bench tools read it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = ["analyze", "--format", "jsonl", *options, *map(str, paths)]
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", *command],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return groundtruth.parse_report(proc.stdout.decode())


@pytest.fixture(scope="module")
def matrix_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("matrix")
    infos = {}
    for name, (_, knobs, _) in make_capture.SHAPES.items():
        infos[name] = make_capture.generate(
            MATRIX_PACKETS, out / f"{name}.pcap", 1, knobs.rate, knobs, shape=name
        )
    return infos


def test_default_capture_is_unchanged(tmp_path: Path) -> None:
    """Without knobs the generator writes the capture it always wrote (its bytes, by hash)."""
    info = make_capture.generate(3_000, tmp_path / "base.pcap", seed=1)
    assert info["packets"] == 3_008
    assert info["connections"] == 255
    assert "knobs" not in info
    digest = __import__("hashlib").sha256((tmp_path / "base.pcap").read_bytes()).hexdigest()
    assert digest.startswith("c84008bccb87"), digest


def test_matrix_shapes_are_readable_and_consistent(matrix_captures: dict[str, dict]) -> None:
    for name, info in matrix_captures.items():
        with open(info["path"], "rb") as f:
            times = [ts for ts, _ in dpkt.pcap.Reader(f)]
        assert len(times) == info["packets"], name
        assert times == sorted(times), name
        truth = groundtruth.load_truth(info["path"])
        assert len(truth["failures"]) == sum(truth["expected_findings"].values()), name
        assert truth["expected_findings"] == info["expected_findings"], name
    knobs_seen = {name: info.get("knobs", {}) for name, info in matrix_captures.items()}
    assert knobs_seen["base"] == {}
    assert matrix_captures["synflood_1m"]["flood_syns"] > MATRIX_PACKETS // 2
    assert matrix_captures["fail_0"]["failing_connections"] == 0
    assert matrix_captures["fail_50"]["failure_share"] > 0.3
    assert matrix_captures["ppc_10k"]["open_streams"] == 8
    assert matrix_captures["bad_server"]["scenarios"]["bad_server_reset"] > 0


def test_matrix_findings_match_the_ground_truth(matrix_captures: dict[str, dict]) -> None:
    paths = [Path(info["path"]) for info in matrix_captures.values()]
    report = _tcpdiag_json(paths)
    problems = {}
    for capture, (name, info) in zip(report["captures"], matrix_captures.items(), strict=True):
        check = groundtruth.compare(groundtruth.load_truth(info["path"]), capture)
        assert capture["packets"] == info["packets"], name
        if not check["exact"]:
            problems[name] = check["problems"]
    assert not problems, problems


def test_ipv6_and_vlan_frames(matrix_captures: dict[str, dict]) -> None:
    with open(matrix_captures["ipv6"]["path"], "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            # Only the nmap scanners (203.0.113.0/24) stay on IPv4.
            assert (
                isinstance(ip, dpkt.ip6.IP6)
                or ip.src[:3] == bytes([203, 0, 113])
                or (ip.dst[:3] == bytes([203, 0, 113]))
            )
    with open(matrix_captures["vlan"]["path"], "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            assert buf[12:16] == b"\x81\x00\x00\x64"


def test_numpy_frames_have_correct_checksums() -> None:
    frames = adversarial.tcp_frames(
        adversarial.ip("198.18.0.1"), adversarial.ip("10.0.0.1"), 1234, 443, 2**32 - 5, 7,
        adversarial.SYN | adversarial.ACK, 3, 512,
    )  # fmt: skip
    for row in frames:
        eth = dpkt.ethernet.Ethernet(row.tobytes())
        ip = eth.data
        raw = bytes(ip)
        assert dpkt.in_cksum(raw[:20]) == 0
        pseudo = raw[12:20] + struct.pack("!BBH", 0, 6, len(raw) - 20)
        assert dpkt.in_cksum(pseudo + raw[20:]) == 0
        assert ip.data.seq == 2**32 - 5
    for syn_header in (False, True):
        icmp = adversarial.icmp_frames(
            1, adversarial.ip("198.18.0.2"), 5, 4000, 99, 2, syn_header=syn_header
        )
        for row in icmp:
            raw = bytes(dpkt.ethernet.Ethernet(row.tobytes()).data)
            assert dpkt.in_cksum(raw[:20]) == 0
            assert dpkt.in_cksum(raw[20:]) == 0
            quoted_tcp = raw[48:]
            assert len(quoted_tcp) == (20 if syn_header else 8)
            assert not syn_header or quoted_tcp[13] == adversarial.SYN


def _pcapng_gz_packets(path: Path) -> int:
    with gzip.open(path, "rb") as f:
        data = f.read()
    count, off = 0, 0
    while off < len(data):
        kind, length = struct.unpack_from("<II", data, off)
        assert length >= 12 and length % 4 == 0
        assert struct.unpack_from("<I", data, off + length - 4)[0] == length
        count += kind == 6
        off += length
    return count


def test_adversarial_shapes_are_readable(tmp_path: Path) -> None:
    written = {}
    for shape in adversarial.SHAPES:
        path, packets = adversarial.capture(tmp_path, shape, ADVERSARIAL_SCALE)
        written[shape.name] = (path, packets)
        if shape.suffix == ".pcapng.gz":
            assert _pcapng_gz_packets(path) == packets
            continue
        with open(path, "rb") as f:
            reader = dpkt.pcap.Reader(f)
            if shape.name == "zero_tail":
                # The ordinary part, then records of zeros (a zero header is an empty record).
                records = list(reader)
                assert len(records) == packets and records[-1][1] == b""
                continue
            times = [ts for ts, _ in reader]
        assert len(times) == packets, shape.name
        assert times == sorted(times), shape.name
    report = _tcpdiag_json([written[n][0] for n in ("refused_scan", "unique_syns", "long_conn")])
    scan, syns, long_conn = report["captures"]
    n_scan = written["refused_scan"][1] // 2
    assert [f["category"] for f in scan["findings"]] == ["refused"] * n_scan
    assert syns["packets"] == written["unique_syns"][1] and syns["flows"] == syns["packets"]
    assert long_conn["packets"] == written["long_conn"][1] and long_conn["flows"] == 1


def test_adversarial_storms_are_summed_up_as_the_bench_expects(tmp_path: Path) -> None:
    """Each storm shape gets its aggregated finding, SYN flood summary or warning, counting
    every member (with a threshold for aggregation low enough for these tiny sizes)."""
    storms = {s.name: s.storm(ADVERSARIAL_SCALE) for s in adversarial.SHAPES}
    shapes = [adversarial.BY_NAME[name] for name, storm in storms.items() if storm is not None]
    assert {s.name for s in shapes} >= {
        "refused_scan",
        "reset_1ms",
        "unique_syns",
        "icmp_orphans",
        "icmp_rejects",
        "close_storm",
    }
    paths = [adversarial.capture(tmp_path, shape, ADVERSARIAL_SCALE)[0] for shape in shapes]
    report = _tcpdiag_json(paths, "--aggregate-over", "10")
    for shape, cap in zip(shapes, report["captures"], strict=True):
        storm = storms[shape.name]
        assert storm is not None and storm.count > 0
        assert storm.found(cap) == storm.count, (shape.name, storm, cap["aggregates"][:1])


def test_finding_costs_are_timed_stage_by_stage(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/findings.py times each stage of a finding (and a report per format) on a capture
    with findings, and refuses one without."""
    import findings as finding_bench

    sample = ROOT / "samples" / "mixed.pcap"
    assert finding_bench.main([str(sample), "--repeat", "1", "--formats", "jsonl,table"]) == 0
    out = capsys.readouterr().out
    stages = ["rules", "spool in", "spool out", "jsonl", "table", "total jsonl", "total table"]
    for stage in stages:
        assert any(line.startswith(stage + "  ") for line in out.splitlines()), stage
    quiet = ROOT / "samples" / "graceful_close.pcap"
    assert finding_bench.main([str(quiet), "--repeat", "1", "--formats", "jsonl"]) == 1
