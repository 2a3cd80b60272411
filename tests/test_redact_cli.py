"""`veil redact analyse | tracks | preview | export | verify` from the command line.

Runs the real detectors once (module fixture) on a 20-frame slice of TUD-Stadtmitte; every
other command reuses that analysis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from conftest import MODELS, TUD, need_shared
from veil.cli.redact_cmd import register
from veil.media.synthetic import write_clip

FRAMES = 20


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """veil (test root)"""

    register(app)
    return app


APP = _app()


@dataclass(frozen=True)
class Workspace:
    folder: Path
    video: Path
    analysis: Path
    env: dict[str, str]

    def run(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(APP, list(args), env=self.env)
        return result.exit_code, result.output


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    need_shared(MODELS / "yolox_nano.onnx")
    need_shared(TUD / "img1" / "000001.jpg")
    folder = tmp_path_factory.mktemp("redact_cli")
    frames = []
    for i in range(1, FRAMES + 1):
        image = cv2.imread(str(TUD / "img1" / f"{i:06d}.jpg"))
        assert image is not None
        frames.append(np.asarray(image, np.uint8))
    video = folder / "cam.mkv"
    write_clip(video, frames)
    env = {"VEIL_MODEL_DIR": str(MODELS), "XDG_CONFIG_HOME": str(folder / "config")}
    space = Workspace(folder, video, folder / "cam.mkv.veil-analysis.json", env)
    code, out = space.run("redact", "analyse", str(video), "--no-motion")
    assert code == 0, out
    assert f"analysed {FRAMES} frames" in out
    assert space.analysis.is_file()
    return space


def _selection(ws: Workspace, name: str, data: dict[str, object]) -> Path:
    path = ws.folder / name
    path.write_text(json.dumps(data))
    return path


def test_analyse_again_reuses_the_saved_analysis(ws: Workspace) -> None:
    before = ws.analysis.stat().st_mtime_ns
    code, out = ws.run("redact", "analyse", str(ws.video), "--no-motion")
    assert code == 0, out
    assert "up to date" in out
    assert ws.analysis.stat().st_mtime_ns == before


def test_tracks_lists_ids_kinds_and_frames(ws: Workspace, tmp_path: Path) -> None:
    code, out = ws.run(
        "redact", "tracks", str(ws.analysis), "--kind", "person", "--thumbnails", str(tmp_path)
    )
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["id", "kind"]
    assert len(lines) > 2
    assert all(" person " in line for line in lines[1:])
    jpegs = sorted(tmp_path.glob("track-*-person.jpg"))
    assert jpegs
    image = cv2.imread(str(jpegs[0]))
    assert image is not None
    assert max(image.shape[:2]) <= 96


def test_export_then_verify_and_tampering(ws: Workspace, tmp_path: Path) -> None:
    sel = _selection(
        ws, "all.json", {"mode": "mask-selected", "kinds": ["person"], "reason": "case 9"}
    )
    out = ws.folder / "case9.mp4"
    code, text = ws.run(
        "redact", "export", str(ws.video), "-s", str(sel), "-o", str(out), "--operator", "Ann"
    )
    assert code == 0, text
    assert f"exported {FRAMES} frames" in text
    assert "signed by SHA256:" in text
    manifest = ws.folder / "case9.manifest.json"
    assert manifest.is_file()
    assert (ws.folder / "case9.manifest.html").is_file()
    code, text = ws.run("redact", "verify", str(out))
    assert code == 0, text
    assert text.startswith("OK:")
    # With the signer's public key (the default key made on first use).
    key = Path(ws.env["XDG_CONFIG_HOME"]) / "veil" / "redaction-signing-key.pem"
    code, text = ws.run("redact", "verify", str(out), "--public-key", str(key))
    assert code == 0, text
    # One byte changed in the output: exit 1.
    bad = tmp_path / "bad.mp4"
    data = bytearray(out.read_bytes())
    data[-10] ^= 0x40
    bad.write_bytes(bytes(data))
    code, text = ws.run("redact", "verify", str(bad), "--manifest", str(manifest))
    assert code == 1
    assert "FAILED" in text
    # A manifest edited after signing: exit 1.
    edited = tmp_path / "edited.json"
    edited.write_text(manifest.read_text().replace('"Ann"', '"Bob"'))
    code, text = ws.run("redact", "verify", str(out), "--manifest", str(edited))
    assert code == 1
    assert "changed after signing" in text


def test_unknown_track_ids_exit_2_naming_them(ws: Workspace) -> None:
    sel = _selection(ws, "bad.json", {"mode": "mask-all-except", "tracks": [9999, 4242]})
    code, text = ws.run(
        "redact", "export", str(ws.video), "-s", str(sel), "-o", str(ws.folder / "x.mp4")
    )
    assert code == 2
    assert "9999, 4242" in text
    assert not (ws.folder / "x.mp4").exists()


def test_changed_video_exits_1_with_the_fix(ws: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "cam.mkv"
    frames = [np.zeros((480, 640, 3), np.uint8)] * 3
    write_clip(other, frames)
    sel = _selection(ws, "sel.json", {"mode": "mask-selected"})
    code, text = ws.run(
        "redact",
        "export",
        str(other),
        "--analysis",
        str(ws.analysis),
        "-s",
        str(sel),
        "-o",
        str(tmp_path / "o.mp4"),
    )
    assert code == 1
    assert "not the video that was analysed" in text
    assert "veil redact analyse" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mkv"]


def test_trimmed_export_and_preview(ws: Workspace, tmp_path: Path) -> None:
    sel = _selection(
        ws,
        "trim.yaml",
        {"mode": "mask-all-except", "trim": {"start_frame": 5, "end_frame": 14}},
    )
    out = tmp_path / "trim.mkv"
    code, text = ws.run("redact", "export", str(ws.video), "-s", str(sel), "-o", str(out), "-q")
    assert code == 0, text
    assert "exported 10 frames" in text
    manifest = json.loads((tmp_path / "trim.manifest.json").read_text())
    assert manifest["settings"]["trim"] == [5, 14]
    assert manifest["output"]["frames"] == 10
    png = tmp_path / "f3.png"
    code, text = ws.run(
        "redact", "preview", str(ws.video), "-s", str(sel), "--frame", "3", "-o", str(png)
    )
    assert code == 0, text
    image = cv2.imread(str(png))
    assert image is not None
    assert not image.any()  # mask-all-except with nobody kept: all black
    code, text = ws.run(
        "redact", "preview", str(ws.video), "-s", str(sel), "--frame", "99", "-o", str(png)
    )
    assert code == 2
    assert "outside the video" in text


def test_export_is_recorded_in_the_gateway_audit_log(ws: Workspace, tmp_path: Path) -> None:
    from veil.vault.audit import AuditLog
    from veil.vault.db import Database

    Database(tmp_path / "veil.db").close()
    sel = _selection(ws, "audit.json", {"mode": "mask-selected", "reason": "audit me"})
    code, text = ws.run(
        "redact",
        "export",
        str(ws.video),
        "-s",
        str(sel),
        "-o",
        str(tmp_path / "a.mp4"),
        "--audit-db",
        str(tmp_path),
        "--operator",
        "auditor",
    )
    assert code == 0, text
    assert "recorded in the audit log as entry 1" in text
    db = Database(tmp_path / "veil.db", readonly=True)
    entry = AuditLog(db).entries(limit=1)[0]
    db.close()
    assert (entry.actor, entry.action) == ("auditor", "export")
    assert entry.details["reason"] == "audit me"
    code, text = ws.run(
        "redact",
        "export",
        str(ws.video),
        "-s",
        str(sel),
        "-o",
        str(tmp_path / "b.mp4"),
        "--audit-db",
        str(tmp_path / "nowhere"),
    )
    assert code == 2
    assert "no gateway database" in text


def test_eval_measures_against_ground_truth_with_gates(ws: Workspace) -> None:
    gt = need_shared(TUD / "gt" / "gt.txt")
    every = _selection(ws, "every.json", {"mode": "mask-selected", "kinds": ["person"]})
    code, text = ws.run(
        "redact",
        "eval",
        str(ws.video),
        "--gt",
        str(gt),
        "-s",
        str(every),
        "--min-recall",
        "0.99",
        "--max-leaked-frames",
        "0",
    )
    assert code == 0, text
    assert "recall" in text
    nobody = _selection(ws, "nobody.json", {"mode": "mask-selected"})
    code, text = ws.run(
        "redact",
        "eval",
        str(ws.video),
        "--gt",
        str(gt),
        "-s",
        str(nobody),
        "--max-leaked-frames",
        "0",
    )
    assert code == 3
    assert "failed: leaked frames" in text


def test_preview_labels_outline_the_tracks(ws: Workspace, tmp_path: Path) -> None:
    sel = _selection(ws, "label.json", {"mode": "mask-selected"})
    plain, labelled = tmp_path / "plain.png", tmp_path / "labels.png"
    for path, extra in ((plain, []), (labelled, ["--labels"])):
        code, text = ws.run(
            "redact",
            "preview",
            str(ws.video),
            "-s",
            str(sel),
            "--frame",
            "2",
            "-o",
            str(path),
            *extra,
        )
        assert code == 0, text
    a, b = cv2.imread(str(plain)), cv2.imread(str(labelled))
    assert a is not None
    assert b is not None
    # Nothing is masked; the labelled one has grey outlines drawn on it.
    grey = np.all(b == 160, axis=2) & ~np.all(a == 160, axis=2)
    assert grey.sum() > 100


def test_analyse_takes_detector_settings_from_a_config(ws: Workspace, tmp_path: Path) -> None:
    config = tmp_path / "veil.yaml"
    config.write_text("dynamic:\n  person:\n    input_size: 416\n  hold_time: 2.0\n")
    out = tmp_path / "a.json"
    code, text = ws.run(
        "redact",
        "analyse",
        str(ws.video),
        "-c",
        str(config),
        "-o",
        str(out),
        "--no-faces",
        "--no-motion",
    )
    assert code == 0, text
    settings = json.loads(out.read_text())["settings"]
    assert settings["person_input_size"] == 416
    assert settings["hold_time"] == 2.0
    assert settings["faces"] is False
    assert settings["motion"] is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("dynamic:\n  person:\n    input_size: 100\n")
    code, text = ws.run("redact", "analyse", str(ws.video), "-c", str(bad), "-o", str(out))
    assert code == 2
    assert "input_size" in text
