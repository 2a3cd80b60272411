"""File helpers shared by the modules that write outputs or check files they wrote."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents, read in chunks (videos and weights are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def replace_atomically(target: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a hidden temporary file beside ``target``, then rename it over
    ``target`` with permissions ``mode``.

    The rename is atomic on one file system, so readers see the old file or the new one,
    never a mix; the data is synced first so a crash cannot leave an empty file behind
    the new name. Raises OSError (the caller words it); the temporary file is removed on
    any failure, and ``target`` is then unchanged.
    """
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
