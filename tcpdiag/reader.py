"""Streaming reader for pcap and pcapng captures, plain or compressed, from a file or stdin.

Why not dpkt's readers: dpkt.pcapng.Reader honours only the first Interface Description Block
(one link type and one timestamp resolution for the whole file), and neither dpkt reader says
where a damaged file goes wrong. This one is a few struct calls per record at computed offsets
into a buffer that is refilled in chunks, so memory stays constant whatever the file size.

Frames are numbered exactly as Wireshark numbers them: pcap records, pcapng packet blocks (EPB,
SPB and the obsolete PB), and the few non-packet pcapng blocks Wireshark also lists as frames
(systemd journal, custom and sysdig event blocks: numbered, never yielded).

Damage policy:
- Damage in the file header (pcap global header, or the first pcapng Section Header Block)
  raises CaptureError: nothing can be read.
- Damage anywhere later never raises: reading stops, `truncated` becomes True and one line is
  appended to `warnings`; every frame before the damage has already been yielded.
- A pcap record is damaged when its caplen exceeds max(snaplen, 262144), capped at 256 MiB
  (libpcap's own rule, made generous for writers that under-report snaplen), or when the file
  ends inside it.
- A pcapng block is damaged when its length is < 12, not a multiple of 4, over 256 MiB, runs
  past the end of the file, or disagrees with the trailing copy of the length; also when a
  packet block names an undeclared interface (Wireshark stops there too, so frame numbers
  stay in step with it) or its caplen does not fit in the block.
- Byte offsets in messages are positions in the uncompressed stream (for compressed input).

Memory is one read chunk, one frame's kept bytes and one group of frames, whatever the file,
block or record size: a frame longer than _FRAME_PREFIX (256 KiB, libpcap's largest snaplen)
keeps its first _FRAME_PREFIX bytes and its true lengths, and the rest of its block or record is
skipped in bounded pieces (for compressed input: decompressed and dropped), still checked
against the block's trailing length. Damage in or after such a frame gets the same warning as
in a short one. Other pcapng blocks that long are skipped alike (of an Interface Description
Block, only options within its first _FRAME_PREFIX bytes are read). pcapng frames are grouped
(chunks(), and iteration's read-ahead) by count and by the bytes they hold, not count alone.

Compression is recognised by its magic bytes, never by the file name: gzip, bzip2, xz, zstd
(the `zstandard` package) and lz4 frames (the `lz4` package). Each may hold several streams back
to back. A stream that is cut or corrupt part-way is damage like any other: a warning, and every
frame decoded before it. `-` reads standard input (`tcpdump -w - | tcpdiag analyze -`).

`JoinedReader` reads the rotated parts of one capture as one stream of frames (`--join`).
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import lzma
import os
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from types import TracebackType
from typing import Protocol, TypeVar

T = TypeVar("T")

# How long a named pipe (mkfifo) given as a capture may wait for a program to open it for
# writing (tcpdump -w PIPE) before it is an error: opening it blocks until then, which with
# no writer at all is forever. 0: no limit.
FIFO_WAIT_SECONDS = 30.0
_CHUNK = 1 << 18  # bytes per read: big enough to amortise calls, small enough to be constant
_MAX_RECORD = 256 << 20  # no sane record or block is larger; beyond this a length is garbage
_LIBPCAP_MAX_SNAPLEN = 262144  # libpcap's MAXIMUM_SNAPLEN
# The most captured bytes of one frame that are kept (RawFrame.data); the rest of a longer frame
# is skipped (read, or decompressed, in pieces of at most _CHUNK and dropped), so one record
# costs at most this much memory whatever its length. Why libpcap's snaplen ceiling and not less:
# tcpdump, dumpcap and every libpcap writer clamp the snaplen to it, so every frame they can
# write is kept whole and decodes byte for byte as before, including what the decoders take from
# the captured length itself: a TSO/GSO super-packet's payload length (IP length 0; Linux BIG TCP
# makes them up to 512 KiB, so 64 KiB would cut real ones) and the count of snaplen-truncated
# frames. Only longer frames (other writers, crafted files) are cut; of those tcpdiag reads the
# headers (link, tunnels, IP with extensions, TCP with options, ICMP quotes), which lie in the
# first few hundred bytes. RawFrame.caplen keeps such a frame's true captured length; the
# decoders still see len(data), so for a cut frame with IP length 0 the payload length, and for
# an undecodable one the truncation count, come from the kept bytes.
_FRAME_PREFIX = _LIBPCAP_MAX_SNAPLEN
# Frames handed out together by chunks() for pcapng (and buffered by iteration): at most this
# many, and no more captured bytes than the chunk target, so a group of huge blocks is not held
# thousands at a time.
_GROUP_FRAMES = 1 << 14

_PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    # magic bytes as stored -> (struct byte order, fraction units per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # SHB block type: a palindrome, so endian-independent
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF = 6  # bytes needed to recognise every compression format (xz has the longest magic)
STDIN = "-"  # the path that means standard input
STDIN_NAME = "<stdin>"  # how standard input is named in reports and messages
_BOM_LE = b"\x4d\x3c\x2b\x1a"  # 0x1A2B3C4D as stored by a little-endian writer
_BOM_BE = b"\x1a\x2b\x3c\x4d"

# pcapng block types
_SHB = 0x0A0D0D0A
# A pcap record header of zeros: no time, no bytes. A run of this many is not capture data (a
# preallocated or zeroed tail) and reading stops there.
_ZERO_RECORD = bytes(16)
ZERO_RECORDS_GIVE_UP = 1024
_IDB = 1
_PB = 2  # obsolete Packet Block
_SPB = 3
_EPB = 6
_PACKET_BLOCKS = (_EPB, _SPB, _PB)
# Blocks that are not packets but that Wireshark still lists as frames: they take a frame
# number (so ours stay equal to Wireshark's) and are otherwise skipped. These are systemd
# journal export, custom blocks (both kinds), and sysdig events without flags; Wireshark
# versions differ on the flagged variants (0x208/0x217/0x222), so those are not counted.
_NUMBERED_NON_PACKET_BLOCKS = frozenset((0x9, 0xBAD, 0x40000BAD, 0x204, 0x216, 0x221))

# IDB option codes
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


class CaptureError(Exception):
    """Unreadable input; str(e) is ONE line naming the file, where, and what is wrong."""

    def __init__(
        self, path: str, reason: str, offset: int | None = None, frame: int | None = None
    ) -> None:
        self.path = path
        self.offset = offset
        self.frame = frame
        self.reason = reason
        super().__init__(f"{path}: {_where(offset, frame)}{reason}")


def _where(offset: int | None, frame: int | None) -> str:
    """The shared 'frame N at byte X: ' prefix of errors and warnings."""
    if frame is not None and offset is not None:
        return f"frame {frame} at byte {offset}: "
    if frame is not None:
        return f"frame {frame}: "
    if offset is not None:
        return f"at byte {offset}: "
    return ""


@dataclass(slots=True)
class RawFrame:
    number: int  # 1-based, exactly Wireshark's frame numbering
    time: float  # seconds since the epoch
    linktype: int  # LINKTYPE_* of this frame's interface
    data: bytes  # captured bytes (may be shorter than wire_len: snaplen), _FRAME_PREFIX at most
    wire_len: int
    # Captured bytes after `data` that the reader skipped unread: a frame longer than
    # _FRAME_PREFIX keeps only its first _FRAME_PREFIX bytes (see `caplen`).
    skipped: int = 0

    @property
    def caplen(self) -> int:
        """The frame's true captured length, as its record or block states it."""
        return len(self.data) + self.skipped


@dataclass(slots=True)
class PcapChunk:
    """Many consecutive records of a classic pcap file, undecoded, for batch decoding.

    `offsets` are the positions in `data` of each record's 16-byte header; the captured bytes
    follow it. Every record in a chunk is complete.
    """

    first_number: int  # frame number of the first record
    data: bytes
    offsets: list[int]
    endian: str  # struct byte order of the record headers, "<" or ">"
    units: int  # timestamp fraction units per second (10**6 or 10**9)
    linktype: int


class _Source(Protocol):
    error: str | None  # why the stream ended early, if it did

    def read(self, n: int) -> bytes: ...  # up to n bytes; b"" only at the end

    def close(self) -> None: ...


class _PlainSource:
    def __init__(self, raw: _RawFile, head: bytes) -> None:
        self._raw = raw
        self._head = head  # bytes already read while sniffing the format
        self.error: str | None = None

    def read(self, n: int) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        try:
            return _observed(self._raw.read(n))
        except OSError as e:
            self.error = f"read error: {e.strerror or e}"
            return b""

    def close(self) -> None:
        self._raw.close()


class _Decompressor(Protocol):
    """The incremental API bz2, lzma and lz4.frame share (and _ZstdPieces imitates)."""

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str  # as in messages: "<name> stream cut short", "<name> data corrupt"
    magic: bytes
    new: Callable[[], _Decompressor]
    zero_padding: bool = False  # may zero bytes follow a stream (xz stream padding)?


class _GzipPieces:
    """zlib's gzip decompressor, driven like bz2's (`needs_input`, input it could not take yet
    kept for the next call). zlib directly, not gzip.GzipFile: GzipFile raises EOFError from
    inside a buffered read and drops the bytes it had already decompressed in that read, so
    frames just before a cut would be lost."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=31)  # 31: gzip framing
        self._tail = b""  # input held back by max_length
        # The last call stopped at max_length: zlib may hold output decoded from input it has
        # already taken (the rest of a match), so no tail does not yet mean it needs input. At
        # the cut of a cut stream, asking for input there would lose that output.
        self._full = False

    @property
    def eof(self) -> bool:
        return self._z.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._full and not self._z.eof

    @property
    def unused_data(self) -> bytes:
        return self._z.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._z.decompress(self._tail + data, max(max_length, 0))  # 0: no bound
        self._tail = self._z.unconsumed_tail
        self._full = 0 < max_length == len(out)
        return out


def _zstd() -> _Decompressor:
    return _ZstdPieces()


def _lz4() -> _Decompressor:
    import lz4.frame  # imported when needed: only lz4 input pays for it

    decompressor: _Decompressor = lz4.frame.LZ4FrameDecompressor()
    return decompressor


_ZSTD_PIECE = 1 << 10  # compressed bytes fed per call: bounds one call's output (~43 MB at most)


class _ZstdPieces:
    """zstandard's decompressobj, driven like bz2's: output bounded per call, `needs_input`.

    Its decompress() has no max_length and a zstd block of a few bytes can expand to 128 KiB,
    so input goes in small pieces and surplus output waits for the next call. (Its
    stream_reader is bounded but reports a cut stream as a normal end.) Input and surplus output
    are consumed by moving an offset, not by slicing off what was used: slicing would copy the
    whole rest at every call, quadratic in a piece's output (tens of MB for a run of zeros, as in
    a huge packet block being skipped)."""

    def __init__(self) -> None:
        import zstandard  # imported when needed: only zstd input pays for it

        self._error = zstandard.ZstdError
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._input = b""
        self._input_at = 0  # self._input[self._input_at:] is not fed yet
        self._output = b""
        self._output_at = 0  # self._output[self._output_at:] is not handed out yet

    @property
    def eof(self) -> bool:
        return bool(self._obj.eof) and self._output_at == len(self._output)

    @property
    def needs_input(self) -> bool:
        return (
            self._input_at == len(self._input)
            and self._output_at == len(self._output)
            and not self._obj.eof
        )

    @property
    def unused_data(self) -> bytes:
        return bytes(self._obj.unused_data) + self._input[self._input_at :]

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if data:
            self._input = self._input[self._input_at :] + data
            self._input_at = 0
        while (
            self._output_at == len(self._output)
            and self._input_at < len(self._input)
            and not self._obj.eof
        ):
            at = self._input_at
            self._input_at = min(at + _ZSTD_PIECE, len(self._input))
            self._output = self._obj.decompress(self._input[at : self._input_at])
            self._output_at = 0
        output, at = self._output, self._output_at
        end = len(output) if max_length < 0 else min(at + max_length, len(output))
        if end < len(output):
            self._output_at = end
            return output[at:end]
        self._output, self._output_at = b"", 0  # all handed out: not held any longer
        return output[at:] if at else output


_CODECS = (
    # gzip(1) tolerates zero padding after the last member, and so does this.
    _Codec("gzip", _GZIP_MAGIC, _GzipPieces, zero_padding=True),
    _Codec("bzip2", b"BZh", bz2.BZ2Decompressor),
    _Codec("xz", b"\xfd7zXZ\x00", lzma.LZMADecompressor, zero_padding=True),
    _Codec("zstd", b"\x28\xb5\x2f\xfd", _zstd),
    _Codec("lz4", b"\x04\x22\x4d\x18", _lz4),
)
_CODEC_PACKAGES = {"zstd": "zstandard", "lz4": "lz4"}


class _StreamSource:
    """gzip, bzip2, xz, zstd or lz4 decompression that hands back every byte decoded before
    the stream breaks and turns the break into `error`."""

    def __init__(self, raw: _RawFile, head: bytes, codec: _Codec) -> None:
        self._raw = raw
        self._codec = codec
        self._input = head
        self._d: _Decompressor | None = codec.new()
        self.error: str | None = None

    def _read_raw(self) -> bytes:
        try:
            return _observed(self._raw.read(_CHUNK))
        except OSError as e:
            self.error = f"read error: {e.strerror or e}"
            self._d = None
            return b""

    def read(self, n: int) -> bytes:
        while (d := self._d) is not None:
            if d.eof:
                # Several streams may follow one another (gzip members, pbzip2, xz/zstd/lz4
                # concatenation).
                rest = (d.unused_data or b"") + self._input  # lz4 says None for nothing
                if self._codec.zero_padding:
                    rest = rest.lstrip(b"\0")
                while not rest:
                    more = self._read_raw()
                    if not more:
                        self._d = None
                        return b""
                    rest = more.lstrip(b"\0") if self._codec.zero_padding else more
                self._d = self._codec.new()
                self._input = rest
                continue
            data = b""
            if d.needs_input:
                if not self._input:
                    self._input = self._read_raw()
                    if not self._input:
                        if self._d is not None:
                            self.error = f"{self._codec.name} stream cut short"
                            self._d = None
                        return b""
                data, self._input = self._input, b""
            try:
                out = d.decompress(data, n)
            except Exception:  # each codec has its own error types; any of them: bad data
                self.error = f"{self._codec.name} data corrupt"
                self._d = None
                return b""
            if out:
                return out
        return b""

    def close(self) -> None:
        self._raw.close()


def _open_source(path: str, raw: _RawFile, head: bytes) -> _Source:
    """The decoded byte stream of a capture, by its first bytes (not its name)."""
    for codec in _CODECS:
        if head.startswith(codec.magic):
            try:
                return _StreamSource(raw, head, codec)
            except ImportError:
                package = _CODEC_PACKAGES.get(codec.name, codec.name)
                raise CaptureError(
                    path, f"{codec.name}-compressed, and the {package} package is not installed"
                ) from None
    return _PlainSource(raw, head)


# Called with the size of every read from a capture file (compressed bytes, as on disk): the
# batch progress bar's bytes. One per process; None (the default) costs one test per read.
_read_observer: Callable[[int], None] | None = None


def set_read_observer(observer: Callable[[int], None] | None) -> None:
    global _read_observer
    _read_observer = observer


def _observed(data: bytes) -> bytes:
    if _read_observer is not None:
        _read_observer(len(data))
    return data


class _RawFile(Protocol):
    def read(self, n: int, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Where the reader stops waiting for, or reading, input that is not a capture: the give-up
    rules, each an option of the command line with its default here."""

    # Seconds a named pipe waits for its writer before it is an error (--fifo-wait; 0: no
    # limit).
    fifo_wait: float = FIFO_WAIT_SECONDS
    # A run of this many all-zero pcap records ends the reading with a warning naming its
    # offset (--zero-records; 0: never).
    zero_records: int = ZERO_RECORDS_GIVE_UP


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False  # (opening it says what is wrong)


def _open_fifo(path: str, wait: float) -> _RawFile:
    """A named pipe, opened for reading once a program opens it for writing, as a plain file
    is; CaptureError when none does within `wait` seconds (0: no limit).

    open() itself blocks until the writer comes, so it runs in a thread; when the time is up,
    this process is that writer for an instant (the blocked open() returns, and finds the
    pipe closed at once), and the file is an error instead of a hang."""
    opened: list[int] = []
    failed: list[OSError] = []

    def open_for_reading() -> None:
        try:
            opened.append(os.open(path, os.O_RDONLY))
        except OSError as exc:
            failed.append(exc)

    opener = threading.Thread(target=open_for_reading, name="tcpdiag-fifo", daemon=True)
    opener.start()
    opener.join(wait or None)
    if opener.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        opener.join(5.0)
        for fd in opened:
            os.close(fd)
        raise CaptureError(
            path,
            f"a named pipe (FIFO) that no program opened for writing within {wait:g} s "
            "(--fifo-wait)",
        )
    if failed:
        raise failed[0]
    return open(opened[0], "rb", buffering=0)  # (the reader owns it until close())


class CaptureReader:
    """Iterate the frames of one capture file, in file order; single pass."""

    format: str  # "pcap" or "pcapng"

    def __init__(self, path: str | os.PathLike[str], limits: ReadLimits = ReadLimits()) -> None:
        self.path: str = os.fspath(path)
        self._zero_records = limits.zero_records or -1  # (-1: a run never reaches it)
        self.warnings: list[str] = []
        self.truncated: bool = False
        self.damage: str | None = None  # the warning of the damage reading stopped at, if any
        self._base = 0  # stream offset of self._buf[0]
        self._started = False
        self.frames_numbered = 0  # frame numbers used so far (known fully after iteration)
        # Earliest and latest packet time seen (capture order need not be time order).
        self.first_time: float | None = None
        self.last_time: float | None = None
        raw: _RawFile
        try:
            if self.path == STDIN:
                self.path = STDIN_NAME
                if os.isatty(sys.stdin.fileno()):
                    # Waiting for a capture to be typed in would look like a hang.
                    raise CaptureError(
                        self.path, "is a terminal: pipe a capture in (tcpdump -w - | ...)"
                    )
                # Unbuffered, and left open: the process owns its standard input.
                raw = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
            elif _is_fifo(self.path):
                raw = _open_fifo(self.path, limits.fifo_wait)
            else:
                raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - owned until close()
        except OSError as e:
            raise CaptureError(self.path, f"cannot open: {e.strerror or e}") from None
        try:
            head = _read_head(raw)
        except OSError as e:
            raw.close()
            raise CaptureError(self.path, f"cannot read: {e.strerror or e}") from None
        if not head:
            raw.close()
            raise CaptureError(self.path, "empty file")
        try:
            self._src: _Source = _open_source(self.path, raw, head)
        except CaptureError:
            raw.close()
            raise
        try:
            self._buf = self._fill(b"", 0, 24)
            self._open_format()
        except CaptureError:
            self._src.close()
            raise

    # -- header -------------------------------------------------------------------------------

    def _open_format(self) -> None:
        buf = self._buf
        magic = buf[:4]
        if not buf:
            # Only a gzip wrapper can get here: the raw file had bytes.
            if self._src.error:
                raise CaptureError(self.path, self._src.error, offset=0)
            raise CaptureError(self.path, "empty file")
        if magic in _PCAP_MAGICS:
            self.format = "pcap"
            if len(buf) < 24:
                raise self._header_error(f"pcap file header truncated ({len(buf)} of 24 bytes)")
            endian, units = _PCAP_MAGICS[magic]
            major, minor = struct.unpack_from(endian + "HH", buf, 4)
            if major != 2:
                # 2.4 is the format every writer uses (2.0-2.3 differ only in details libpcap
                # still reads the same way); libpcap and Wireshark refuse any other major.
                self.warnings.append(
                    f"{self.path}: pcap file header has major version {major} (version "
                    f"{major}.{minor}; tcpdiag knows 2): read as version 2.4, so its records "
                    "may be misread"
                )
            snaplen, network = struct.unpack_from(endian + "II", buf, 16)
            self._endian = endian
            self._units = units
            # Bits 16-31 of the link-type field carry FCS-length flags, not the type.
            self._linktype = network & 0xFFFF
            self._caplen_limit = min(max(snaplen, _LIBPCAP_MAX_SNAPLEN), _MAX_RECORD)
            self._pos = 24
        elif magic == _PCAPNG_MAGIC:
            self.format = "pcapng"
            self._check_first_shb()
            self._pos = 0  # the iterator re-reads the SHB to set up the section
        elif len(buf) < 4 and any(m.startswith(buf) for m in (*_PCAP_MAGICS, _PCAPNG_MAGIC)):
            raise self._header_error(f"capture header truncated ({len(buf)} of 4 magic bytes)")
        else:
            raise CaptureError(self.path, "not a pcap or pcapng capture")

    def _header_error(self, reason: str) -> CaptureError:
        if self._src.error:
            reason = f"{self._src.error}: {reason}"
        return CaptureError(self.path, reason, offset=0)

    def _check_first_shb(self) -> None:
        buf = self._buf = self._fill(self._buf, 0, 12)
        if len(buf) < 12:
            raise self._header_error(
                f"pcapng section header block truncated ({len(buf)} of at least 12 bytes)"
            )
        bom = buf[8:12]
        if bom not in (_BOM_LE, _BOM_BE):
            raise self._header_error(
                f"pcapng section header has bad byte-order magic 0x{bom.hex()}"
            )
        endian = "<" if bom == _BOM_LE else ">"
        (length,) = struct.unpack_from(endian + "I", buf, 4)
        problem = _bad_block_length(length)
        if problem:
            raise self._header_error(f"pcapng section header {problem}")
        buf = self._buf = self._fill(buf, 0, length)
        if len(buf) < length:
            raise self._header_error(
                f"pcapng section header block truncated ({len(buf)} of {length} bytes)"
            )
        (trailer,) = struct.unpack_from(endian + "I", buf, length - 4)
        if trailer != length:
            raise self._header_error(
                f"pcapng section header trailing block length {trailer} does not match {length}"
            )

    # -- buffering ----------------------------------------------------------------------------

    def _fill(self, buf: bytes, pos: int, need: int) -> bytes:
        """buf[pos:] extended to at least `need` bytes, or to what the input still has."""
        self._base += pos
        have = len(buf) - pos
        parts = [buf[pos:]]
        while have < need:
            chunk = self._src.read(max(_CHUNK, need - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def _skip(self, buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
        """(buf, pos) moved on past the next `n` bytes of the stream, which are read (for
        compressed input: decompressed) in pieces of at most _CHUNK and dropped, never held.
        Fewer are skipped only where the input ends: then buf is empty and self._base is the
        end of the input."""
        if len(buf) - pos >= n:
            return buf, pos + n
        n -= len(buf) - pos
        self._base += len(buf)
        while True:
            piece = self._src.read(min(n, _CHUNK))
            if not piece:
                return b"", 0
            if len(piece) >= n:  # a source may hand back more than asked (_PlainSource's head)
                self._base += n
                return piece[n:], 0
            self._base += len(piece)
            n -= len(piece)

    def _stop(
        self, reason: str, offset: int, frame: int | None, done: int, *, at_end: bool = True
    ) -> None:
        """Record damage after the header (`done` frames read): one warning line, then stop.
        `at_end`: the damage is where the input ran out (not bad values inside it)."""
        if at_end and self._src.error and not reason.startswith(self._src.error):
            # The structure broke because the gzip stream did; say so first.
            reason = f"{self._src.error}: {reason}" if reason else self._src.error
        self.damage = (
            f"{self.path}: {_where(offset, frame)}{reason}; "
            f"reading stopped, {done} frame{'' if done == 1 else 's'} analysed"
        )
        self.warnings.append(self.damage)
        self.truncated = True

    # -- iteration ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[RawFrame]:
        # Single pass: the input is a stream (possibly gzip), so a second iteration is empty.
        if self._started:
            return iter(())
        self._started = True
        if self.format == "pcap":
            return self._iter_pcap()
        return chain.from_iterable(self._iter_pcapng(_CHUNK))

    def chunks(self, target_bytes: int = 1 << 19) -> Iterator[PcapChunk | list[RawFrame]]:
        """The frames in groups for batch decoding: PcapChunks of about `target_bytes` for a
        classic pcap (no per-frame objects at all), lists of RawFrames for pcapng (at most
        _GROUP_FRAMES of them, holding about `target_bytes` of captured data at most), and a
        list of one RawFrame for a pcap record longer than _FRAME_PREFIX. Iteration walks the
        same groups, so damage is handled alike. Single pass, like iteration."""
        if self._started:
            return
        self._started = True
        if self.format == "pcapng":
            yield from self._iter_pcapng(target_bytes)
        else:
            yield from self._iter_pcap_chunks(target_bytes)

    def _iter_pcap_chunks(self, target: int) -> Iterator[PcapChunk | list[RawFrame]]:
        # The walk over a classic pcap's records (iteration uses it too), collecting offsets.
        buf, pos = self._buf, self._pos
        self._buf = b""
        caplen_at = struct.Struct(self._endian + "I").unpack_from
        limit = self._caplen_limit
        prefix = _FRAME_PREFIX
        number = 0
        damage: tuple[str, int] | None = None
        absurd = False
        need = target
        zeros, zeros_at, zeros_index = 0, 0, 0  # the current run of all-zero records
        give_up = self._zero_records
        while True:
            buf, pos = self._fill(buf, pos, need), 0
            size = len(buf)
            exhausted = size < need  # _fill comes back short only at the end of the input
            offsets: list[int] = []
            append = offsets.append
            zeros_index = 0  # (a run that began in an earlier chunk: from this one's start)
            caplen = -1  # of the first incomplete or long record, if its header is complete
            while size - pos >= 16:
                (caplen,) = caplen_at(buf, pos + 8)
                if caplen > prefix:
                    # One test for both (limit >= prefix): a long record is taken on its own
                    # below, whether or not the buffer happens to hold all of it.
                    if caplen > limit:
                        damage = (f"absurd caplen {caplen} (limit {limit})", self._base + pos)
                        absurd = True
                    break
                if caplen == 0 and buf[pos : pos + 16] == _ZERO_RECORD:
                    if not zeros:
                        zeros_at, zeros_index = self._base + pos, len(offsets)
                    zeros += 1
                    if zeros == give_up:
                        # A zeroed tail (a preallocated or overwritten file): give up rather
                        # than decode millions of empty frames.
                        del offsets[zeros_index:]
                        damage = (f"{zeros} or more empty all-zero records from here", zeros_at)
                        absurd = True
                        break
                else:
                    zeros = 0
                end = pos + 16 + caplen
                if end > size:
                    break
                append(pos)
                pos = end
                caplen = -1
            if offsets:
                self._note_times(buf, offsets[0], offsets[-1])
                yield PcapChunk(number + 1, buf, offsets, self._endian, self._units, self._linktype)
                number += len(offsets)
            if damage is not None:
                break
            if caplen > prefix:
                zeros = 0
                buf, pos, long_frame, damage = self._long_record(buf, pos, caplen, number + 1)
                if long_frame is not None:
                    yield [long_frame]
                    number += 1
                if damage is not None:
                    break
                need = target
                continue
            if not exhausted:
                need = max(target, 16 + max(caplen, 0))  # room for the next whole record (header)
                continue
            rest = size - pos
            if rest >= 16:
                reason = f"record body truncated (caplen {caplen}, {rest - 16} bytes left)"
                damage = (reason, self._base + pos)
            elif rest:
                damage = (f"record header truncated ({rest} of 16 bytes)", self._base + pos)
            elif self._src.error:
                damage = ("", self._base + pos)
            break
        self.frames_numbered = number
        if damage is not None:
            # How far the input was read ahead when a bad length showed up depends on
            # buffering, so whether the source had failed by then is not worth reporting.
            self._stop(damage[0], damage[1], number + 1, number, at_end=not absurd)
        self.close()

    def _long_record(
        self, buf: bytes, pos: int, caplen: int, number: int
    ) -> tuple[bytes, int, RawFrame | None, tuple[str, int] | None]:
        """The pcap record at buf[pos:] whose caplen is over _FRAME_PREFIX: its first
        _FRAME_PREFIX bytes as a RawFrame, the rest skipped. Returns (buf, pos) after it, the
        frame, and the damage (the input ending inside it) if there is any instead."""
        at = self._base + pos
        keep = 16 + _FRAME_PREFIX
        buf, pos = self._fill(buf, pos, keep), 0
        if len(buf) < keep:  # the input ends inside the kept part
            reason = f"record body truncated (caplen {caplen}, {len(buf) - 16} bytes left)"
            return buf, pos, None, (reason, at)
        sec, frac, _caplen, wire_len = struct.unpack_from(self._endian + "IIII", buf, 0)
        data = buf[16:keep]
        buf, pos = self._skip(buf, keep, caplen - _FRAME_PREFIX)
        got = self._base + pos - at  # the record's bytes the input held
        if got < 16 + caplen:
            reason = f"record body truncated (caplen {caplen}, {got - 16} bytes left)"
            return buf, pos, None, (reason, at)
        time = (sec * self._units + frac) / self._units
        self._note_time(time)
        frame = RawFrame(number, time, self._linktype, data, wire_len, caplen - _FRAME_PREFIX)
        return buf, pos, frame, None

    def _note_times(self, buf: bytes, first: int, last: int) -> None:
        # A chunk's first and last record only: two struct calls per chunk, not per frame.
        for pos in (first, last):
            sec, frac = struct.unpack_from(self._endian + "II", buf, pos)
            self._note_time((sec * self._units + frac) / self._units)

    def _note_time(self, time: float) -> None:
        if self.first_time is None or time < self.first_time:
            self.first_time = time
        if self.last_time is None or time > self.last_time:
            self.last_time = time

    def _iter_pcap(self) -> Iterator[RawFrame]:
        # The records of the same walk as chunks(), one RawFrame each: one set of damage rules.
        header = struct.Struct(self._endian + "IIII").unpack_from
        units, linktype = self._units, self._linktype
        for chunk in self._iter_pcap_chunks(_CHUNK):
            if not isinstance(chunk, PcapChunk):
                yield from chunk  # a long record, already cut to its first _FRAME_PREFIX bytes
                continue
            data, number = chunk.data, chunk.first_number
            for pos in chunk.offsets:
                sec, frac, caplen, wire_len = header(data, pos)
                start = pos + 16
                # Integer arithmetic then one division: the float is the correctly rounded value.
                time = (sec * units + frac) / units
                yield RawFrame(number, time, linktype, data[start : start + caplen], wire_len)
                number += 1

    def _iter_pcapng(self, target: int) -> Iterator[list[RawFrame]]:
        # Frames come out in groups (chunks() hands them on as they are; iteration chains them):
        # a group ends at _GROUP_FRAMES frames or `target` captured bytes, whichever is first.
        buf, pos = self._buf, self._pos
        self._buf = b""
        number = 0
        group: list[RawFrame] = []
        held = 0  # captured bytes in `group`
        prefix, group_frames = _FRAME_PREFIX, _GROUP_FRAMES
        # A block longer than this is read as its first `head` bytes (an EPB's or PB's 28-byte
        # header and _FRAME_PREFIX bytes of packet: all a frame keeps), then skipped to its
        # trailing length; shorter ones are read whole.
        head = 28 + prefix
        last_time = 0.0  # SPBs carry no timestamp; they get the previous packet's time
        # Per-interface (linktype, ticks per second, offset in ticks, snaplen) for this section.
        ifaces: list[tuple[int, int, int, int]] = []
        endian = "<"
        hdr = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        pb = struct.Struct("<HHIIII").unpack_from
        u32 = struct.Struct("<I").unpack_from
        damage: tuple[str, int, int | None] | None = None  # (reason, offset, frame)
        while True:
            if len(buf) - pos < 12:
                buf, pos = self._fill(buf, pos, 12), 0
                if len(buf) < 12:
                    if len(buf) >= 8:
                        btype, length = hdr(buf, 0)
                        problem = _bad_block_length(length)
                        reason = (
                            f"bad block {problem}"
                            if problem
                            else f"block truncated (length {length}, {len(buf)} bytes left)"
                        )
                        frame = number + 1 if btype in _PACKET_BLOCKS else None
                        damage = (reason, self._base, frame)
                    elif buf:
                        reason = f"block header truncated ({len(buf)} of 8 bytes)"
                        damage = (reason, self._base, None)
                    elif self._src.error:
                        damage = ("", self._base, None)
                    break
            btype, length = hdr(buf, pos)
            if btype == _SHB:
                # A new section: its own byte order, and interfaces start again from 0.
                bom = buf[pos + 8 : pos + 12]
                if bom not in (_BOM_LE, _BOM_BE):
                    reason = f"section header has bad byte-order magic 0x{bom.hex()}"
                    damage = (reason, self._base + pos, None)
                    break
                endian = "<" if bom == _BOM_LE else ">"
                if len(buf) >= pos + 16:
                    (major,) = struct.unpack_from(endian + "H", buf, pos + 12)
                    if major != 1:
                        # Version 1 is the only one there is; a reader must not guess at others.
                        self.warnings.append(
                            f"{self.path}: pcapng section at byte {self._base + pos} has major "
                            f"version {major} (tcpdiag knows 1): read as version 1, so its "
                            "blocks may be misread"
                        )
                hdr = struct.Struct(endian + "II").unpack_from
                epb = struct.Struct(endian + "IIIII").unpack_from
                pb = struct.Struct(endian + "HHIIII").unpack_from
                u32 = struct.Struct(endian + "I").unpack_from
                btype, length = hdr(buf, pos)
                ifaces = []
            frame = number + 1 if btype in _PACKET_BLOCKS else None
            problem = _bad_block_length(length)
            if problem:
                damage = (f"bad block {problem}", self._base + pos, frame)
                break
            # The block's bytes that are looked at: block[at:body_end] (it starts at `at`, at
            # byte `block_at` of the stream); after it, reading goes on at buf[pos:].
            block_at = self._base + pos
            if length <= head + 4:
                end = pos + length
                if end > len(buf):
                    buf, pos = self._fill(buf, pos, length), 0
                    end = length
                    if end > len(buf):
                        reason = f"block truncated (length {length}, {len(buf)} bytes left)"
                        damage = (reason, block_at, frame)
                        break
                (trailer,) = u32(buf, end - 4)
                block, at, body_end = buf, pos, end - 4
                pos = end
            else:
                # Too long to hold: its first `head` bytes are kept, the rest up to the trailing
                # length is skipped in bounded pieces. Checked in the same order, with the same
                # messages, as a block read whole.
                block, at, body_end = self._fill(buf, pos, head), 0, head
                if len(block) < head:
                    reason = f"block truncated (length {length}, {len(block)} bytes left)"
                    damage = (reason, block_at, frame)
                    break
                buf, pos = self._skip(block, head, length - 4 - head)
                buf, pos = self._fill(buf, pos, 4), 4
                if len(buf) < 4:
                    left = self._base + len(buf) - block_at  # the input ends inside the block
                    reason = f"block truncated (length {length}, {left} bytes left)"
                    damage = (reason, block_at, frame)
                    break
                (trailer,) = u32(buf, 0)
            if trailer != length:
                reason = f"trailing block length {trailer} does not match {length}"
                damage = (reason, block_at, frame)
                break

            if btype in (_EPB, _PB):
                if length < 32:
                    damage = (f"packet block too short (length {length})", block_at, frame)
                    break
                if btype == _EPB:
                    iface, ts_high, ts_low, caplen, wire_len = epb(block, at + 8)
                else:
                    iface, _drops, ts_high, ts_low, caplen, wire_len = pb(block, at + 8)
                if iface >= len(ifaces):
                    damage = (_undeclared(iface, len(ifaces)), block_at, frame)
                    break
                if caplen > length - 32:
                    reason = f"packet block caplen {caplen} exceeds its block length {length}"
                    damage = (reason, block_at, frame)
                    break
                linktype, ticks, offset, _snaplen = ifaces[iface]
                last_time = (((ts_high << 32) | ts_low) + offset) / ticks
                if self.first_time is None:
                    self._note_time(last_time)
                number += 1
                start = at + 28
                if caplen > prefix:
                    data = block[start : start + prefix]
                    group.append(
                        RawFrame(number, last_time, linktype, data, wire_len, caplen - prefix)
                    )
                    held += prefix
                else:
                    data = block[start : start + caplen]
                    group.append(RawFrame(number, last_time, linktype, data, wire_len))
                    held += caplen
                if held >= target or len(group) >= group_frames:
                    yield group
                    group, held = [], 0
            elif btype == _SPB:
                if length < 16:
                    damage = (f"packet block too short (length {length})", block_at, frame)
                    break
                if not ifaces:
                    damage = (_undeclared(0, 0), block_at, frame)
                    break
                linktype, _ticks, _offset, snaplen = ifaces[0]
                (wire_len,) = u32(block, at + 8)
                # No caplen field: the data is the original length cut to snaplen, and the
                # block length is the last word on it (it may include padding).
                caplen = min(wire_len, length - 16)
                if snaplen:
                    caplen = min(caplen, snaplen)
                number += 1
                start = at + 12
                keep = min(caplen, prefix)
                data = block[start : start + keep]
                group.append(RawFrame(number, last_time, linktype, data, wire_len, caplen - keep))
                held += keep
                if held >= target or len(group) >= group_frames:
                    yield group
                    group, held = [], 0
            elif btype == _IDB:
                if length < 20:
                    reason = f"interface description block too short (length {length})"
                    damage = (reason, block_at, None)
                    break
                linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", block, at + 8)
                # (Options past the kept part of a huge IDB end the scan, as malformed ones do.)
                ticks, offset_s = _idb_options(block, at + 16, body_end, endian)
                ifaces.append((linktype, ticks, offset_s * ticks, snaplen))
            elif btype in _NUMBERED_NON_PACKET_BLOCKS:
                number += 1
            # Every other block type (name resolution, statistics, secrets, ...) is skipped by
            # its length.
        if group:
            yield group
        self.frames_numbered = number
        if self.first_time is not None:  # a packet was read, so last_time is its time
            self._note_time(last_time)
        if damage is not None:
            self._stop(damage[0], damage[1], damage[2], number)
        self.close()

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_head(raw: _RawFile) -> bytes:
    """The first bytes of the input, at least _SNIFF unless it is shorter: a pipe may hand
    them over a few at a time."""
    parts: list[bytes] = []
    have = 0
    while have < _SNIFF:
        part = _observed(raw.read(max(_CHUNK, _SNIFF)))
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def _bad_block_length(length: int) -> str | None:
    """Why a pcapng block length cannot be right, or None."""
    if length < 12:
        return f"length {length} (less than 12)"
    if length & 3:
        return f"length {length} (not a multiple of 4)"
    if length > _MAX_RECORD:
        return f"length {length} (over {_MAX_RECORD})"
    return None


def _undeclared(iface: int, declared: int) -> str:
    return f"packet block references undeclared interface {iface} ({declared} declared)"


def _idb_options(buf: bytes, pos: int, end: int, endian: str) -> tuple[int, int]:
    """(timestamp ticks per second, offset in seconds) from an IDB's options.

    Malformed options end the scan quietly: the defaults (microseconds, no offset) are the
    best guess, and the packets themselves may still be fine.
    """
    ticks, offset = 1_000_000, 0
    opt = struct.Struct(endian + "HH").unpack_from
    while pos + 4 <= end:
        code, size = opt(buf, pos)
        value = pos + 4
        if code == _OPT_ENDOFOPT or value + size > end:
            break
        if code == _OPT_IF_TSRESOL and size >= 1:
            res = buf[value]
            # Top bit set: a negative power of 2; otherwise a negative power of 10.
            ticks = 2 ** (res & 0x7F) if res & 0x80 else 10**res
        elif code == _OPT_IF_TSOFFSET and size >= 8:
            (offset,) = struct.unpack_from(endian + "q", buf, value)
        pos = value + ((size + 3) & ~3)  # values are padded to 32 bits
    return ticks, offset


@dataclass(frozen=True, slots=True)
class JoinedPart:
    path: str
    first_frame: int  # the part's first frame in the joined numbering
    frames: int  # frame numbers the part used


class JoinedReader:
    """The rotated parts of one capture (tcpdump -C/-G/-W), read as one capture, in the order
    given. Frames are numbered continuously across the parts: frame 1 of the second part is the
    first part's last frame + 1; `parts` says where each part starts. A part that cannot be
    opened or is damaged gives a warning and is skipped from there: a gap in the capture, not
    the end of it. Same interface as CaptureReader."""

    format = "joined"

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], limits: ReadLimits = ReadLimits()
    ) -> None:
        if not paths:
            raise ValueError("JoinedReader needs at least one part")
        self.paths = [os.fspath(p) for p in paths]
        self._limits = limits
        self.path = joined_name(self.paths)
        self.warnings: list[str] = []
        self.truncated = False
        self.damage: str | None = None  # the first part's damage or gap, if any (see CaptureReader)
        self.parts: list[JoinedPart] = []
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._started = False
        self._current: CaptureReader | None = None
        # Like a single file, the capture is unreadable only when its first part is.
        self._first: CaptureReader | None = CaptureReader(self.paths[0], limits)

    def _readers(self) -> Iterator[tuple[CaptureReader, int]]:
        """Each part's reader, and the frames numbered before it; the bookkeeping of a part is
        done when the caller asks for the next one."""
        offset = 0
        for index, path in enumerate(self.paths):
            if index == 0 and self._first is not None:
                reader, self._first = self._first, None
            else:
                try:
                    reader = CaptureReader(path, self._limits)
                except CaptureError as exc:
                    gap = f"{exc}; part skipped, the joined capture has a gap"
                    self.warnings.append(gap)
                    self.truncated = True
                    self.damage = self.damage or gap
                    continue
            self._current = reader
            with reader:
                yield reader, offset
            self.parts.append(JoinedPart(reader.path, offset + 1, reader.frames_numbered))
            self.warnings.extend(reader.warnings)
            self._note_span(reader)
            self.truncated = self.truncated or reader.truncated
            self.damage = self.damage or reader.damage
            offset += reader.frames_numbered
        self._current = None

    def _note_span(self, part: CaptureReader) -> None:
        if part.first_time is None or part.last_time is None:
            return
        if self.last_time is not None and part.first_time < self.last_time - 1.0:
            # Rotated parts follow one another; overlapping ones are probably not one capture.
            self.warnings.append(
                f"{part.path}: starts {self.last_time - part.first_time:.1f} s before the "
                "previous part ends: are these really parts of one capture?"
            )
        if self.first_time is None or part.first_time < self.first_time:
            self.first_time = part.first_time
        if self.last_time is None or part.last_time > self.last_time:
            self.last_time = part.last_time

    def __iter__(self) -> Iterator[RawFrame]:
        if self._started:
            return iter(())
        self._started = True
        return self._iter_frames()

    def _iter_frames(self) -> Iterator[RawFrame]:
        for reader, offset in self._readers():
            for frame in reader:
                frame.number += offset
                yield frame

    def chunks(self, target_bytes: int = 1 << 19) -> Iterator[PcapChunk | list[RawFrame]]:
        if self._started:
            return
        self._started = True
        for reader, offset in self._readers():
            for chunk in reader.chunks(target_bytes):
                if isinstance(chunk, PcapChunk):
                    yield dataclasses.replace(chunk, first_number=chunk.first_number + offset)
                else:
                    for frame in chunk:
                        frame.number += offset
                    yield chunk

    def close(self) -> None:
        for reader in (self._first, self._current):
            if reader is not None:
                reader.close()

    def __enter__(self) -> JoinedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def joined_name(paths: Sequence[str]) -> str:
    """How a joined capture is named in reports: its first part and how many follow."""
    if len(paths) == 1:
        return paths[0]
    return f"{paths[0]} (+{len(paths) - 1} joined part{'s' * (len(paths) > 2)})"
