"""The code stays ruff clean and type-checks with mypy (settings in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(module: str) -> list[str]:
    """The command that runs `module` as installed beside this Python (the pinned version of
    the test extra), whether or not its virtual environment is on PATH."""
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: pip install '.[test]'")
    return [sys.executable, "-m", module]


def test_ruff_check_is_clean() -> None:
    paths = [p for p in ("tcpdiag", "tests", "samples", "bench") if (ROOT / p).is_dir()]
    proc = subprocess.run(
        [*_tool("ruff"), "check", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = subprocess.run(
        [*_tool("mypy"), "tcpdiag"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
