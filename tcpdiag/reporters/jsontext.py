"""Compact JSON text for the machine-readable reports (JSON Lines, the JSON document's items).

A report of many findings spends much of its time turning them into JSON: a JSON Lines finding
is about 3 KB, which the json module's C encoder writes in ~34 us and orjson in ~3. The text is
the same JSON either way (same keys in the same order, same values), written without spaces
after `,` and `:`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def json_text(value: Any) -> str:
    """`value` as one line of JSON, ASCII only: any other character is written as a \\u escape,
    so that bytes from a capture or a file name (a Unicode bidi control, say) reach a terminal
    or a log store only as text. A float that is not finite (which JSON cannot hold) is null.
    orjson writes UTF-8 and knows no integer beyond 64 bits and no key that is not a string:
    for such values (rare) the json module writes it."""
    try:
        data = orjson.dumps(value)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return _stdlib(value)
    if data.isascii():
        return data.decode("ascii")
    return _stdlib(value)


def _stdlib(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a float that is not finite: null, as orjson writes it
        return json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
