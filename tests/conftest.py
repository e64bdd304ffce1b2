"""Settings of the whole test session."""

from __future__ import annotations

import pytest

# Tests that take minutes on their own are started first, so that with a worker per core
# (pytest-xdist, pyproject.toml) the others run beside them rather than after them.
LONGEST = ("tests/test_fuzz.py::test_mutated_captures_never_crash",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid not in LONGEST)  # (stable: the rest keep order)
