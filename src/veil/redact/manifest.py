"""The signed manifest of a redacted export, and its check.

A manifest says what was exported from what, by whom, when, how, and why: the source's and the
output's SHA-256, the settings, every masked (or kept) track and region with its frame ranges,
and the reason given. It is signed with Ed25519: the signature covers the canonical JSON of
every field except ``signature`` itself (sorted keys, no spaces, UTF-8), and the public key is
embedded, so anyone can check it with :func:`verify_export` (``veil redact verify``); giving the
expected public key (``--public-key``) also proves who signed it.

The signing key is a PEM file (PKCS#8, unencrypted). Without ``--signing-key`` Veil uses
``$XDG_CONFIG_HOME/veil/redaction-signing-key.pem`` (``~/.config/...``), made on first use
with permissions 0600 in a 0700 folder.

Example::

    key, path, created = load_or_create_signing_key(None)
    signed = sign_manifest({"format": MANIFEST_FORMAT, ...}, key)
    result = verify_export(Path("out.mp4"), Path("out.manifest.json"))
    assert result.ok, result.message
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from veil.core.errors import UsageError, VeilError
from veil.core.files import sha256_file
from veil.vault.audit import canonical_json

__all__ = [
    "MANIFEST_FORMAT",
    "ManifestError",
    "VerifyResult",
    "default_signing_key_path",
    "fingerprint",
    "load_or_create_signing_key",
    "load_public_key",
    "manifest_paths",
    "render_html",
    "sign_manifest",
    "signed_bytes",
    "verify_export",
]

MANIFEST_FORMAT = "veil-redaction-manifest"
MANIFEST_VERSION = 1
SIGNING_KEY_NAME = "redaction-signing-key.pem"


class ManifestError(VeilError):
    """A manifest or key cannot be read or used."""

    exit_code = 1


def manifest_paths(output: Path) -> tuple[Path, Path]:
    """``OUT.manifest.json`` and ``OUT.manifest.html`` beside ``OUT.mp4``."""
    base = output.with_suffix("")
    return Path(f"{base}.manifest.json"), Path(f"{base}.manifest.html")


# --------------------------------------------------------------------------- keys


def default_signing_key_path() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return root / "veil" / SIGNING_KEY_NAME


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:`` and the hex SHA-256 of the raw 32-byte public key."""
    return "SHA256:" + hashlib.sha256(_raw_public(key)).hexdigest()


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(
            f"cannot read the signing key {path}: {error.strerror or error}",
            hint="give a PEM Ed25519 private key with --signing-key",
        ) from error
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ManifestError(
            f"{path} is not an unencrypted PEM private key ({error})",
            hint="make one with `openssl genpkey -algorithm ed25519 -out key.pem`",
        ) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key",
            hint="make one with `openssl genpkey -algorithm ed25519 -out key.pem`",
        )
    return key


def load_or_create_signing_key(path: Path | None) -> tuple[Ed25519PrivateKey, Path, bool]:
    """The signing key at ``path``; without a path, the user's default key, made (0600) on
    first use. Returns the key, its path, and whether it was just created."""
    if path is not None:
        return _load_private(Path(path)), Path(path), False
    target = default_signing_key_path()
    if target.exists():
        return _load_private(target), target, False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process meanwhile: use that one
        return _load_private(target), target, False
    except OSError as error:
        raise ManifestError(
            f"cannot create the signing key {target}: {error.strerror or error}",
            hint="give a key with --signing-key",
        ) from error
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        with contextlib.suppress(OSError):
            target.unlink()
        raise ManifestError(f"cannot write the signing key {target}: {error}") from error
    return key, target, True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key file gives its public half)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ManifestError(
            f"cannot read the public key {path}: {error.strerror or error}"
        ) from error
    try:
        key: object = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as error:
            raise ManifestError(f"{path} is not a PEM Ed25519 key ({error})") from error
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# --------------------------------------------------------------------------- signing


def signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    """What the signature covers: canonical JSON of every field but ``signature``."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return canonical_json(body).encode("utf-8")


def sign_manifest(manifest: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``manifest`` with the public key embedded and an Ed25519 signature added."""
    public = key.public_key()
    body = dict(manifest)
    body.pop("signature", None)
    body["signer"] = {
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(_raw_public(public)).decode(),
        "fingerprint": fingerprint(public),
    }
    signature = key.sign(signed_bytes(body))
    body["signature"] = base64.b64encode(signature).decode()
    return body


def manifest_json(manifest: Mapping[str, Any]) -> str:
    """The manifest as it is written: indented JSON (verification re-canonicalises it)."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_export`: ``ok`` and a message saying why."""

    ok: bool
    message: str
    fingerprint: str | None = None


def verify_export(
    output: Path, manifest_path: Path, public_key: Ed25519PublicKey | None = None
) -> VerifyResult:
    """Check that ``output`` is the file ``manifest_path`` describes and that the manifest is
    signed, unchanged, by its embedded key (and by ``public_key`` when given)."""
    try:
        data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return VerifyResult(False, f"no manifest at {manifest_path}")
    except (OSError, ValueError) as error:
        return VerifyResult(False, f"{manifest_path} is not a readable JSON manifest ({error})")
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return VerifyResult(False, f"{manifest_path} is not a Veil redaction manifest")
    try:
        signer = data["signer"]
        embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer["public_key"]))
        signature = base64.b64decode(data["signature"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        return VerifyResult(False, f"{manifest_path} has no usable signature or key ({error})")
    print_ = fingerprint(embedded)
    if public_key is not None and _raw_public(public_key) != _raw_public(embedded):
        return VerifyResult(
            False,
            f"the manifest is signed by key {print_}, not by the expected key "
            f"{fingerprint(public_key)}",
            print_,
        )
    try:
        embedded.verify(signature, signed_bytes(data))
    except InvalidSignature:
        return VerifyResult(
            False,
            "the manifest's signature does not match its content: it was changed after signing",
            print_,
        )
    expected = str(data.get("output", {}).get("sha256", ""))
    try:
        actual = sha256_file(Path(output))
    except FileNotFoundError:
        return VerifyResult(False, f"no output file at {output}", print_)
    except OSError as error:
        return VerifyResult(False, f"cannot read {output}: {error}", print_)
    if actual != expected:
        return VerifyResult(
            False,
            f"{output} is not the exported file: its SHA-256 is {actual}, the manifest says "
            f"{expected}",
            print_,
        )
    who = data.get("exported_by", "?")
    when = data.get("exported_at", "?")
    trust = "the expected key" if public_key is not None else "the key embedded in it"
    return VerifyResult(
        True,
        f"OK: {output} matches its manifest (SHA-256 {actual}), exported by {who} at {when}; "
        f"signature valid, by {trust} {print_}",
        print_,
    )


def verify_public_key_arg(path: Path | None) -> Ed25519PublicKey | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise UsageError(f"--public-key {path}: no such file", hint="give a PEM public key")
    return load_public_key(path)


# --------------------------------------------------------------------------- HTML


def _ranges_text(ranges: Any) -> str:
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "-"


def _action_text(track: Mapping[str, Any]) -> str:
    text = str(track.get("action", ""))
    if "shown_frames" in track:
        text += f" in frames {_ranges_text(track['shown_frames'])}, masked elsewhere"
    return text


def render_html(manifest: Mapping[str, Any]) -> str:
    """A readable, self-contained page of the manifest (every value escaped)."""
    e = html.escape

    def row(name: str, value: object) -> str:
        return f"<tr><th>{e(name)}</th><td>{e(str(value))}</td></tr>"

    source = manifest.get("source", {})
    output = manifest.get("output", {})
    settings = manifest.get("settings", {})
    signer = manifest.get("signer", {})
    facts = [
        row("Reason", manifest.get("reason") or "(none given)"),
        row("Exported by", manifest.get("exported_by", "")),
        row("Exported at", manifest.get("exported_at", "")),
        row("Source", source.get("path", "")),
        row("Source SHA-256", source.get("sha256", "")),
        row("Output", output.get("path", "")),
        row("Output SHA-256", output.get("sha256", "")),
        row(
            "Frames exported",
            f"{output.get('first_frame')}-{output.get('last_frame')} "
            f"of the source ({output.get('frames')} frames)",
        ),
        row("Mode", settings.get("mode", "")),
        row(
            "Style",
            f"{settings.get('style')} colour {settings.get('color')}, "
            f"margin {settings.get('margin')}",
        ),
        row("Signed by", f"{signer.get('algorithm', '')} key {signer.get('fingerprint', '')}"),
        row("Veil", manifest.get("veil_version", "")),
    ]
    track_rows = "".join(
        f"<tr><td>{e(str(t.get('track')))}</td><td>{e(str(t.get('kind')))}</td>"
        f"<td>{e(_action_text(t))}</td><td>{e(_ranges_text(t.get('frames', [])))}</td>"
        f"<td>{e(', '.join(str(s) for s in t.get('analysis_tracks', [])))}</td></tr>"
        for t in manifest.get("tracks", [])
    )
    region_rows = "".join(
        f"<tr><td>{e(str(r.get('name')))}</td><td>{e(_ranges_text(r.get('frames', [])))}</td>"
        f"<td>{e(str(len(r.get('keyframes', []))))}</td></tr>"
        for r in manifest.get("regions", [])
    )
    full = manifest.get("fully_masked_frames", [])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Redaction manifest: {e(str(output.get("path", "")))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #111; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #eee; }} td {{ font-family: ui-monospace, monospace; }}
</style></head><body>
<h1>Redaction manifest</h1>
<p>This page shows <code>{e(str(output.get("path", "")))}</code>'s signed manifest. Check the
file against it with <code>veil redact verify</code>; this page itself is not signed.</p>
<table>{"".join(facts)}</table>
<h2>Tracks</h2>
<table><tr><th>Track</th><th>Kind</th><th>In the output</th><th>Frames (source)</th>
<th>Analysis tracks</th></tr>{track_rows}</table>
<h2>Manual regions (masked)</h2>
<table><tr><th>Name</th><th>Frames</th><th>Keyframes</th></tr>{region_rows}</table>
<h2>Frames masked whole (fail closed)</h2>
<p>{e(_ranges_text(full))}</p>
</body></html>
"""
