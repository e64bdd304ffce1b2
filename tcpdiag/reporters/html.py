"""The HTML report: one self-contained page (inline CSS and SVG, no script, font or fetch) that
reads offline: the summary, a timeline of the findings over the capture's span, and per group of
findings an SVG ladder diagram of the connection with the explanation and next step.

Every piece of text goes through `_text` (control characters made visible, then HTML-escaped);
the page's Content-Security-Policy forbids loading anything, as a second line of defence.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

from tcpdiag.aggregate import DEFAULT_AGGREGATE_OVER, sees_cell
from tcpdiag.analyze import CaptureReport
from tcpdiag.ladder import Ladder, Step, collect_ladders
from tcpdiag.reporters import story, units
from tcpdiag.reporters.base import render
from tcpdiag.reporters.common import (
    safe_line,
    sees_line,
    sees_text,
    wireshark_filter,
    wireshark_frames,
)
from tcpdiag.reporters.digest import Digest, FindingGroup, digest
from tcpdiag.reporters.selection import DocumentReporter, RunInfo, Selection

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:70em;
color:#1b1f24;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccd;padding:.2em .6em;
text-align:left;vertical-align:top}th{background:#eef}code{background:#f3f3f6;padding:0 .2em}
.group{border:1px solid #ccd;border-radius:6px;padding:.4em 1.2em;margin:1.2em 0}
.impact-error_seen{color:#a40000;font-weight:bold}.warning{color:#8a5a00}
svg{max-width:100%;height:auto;background:#fff}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

# Category colours on the timeline (any other category: grey).
_COLOURS = {
    "refused": "#d62728", "half_open_scan": "#9467bd", "peer_reset": "#ff7f0e",
    "broken_pipe": "#8c564b", "fin_wait_reset": "#e377c2", "keepalive_timeout": "#17becf",
    "retransmission_timeout": "#1f77b4", "local_abort": "#bcbd22", "icmp_error": "#2ca02c",
    "ignored_reset": "#7f7f7f", "injected_reset": "#000000", "premature_close": "#ffbb78",
    "subflow_reset": "#c5b0d5", "subflow_failed": "#dbdb8d",
}  # fmt: skip
TIMELINE_BINS = 80
GROUP_TABLE_ROWS = 200  # rows of the groups table: a page, not a database


def _text(value: object) -> str:
    """Any value as HTML text: control and bidi characters made visible, then escaped."""
    return html.escape(safe_line(str(value)), quote=True)


def _prose(text: str) -> str:
    """Text from the rules: escaped, with its `backquoted commands` as code."""
    parts = re.split(r"`([^`\n]+)`", text)
    return "".join(
        f"<code>{_text(part)}</code>" if index % 2 else _text(part)
        for index, part in enumerate(parts)
    )


class HtmlReporter(DocumentReporter):
    def start(self, out: TextIO) -> None:
        out.write(
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            f"<title>tcpdiag report</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>tcpdiag report</h1>\n<p>tcpdiag {_text(self.run.version)}, run as "
            f"<code>{_text(self.run.command_line)}</code></p>\n"
        )

    def write(self, report: CaptureReport, out: TextIO) -> None:
        out.write(capture_html(report, self.selection, self.aggregate_over))

    def finish(self, out: TextIO) -> None:
        out.write("</body>\n</html>\n")


def render_html(
    reports: Iterable[CaptureReport],
    selection: Selection | None = None,
    run: RunInfo | None = None,
    aggregate_over: int = DEFAULT_AGGREGATE_OVER,
) -> str:
    return render(HtmlReporter(selection, run, aggregate_over), reports)


def capture_html(
    report: CaptureReport, selection: Selection, aggregate_over: int = DEFAULT_AGGREGATE_OVER
) -> str:
    out = [f'<section class="capture">\n<h2>Capture <code>{_text(report.path)}</code></h2>']
    if report.error:
        out.append(f'<p class="warning">error: {_text(report.error)}</p></section>\n')
        return "\n".join(out)
    d = digest(report, selection, aggregate_over)
    rows = [*story.header_facts(report, selection), ("findings", story.counts_line(d))]
    out.append(_table(["", ""], [[label, value] for label, value in rows], header=False))
    out.extend(f'<p class="warning">warning: {_text(w)}</p>' for w in report.warnings)
    # The largest scans and SYN floods, as the other human reports name them.
    out.extend(f"<p>{label}: {_text(line)}</p>" for label, line in story.summary_lines(report))
    if not report.filter_matched:
        out.append('<p class="warning">The filters match no connection in this capture.</p>')
    if not d.shown:
        out.append(f"<p>{_text(story.nothing_found_line(report))}</p></section>\n")
        return "\n".join(out)
    out.append("<h3>Summary</h3>")
    out.append(_table(["category", "findings"], d.by_category.most_common()))
    facts = [("impact", story.impact_line(d)), *story.top_endpoint_lines(d)]
    if d.aggregates:
        facts.insert(1, ("aggregated", story.aggregated_line(d)))
    out.append("<ul>" + "".join(f"<li><b>{_text(q)}:</b> {_text(a)}</li>" for q, a in facts))
    out.append("</ul>")
    out.append("<h3>Timeline</h3>")
    out.append(timeline_svg(report, d))
    out.append("<h3>Findings, grouped</h3>")
    out.append(
        _table(
            ["first id", "category", "about", "findings", "first at", "client saw", "server saw"],
            [
                [
                    g.id,
                    g.category,
                    g.subject,
                    f"{g.count:,}",
                    units.clock(g.first_time, selection.localtime),
                    sees_cell(g.aggregate.client_sees)
                    if g.aggregate
                    else sees_text(g.lead.client_sees),
                    sees_cell(g.aggregate.server_sees)
                    if g.aggregate
                    else sees_text(g.lead.server_sees),
                ]
                for g in d.groups[:GROUP_TABLE_ROWS]
            ],
        )
    )
    if len(d.groups) > GROUP_TABLE_ROWS:
        more = units.plural(len(d.groups) - GROUP_TABLE_ROWS, "more group")
        listing = "JSON Lines" if d.aggregates else "JSON"
        out.append(f"<p>... and {_text(more)}: the {listing} report lists every finding.</p>")
    ladders = collect_ladders(report.path, (g.lead for g in d.detailed))
    for group in d.detailed:
        out.append(_group(group, ladders.get(group.lead.id), selection))
    if d.undetailed:
        out.append(
            f"<p>{_text(units.plural(d.undetailed, 'more group'))} not detailed (--limit "
            f"{selection.limit}); the JSON{' Lines' if d.aggregates else ''} report lists every "
            "finding.</p>"
        )
    out.append("</section>\n")
    return "\n".join(out)


def _table(headers: list[str], rows: Iterable[Iterable[object]], header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{_text(h)}</th>" for h in headers) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def _aggregate(group: FindingGroup, ladder: Ladder | None, selection: Selection) -> str:
    a, f = group.aggregate, group.lead
    assert a is not None
    items = [("When", story.group_when(group, selection))]
    items += [(label.capitalize(), value) for label, value in story.aggregate_facts(a)]
    out = [f'<section class="group" id="{_text(group.anchor)}">']
    out.append(f"<h3>{_text(story.group_title(group))}</h3>")
    out.append("<ul>" + "".join(f"<li><b>{_text(k)}:</b> {_text(v)}</li>" for k, v in items))
    out.append("</ul>")
    out.append(f"<p>{_prose(a.meaning())}</p>")
    out.append(f"<p>The first, {_text(f.id)} {_text(f.category)}: {_prose(f.explanation)}</p><ul>")
    if f.next_step:
        out.append(f"<li><b>Next step:</b> {_prose(f.next_step)}</li>")
    out.append(
        f"<li>Wireshark: <code>{_text(a.wireshark_filter())}</code>, the first members: "
        f"<code>{_text(a.wireshark_frames())}</code></li>"
    )
    member = _text(f'"aggregate": "{a.id}"')
    out.append(f"<li>Each member: the <code>-f jsonl</code> lines with <code>{member}</code></li>")
    out.append("</ul>")
    out.append(f"<p>The first member's packets ({_text(f.id)}):</p>")
    out.append(ladder_svg(ladder, f.id))
    out.append("</section>")
    return "\n".join(out)


def _group(group: FindingGroup, ladder: Ladder | None, selection: Selection) -> str:
    if group.aggregate is not None:
        return _aggregate(group, ladder, selection)
    f = group.lead
    items = [
        ("When", story.group_when(group, selection)),
        ("Who broke it", story.who_broke_it(f, ladder)),
        ("Client", story.sees_sentence("client", f.client, f.client_sees)),
        ("Server", story.sees_sentence("server", f.server, f.server_sees)),
    ]
    if f.tunnel:
        items.insert(1, ("Tunnel", f.tunnel))
    out = [f'<section class="group" id="{_text(group.anchor)}">']
    out.append(f"<h3>{_text(story.group_title(group))}</h3>")
    out.append("<ul>" + "".join(f"<li><b>{_text(k)}:</b> {_text(v)}</li>" for k, v in items))
    impact = story.IMPACT_WORDS.get(f.impact, f.impact)
    out.append(f'<li><b>Impact:</b> <span class="impact-{_text(f.impact)}">{_text(impact)}</span>')
    out.append("</li></ul>")
    out.append(ladder_svg(ladder, f.id))
    out.append(f"<p>{_prose(f.explanation)}</p><ul>")
    out.append(f"<li>{_text(sees_line('client', f.client_sees))}</li>")
    out.append(f"<li>{_text(sees_line('server', f.server_sees))}</li>")
    if f.cause is not None:
        out.append(f"<li>most likely ({f.cause.confidence:.2f}): {_prose(f.cause.text)}</li>")
    out.extend(f"<li>or ({a.confidence:.2f}): {_prose(a.text)}</li>" for a in f.alternatives)
    if f.next_step:
        out.append(f"<li><b>Next step:</b> {_prose(f.next_step)}</li>")
    out.append(
        f"<li>Wireshark: <code>{_text(wireshark_filter(f))}</code> or "
        f"<code>{_text(wireshark_frames(f))}</code></li>"
    )
    if group.count > 1:
        others = ", ".join(f"{s.id} ({s.client} to {s.server})" for s in group.samples[1:])
        out.append(f"<li><b>Also:</b> {_text(others)}</li>")
    out.append("</ul>")
    evidence = story.evidence_lines(f, ladder)
    out.append(
        "<p>Evidence (times from the connection's first packet):</p><ul>"
        + "".join(f"<li>{_text(line)}</li>" for line in evidence)
        + "</ul></section>"
    )
    return "\n".join(out)


# -- SVG --------------------------------------------------------------------------------------

_ROW = 30  # ladder: pixels per packet
_LEFT, _RIGHT, _WIDTH = 250, 690, 820  # the two lanes' x, and the picture's width


def ladder_svg(ladder: Ladder | None, finding_id: str) -> str:
    """Two lanes (client left, server right), an arrow per packet labelled with its flags,
    relative seq/ack, length and time; the deciding packet in red on a highlighted row."""
    label = f"Packet ladder of {finding_id}"
    if ladder is None:
        return (
            f'<svg class="ladder" role="img" aria-label="{_text(label)}" width="{_WIDTH}" '
            'height="40" xmlns="http://www.w3.org/2000/svg"><text x="10" y="25" font-size="13">'
            "The packets of this connection could not be read again.</text></svg>"
        )
    items = ladder.condensed()
    height = 60 + _ROW * len(items) + 20
    parts = [
        f'<svg class="ladder" role="img" aria-label="{_text(label)}" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f'<text x="{_LEFT}" y="20" text-anchor="middle" font-weight="bold">client</text>',
        f'<text x="{_LEFT}" y="36" text-anchor="middle">{_text(ladder.client)}</text>',
        f'<text x="{_RIGHT}" y="20" text-anchor="middle" font-weight="bold">server</text>',
        f'<text x="{_RIGHT}" y="36" text-anchor="middle">{_text(ladder.server)}</text>',
        '<text x="10" y="36" font-weight="bold">frame</text>',
        '<text x="70" y="36" font-weight="bold">time</text>',
        f'<line x1="{_LEFT}" y1="44" x2="{_LEFT}" y2="{height - 10}" stroke="#888"/>',
        f'<line x1="{_RIGHT}" y1="44" x2="{_RIGHT}" y2="{height - 10}" stroke="#888"/>',
    ]
    y = 44
    for item in items:
        y += _ROW
        if isinstance(item, int):
            parts.append(
                f'<text x="{(_LEFT + _RIGHT) // 2}" y="{y - 8}" text-anchor="middle" '
                f'fill="#666" font-style="italic">{_text(units.plural(item, "packet"))} '
                "not shown</text>"
            )
            continue
        parts.append(_arrow(item, ladder, y))
    parts.append("</svg>")
    return "\n".join(parts)


def _arrow(step: Step, ladder: Ladder, y: int) -> str:
    decisive = step.frame == ladder.decisive
    colour = "#c00000" if decisive else ("#2060c0" if step.from_client else "#206020")
    when = units.offset(step.time - ladder.first_time)
    out = []
    if decisive:
        out.append(f'<rect class="decisive" x="0" y="{y - 24}" width="{_WIDTH}" height="{_ROW}" '
                   'fill="#ffecec"/>')  # fmt: skip
    out.append(f'<text x="10" y="{y - 4}">{step.frame}</text>')
    out.append(f'<text x="70" y="{y - 4}">{_text(when)}</text>')
    label = story.step_label(step) + (" (verdict)" if decisive else "")
    middle = (_LEFT + _RIGHT) // 2
    out.append(
        f'<text x="{middle}" y="{y - 9}" text-anchor="middle" fill="{colour}">{_text(label)}</text>'
    )
    if step.from_client is None:  # an ICMP error from elsewhere: a dashed line across
        out.append(f'<line x1="{_LEFT}" y1="{y - 4}" x2="{_RIGHT}" y2="{y - 4}" stroke="{colour}" '
                   'stroke-dasharray="5,4"/>')  # fmt: skip
        return "\n".join(out)
    start, end = (_LEFT, _RIGHT) if step.from_client else (_RIGHT, _LEFT)
    tip = -8 if end > start else 8
    width = 2.5 if decisive else 1.5
    out.append(f'<line x1="{start}" y1="{y - 4}" x2="{end + tip}" y2="{y - 4}" '
               f'stroke="{colour}" stroke-width="{width}"/>')  # fmt: skip
    out.append(f'<polygon points="{end},{y - 4} {end + tip},{y - 8} {end + tip},{y}" '
               f'fill="{colour}"/>')  # fmt: skip
    return "\n".join(out)


def timeline_svg(report: CaptureReport, d: Digest) -> str:
    """Findings over the capture's span, one row per category: each bin of time is a bar whose
    darkness grows with its number of findings (its tooltip gives the count)."""
    first = report.first_time if report.first_time is not None else 0.0
    span = max(report.duration, 1e-9)
    bins: dict[str, Counter[int]] = {c: Counter() for c in d.by_category}
    for finding in report.findings:
        if d.selection.accepts(finding):
            at = min(int((finding.time - first) / span * TIMELINE_BINS), TIMELINE_BINS - 1)
            bins[finding.category][max(at, 0)] += 1
    left, width, row = 170, 600, 26
    height = 40 + row * len(bins)
    parts = [
        f'<svg class="timeline" role="img" aria-label="Findings over time by category" '
        f'width="{left + width + 30}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="12">'
    ]
    most = max((n for counts in bins.values() for n in counts.values()), default=1)
    for index, (category, counts) in enumerate(sorted(bins.items())):
        y = 10 + index * row
        colour = _COLOURS.get(category, "#555555")
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_text(category)}</text>'
        )
        parts.append(
            f'<rect x="{left}" y="{y}" width="{width}" height="{row - 6}" fill="#f4f4f8"/>'
        )
        for at, count in sorted(counts.items()):
            when = units.clock(first + (at + 0.5) * span / TIMELINE_BINS, d.selection.localtime)
            opacity = 0.35 + 0.65 * count / most
            parts.append(
                f'<rect x="{left + at * width / TIMELINE_BINS:.1f}" y="{y}" '
                f'width="{max(width / TIMELINE_BINS, 3):.1f}" height="{row - 6}" fill="{colour}" '
                f'fill-opacity="{opacity:.2f}"><title>{_text(category)}: '
                f"{_text(units.plural(count, 'finding'))} around {_text(when)}</title></rect>"
            )
    y = 10 + len(bins) * row
    start = units.clock(first, d.selection.localtime)
    parts.append(f'<text x="{left}" y="{y + 14}">{_text(start)}</text>')
    parts.append(
        f'<text x="{left + width}" y="{y + 14}" text-anchor="end">'
        f"{_text('+' + units.duration(report.duration))}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
