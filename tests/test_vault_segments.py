"""Encrypted original segments: round trips, tampering, truncation, swaps, crashes, retention."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from veil.vault.keys import MasterKey, VaultError, WrongKeyError
from veil.vault.segments import (
    DEFAULT_CHUNK_SIZE,
    MAGIC,
    TAG_BYTES,
    EncryptedSegmentWriter,
    SegmentCorruptError,
    SegmentId,
    SegmentMismatchError,
    decrypt_segment,
    encrypt_segment,
    iter_decrypt_segment,
    list_segments,
    prune,
    read_segment_header,
)

T0 = datetime(2020, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
SMALL = 64  # bytes per chunk in most tests, so a few hundred bytes make several chunks


@pytest.fixture
def key() -> MasterKey:
    return MasterKey(os.urandom(32))


def _seg(sequence: int = 1, camera: str = "door", start: datetime = T0) -> SegmentId:
    return SegmentId(camera, start, sequence)


def _header_len(path: Path) -> int:
    return len(read_segment_header(path).raw)


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL, 3 * SMALL + 5])
def test_round_trip_is_byte_exact(tmp_path: Path, key: MasterKey, size: int) -> None:
    data = os.urandom(size)
    path = encrypt_segment(tmp_path, _seg(), data, key, chunk_size=SMALL)
    assert path.name == "door_20200301T080000123456Z_00000001.vseg"
    assert decrypt_segment(path, key) == data
    assert len(data) < 16 or data not in path.read_bytes()  # no plaintext on disk


def test_round_trip_large_segment_default_chunks(tmp_path: Path, key: MasterKey) -> None:
    data = os.urandom(2 * DEFAULT_CHUNK_SIZE + 12345)
    with EncryptedSegmentWriter(tmp_path, _seg(), key) as writer:
        for start in range(0, len(data), 300_001):  # odd pieces across chunk borders
            writer.write(data[start : start + 300_001])
    chunks = list(iter_decrypt_segment(writer.path, key))
    assert [len(c) for c in chunks] == [DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, 12345]
    assert b"".join(chunks) == data


def test_segment_file_is_private_and_header_names_it(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(7, "lobby cam"), b"video", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header = read_segment_header(path)
    assert header.segment == _seg(7, "lobby cam")
    assert header.key_id == key.key_id
    assert path.read_bytes().startswith(MAGIC)


def test_every_flipped_byte_is_detected(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(3 * SMALL + 10), key, chunk_size=SMALL)
    original = path.read_bytes()
    for offset in range(len(original)):
        tampered = bytearray(original)
        tampered[offset] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises(VaultError):
            decrypt_segment(path, key)
    path.write_bytes(original)
    assert len(decrypt_segment(path, key)) == 3 * SMALL + 10


def test_tampered_chunk_is_named(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(3 * SMALL), key, chunk_size=SMALL)
    data = bytearray(path.read_bytes())
    data[_header_len(path) + (SMALL + TAG_BYTES) + 5] ^= 0xFF  # inside chunk 1
    path.write_bytes(bytes(data))
    with pytest.raises(SegmentCorruptError, match="fails authentication at chunk 1") as caught:
        decrypt_segment(path, key)
    assert "restore it from a backup" in str(caught.value)


def test_truncation_at_a_chunk_border_is_detected(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(3 * SMALL + 7), key, chunk_size=SMALL)
    keep = _header_len(path) + 2 * (SMALL + TAG_BYTES)  # the first two of four chunks
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(SegmentCorruptError, match="truncated: it ends after chunk 1"):
        decrypt_segment(path, key)


@pytest.mark.parametrize("cut", [1, 10, TAG_BYTES + 3])
def test_truncation_mid_chunk_is_detected(tmp_path: Path, key: MasterKey, cut: int) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(2 * SMALL + 20), key, chunk_size=SMALL)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    with pytest.raises(SegmentCorruptError):
        decrypt_segment(path, key)


def test_header_only_file_is_truncated(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), b"abc", key, chunk_size=SMALL)
    path.write_bytes(path.read_bytes()[: _header_len(path)])
    with pytest.raises(SegmentCorruptError, match="truncated"):
        decrypt_segment(path, key)


def test_appended_data_is_detected(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(SMALL + 3), key, chunk_size=SMALL)
    path.write_bytes(path.read_bytes() + b"\x00" * (SMALL + TAG_BYTES))
    with pytest.raises(SegmentCorruptError):
        decrypt_segment(path, key)


def test_reordered_chunks_are_detected(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), os.urandom(3 * SMALL + 1), key, chunk_size=SMALL)
    data = path.read_bytes()
    start = _header_len(path)
    full = SMALL + TAG_BYTES
    first, second = data[start : start + full], data[start + full : start + 2 * full]
    path.write_bytes(data[:start] + second + first + data[start + 2 * full :])
    with pytest.raises(SegmentCorruptError, match="chunk 0"):
        decrypt_segment(path, key)


def test_swapped_segments_are_refused(tmp_path: Path, key: MasterKey) -> None:
    first = encrypt_segment(tmp_path, _seg(1), b"first minute", key)
    second = encrypt_segment(tmp_path, _seg(2, start=T0 + timedelta(minutes=1)), b"second", key)
    swap = tmp_path / "swap"
    first.rename(swap)
    second.rename(first)
    swap.rename(second)
    with pytest.raises(SegmentMismatchError, match="swapped or renamed") as caught:
        decrypt_segment(first, key)
    assert "#2" in str(caught.value)
    with pytest.raises(SegmentMismatchError):
        decrypt_segment(second, key)


def test_segment_moved_to_another_camera_is_refused(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(camera="door"), b"door video", key)
    moved = tmp_path / _seg(camera="yard").filename
    path.rename(moved)
    with pytest.raises(SegmentMismatchError, match="'door'"):
        decrypt_segment(moved, key)


def test_header_rewritten_to_match_a_new_name_fails_authentication(
    tmp_path: Path, key: MasterKey
) -> None:
    # An attacker edits the sequence number in the header as well as the name.
    path = encrypt_segment(tmp_path, _seg(1), b"minute one", key, chunk_size=SMALL)
    data = bytearray(path.read_bytes())
    header = read_segment_header(path)
    camera = header.segment.camera_id.encode()
    seq_offset = len(header.raw) - len(camera) - 2 - 8
    assert int.from_bytes(data[seq_offset : seq_offset + 8], "big") == 1
    data[seq_offset : seq_offset + 8] = (2).to_bytes(8, "big")
    renamed = tmp_path / _seg(2).filename
    renamed.write_bytes(bytes(data))
    assert read_segment_header(renamed).segment == _seg(2)
    with pytest.raises(SegmentCorruptError, match="fails authentication"):
        decrypt_segment(renamed, key)


def test_explicit_expected_identity(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(5), b"export me", key)
    exported = tmp_path / "export.bin"
    path.rename(exported)
    with pytest.raises(SegmentMismatchError, match="cannot tell which segment"):
        decrypt_segment(exported, key)
    assert decrypt_segment(exported, key, expected=_seg(5)) == b"export me"
    with pytest.raises(SegmentMismatchError):
        decrypt_segment(exported, key, expected=_seg(6))


def test_wrong_master_key_is_named(tmp_path: Path, key: MasterKey) -> None:
    path = encrypt_segment(tmp_path, _seg(), b"secret", key)
    other = MasterKey(os.urandom(32))
    with pytest.raises(WrongKeyError, match=key.key_id.hex()) as caught:
        decrypt_segment(path, other)
    assert other.key_id.hex() in str(caught.value)


def test_not_a_segment(tmp_path: Path, key: MasterKey) -> None:
    path = tmp_path / _seg().filename
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 plain mp4")
    with pytest.raises(SegmentCorruptError, match="not a Veil encrypted segment"):
        decrypt_segment(path, key)


def test_unclosed_writer_leaves_no_final_file(tmp_path: Path, key: MasterKey) -> None:
    writer = EncryptedSegmentWriter(tmp_path, _seg(), key, chunk_size=SMALL)
    writer.write(os.urandom(5 * SMALL))
    assert not writer.path.exists()
    assert writer.partial_path.exists()
    assert list_segments(tmp_path) == []
    writer.abort()
    assert not writer.partial_path.exists()
    assert not writer.path.exists()


def test_exception_inside_writer_block_discards_segment(tmp_path: Path, key: MasterKey) -> None:
    def record() -> None:
        with EncryptedSegmentWriter(tmp_path, _seg(), key) as writer:
            writer.write(b"half a segment")
            raise RuntimeError("camera dropped")

    with pytest.raises(RuntimeError, match="camera dropped"):
        record()
    assert list(tmp_path.iterdir()) == []


def test_killed_process_loses_only_the_open_segment(tmp_path: Path, key: MasterKey) -> None:
    key_path = tmp_path / "k"
    key_path.write_bytes(key._key)
    script = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime
        from pathlib import Path
        from veil.vault.keys import MasterKey
        from veil.vault.segments import EncryptedSegmentWriter, SegmentId, encrypt_segment
        key = MasterKey(Path({str(key_path)!r}).read_bytes())
        start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
        encrypt_segment(Path({str(tmp_path)!r}), SegmentId("door", start, 1), b"done", key)
        writer = EncryptedSegmentWriter(Path({str(tmp_path)!r}), SegmentId("door", start, 2), key)
        writer.write(os.urandom(3_000_000))
        os._exit(9)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == 9
    stored = list_segments(tmp_path)
    assert [s.segment.sequence for s in stored] == [1]
    assert decrypt_segment(stored[0].path, key) == b"done"
    partials = list(tmp_path.glob(".*.partial"))
    assert len(partials) == 1


def test_writer_never_overwrites_and_refuses_writes_after_close(
    tmp_path: Path, key: MasterKey
) -> None:
    path = encrypt_segment(tmp_path, _seg(), b"one", key)
    with pytest.raises(VaultError, match="already exists"):
        EncryptedSegmentWriter(tmp_path, _seg(), key)
    writer = EncryptedSegmentWriter(tmp_path, _seg(2), key)
    writer.close()
    with pytest.raises(VaultError, match="closed"):
        writer.write(b"more")
    assert decrypt_segment(path, key) == b"one"


def test_writer_needs_an_existing_folder(tmp_path: Path, key: MasterKey) -> None:
    with pytest.raises(VaultError, match="does not exist"):
        EncryptedSegmentWriter(tmp_path / "missing", _seg(), key)


@pytest.mark.parametrize("camera", ["", ".hidden", "a/b", "x" * 65, "../up"])
def test_bad_camera_ids_cannot_name_files(camera: str) -> None:
    with pytest.raises(VaultError, match="cannot name a segment file"):
        SegmentId(camera, T0, 1)


def test_segment_id_needs_aware_time() -> None:
    with pytest.raises(VaultError, match="no timezone"):
        SegmentId("door", datetime(2026, 1, 1), 1)


def test_filename_round_trip() -> None:
    segment = SegmentId("cam_1.front-door", T0, 123)
    assert SegmentId.from_filename(segment.filename) == segment
    assert SegmentId.from_filename("notes.txt") is None


def test_list_segments_sorts_and_filters(tmp_path: Path, key: MasterKey) -> None:
    (tmp_path / "yard").mkdir()
    encrypt_segment(tmp_path, _seg(2, start=T0 + timedelta(minutes=1)), b"b", key)
    encrypt_segment(tmp_path, _seg(1), b"a", key)
    encrypt_segment(tmp_path / "yard", _seg(1, camera="yard"), b"c", key)
    (tmp_path / "readme.txt").write_text("not a segment")
    names = [(s.segment.camera_id, s.segment.sequence) for s in list_segments(tmp_path)]
    assert names == [("door", 1), ("door", 2), ("yard", 1)]
    assert [s.segment.camera_id for s in list_segments(tmp_path, camera_id="yard")] == ["yard"]


def test_prune_removes_old_segments_and_stale_partials(tmp_path: Path, key: MasterKey) -> None:
    now = T0 + timedelta(days=30)
    old = encrypt_segment(tmp_path, _seg(1, start=T0), b"old", key)
    recent = encrypt_segment(tmp_path, _seg(2, start=now - timedelta(days=1)), b"new", key)
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    stale = tmp_path / f".{_seg(3).filename}.partial"
    stale.write_bytes(b"crashed")
    stale_time = (T0 - timedelta(days=1)).timestamp()
    os.utime(stale, (stale_time, stale_time))
    fresh = tmp_path / f".{_seg(4).filename}.partial"
    fresh.write_bytes(b"being written")
    removed = prune(tmp_path, timedelta(days=7), now=now)
    assert removed == sorted([old, stale])
    assert recent.exists()
    assert other.exists()
    assert fresh.exists()
    assert prune(tmp_path, now) == [recent]


def test_prune_refuses_naive_or_negative(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="no timezone"):
        prune(tmp_path, datetime(2026, 1, 1))
    with pytest.raises(VaultError, match="negative"):
        prune(tmp_path, timedelta(days=-1))
