"""The HTML report: one self-contained page (nothing fetched), one SVG ladder per finding group,
capture text escaped; and, where Chromium is installed (.ci/run installs it), the page renders
offline in headless Chromium to a picture that is not blank."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpdiag.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
HOSTILE = ROOT / "tests" / "data" / "hostile_text.pcapng"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
runner = CliRunner()


class Page(HTMLParser):
    """What the tests look at: every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, cls: str) -> int:
        return sum(1 for t, a in self.tags if t == tag and cls in (a.get("class") or "").split())


def page_of(*args: str) -> tuple[str, Page]:
    result = runner.invoke(app, ["analyze", "-f", "html", *args])
    assert result.exit_code in (0, 1), result.output
    page = Page()
    page.feed(result.stdout)
    return result.stdout, page


def test_one_svg_ladder_per_finding_group_and_a_timeline() -> None:
    _, page = page_of(str(SAMPLES / "mixed.pcap"))
    groups = page.count("section", "group")
    assert groups == 3  # the three failed connections of mixed.pcap
    assert page.count("svg", "ladder") == groups
    assert page.count("svg", "timeline") == 1
    assert page.count("rect", "decisive") == groups  # the deciding packet, highlighted
    text = " ".join(page.text)
    for errno in ("ECONNREFUSED", "ECONNRESET", "EPIPE"):
        assert errno in text
    _, limited = page_of("--limit", "1", str(SAMPLES / "mixed.pcap"))
    assert limited.count("svg", "ladder") == limited.count("section", "group") == 1


def test_nothing_is_fetched_from_anywhere() -> None:
    html, page = page_of(str(SAMPLES / "mixed.pcap"), str(SAMPLES / "icmp_frag_needed.pcap"))
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "img", "object")]
    for _, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action") and value is not None:
                assert value.startswith("#"), (name, value)
    assert (
        "url(" not in html
        and "@import" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "default-src 'none'" in html  # the Content-Security-Policy forbids fetching too


def test_capture_text_is_escaped(tmp_path: Path) -> None:
    name = tmp_path / "<script>alert(1)<\u202e>.pcapng"
    shutil.copy(HOSTILE, name)
    html, page = page_of(str(name))
    assert "<script" not in html and "\u202e" not in html
    assert "&lt;script&gt;" in html
    assert not [t for t, _ in page.tags if t == "script"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_page_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["analyze", "-o", str(page), str(SAMPLES / "mixed.pcap")])
    assert result.exit_code == 1
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot"
    assert distinct_bytes(shot) > 32, "the screenshot is blank"


def distinct_bytes(png: Path) -> int:
    """How many different byte values the decoded image data holds. A blank page decodes to a
    handful (a filter byte and one colour); text, tables and diagrams to most of the 256."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat = 8, b""
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    return len(set(zlib.decompress(idat)))
