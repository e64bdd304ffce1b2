"""Reading and decoding on a second core.

For a large capture, reading the records and decoding them into Columns is about a third of
the work, and it does not depend on what the tracker does with them. A forked child process
does it and sends the Columns through a pipe, one batch at a time: the pipe's small buffer
holds the child back when the parent is behind, so at most a couple of batches are in flight.

At the end the child sends what the parent's reader and decoder would have known: the decode
counts, the reader's warnings and whether it stopped at damage.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from tcpdiag.columns import ColumnDecoder, Columns
from tcpdiag.decode import Decoder, DecodeStats
from tcpdiag.reader import CaptureReader

# Below this size the process start costs more than it saves.
MIN_BYTES = 32 << 20


def worth_it(path: str) -> bool:
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    return (
        size >= MIN_BYTES
        and len(os.sched_getaffinity(0)) > 1
        and "fork" in multiprocessing.get_all_start_methods()
    )


@dataclass(slots=True)
class _Done:
    stats: DecodeStats
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False


@dataclass(slots=True)
class _Failed:
    trace: str


class BackgroundDecodeError(RuntimeError):
    """The child failed unexpectedly; the message holds its traceback."""


def decoded_in_background(reader: CaptureReader, decoder: Decoder) -> Iterator[Columns]:
    """The Columns of the reader's frames, read and decoded by a child process. When the
    iteration ends, `decoder.stats`, `reader.warnings` and `reader.truncated` are as if this
    process had done the work. The reader must not be used otherwise meanwhile."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    # The child flushes its copy of the standard streams when it ends: they must be empty, or
    # output written before the fork would appear twice.
    sys.stdout.flush()
    sys.stderr.flush()
    child = context.Process(target=_work, args=(reader, send), daemon=True)
    child.start()
    send.close()
    try:
        while True:
            message = receive.recv()
            if isinstance(message, Columns):
                yield message
            elif isinstance(message, _Done):
                decoder.stats = message.stats
                reader.warnings.extend(message.warnings)
                reader.truncated = message.truncated
                return
            else:
                raise BackgroundDecodeError(message.trace)
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join()
        reader.close()


def _work(reader: CaptureReader, send: multiprocessing.connection.Connection) -> None:
    try:
        columns = ColumnDecoder(Decoder())
        for chunk in reader.chunks():
            send.send(columns.decode(chunk))
        send.send(_Done(columns.decoder.stats, reader.warnings, reader.truncated))
    except BrokenPipeError:
        pass  # the parent stopped listening
    except BaseException:  # everything is reported to the parent
        send.send(_Failed(traceback.format_exc()))
    finally:
        send.close()
