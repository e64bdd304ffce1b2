"""The progress display: on a terminal only, unless -q; a line per finished capture; -v adds
timings wherever stderr goes."""

from __future__ import annotations

import io

from tcpdiag.analyze import CaptureReport
from tcpdiag.progress import BatchProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(progress: BatchProgress) -> None:
    progress.start(total_files=2, total_bytes=2000)
    progress.bytes_read(0, 600)
    progress.file_done(0, CaptureReport(path="a.pcap", packets=10), 2, 1000, 0.5, 50 << 20)
    progress.echo("tcpdiag: warning: something")
    progress.file_done(1, CaptureReport(path="b.pcap", error="b.pcap: empty file"), 0, 1000, 0, 0)
    progress.close()


def test_a_terminal_gets_a_line_per_finished_capture() -> None:
    err = Terminal()
    _run(BatchProgress(err=err))
    text = err.getvalue()
    assert "[1/2] a.pcap: 10 packets, 2 findings" in text
    assert "[2/2] b.pcap: 0 packets, error" in text
    assert "tcpdiag: warning: something" in text


def test_silent_when_not_a_terminal_or_quiet() -> None:
    for quiet, err in ((False, io.StringIO()), (True, Terminal())):
        _run(BatchProgress(quiet=quiet, err=err))
        assert err.getvalue() == "tcpdiag: warning: something\n"


def test_verbose_adds_timings_even_in_a_log() -> None:
    err = io.StringIO()
    _run(BatchProgress(verbose=True, err=err))
    assert "tcpdiag: a.pcap: 0.50 s, 10 packets, worker peak 50 MiB" in err.getvalue()
