"""`--dask`: the same report as a local run, from a real 2-worker LocalCluster on loopback; and
a one-line error naming the extra when dask is not installed.

The cluster and every run that talks to it are separate processes: a Dask client leaves
threads behind in its process, and this one must stay clean (tests/test_bounds.py checks that
the analysis makes no reference cycles)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
runner = CliRunner()
HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(
    not HAVE_DASK, reason="dask is not installed: pip install '.[dask]' (CI installs it)"
)

CLUSTER = """
import sys
from distributed import LocalCluster
cluster = LocalCluster(
    n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
)
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the test closes it
cluster.close()
"""


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _analyze(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpdiag", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@needs_dask
def test_dask_gives_the_local_report(scheduler: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    files = [*map(str, sorted(SAMPLES.glob("*.pcap"))[:12]), str(bad), "/vanished.pcap"]
    local = _analyze("-f", "json", "-q", "-j", "1", *files)
    remote = _analyze("-f", "json", "-q", "--dask", scheduler, *files)
    assert remote.returncode == local.returncode == 2
    assert remote.stdout == local.stdout
    doc = json.loads(remote.stdout)
    assert len(doc["captures"]) == len(files)
    assert sum(len(c["findings"]) for c in doc["captures"]) > 0
    assert remote.stderr == local.stderr


@needs_dask
def test_an_unreachable_scheduler_is_one_line() -> None:
    # Nothing listens on port 9 (discard).
    result = _analyze(
        "--dask", "tcp://127.0.0.1:9", str(SAMPLES / "mixed.pcap"), TCPDIAG_DASK_CONNECT_TIMEOUT="1"
    )
    assert result.returncode == 2
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
