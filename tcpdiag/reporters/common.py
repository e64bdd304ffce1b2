"""Helpers every reporter shares."""

from __future__ import annotations

import re

from tcpdiag.findings import AppView, Finding

HEADERS = ("id", "category", "client", "server", "frames", "client sees", "server sees", "conf")

# Control characters (C0, DEL, C1) would let bytes from a capture, or a file name, drive the
# terminal (ANSI escapes) or forge extra lines of output.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_line(text: str) -> str:
    """One line fit for a terminal or a ticket: every control character made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe(text: str) -> str:
    """Like safe_line, for text of several lines: the line breaks stay."""
    return "\n".join(safe_line(line) for line in text.split("\n"))


def markdown_text(text: str) -> str:
    """Plain text that Markdown renders as written (no accidental HTML, tables or emphasis)."""
    escaped = safe_line(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    return escaped.replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def frames_text(finding: Finding, limit: int = 6) -> str:
    frames = finding.frames
    shown = ",".join(str(f) for f in frames[:limit])
    return shown + (f",+{len(frames) - limit}" if len(frames) > limit else "")


def sees_text(view: AppView) -> str:
    return view.errno or "-"


def sees_line(role: str, view: AppView) -> str:
    if view.errno is None:
        return f"{role} app: {view.when}"
    if view.os == "windows":  # by its TTL: say what a Windows program reports
        return f"{role} app (Windows, by its TTL): {view.windows} ({view.when})"
    return f'{role} app: {view.errno} "{view.linux}" ({view.when}); Windows: {view.windows}'
