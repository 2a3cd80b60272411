"""Encrypted original segments: the unmasked video, sealed at rest.

Each segment (the bytes of one media file, for example a few seconds of MP4 or MKV) is sealed
with AES-256-GCM under a fresh random *data key*; the data key is wrapped by the
:class:`~veil.vault.keys.MasterKey` (AES key wrap, RFC 3394) and stored in the file's header.
Losing one data key loses one segment; the master key itself never touches the disk here.

File format, version 1 (integers big-endian)::

    magic "VEILSEG\\0" (8) | version u16 | body length u32 | body:
        key id (8) | wrapped key length u16 | wrapped key | nonce prefix (8) | chunk size u32
        | start, microseconds since 1970 UTC, i64 | sequence u64 | camera id length u16
        | camera id (UTF-8)
    then chunks: AES-GCM(plaintext of chunk size bytes, the last one shorter) + 16-byte tag

Chunk ``i`` uses nonce = prefix || i (u32) and associated data = the whole header || i (u64) ||
final flag (u8). So:

* changing any header byte (camera, start time, sequence, key) fails every chunk;
* reordering chunks fails (the index is authenticated), and so does cutting the file short
  (the last remaining chunk was not sealed as final);
* a segment renamed to, or swapped with, another's name is refused: the reader checks the
  identity in the authenticated header against the one it expects (by default the file name).

Writing goes to a hidden ``.NAME.partial`` file that is renamed when complete, after fsync, so
a crash loses at most the segment being written; :func:`prune` sweeps stale partial files.

Example::

    segment = SegmentId("door", datetime(2026, 11, 25, 8, 0, tzinfo=UTC), 42)
    with EncryptedSegmentWriter(Path("originals"), segment, key) as writer:
        writer.write(mp4_bytes)
    data = decrypt_segment(writer.path, key)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.core.resources import Committing
from veil.vault.keys import MasterKey, VaultError, WrongKeyError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "SUFFIX",
    "TAG_BYTES",
    "EncryptedSegmentWriter",
    "SegmentCorruptError",
    "SegmentHeader",
    "SegmentId",
    "SegmentMismatchError",
    "StoredSegment",
    "decrypt_segment",
    "encrypt_segment",
    "iter_decrypt_segment",
    "list_segments",
    "prune",
    "read_segment_header",
]

MAGIC = b"VEILSEG\x00"
FORMAT_VERSION = 1
SUFFIX = ".vseg"
PARTIAL_SUFFIX = ".partial"
DEFAULT_CHUNK_SIZE = 1024 * 1024
TAG_BYTES = 16
_MAX_BODY = 4096
_MAX_CHUNK = 64 * 1024 * 1024
_MAX_CHUNKS = 2**32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CAMERA_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\- ]{0,63}$")
_FILENAME = re.compile(
    r"^(?P<camera>.+)_(?P<start>\d{8}T\d{12}Z)_(?P<seq>\d{8,20})" + re.escape(SUFFIX) + "$"
)
_PREFIX = struct.Struct(">8sHI")


class SegmentCorruptError(VaultError):
    """A segment was altered, truncated or is not a Veil segment at all."""


class SegmentMismatchError(VaultError):
    """A segment holds another camera's or time's video than its name says (swapped/renamed)."""


@dataclass(frozen=True, slots=True)
class SegmentId:
    """Which video a segment holds: camera, start time (UTC, microseconds) and sequence."""

    camera_id: str
    start: datetime
    sequence: int

    def __post_init__(self) -> None:
        if not _CAMERA_ID.match(self.camera_id):
            raise VaultError(
                f"camera id {self.camera_id!r} cannot name a segment file",
                hint="use 1-64 letters, digits, '_', '-', '.', or spaces, not starting with '.'",
            )
        if self.start.tzinfo is None:
            raise VaultError(
                f"segment start {self.start!r} has no timezone",
                hint="pass an aware datetime, e.g. datetime.now(UTC)",
            )
        if not 0 <= self.sequence < 2**63:
            raise VaultError(f"segment sequence must be 0 to 2**63-1, got {self.sequence}")
        object.__setattr__(self, "start", self.start.astimezone(UTC))

    @property
    def start_us(self) -> int:
        """Start as whole microseconds since 1970-01-01 UTC."""
        return (self.start - _EPOCH) // timedelta(microseconds=1)

    @property
    def filename(self) -> str:
        """``CAMERA_YYYYMMDDTHHMMSSffffffZ_SEQUENCE.vseg``; sorts by time within a camera."""
        return f"{self.camera_id}_{self.start:%Y%m%dT%H%M%S%f}Z_{self.sequence:08d}{SUFFIX}"

    @classmethod
    def from_filename(cls, name: str) -> SegmentId | None:
        """Parse a name made by :attr:`filename`; ``None`` when it is not one."""
        match = _FILENAME.match(name)
        if match is None:
            return None
        try:
            start = datetime.strptime(match["start"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            return cls(match["camera"], start, int(match["seq"]))
        except (ValueError, VaultError):
            return None

    def describe(self) -> str:
        return f"camera {self.camera_id!r}, start {self.start.isoformat()}, #{self.sequence}"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """A segment's header as read from disk (authenticated only once a chunk decrypts)."""

    version: int
    segment: SegmentId
    key_id: bytes
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk_size: int
    raw: bytes


def _encode_body(
    segment: SegmentId, key_id: bytes, wrapped: bytes, prefix: bytes, chunk_size: int
) -> bytes:
    camera = segment.camera_id.encode("utf-8")
    return b"".join(
        (
            key_id,
            struct.pack(">H", len(wrapped)),
            wrapped,
            prefix,
            struct.pack(">IqQH", chunk_size, segment.start_us, segment.sequence, len(camera)),
            camera,
        )
    )


def _encode_header(body: bytes) -> bytes:
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)) + body


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


class EncryptedSegmentWriter(Committing):
    """Streams one segment to disk encrypted; the file appears under its name only on close.

    ``chunk_size`` trades memory (one chunk is buffered) against per-chunk overhead (16 bytes
    of tag each). Use as a context manager: an exception inside the block aborts and deletes
    the partial file; a process that dies leaves only a hidden ``.partial`` file.
    """

    def __init__(
        self,
        directory: Path,
        segment: SegmentId,
        master_key: MasterKey,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if not 1 <= chunk_size <= _MAX_CHUNK:
            raise VaultError(f"chunk_size must be 1 byte to 64 MiB, got {chunk_size}")
        directory = Path(directory)
        if not directory.is_dir():
            raise VaultError(
                f"the recordings folder {directory} does not exist",
                hint="create it before recording",
            )
        self.segment = segment
        self.path = directory / segment.filename
        self.partial_path = directory / f".{segment.filename}{PARTIAL_SUFFIX}"
        if self.path.exists():
            raise VaultError(
                f"the segment {self.path} already exists; Veil never overwrites a recording",
                hint="give the new segment the next sequence number",
            )
        self._chunk_size = chunk_size
        data_key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(data_key)
        self._prefix = secrets.token_bytes(8)
        body = _encode_body(
            segment, master_key.key_id, master_key.wrap(data_key), self._prefix, chunk_size
        )
        self._header = _encode_header(body)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        try:
            fd = os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as error:
            raise self._io_error(error) from error
        self._file: BinaryIO = os.fdopen(fd, "wb")
        try:
            self._file.write(self._header)
        except OSError as error:
            self.abort()
            raise self._io_error(error) from error

    def _io_error(self, error: OSError) -> VaultError:
        return VaultError(
            f"cannot write the segment {self.path}: {error.strerror or error}",
            hint="check the recordings folder's permissions and free space",
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes to the segment; full chunks are encrypted and written at once."""
        if self._closed:
            raise VaultError(
                f"the segment writer for {self.path.name} is closed",
                hint="open a new writer for the next segment",
            )
        self._buffer += data
        # Keep at least one byte back: only close() knows which chunk is the final one.
        try:
            while len(self._buffer) > self._chunk_size:
                self._emit(bytes(self._buffer[: self._chunk_size]), final=False)
                del self._buffer[: self._chunk_size]
        except OSError as error:
            self.abort()
            raise self._io_error(error) from error

    def _emit(self, plaintext: bytes, *, final: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise VaultError("segment too large for its chunk counter", hint="split it")
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self._index), plaintext, _aad(self._header, self._index, final)
        )
        self._file.write(sealed)
        self._index += 1

    def close(self) -> Path:
        """Seal the final chunk, fsync, and rename into place. Returns the segment's path."""
        if self._closed:
            return self.path
        try:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self.path.exists():
                raise VaultError(
                    f"the segment {self.path} appeared while it was being written",
                    hint="two writers used the same camera, start and sequence",
                )
            os.replace(self.partial_path, self.path)
            _fsync_dir(self.path.parent)
        except OSError as error:
            self.abort()
            raise self._io_error(error) from error
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard the segment: close and delete the partial file."""
        self._closed = True
        self._buffer.clear()
        with contextlib.suppress(OSError):
            self._file.close()
        self.partial_path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encrypt_segment(
    directory: Path,
    segment: SegmentId,
    data: bytes,
    master_key: MasterKey,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Write ``data`` as one encrypted segment; returns its path."""
    with EncryptedSegmentWriter(directory, segment, master_key, chunk_size=chunk_size) as w:
        w.write(data)
    return w.path


def _read_header(handle: BinaryIO, path: Path) -> SegmentHeader:
    prefix = handle.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size or not prefix.startswith(MAGIC):
        raise SegmentCorruptError(
            f"{path} is not a Veil encrypted segment (bad magic bytes)",
            hint="pass a .vseg file written by Veil",
        )
    _, version, body_len = _PREFIX.unpack(prefix)
    if version != FORMAT_VERSION:
        raise VaultError(
            f"{path} uses segment format version {version}; this Veil reads version "
            f"{FORMAT_VERSION}",
            hint="decrypt it with the Veil version that wrote it",
        )
    if body_len > _MAX_BODY:
        raise SegmentCorruptError(
            f"{path} has a corrupt header (length {body_len})", hint="the file was altered"
        )
    body = handle.read(body_len)
    try:
        if len(body) != body_len:
            raise ValueError("header cut short")
        key_id = body[:8]
        (wrapped_len,) = struct.unpack_from(">H", body, 8)
        offset = 10
        wrapped = body[offset : offset + wrapped_len]
        offset += wrapped_len
        nonce_prefix = body[offset : offset + 8]
        offset += 8
        chunk_size, start_us, sequence, camera_len = struct.unpack_from(">IqQH", body, offset)
        offset += struct.calcsize(">IqQH")
        camera = body[offset : offset + camera_len].decode("utf-8")
        if offset + camera_len != body_len or len(wrapped) != wrapped_len:
            raise ValueError("header fields do not add up to its length")
        if not 1 <= chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk size {chunk_size}")
        segment = SegmentId(camera, _EPOCH + timedelta(microseconds=start_us), sequence)
    except (ValueError, struct.error, UnicodeDecodeError, VaultError, OverflowError) as error:
        raise SegmentCorruptError(
            f"{path} has a corrupt header ({error})",
            hint="the file was altered or cut short; restore it from a backup",
        ) from error
    return SegmentHeader(
        version=version,
        segment=segment,
        key_id=key_id,
        wrapped_key=wrapped,
        nonce_prefix=nonce_prefix,
        chunk_size=chunk_size,
        raw=prefix + body,
    )


def read_segment_header(path: Path) -> SegmentHeader:
    """Read a segment's header without the key (not yet authenticated: for listing only)."""
    path = Path(path)
    with path.open("rb") as handle:
        return _read_header(handle, path)


def iter_decrypt_segment(
    path: Path, master_key: MasterKey, *, expected: SegmentId | None = None
) -> Iterator[bytes]:
    """Decrypt a segment chunk by chunk (memory: one chunk).

    ``expected`` is the segment the caller means to read; by default it comes from the file
    name, so a renamed or swapped file is refused. Every chunk yielded is authentic, but a
    truncated or tampered file raises only when the bad chunk is reached: a consumer that
    streams must discard what it got when the iterator raises.
    """
    path = Path(path)
    if expected is None:
        expected = SegmentId.from_filename(path.name)
        if expected is None:
            raise SegmentMismatchError(
                f"cannot tell which segment {path.name} should hold: its name is not "
                "CAMERA_START_SEQUENCE.vseg",
                hint="restore the original file name or pass expected=SegmentId(...)",
            )
    try:
        handle = path.open("rb")
    except FileNotFoundError as error:
        raise VaultError(
            f"the segment {path} does not exist", hint="check the recordings folder"
        ) from error
    with handle:
        header = _read_header(handle, path)
        if header.segment != expected:
            raise SegmentMismatchError(
                f"{path.name} holds {header.segment.describe()}, not the expected "
                f"{expected.describe()}: segments were swapped or renamed",
                hint="restore the original file names from a backup or the index",
            )
        try:
            data_key = master_key.unwrap(header.wrapped_key)
        except WrongKeyError as error:
            if header.key_id != master_key.key_id:
                raise WrongKeyError(
                    f"{path.name} was encrypted under master key {header.key_id.hex()}, "
                    f"but the key given is {master_key.key_id.hex()}",
                    hint="use the passphrase or key file the recording was made with",
                ) from error
            raise SegmentCorruptError(
                f"the wrapped data key in {path.name} was altered",
                hint="the segment cannot be decrypted; restore it from a backup",
            ) from error
        aead = AESGCM(data_key)
        full = header.chunk_size + TAG_BYTES
        index = 0
        block = handle.read(full)
        while True:
            if len(block) < full:
                following = b""
                final = True
            else:
                following = handle.read(full)
                final = not following
            if len(block) < TAG_BYTES:
                raise SegmentCorruptError(
                    f"{path.name} is truncated: chunk {index} is missing or cut short",
                    hint="the segment was not completely written or was cut; restore it",
                )
            nonce = _nonce(header.nonce_prefix, index)
            try:
                plaintext = aead.decrypt(nonce, block, _aad(header.raw, index, final))
            except InvalidTag as error:
                raise _diagnose(aead, header, path, index, block, final) from error
            yield plaintext
            if final:
                return
            if index + 1 >= _MAX_CHUNKS:
                raise SegmentCorruptError(f"{path.name} has too many chunks")
            block = following
            index += 1


def _diagnose(
    aead: AESGCM, header: SegmentHeader, path: Path, index: int, block: bytes, final: bool
) -> SegmentCorruptError:
    if final:
        with contextlib.suppress(InvalidTag):
            aead.decrypt(_nonce(header.nonce_prefix, index), block, _aad(header.raw, index, False))
            return SegmentCorruptError(
                f"{path.name} is truncated: it ends after chunk {index}, which was not the last",
                hint="the rest of the segment is lost; restore it from a backup",
            )
    return SegmentCorruptError(
        f"{path.name} fails authentication at chunk {index}: it was altered, reordered or cut "
        "mid-chunk",
        hint="do not trust this segment; restore it from a backup",
    )


def decrypt_segment(
    path: Path, master_key: MasterKey, *, expected: SegmentId | None = None
) -> bytes:
    """Decrypt a whole segment into memory; see :func:`iter_decrypt_segment`."""
    return b"".join(iter_decrypt_segment(path, master_key, expected=expected))


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """A finished segment file on disk, identified by its name."""

    path: Path
    segment: SegmentId


def list_segments(directory: Path, *, camera_id: str | None = None) -> list[StoredSegment]:
    """Finished segments under ``directory`` (recursively), by camera, start and sequence."""
    found: list[StoredSegment] = []
    for path in Path(directory).rglob(f"*{SUFFIX}"):
        segment = SegmentId.from_filename(path.name)
        if segment is None or not path.is_file() or path.is_symlink():
            continue
        if camera_id is None or segment.camera_id == camera_id:
            found.append(StoredSegment(path, segment))
    found.sort(key=lambda s: (s.segment.camera_id, s.segment.start, s.segment.sequence))
    return found


def prune(
    directory: Path, older_than: timedelta | datetime, *, now: datetime | None = None
) -> list[Path]:
    """Delete segments that started before a cutoff; returns the paths removed.

    ``older_than`` is an age (``timedelta(days=30)``, counted back from ``now``) or a cutoff
    time. Segments are dated by the start in their name; stale ``.partial`` files left by a
    crash are dated by their modification time. Other files are never touched.
    """
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None:
            raise VaultError("the prune cutoff has no timezone", hint="pass an aware datetime")
        cutoff = older_than
    else:
        if older_than < timedelta(0):
            raise VaultError(f"retention must not be negative, got {older_than}")
        cutoff = (now or datetime.now(UTC)) - older_than
    removed: list[Path] = []
    for stored in list_segments(directory):
        if stored.segment.start < cutoff:
            stored.path.unlink(missing_ok=True)
            removed.append(stored.path)
    for path in Path(directory).rglob(f".*{SUFFIX}{PARTIAL_SUFFIX}"):
        if not path.is_file() or path.is_symlink():
            continue
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if modified < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(removed)
