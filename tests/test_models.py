"""The model registry: folder resolution, sha256 verification, download and `veil models`."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import veil.models as models
from conftest import serving
from veil.cli.models_cmd import register
from veil.core.errors import ModelError
from veil.models import (
    MODEL_DIR_ENV,
    REGISTRY,
    YUNET,
    ModelState,
    default_fetch_dir,
    fetch_model,
    find_model,
    get_spec,
    model_dirs,
    resolve_model,
    user_cache_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"


def shared_model(filename: str) -> Path:
    """A weight file from ../shared/models; a failure in CI, a skip elsewhere."""
    path = SHARED_MODELS / filename
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI needs the shared model weights")
        pytest.skip(f"{path} is missing (set up ../shared/models to run this test)")
    return path


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VEIL_MODEL_DIR, a private XDG cache and no remembered hashes for each test."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    models.forget_hashes()
    return cache


@pytest.fixture
def yunet_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(shared_model(YUNET.filename), folder / YUNET.filename)
    return folder


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", ["yolox_nano", "yunet"])
def test_registry_entries_are_complete(name: str) -> None:
    spec = get_spec(name)
    assert spec.name == name
    assert len(spec.sha256) == 64
    int(spec.sha256, 16)
    assert spec.url.startswith("https://")
    assert spec.url.endswith(spec.filename)
    assert spec.license
    assert spec.input
    assert spec.size > 0


def test_registry_matches_shared_files() -> None:
    for spec in REGISTRY.values():
        path = shared_model(spec.filename)
        assert path.stat().st_size == spec.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'") as info:
        get_spec("nope")
    assert "yolox_nano" in str(info.value)
    assert "yunet" in str(info.value)


# --------------------------------------------------------------------------- folders


def test_dirs_order_explicit_env_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "env"))
    assert model_dirs(tmp_path / "explicit") == [
        tmp_path / "explicit",
        tmp_path / "env",
        isolated / "veil" / "models",
    ]
    assert default_fetch_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert default_fetch_dir() == tmp_path / "env"


def test_cache_dir_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / ".cache" / "veil" / "models"
    assert model_dirs() == [tmp_path / ".cache" / "veil" / "models"]


# --------------------------------------------------------------------------- resolution


def test_resolve_good_file_in_explicit_dir(yunet_dir: Path) -> None:
    assert resolve_model("yunet", yunet_dir) == yunet_dir / YUNET.filename


def test_resolve_from_env(monkeypatch: pytest.MonkeyPatch, yunet_dir: Path) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(yunet_dir))
    assert resolve_model("yunet") == yunet_dir / YUNET.filename


def test_resolve_from_user_cache(isolated: Path, tmp_path: Path) -> None:
    cache = isolated / "veil" / "models"
    cache.mkdir(parents=True)
    shutil.copy(shared_model(YUNET.filename), cache / YUNET.filename)
    assert resolve_model("yunet", tmp_path / "empty") == cache / YUNET.filename


def test_explicit_dir_wins_over_env(
    monkeypatch: pytest.MonkeyPatch, yunet_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(yunet_dir, other)
    monkeypatch.setenv(MODEL_DIR_ENV, str(other))
    assert resolve_model("yunet", yunet_dir) == yunet_dir / YUNET.filename


def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / YUNET.filename).write_bytes(b"not a model")
    with pytest.raises(ModelError, match="corrupt") as info:
        resolve_model("yunet", tmp_path)
    message = str(info.value)
    assert str(tmp_path / YUNET.filename) in message
    assert "veil models fetch yunet" in message
    assert find_model("yunet", tmp_path).state is ModelState.CORRUPT


def test_missing_model_names_dirs_and_fix(tmp_path: Path, isolated: Path) -> None:
    with pytest.raises(ModelError, match="not found") as info:
        resolve_model("yolox_nano", tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert str(isolated / "veil" / "models") in message
    assert "veil models fetch yolox_nano" in message
    assert MODEL_DIR_ENV in message


def test_hash_is_computed_once_per_file_state(
    monkeypatch: pytest.MonkeyPatch, yunet_dir: Path, isolated: Path
) -> None:
    calls: list[Path] = []
    real = models.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(models, "sha256_file", counting)
    path = yunet_dir / YUNET.filename
    resolve_model("yunet", yunet_dir)
    resolve_model("yunet", yunet_dir)
    assert len(calls) == 1
    # A new process: the memory is gone but the record on disk is used.
    models.forget_hashes()
    resolve_model("yunet", yunet_dir)
    assert len(calls) == 1
    assert (isolated / "veil" / "model-hashes.json").is_file()
    # The file is rewritten in place with the same size and its old modification time put
    # back: its change time still differs, so it is hashed again and refused.
    before = path.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    with pytest.raises(ModelError, match="corrupt"):
        resolve_model("yunet", yunet_dir)
    assert len(calls) == 2


def test_unwritable_hash_record_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, yunet_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert resolve_model("yunet", yunet_dir) == yunet_dir / YUNET.filename


# --------------------------------------------------------------------------- download


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    with serving(root) as base:
        yield base, root


def test_fetch_over_http_verifies_and_saves(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    shutil.copy(shared_model(YUNET.filename), root / YUNET.filename)
    target = tmp_path / "cache"
    seen: list[tuple[int, int | None]] = []
    path = fetch_model(
        "yunet",
        target,
        url=f"{base}/{YUNET.filename}",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == target / YUNET.filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == YUNET.sha256
    assert sorted(p.name for p in target.iterdir()) == [YUNET.filename]
    assert seen[-1] == (YUNET.size, YUNET.size)
    assert resolve_model("yunet", target) == path


def test_fetch_wrong_hash_leaves_nothing(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    (root / YUNET.filename).write_bytes(b"\0" * 1000)
    target = tmp_path / "cache"
    with pytest.raises(ModelError, match="expected ebafce4e") as info:
        fetch_model("yunet", target, url=f"{base}/{YUNET.filename}")
    assert "nothing was saved" in str(info.value)
    assert list(target.iterdir()) == []


def test_fetch_larger_than_expected_is_stopped(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    (root / "big.onnx").write_bytes(b"\0" * (YUNET.size + 1))
    target = tmp_path / "cache"
    with pytest.raises(ModelError, match="bytes"):
        fetch_model("yunet", target, url=f"{base}/big.onnx")
    assert list(target.iterdir()) == []


def test_fetch_http_error(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    target = tmp_path / "cache"
    with pytest.raises(ModelError, match="HTTP 404"):
        fetch_model("yunet", target, url=f"{base}/absent.onnx")
    assert list(target.iterdir()) == []


def test_fetch_network_failure(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "cache"
    with pytest.raises(ModelError, match="failed") as info:
        fetch_model("yunet", target, url=f"http://127.0.0.1:{port}/x.onnx", timeout=5)
    assert "network" in str(info.value)
    assert list(target.iterdir()) == []


def test_fetch_keeps_a_good_copy_without_downloading(yunet_dir: Path) -> None:
    # The URL points nowhere: a good copy must not be downloaded again.
    path = fetch_model("yunet", yunet_dir, url="http://127.0.0.1:9/unused")
    assert path == yunet_dir / YUNET.filename


def test_fetch_refuses_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="only http and https"):
        fetch_model("yunet", tmp_path, url="file:///etc/passwd")


def test_fetch_defaults_to_env_dir(
    monkeypatch: pytest.MonkeyPatch, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = served
    shutil.copy(shared_model(YUNET.filename), root / YUNET.filename)
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "envdir"))
    path = fetch_model("yunet", url=f"{base}/{YUNET.filename}")
    assert path == tmp_path / "envdir" / YUNET.filename


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_cli_list(cli: typer.Typer) -> None:
    shared_model(YUNET.filename)
    result = CliRunner().invoke(cli, ["models", "list", "--dir", str(SHARED_MODELS)])
    assert result.exit_code == 0, result.output
    for spec in REGISTRY.values():
        assert f"{spec.name}: ok {SHARED_MODELS / spec.filename}" in result.output
        assert spec.sha256 in result.output
        assert spec.url in result.output


def test_cli_verify_ok(cli: typer.Typer) -> None:
    shared_model(YUNET.filename)
    result = CliRunner().invoke(cli, ["models", "verify", "--dir", str(SHARED_MODELS)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok ") == len(REGISTRY)


def test_cli_verify_missing_and_corrupt(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / YUNET.filename).write_bytes(b"broken")
    result = CliRunner().invoke(cli, ["models", "verify", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "yunet: CORRUPT" in result.output
    assert "yolox_nano: MISSING" in result.output
    assert "veil models fetch yolox_nano" in result.output


def test_cli_list_missing(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "yolox_nano: missing" in result.output


def test_cli_fetch_from_mirror(cli: typer.Typer, served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    shutil.copy(shared_model(YUNET.filename), root / YUNET.filename)
    target = tmp_path / "fetched"
    result = CliRunner().invoke(
        cli,
        ["models", "fetch", "yunet", "--dir", str(target), "--url", f"{base}/{YUNET.filename}"],
    )
    assert result.exit_code == 0, result.output
    assert f"yunet: ok {target / YUNET.filename}" in result.output
    assert (target / YUNET.filename).stat().st_size == YUNET.size


def test_cli_fetch_url_needs_name(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["models", "fetch", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9/x"]
    )
    assert result.exit_code == 2
    assert not any(tmp_path.iterdir())


def test_cli_fetch_failure_raises_model_error(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["models", "fetch", "yunet", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9/x"]
    )
    assert isinstance(result.exception, ModelError)
    assert not any(tmp_path.iterdir())
