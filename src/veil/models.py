"""The model registry: which detector weights Veil uses, where they come from, where they live.

Every model has a :class:`ModelSpec` with its source URL, sha256 and licence. Weights are never
bundled; they are looked up, in this order, in

1. an explicit folder (``dynamic.model_dir`` in the config, ``--dir`` on the command line),
2. the folder named by the ``VEIL_MODEL_DIR`` environment variable,
3. the user cache, ``$XDG_CACHE_HOME/veil/models`` (``~/.cache/veil/models`` by default),

and the first copy found is checked against its sha256 before it is used. A file is hashed once
per version (path, size, modification and change times, inode): the result is remembered in
memory and in ``$XDG_CACHE_HOME/veil/model-hashes.json``, so a restart does not hash it again.

Example::

    from veil.models import fetch_model, resolve_model

    path = fetch_model("yunet")            # download into the user cache, verify, keep
    path = resolve_model("yunet")          # find and verify; ModelError with the fix if absent
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from veil.core.errors import ModelError
from veil.core.files import sha256_file as sha256_file  # re-exported: tests patch it here

MODEL_DIR_ENV = "VEIL_MODEL_DIR"
"""Environment variable naming a folder of detector weights."""

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model Veil can use: what it is, where to get it and how to check it."""

    name: str
    """Short name used on the command line (``veil models fetch yunet``)."""
    filename: str
    """File name inside a model folder."""
    url: str
    """Where ``veil models fetch`` downloads it from."""
    sha256: str
    """Hex sha256 of the file; a file with another hash is refused."""
    size: int
    """Size in bytes; a download that grows past it is stopped."""
    license: str
    """Licence of the weights."""
    input: str
    """What the model takes (tensor layout, sizes)."""
    description: str
    """What the model finds."""


YOLOX_NANO = ModelSpec(
    name="yolox_nano",
    filename="yolox_nano.onnx",
    url="https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/main/model/yolox_nano.onnx",
    sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
    size=3_660_092,
    license="Apache-2.0",
    input="images 1x3x416x416 BGR 0..255, letterboxed with 114 (Veil makes H and W dynamic)",
    description="YOLOX-nano, 80 COCO classes (class 0 = person); used for persons",
)

YUNET = ModelSpec(
    name="yunet",
    filename="face_detection_yunet_2026may.onnx",
    url=(
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
        "face_detection_yunet_2026may.onnx"
    ),
    sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
    size=229_738,
    license="MIT (OpenCV Zoo)",
    input="any size BGR image, through OpenCV's FaceDetectorYN",
    description="YuNet face detector (boxes and 5 landmarks); used for faces",
)

REGISTRY: Mapping[str, ModelSpec] = MappingProxyType({m.name: m for m in (YOLOX_NANO, YUNET)})
"""All known models by name."""


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; ModelError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(
            f"unknown model {name!r}", hint=f"known models: {known}; see `veil models list`"
        ) from None


# --------------------------------------------------------------------------- folders


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def user_cache_dir() -> Path:
    """The per-user model cache: ``$XDG_CACHE_HOME/veil/models`` or ``~/.cache/veil/models``."""
    return _cache_root() / "veil" / "models"


def model_dirs(model_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for weights, in order: explicit, ``VEIL_MODEL_DIR``, user cache."""
    dirs: list[Path] = []
    if model_dir is not None and str(model_dir).strip():
        dirs.append(Path(model_dir).expanduser())
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(user_cache_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def default_fetch_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``veil models fetch`` writes: the first folder :func:`model_dirs` searches."""
    return model_dirs(model_dir)[0]


# --------------------------------------------------------------------------- hashing


def _hash_cache_path() -> Path:
    return _cache_root() / "veil" / "model-hashes.json"


_FileState = tuple[int, ...]
"""What identifies one version of a file: size, mtime, ctime, inode and device. ctime cannot be
set back by hand, so a file rewritten in place with its old mtime is hashed again."""

_memory_hashes: dict[str, tuple[_FileState, str]] = {}


def forget_hashes() -> None:
    """Forget the hashes remembered in this process (the on-disk record stays)."""
    _memory_hashes.clear()


def _file_state(path: Path) -> tuple[str, _FileState]:
    st = path.stat()
    return str(path.resolve()), (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _load_disk_hashes() -> dict[str, object]:
    try:
        data = json.loads(_hash_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _disk_hash(key: str) -> tuple[_FileState, str] | None:
    entry = _load_disk_hashes().get(key)
    if not isinstance(entry, dict):
        return None
    state, digest = entry.get("state"), entry.get("sha256")
    if not isinstance(state, list) or not all(isinstance(v, int) for v in state):
        return None
    if not isinstance(digest, str):
        return None
    return tuple(state), digest


def _store_disk_hash(key: str, state: _FileState, digest: str) -> None:
    """Remember a hash on disk; a cache that cannot be written is only slower, not an error."""
    data = _load_disk_hashes()
    data[key] = {"state": list(state), "sha256": digest}
    target = _hash_cache_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-hashes.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def file_sha256(path: Path, *, use_cache: bool = True) -> str:
    """sha256 of ``path``, hashed once per version of the file (path, size, mtime, ctime,
    inode) unless ``use_cache`` is False."""
    key, state = _file_state(path)
    if use_cache:
        cached = _memory_hashes.get(key) or _disk_hash(key)
        if cached is not None and cached[0] == state:
            _memory_hashes[key] = cached
            return cached[1]
    digest = sha256_file(path)
    _memory_hashes[key] = (state, digest)
    _store_disk_hash(key, state, digest)
    return digest


# --------------------------------------------------------------------------- resolution


class ModelState(str, Enum):
    """What a model folder holds for one model."""

    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """The result of looking for one model."""

    spec: ModelSpec
    state: ModelState
    path: Path | None
    """The file found (also when corrupt), or None when missing."""
    searched: tuple[Path, ...]
    detail: str = ""


def _fetch_hint(spec: ModelSpec) -> str:
    return (
        f"run `veil models fetch {spec.name}`, or download {spec.url} into a folder and "
        f"point to it with {MODEL_DIR_ENV} or `dynamic.model_dir`"
    )


def find_model(
    name: str, model_dir: str | os.PathLike[str] | None = None, *, use_cache: bool = True
) -> ModelStatus:
    """Look for model ``name`` in :func:`model_dirs` and check its sha256. Never raises for
    a missing or corrupt file: the status says which."""
    spec = get_spec(name)
    searched = tuple(model_dirs(model_dir))
    for folder in searched:
        candidate = folder / spec.filename
        if not candidate.is_file():
            continue
        try:
            digest = file_sha256(candidate, use_cache=use_cache)
        except OSError as error:
            return ModelStatus(
                spec, ModelState.CORRUPT, candidate, searched, f"unreadable: {error}"
            )
        if digest != spec.sha256:
            return ModelStatus(
                spec,
                ModelState.CORRUPT,
                candidate,
                searched,
                f"sha256 is {digest}, expected {spec.sha256}",
            )
        return ModelStatus(spec, ModelState.OK, candidate, searched)
    return ModelStatus(spec, ModelState.MISSING, None, searched)


def resolve_model(name: str, model_dir: str | os.PathLike[str] | None = None) -> Path:
    """The verified path of model ``name``.

    Raises ModelError naming the folders searched and how to fix it when the file is missing,
    and naming the file when its sha256 is wrong (a partial or tampered download).
    """
    status = find_model(name, model_dir)
    spec = status.spec
    if status.state is ModelState.OK and status.path is not None:
        return status.path
    if status.state is ModelState.CORRUPT:
        raise ModelError(
            f"model {spec.name} at {status.path} is corrupt or not the expected file "
            f"({status.detail})",
            hint=f"delete it and run `veil models fetch {spec.name}`",
        )
    dirs = ", ".join(str(d) for d in status.searched)
    raise ModelError(
        f"model {spec.name} ({spec.filename}) not found in {dirs}", hint=_fetch_hint(spec)
    )


# --------------------------------------------------------------------------- download

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) while downloading."""


def fetch_model(
    name: str,
    target_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    force: bool = False,
) -> Path:
    """Download model ``name`` into ``target_dir`` (default :func:`default_fetch_dir`),
    verify its sha256 and return its path.

    The download goes to a temporary file in the target folder and is renamed only once its
    hash is right, so an interrupted or wrong download never leaves a file a later run would
    pick up. ``url`` replaces the registry's source (a mirror); the hash is checked all the
    same. A file already there with the right hash is kept unless ``force``.
    """
    spec = get_spec(name)
    source = url or spec.url
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme not in ("http", "https"):
        raise ModelError(
            f"cannot download {spec.name} from {source!r}: only http and https URLs are used",
            hint="give an http(s) URL, or copy the file into the model folder by hand",
        )
    folder = Path(target_dir).expanduser() if target_dir is not None else default_fetch_dir()
    final = folder / spec.filename
    if not force and final.is_file() and file_sha256(final, use_cache=False) == spec.sha256:
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    except OSError as error:
        raise ModelError(
            f"cannot write to model folder {folder}: {error}",
            hint="choose a writable folder with --dir or VEIL_MODEL_DIR",
        ) from error
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(spec, source, out, progress, timeout)
        if digest != spec.sha256:
            raise ModelError(
                f"download of {spec.name} from {source} has sha256 {digest}, "
                f"expected {spec.sha256}; nothing was saved",
                hint="the server sent a different file: try again later or use a trusted mirror",
            )
        tmp.chmod(0o644)  # mkstemp makes it private; weights are not secret
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # Remember the hash just computed so the next start does not hash the file again.
    file_sha256(final, use_cache=False)
    return final


def _download(
    spec: ModelSpec,
    source: str,
    out: BinaryIO,
    progress: Progress | None,
    timeout: float,
) -> str:
    digest = hashlib.sha256()
    limit = spec.size
    request = urllib.request.Request(source, headers={"User-Agent": "veil-models"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > limit:
                raise ModelError(
                    f"download of {spec.name} from {source} announces {total} bytes, "
                    f"expected {limit}; nothing was saved",
                    hint="the server sent a different file: use a trusted mirror",
                )
            done = 0
            if progress is not None:
                progress(0, total or limit)
            while chunk := response.read(_CHUNK):
                done += len(chunk)
                if done > limit:
                    raise ModelError(
                        f"download of {spec.name} from {source} is larger than the expected "
                        f"{limit} bytes; nothing was saved",
                        hint="the server sent a different file: use a trusted mirror",
                    )
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total or limit)
    except urllib.error.HTTPError as error:
        raise ModelError(
            f"download of {spec.name} from {source} failed: HTTP {error.code} {error.reason}",
            hint=f"check the URL, or download it by hand into a model folder ({_fetch_hint(spec)})",
        ) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ModelError(
            f"download of {spec.name} from {source} failed: {reason}",
            hint=(
                "check the network connection or proxy, or copy the file by hand into a model "
                f"folder and set {MODEL_DIR_ENV}"
            ),
        ) from error
    return digest.hexdigest()
