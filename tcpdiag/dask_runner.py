"""Captures as tasks on an existing Dask distributed cluster (`--dask SCHEDULER`).

Each input is one task running the same function as a local worker
(tcpdiag.batch.analyse_input), so results are identical to a local run; the workers must see
the captures at the same paths. Results come back in completion order, like run_local's.
Standard input cannot travel to a cluster: it is analysed here, in this process.

Needs the optional extra: pip install 'tcpdiag[dask]'. TCPDIAG_DASK_CONNECT_TIMEOUT (seconds,
default 10) bounds the wait for the scheduler.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any

from tcpdiag.analyze import CaptureReport
from tcpdiag.batch import FileResult, WorkerSettings, analyse_input, internal_error
from tcpdiag.driver import DaskUnavailable
from tcpdiag.inputs import CaptureInput

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds


def _connect_timeout() -> float:
    try:
        return float(os.environ.get("TCPDIAG_DASK_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT))
    except ValueError:
        return DEFAULT_CONNECT_TIMEOUT


def run_dask(
    inputs: Sequence[CaptureInput], settings: WorkerSettings, address: str
) -> Generator[FileResult, None, None]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DaskUnavailable(
            "--dask needs Dask distributed: pip install 'tcpdiag[dask]'"
        ) from None
    try:
        client = Client(address, timeout=_connect_timeout(), set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    futures: dict[Any, int] = {}
    try:
        for index, item in enumerate(inputs):
            if item.is_stdin:
                continue
            # pure=False: a fresh key per task, so the same file twice (or two tcpdiag runs on
            # one cluster) are separate tasks; retries=0: a capture that kills its worker is
            # reported, not retried elsewhere.
            future = client.submit(analyse_input, index, item, settings, pure=False, retries=0)
            futures[future] = index
        for index, item in enumerate(inputs):
            if item.is_stdin:
                yield analyse_input(index, item, settings, portable=False)
        for future in as_completed(list(futures), loop=client.loop):
            index = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # the task failed (a worker died): that capture's error
                if settings.debug:
                    raise
                name = inputs[index].name
                yield FileResult(index, CaptureReport(path=name, error=_task_error(name, exc)))
    finally:
        for future in futures:
            future.cancel()
        client.close()


def _task_error(name: str, exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return f"{name}: the Dask worker analysing it died (a crash, or out of memory?)"
    return internal_error(name, exc)
