"""Compare tcpdiag's findings with a capture's ground truth (`<capture>.truth.json`).

The truth lists every injected failure as [category, client, server, scenario]; tcpdiag's
findings name the same category, client and server (`ip:port`, `[v6]:port`). A run is exact when
the two multisets are equal: the same count per category AND the same connections. Anything
else is reported (missing and unexpected findings, with a few examples), never hidden.

The findings are read from `tcpdiag analyze -f jsonl` (`parse_report`): the JSON document folds
a scan, flood or storm of more than --aggregate-over findings into one aggregated finding,
while JSON Lines keeps every finding, connection by connection, which is what is compared.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

EXAMPLES = 3  # mismatching connections quoted per direction


def parse_report(text: str) -> dict[str, Any]:
    """tcpdiag's report as `{"captures": [{..., "findings": [...]}]}`, from JSON Lines (every
    finding, aggregated or not; `aggregate` lines are kept per capture in `aggregates`) or from
    a JSON document (given as is)."""
    stripped = text.lstrip()
    if stripped.startswith("{") and '"captures"' in stripped[:400]:
        document: dict[str, Any] = json.loads(text)
        return document
    captures: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        kind = record.get("type")
        if kind == "capture":
            captures.append({**record, "findings": [], "aggregates": []})
        elif kind == "finding" and captures:
            captures[-1]["findings"].append(record)
        elif kind == "aggregate" and captures:
            captures[-1]["aggregates"].append(record)
    return {"captures": captures}


def load_report(path: str | Path) -> dict[str, Any]:
    return parse_report(Path(path).read_text())


def load_truth(capture: str | Path) -> dict[str, Any]:
    path = Path(str(capture) + ".truth.json")
    return json.loads(path.read_text())


def compare(truth: dict[str, Any], capture_report: dict[str, Any]) -> dict[str, Any]:
    """Per category: expected and reported counts; the missing and unexpected connections."""
    findings = capture_report.get("findings", [])
    want = Counter((c, client, server) for c, client, server, *_ in truth["failures"])
    got = Counter((f["category"], f["client"], f["server"]) for f in findings)
    missing = want - got
    unexpected = got - want
    expected_counts = Counter(c for c, *_ in truth["failures"])
    found_counts = Counter(f["category"] for f in findings)
    categories = []
    for cat in sorted(set(expected_counts) | set(found_counts)):
        exp, found = expected_counts.get(cat, 0), found_counts.get(cat, 0)
        categories.append({"category": cat, "expected": exp, "found": found})
    problems = []
    for cat in categories:
        if cat["expected"] != cat["found"]:
            problems.append(f"{cat['category']}: expected {cat['expected']}, found {cat['found']}")
    if missing:
        examples = ", ".join(f"{c} {a}->{b}" for c, a, b in list(missing)[:EXAMPLES])
        problems.append(f"{sum(missing.values())} injected failures not reported (e.g. {examples})")
    if unexpected:
        examples = ", ".join(f"{c} {a}->{b}" for c, a, b in list(unexpected)[:EXAMPLES])
        problems.append(f"{sum(unexpected.values())} findings not injected (e.g. {examples})")
    if capture_report.get("error"):
        problems.append(f"error: {capture_report['error']}")
    if capture_report.get("truncated"):
        problems.append("capture reported truncated")
    if capture_report.get("evicted"):
        problems.append(f"{capture_report['evicted']} connections evicted")
    return {
        "exact": not problems,
        "expected": sum(want.values()),
        "found": len(findings),
        "missing": sum(missing.values()),
        "unexpected": sum(unexpected.values()),
        "categories": categories,
        "problems": problems,
    }


def summary(check: dict[str, Any]) -> str:
    """One cell of a table: `exact (N)` or what went wrong, shortly."""
    if check["exact"]:
        return f"exact ({check['expected']:,})"
    parts = []
    for cat in check["categories"]:
        if cat["expected"] != cat["found"]:
            parts.append(f"{cat['category']} {cat['found']}/{cat['expected']}")
    if not parts and (check["missing"] or check["unexpected"]):
        parts.append(f"{check['missing']} wrong connections")
    if not parts:
        parts = check["problems"][:1]
    return "NO: " + ", ".join(parts)
