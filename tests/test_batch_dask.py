"""`--dask`: the same report as a local run, from a real 2-worker LocalCluster on loopback; and
a one-line error naming the extra when dask is not installed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
runner = CliRunner()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    distributed = pytest.importorskip(
        "distributed", reason="dask is not installed: pip install '.[dask]' (CI installs it)"
    )
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_gives_the_local_report(scheduler: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    files = [*map(str, sorted(SAMPLES.glob("*.pcap"))[:12]), str(bad), "/vanished.pcap"]
    local = runner.invoke(app, ["analyze", "-f", "json", "-q", "-j", "1", *files])
    remote = runner.invoke(app, ["analyze", "-f", "json", "-q", "--dask", scheduler, *files])
    assert remote.exit_code == local.exit_code == 2
    assert remote.stdout == local.stdout
    doc = json.loads(remote.stdout)
    assert len(doc["captures"]) == len(files)
    assert sum(len(c["findings"]) for c in doc["captures"]) > 0
    assert remote.stderr == local.stderr


def test_an_unreachable_scheduler_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed", reason="dask is not installed")
    from tcpdiag import dask_runner

    monkeypatch.setattr(dask_runner, "CONNECT_TIMEOUT", "1s")  # nothing listens on port 9
    result = runner.invoke(
        app, ["analyze", "--dask", "tcp://127.0.0.1:9", str(SAMPLES / "mixed.pcap")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpdiag: error: cannot reach the Dask scheduler")
    assert result.stderr.count("\n") == 1


def test_without_dask_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    result = runner.invoke(
        app, ["analyze", "--dask", "tcp://127.0.0.1:8786", str(SAMPLES / "mixed.pcap")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "tcpdiag: error: --dask needs Dask distributed: pip install 'tcpdiag[dask]'\n"
    )
