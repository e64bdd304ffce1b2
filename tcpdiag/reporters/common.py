"""Helpers every reporter shares."""

from __future__ import annotations

import re
from typing import Any

from tcpdiag.findings import AppView, Finding


def tabulate(*args: Any, **kwargs: Any) -> str:
    """tabulate.tabulate, imported on first use: importing it costs about 50 ms of start-up
    (it reads its package metadata), which JSON, JSON Lines and CSV runs never need."""
    from tabulate import tabulate as render

    text: str = render(*args, **kwargs)
    return text


HEADERS = ("id", "category", "client", "server", "frames", "client sees", "server sees", "conf")

# Control characters (C0, DEL, C1) would let bytes from a capture, or a file name, drive the
# terminal (ANSI escapes) or forge extra lines of output; Unicode bidi controls would make text
# display in another order than it is (a file name that reads "fdp.exe" but ends in ".pdf").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_line(text: str) -> str:
    """One line fit for a terminal or a ticket: every control character made visible."""
    if text.isprintable():
        return text  # (every character _CONTROL matches is unprintable: the common case, fast)
    return _CONTROL.sub(_visible, text)


def safe(text: str) -> str:
    """Like safe_line, for text of several lines: the line breaks stay."""
    return "\n".join(safe_line(line) for line in text.split("\n"))


# The ASCII characters Markdown (CommonMark, GFM, GitLab) gives a meaning to anywhere in a line:
# links and images ([ ] !: with the brackets escaped no parenthesis can make a link), emphasis,
# code, tables, HTML and entities. Dots and colons are left alone (endpoints stay readable in the
# raw text) except where they would start an autolink.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]!|~])")
_AUTOLINK = re.compile(r"(?<=[A-Za-z]):(?=//)|(?<=www)\.", re.IGNORECASE)
# What makes a line a heading, quote, list item or rule when it starts the text.
_BLOCK_START = re.compile(r"^(\s*)([#>+=-])|^(\s*\d+)([.)])(?=\s|$)")


def markdown_text(text: str) -> str:
    """Plain text that Markdown renders as written: no link, image, HTML, table cell or
    emphasis can come out of it, whatever the capture (or a file name) holds."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", safe_line(text))
    escaped = _AUTOLINK.sub(lambda m: "\\" + m.group(), escaped)
    escaped = _BLOCK_START.sub(
        lambda m: (m.group(1) or m.group(3) or "") + "\\" + (m.group(2) or m.group(4)), escaped
    )
    return escaped.replace("&", "&amp;").replace("<", "&lt;")


def code_span(text: str) -> str:
    """Text as a Markdown code span, shown verbatim (so never a link), with a fence longer than
    any run of backticks inside it."""
    text = safe_line(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table_cell(markdown: str) -> str:
    """Markdown for a table cell: a pipe, even in a code span, would end the cell in GFM."""
    return markdown.replace("|", "\\|")


def prose(text: str) -> str:
    """Text written by tcpdiag's rules, for Markdown: escaped like capture text (it quotes
    endpoints), except that its `backquoted commands` become code spans."""
    parts = re.split(r"`([^`\n]+)`", text)
    return "".join(
        code_span(part) if odd else markdown_text(part) for odd, part in _alternate(parts)
    )


def _alternate(parts: list[str]) -> list[tuple[bool, str]]:
    return [(index % 2 == 1, part) for index, part in enumerate(parts)]


# What makes a spreadsheet take a cell for a formula when the cell starts with it.
FORMULA_START = frozenset("=+-@\t\r")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text that starts like a formula gets a quote."""
    if isinstance(value, str):
        value = safe_line(value)
        if value[:1] in FORMULA_START:
            return "'" + value
    return value


def frames_text(finding: Finding, limit: int = 6) -> str:
    frames = finding.frames
    shown = ",".join(str(f) for f in frames[:limit])
    return shown + (f",+{len(frames) - limit}" if len(frames) > limit else "")


def sees_text(view: AppView) -> str:
    """A table cell: the errno (or what the program saw that is none: "EOF"), or "nothing"
    when that program saw nothing (never a bare "-"). Where the impact is unknown, the side
    with an errno may not have seen it (its `when` says on what it depends); the other side
    saw nothing either way (its application closed on purpose)."""
    return view.errno or view.label or "nothing"


def wireshark_filter(finding: Finding) -> str:
    """A Wireshark display filter for the finding's connection (and ICMP errors quoting it)."""
    from tcpdiag.ladder import split_endpoint  # the ladder module reads captures: import late

    return endpoints_filter(*split_endpoint(finding.client), *split_endpoint(finding.server))


def endpoints_filter(a: str, port_a: int, b: str, port_b: int) -> str:
    """wireshark_filter of the connection between these endpoints (address, port)."""
    ip = "ipv6" if ":" in a else "ip"
    hosts = f"{ip}.addr=={a}" if a == b else f"{ip}.addr=={a} && {ip}.addr=={b}"
    ports = (
        f"tcp.port=={port_a}" if port_a == port_b else f"tcp.port=={port_a} && tcp.port=={port_b}"
    )
    return f"{hosts} && {ports}"


def wireshark_frames(finding: Finding) -> str:
    """A Wireshark display filter for exactly the finding's frames."""
    return "frame.number in {" + " ".join(map(str, finding.frames)) + "}"


def sees_line(role: str, view: AppView) -> str:
    if view.errno is None:
        return f"{role} app: {view.label + ': ' if view.label else ''}{view.when}"
    if view.os == "windows":  # by its TTL: say what a Windows program reports
        return f"{role} app (Windows, by its TTL): {view.windows} ({view.when})"
    return f'{role} app: {view.errno} "{view.linux}" ({view.when}); Windows: {view.windows}'
