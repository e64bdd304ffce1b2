"""`--engine pyshark` and `--engine auto`: the same analysis on packets decoded by tshark.

`tcpdiag.analyze.analyze_capture` runs the native decoder itself and hands any other engine
here. `pyshark` reads the capture with `tcpdiag.tshark_engine` and feeds its records to the same
tracker and rules; `auto` runs the native decoder and, when a significant share of the frames
could not be decoded (a link type or encapsulation tcpdiag does not know), reads the file again
through tshark and keeps that report if it decoded more, saying so in a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any, Final

from tcpdiag.analyze import AnalysisOptions, CaptureReport, Pipeline, analyze_capture
from tcpdiag.columns import ColumnDecoder
from tcpdiag.decodereport import share
from tcpdiag.detect import RuleEngine
from tcpdiag.packets import Packet
from tcpdiag.tshark_engine import TsharkDecoder, TsharkFailed, TsharkUnavailable, tshark_path

ENGINES: Final = ("native", "pyshark", "auto")
# auto: a file is read again through tshark when at least this share of its frames was not
# decoded natively (unknown link type, unsupported encapsulation, malformed or cut short).
AUTO_SHARE: Final = 0.10
# tshark's records go to the fast path in lists of this many (as the reader's chunks do).
_BATCH: Final = 1 << 14


def analyze_with_engine(
    path: str | os.PathLike[str], engine: RuleEngine, options: AnalysisOptions
) -> CaptureReport:
    if options.engine == "pyshark":
        return analyze_with_tshark(path, engine, options)
    if options.engine != "auto":
        raise ValueError(f"unknown engine {options.engine!r}: one of {', '.join(ENGINES)}")
    report = analyze_capture(path, engine, replace(options, engine="native"))
    frames, missed = report.packets, report.decode.get("not_decoded", 0)
    if report.error is not None or not frames or missed < AUTO_SHARE * frames:
        return report
    try:
        tshark_path()
    except TsharkUnavailable as exc:
        report.warnings.append(f"{report.path}: the pyshark engine cannot read them: {exc}")
        return report
    other = analyze_with_tshark(path, engine, options)
    if other.error is not None or _records(other.decode) <= _records(report.decode):
        report.warnings.append(
            f"{report.path}: the pyshark engine (tshark) read no more TCP from it"
            + (f" ({other.error})" if other.error else "")
            + "; the native decoder's report stands"
        )
        return report
    other.warnings.insert(
        0,
        f"{report.path}: {share(missed, frames)} of the frames could not be decoded natively "
        f"({_reasons(report.decode)}): read with the pyshark engine (tshark) instead",
    )
    return other


def analyze_with_tshark(
    path: str | os.PathLike[str], engine: RuleEngine, options: AnalysisOptions
) -> CaptureReport:
    """analyze_capture's pipeline on tshark's records: in batches through the fast path, as
    the native decoder's columns (or every packet through the tracker without the fast
    path)."""
    report = CaptureReport(path=os.fspath(path))
    if not os.path.isfile(path):
        report.error = f"{report.path}: no such file"
        return report
    try:
        decoder = TsharkDecoder(report.path, options.vxlan_ports)
    except TsharkUnavailable as exc:
        report.error = f"{report.path}: --engine pyshark: {exc}"
        return report
    pipeline = Pipeline(report, engine, options)
    try:
        if options.fast_path:
            columns = ColumnDecoder()
            batches = map(columns.from_packets, _batches(decoder.packets()))
            pipeline.detect(pipeline.track_columns(batches))
        else:
            pipeline.detect(pipeline.track_packets(decoder.packets()))
    except TsharkFailed as exc:
        report.error = f"{report.path}: {exc}"
        return report
    return pipeline.finish(decoder.stats, "pyshark", decoder.truncated, decoder.warnings)


def _batches(packets: Iterable[Packet]) -> Iterator[list[Packet]]:
    it = iter(packets)
    while batch := list(islice(it, _BATCH)):
        yield batch


def _records(decode: dict[str, Any]) -> int:
    return int(decode["tcp"]) + int(decode["icmp_errors"])


def _reasons(decode: dict[str, Any]) -> str:
    reasons = [f"link type {k}: {v}" for k, v in decode["unknown_linktypes"].items()]
    reasons += [f"{k}: {v}" for k, v in decode["unsupported"].items()]
    if decode["undecodable"]:
        reasons.append(f"malformed or cut short: {decode['undecodable']}")
    return ", ".join(reasons)
