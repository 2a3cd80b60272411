"""Redaction: offline tracks, selections, planning, export, manifest, and the quality bar.

Detector-backed tests use real YOLOX-nano and YuNet weights from ../shared/models and a
40-frame slice of TUD-Stadtmitte written to a lossless FFV1 file; the quality test runs the
whole sequence (179 frames) against its ground truth with veil.eval's metrics.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from conftest import MODELS, TUD, need_shared
from veil.core.detections import Detections, DetectionSource
from veil.core.errors import OutputError, UsageError
from veil.eval.groundtruth import GroundTruth, load_ground_truth
from veil.eval.metrics import MetricsAccumulator
from veil.media.sink import FileSink
from veil.media.synthetic import write_clip
from veil.redact import analysis as analysis_module
from veil.redact.analysis import (
    Analysis,
    AnalysisSettings,
    VideoChangedError,
    VideoInfo,
    analyse_video,
    load_or_analyse,
)
from veil.redact.export import (
    RedactionPlanner,
    evaluate_redaction,
    export_redaction,
    person_selection,
    preview_frame,
)
from veil.redact.manifest import load_public_key, verify_export
from veil.redact.offline_tracks import (
    BoxFlag,
    OfflineSettings,
    OfflineTrack,
    TrackKind,
    build_tracks,
    flag_code,
)
from veil.redact.selection import (
    Mode,
    SelectionError,
    load_selection,
    parse_selection,
    resolve,
)

REPO = Path(__file__).resolve().parents[1]
SLICE_FRAMES = 40

D, INTERP, EXTRAP = (flag_code(f) for f in BoxFlag)


# --------------------------------------------------------------------------- offline tracks


def _person(box: list[float]) -> Detections:
    return Detections.from_boxes([box], DetectionSource.PERSON, confidence=[0.9])


def _walker(frames: int, missing: set[int], start: int = 0) -> list[Detections | None]:
    """One person walking right 4 px a frame, from ``start``, unseen in ``missing``."""
    out: list[Detections | None] = []
    for f in range(frames):
        if f < start or f in missing:
            out.append(Detections.empty())
        else:
            x = 100.0 + 4.0 * f
            out.append(_person([x, 100.0, x + 40.0, 200.0]))
    return out


def test_a_gap_between_sightings_is_interpolated_from_both_ends() -> None:
    dets = _walker(30, missing={10, 11, 12, 13})
    tracks = build_tracks(dets, (640, 480), OfflineSettings(fps=25.0))
    persons = [t for t in tracks if t.kind is TrackKind.PERSON and t.detected_frames]
    assert len(persons) == 1
    track = persons[0]
    rows = [track.row(f) for f in (10, 11, 12, 13)]
    assert all(r is not None for r in rows)
    flags = [int(track.flags[r]) for r in rows if r is not None]
    assert flags == [INTERP] * 4
    # Exactly on the straight line between the sightings at 9 and 14.
    r11 = track.row(11)
    assert r11 is not None
    assert track.xyxy[r11][0] == pytest.approx(100.0 + 4.0 * 11, abs=0.01)
    # Uncertainty grows towards the middle of the gap, from both ends.
    unc = [float(track.uncertainty[r]) for r in rows if r is not None]
    assert unc[0] == pytest.approx(unc[3])
    assert unc[1] == pytest.approx(unc[2])
    assert 0 < unc[0] < unc[1]


def test_a_track_is_extended_backwards_before_its_first_sighting() -> None:
    dets = _walker(40, missing=set(), start=12)
    track = next(t for t in build_tracks(dets, (640, 480), OfflineSettings(fps=25.0)) if len(t))
    assert track.first_frame < 12
    before = track.row(11)
    assert before is not None
    assert int(track.flags[before]) == EXTRAP
    # Predicted from the motion seen later: further left than the first sighting.
    assert float(track.xyxy[before][0]) < 100.0 + 4.0 * 12
    # And forwards after the last sighting, for the hold time only.
    assert track.last_frame == 39


def test_every_detection_is_in_exactly_one_track() -> None:
    rng = np.random.default_rng(3)
    dets: list[Detections | None] = []
    for _ in range(30):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 500, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (n, 2))], axis=1)
        dets.append(Detections.from_boxes(boxes, DetectionSource.PERSON))
    tracks = build_tracks(dets, (640, 480), OfflineSettings(fps=25.0))
    for f, frame_dets in enumerate(dets):
        assert frame_dets is not None
        for box in frame_dets.xyxy:
            owners = [
                t
                for t in tracks
                if (r := t.row(f)) is not None
                and int(t.flags[r]) == D
                and np.array_equal(t.xyxy[r], box)
            ]
            assert len(owners) == 1


# --------------------------------------------------------------------------- selections


def _track(tid: int, frames: list[int], kind: TrackKind = TrackKind.PERSON) -> OfflineTrack:
    f = np.asarray(frames, np.int64)
    boxes = np.array([[10.0 * i, 10.0, 10.0 * i + 20.0, 60.0] for i in frames], np.float32)
    return OfflineTrack(
        track_id=tid,
        kind=kind,
        frames=f,
        xyxy=boxes,
        flags=np.zeros(len(f), np.int8),
        uncertainty=np.zeros(len(f), np.float32),
        best_frame=frames[0],
    )


def _fake_analysis(*tracks: OfflineTrack, frames: int = 50) -> Analysis:
    info = VideoInfo("v.mp4", "0" * 64, 1, frames, "25", 320, 240)
    return Analysis(video=info, settings=AnalysisSettings(), tracks=tracks)


def test_unknown_track_ids_are_named_in_the_error() -> None:
    analysis = _fake_analysis(_track(1, [0, 1]), _track(2, [3, 4]))
    selection = parse_selection({"mode": "mask-selected", "tracks": [1, 7, "9b"]})
    with pytest.raises(SelectionError) as caught:
        resolve(selection, analysis)
    assert caught.value.exit_code == 2
    assert "7, 9b" in str(caught.value)
    assert "tracks are: 1, 2" in str(caught.value)
    with pytest.raises(SelectionError, match=r"merges or splits.*: 5"):
        resolve(parse_selection({"mode": "mask-selected", "merges": [[1, 5]]}), analysis)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tracks": [1]}, "mode: Field required"),
        ({"mode": "mask-some"}, "mode: Input should be"),
        ({"mode": "mask-all-except", "kinds": ["person"]}, "list the persons to keep"),
        ({"mode": "mask-selected", "margin": "huge"}, "margin"),
        ({"mode": "mask-selected", "colour": "red"}, "colour: Extra inputs"),
        (
            {
                "mode": "mask-selected",
                "regions": [
                    {
                        "keyframes": [
                            {"frame": 0, "polygon": [[0, 0], [1, 0], [1, 1]]},
                            {"frame": 5, "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
                        ]
                    }
                ],
            },
            "same number of points",
        ),
        ({"mode": "mask-selected", "trim": {"start_frame": 3, "start_time": 1.0}}, "not both"),
    ],
)
def test_bad_selections_are_refused_with_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(SelectionError, match=message) as caught:
        parse_selection(data, "sel.yaml")
    assert caught.value.exit_code == 2


def test_selection_file_yaml_and_json_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("mode: mask-all-except\ntracks: [3, '4b']\nreason: case 17\n")
    (tmp_path / "s.json").write_text(
        json.dumps({"mode": "mask-all-except", "tracks": [3, "4b"], "reason": "case 17"})
    )
    assert load_selection(tmp_path / "s.yaml") == load_selection(tmp_path / "s.json")
    with pytest.raises(SelectionError, match="no such selection file"):
        load_selection(tmp_path / "missing.yaml")


def test_manual_keyframes_are_interpolated_linearly() -> None:
    analysis = _fake_analysis()
    selection = parse_selection(
        {
            "mode": "mask-selected",
            "regions": [
                {
                    "name": "plate",
                    "keyframes": [
                        {"frame": 10, "box": [0, 0, 20, 20]},
                        {"frame": 20, "box": [100, 40, 120, 60]},
                    ],
                }
            ],
        }
    )
    resolved = resolve(selection, analysis)
    planner = RedactionPlanner(resolved, analysis)
    assert not planner.hidden(9).any()
    assert not planner.hidden(21).any()
    mid = planner.hidden(15)
    rows, cols = np.nonzero(mid)
    # Halfway: the box has moved halfway, (50, 20)-(70, 40).
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (50, 69, 20, 39)
    assert planner.hidden(20)[50, 110]


def test_merge_fills_the_gap_and_split_names_the_parts() -> None:
    analysis = _fake_analysis(_track(1, [0, 1, 2]), _track(2, [8, 9]), _track(3, [0, 1, 2, 3]))
    merged = resolve(parse_selection({"mode": "mask-selected", "merges": [[1, 2]]}), analysis)
    one = next(t for t in merged.tracks if t.ref == "1")
    assert one.sources == (1, 2)
    assert [int(f) for f in one.track.frames] == list(range(10))
    assert [int(f) for f in one.track.flags] == [D] * 3 + [INTERP] * 5 + [D] * 2
    assert "2" not in {t.ref for t in merged.tracks}
    # Selecting the merged-away id selects the merged track.
    again = resolve(
        parse_selection({"mode": "mask-selected", "merges": [[1, 2]], "tracks": [2]}), analysis
    )
    assert again.chosen == {"1"}

    split = resolve(
        parse_selection(
            {"mode": "mask-selected", "splits": [{"track": 3, "frame": 2}], "tracks": ["3b"]}
        ),
        analysis,
    )
    parts = {t.ref: [int(f) for f in t.track.frames] for t in split.tracks if t.ref[0] == "3"}
    assert parts == {"3a": [0, 1], "3b": [2, 3]}
    planner = RedactionPlanner(split, analysis)
    assert not planner.hidden(1)[30, 15]  # 3a is not selected
    assert planner.hidden(2)[30, 25]  # 3b is


def test_a_split_part_merges_with_another_track() -> None:
    # Track 1 followed one person, then a second; track 2 is the second person later on.
    analysis = _fake_analysis(_track(1, [0, 1, 2, 3]), _track(2, [7, 8]), _track(3, [0, 1]))
    data = {
        "mode": "mask-all-except",
        "splits": [{"track": 1, "frame": 2}],
        "merges": [["1b", 2]],
        "tracks": [2],
    }
    resolved = resolve(parse_selection(data), analysis)
    refs = {t.ref: t for t in resolved.tracks}
    assert set(refs) == {"1a", "1b", "3"}
    merged = refs["1b"]
    assert merged.sources == (1, 2)
    assert [int(f) for f in merged.track.frames] == list(range(2, 9))
    assert [int(f) for f in merged.track.flags] == [D] * 2 + [INTERP] * 3 + [D] * 2
    # Either member's name selects the merged track; the other part stays apart.
    assert resolved.chosen == {"1b"}
    assert resolve(parse_selection({**data, "tracks": ["1b"]}), analysis).chosen == {"1b"}
    assert resolve(parse_selection({**data, "tracks": [1]}), analysis).chosen == {"1a", "1b"}
    # A merged group is one person: every row of it is kept, the gap included.
    planner = RedactionPlanner(resolved, analysis)
    for frame, box in zip(merged.track.frames, merged.track.xyxy, strict=True):
        x0, y0, x1, y1 = (int(v) for v in box)
        hidden = planner.hidden(int(frame))
        assert not hidden[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].any(), frame
        assert hidden.mean() > 0.9  # and the rest of the picture is masked

    with pytest.raises(SelectionError, match=r"tracks or parts \(in merges\).*: 1c"):
        resolve(parse_selection({**data, "merges": [["1c", 2]]}), analysis)
    face = _fake_analysis(_track(1, [0, 1, 2, 3]), _track(2, [7, 8], TrackKind.FACE))
    with pytest.raises(SelectionError, match="mixes kinds"):
        resolve(parse_selection({**data, "tracks": []}), face)


def test_a_predicted_only_track_is_masked_with_its_parent() -> None:
    ghost = _track(3, [5, 6, 7])
    ghost = OfflineTrack(
        track_id=3,
        kind=TrackKind.PERSON,
        frames=ghost.frames,
        xyxy=ghost.xyxy,
        flags=np.full(3, EXTRAP, np.int8),
        uncertainty=np.ones(3, np.float32),
        parent=1,
    )
    analysis = _fake_analysis(_track(1, [0, 1, 2, 3, 4]), _track(2, [0, 1]), ghost)
    masked = resolve(parse_selection({"mode": "mask-selected", "tracks": [1]}), analysis)
    assert masked.chosen == {"1", "3"}
    # Keeping a person never keeps a prediction.
    kept = resolve(parse_selection({"mode": "mask-all-except", "tracks": [1]}), analysis)
    assert kept.chosen == {"1"}


def test_trim_by_time_and_by_frame() -> None:
    analysis = _fake_analysis(frames=100)
    by_time = resolve(
        parse_selection({"mode": "mask-selected", "trim": {"start_time": 1, "end_time": 2}}),
        analysis,
    )
    assert (by_time.first_frame, by_time.last_frame) == (25, 49)
    by_frame = resolve(
        parse_selection({"mode": "mask-selected", "trim": {"start_frame": 90, "end_frame": 500}}),
        analysis,
    )
    assert (by_frame.first_frame, by_frame.last_frame) == (90, 99)
    with pytest.raises(SelectionError, match="trim selects no frames"):
        resolve(parse_selection({"mode": "mask-selected", "trim": {"start_frame": 200}}), analysis)


def test_uncertain_boxes_get_larger_margins() -> None:
    track = _track(1, [0, 1, 2])
    track = OfflineTrack(
        track_id=1,
        kind=TrackKind.PERSON,
        frames=track.frames,
        xyxy=np.array([[100, 100, 140, 200]] * 3, np.float32),
        flags=np.array([D, INTERP, EXTRAP], np.int8),
        uncertainty=np.array([0.0, 4.0, 8.0], np.float32),
    )
    analysis = _fake_analysis(track)
    resolved = resolve(parse_selection({"mode": "mask-selected", "tracks": [1]}), analysis)
    planner = RedactionPlanner(resolved, analysis)
    areas = [int(planner.hidden(f).sum()) for f in range(3)]
    assert areas[0] < areas[1] < areas[2]


def test_unsafe_frames_are_masked_whole_in_both_modes() -> None:
    analysis = Analysis(
        video=VideoInfo("v.mp4", "0" * 64, 1, 10, "25", 32, 24),
        settings=AnalysisSettings(),
        tracks=(),
        unsafe_frames=(4,),
    )
    for mode in Mode:
        planner = RedactionPlanner(
            resolve(parse_selection({"mode": mode.value}), analysis), analysis
        )
        assert planner.hidden(4).all()
    selected = resolve(parse_selection({"mode": "mask-selected"}), analysis)
    assert not RedactionPlanner(selected, analysis).hidden(3).any()


# --------------------------------------------------------------------------- real video


@dataclass(frozen=True)
class Analysed:
    video: Path
    analysis_path: Path
    analysis: Analysis
    frames: list[NDArray[np.uint8]]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    need_shared(MODELS / "yolox_nano.onnx")
    need_shared(TUD / "img1" / "000001.jpg")
    folder = tmp_path_factory.mktemp("redact")
    frames = []
    for i in range(1, SLICE_FRAMES + 1):
        image = cv2.imread(str(TUD / "img1" / f"{i:06d}.jpg"))
        assert image is not None
        frames.append(np.asarray(image, np.uint8))
    video = folder / "tud40.mkv"
    write_clip(video, frames)
    settings = AnalysisSettings(model_dir=str(MODELS))
    path = folder / "tud40.mkv.veil-analysis.json"
    analysis, reused = load_or_analyse(video, path, settings)
    assert not reused
    return Analysed(video, path, analysis, frames)


@pytest.fixture
def signing_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "veil" / "redaction-signing-key.pem"


def test_analysis_is_saved_and_reused_without_detecting(
    analysed: Analysed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signing_home: Path
) -> None:
    saved = json.loads(analysed.analysis_path.read_text())
    assert saved["video"]["frame_count"] == SLICE_FRAMES
    assert saved["video"]["sha256"] == analysed.analysis.video.sha256
    person = next(t for t in saved["tracks"] if t["kind"] == "person" and t["thumbnail"])
    assert len(person["boxes"]) == len(person["frames"]) == len(person["flags"])
    assert set(person["flags"]) <= {"d", "i", "e"}
    thumb = cv2.imdecode(
        np.frombuffer(__import__("base64").b64decode(person["thumbnail"]), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert thumb is not None
    assert max(thumb.shape[:2]) <= 96
    # Loading again gives the same tracks, and no detector runs: not to reuse the analysis,
    # not to export (the detectors are made to fail to prove it).
    before = analysis_module.frames_detected()
    again, reused = load_or_analyse(
        analysed.video, analysed.analysis_path, AnalysisSettings(model_dir=str(MODELS))
    )
    assert reused
    assert again.track_ids == analysed.analysis.track_ids

    def broken(*_: object, **__: object) -> None:
        raise AssertionError("a detector ran during export")

    monkeypatch.setattr("veil.detect.persons.PersonDetector.detect", broken)
    monkeypatch.setattr("veil.detect.faces.FaceDetector.detect", broken)
    for mode in ("mask-selected", "mask-all-except"):
        resolved = resolve(parse_selection({"mode": mode, "tracks": [1]}), again)
        export_redaction(analysed.video, again, resolved, tmp_path / f"{mode}.mkv")
    assert analysis_module.frames_detected() == before


def test_a_changed_video_is_refused(analysed: Analysed, tmp_path: Path) -> None:
    changed = tmp_path / "changed.mkv"
    data = bytearray(analysed.video.read_bytes())
    data[-100] ^= 0xFF
    changed.write_bytes(bytes(data))
    resolved = resolve(parse_selection({"mode": "mask-selected"}), analysed.analysis)
    with pytest.raises(VideoChangedError, match="is not the video that was analysed") as caught:
        export_redaction(changed, analysed.analysis, resolved, tmp_path / "out.mkv")
    assert "veil redact analyse" in str(caught.value)
    assert not (tmp_path / "out.mkv").exists()


def _all_persons(analysis: Analysis) -> list[int]:
    return [t.track_id for t in analysis.tracks if t.kind is TrackKind.PERSON]


def test_manifest_is_signed_and_tampering_is_detected(
    analysed: Analysed, tmp_path: Path, signing_home: Path
) -> None:
    selection = parse_selection(
        {
            "mode": "mask-selected",
            "kinds": ["person"],
            "reason": "request 17 <script>",
            "style": "mosaic",
        }
    )
    resolved = resolve(selection, analysed.analysis)
    out = tmp_path / "out.mp4"
    result = export_redaction(analysed.video, analysed.analysis, resolved, out, operator="J. Doe")
    assert result.key_created
    assert signing_home.is_file()
    assert stat.S_IMODE(signing_home.stat().st_mode) == 0o600
    manifest = json.loads(result.manifest_json.read_text())
    assert manifest["source"]["sha256"] == analysed.analysis.video.sha256
    assert manifest["exported_by"] == "J. Doe"
    assert manifest["reason"] == "request 17 <script>"
    assert manifest["signer"]["fingerprint"] == result.fingerprint
    masked = {t["track"] for t in manifest["tracks"]}
    assert masked == {str(i) for i in _all_persons(analysed.analysis)}
    page = result.manifest_html.read_text()
    assert "request 17 &lt;script&gt;" in page
    assert "<script>" not in page
    assert analysed.analysis.video.sha256 in page
    ok = verify_export(out, result.manifest_json, load_public_key(signing_home))
    assert ok.ok, ok.message

    # One byte of the output changed: refused.
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    bad = verify_export(tampered, result.manifest_json)
    assert not bad.ok
    assert "not the exported file" in bad.message
    # One character of the manifest changed: the signature fails.
    text = result.manifest_json.read_text().replace("request 17", "request 18")
    forged = tmp_path / "forged.json"
    forged.write_text(text)
    bad = verify_export(out, forged)
    assert not bad.ok
    assert "signature does not match" in bad.message
    # Signed, but by another key than the expected one.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key()
    bad = verify_export(out, result.manifest_json, other)
    assert not bad.ok
    assert "not by the expected key" in bad.message


def test_a_failing_export_leaves_no_file(
    analysed: Analysed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_home: Path
) -> None:
    calls = {"n": 0}
    real_write = FileSink.write

    def failing(self: FileSink, frame: object) -> None:
        calls["n"] += 1
        if calls["n"] == 10:
            raise OutputError("disk full (simulated)")
        real_write(self, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(FileSink, "write", failing)
    resolved = resolve(parse_selection({"mode": "mask-selected"}), analysed.analysis)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OutputError, match="disk full"):
        export_redaction(analysed.video, analysed.analysis, resolved, out_dir / "out.mp4")
    assert sorted(p.name for p in out_dir.iterdir()) == []
    # The source was only read.
    assert analysed.analysis.video.sha256 == analysis_module.video_digest(analysed.video)[0]


def test_an_export_the_audit_log_refuses_is_not_written(
    analysed: Analysed, tmp_path: Path, signing_home: Path
) -> None:
    from veil.vault.audit import AuditChainError

    def refuse(actor: str, details: dict[str, object]) -> int:
        raise AuditChainError("the audit log is keyed; no key given")

    resolved = resolve(parse_selection({"mode": "mask-selected"}), analysed.analysis)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AuditChainError):
        export_redaction(analysed.video, analysed.analysis, resolved, out / "a.mkv", audit=refuse)
    assert list(out.iterdir()) == []


def test_existing_output_needs_overwrite(
    analysed: Analysed, tmp_path: Path, signing_home: Path
) -> None:
    out = tmp_path / "out.mkv"
    out.write_bytes(b"old")
    resolved = resolve(parse_selection({"mode": "mask-selected"}), analysed.analysis)
    with pytest.raises(OutputError, match="already exists"):
        export_redaction(analysed.video, analysed.analysis, resolved, out)
    assert out.read_bytes() == b"old"
    result = export_redaction(analysed.video, analysed.analysis, resolved, out, overwrite=True)
    assert result.frames == SLICE_FRAMES
    assert out.stat().st_size > 3


def test_an_export_is_one_video_file(analysed: Analysed, tmp_path: Path) -> None:
    resolved = resolve(parse_selection({"mode": "mask-selected"}), analysed.analysis)
    for name in ("frames/%06d.png", "out.gif"):
        with pytest.raises(UsageError, match="one video file"):
            export_redaction(analysed.video, analysed.analysis, resolved, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def _decode(path: Path) -> list[NDArray[np.uint8]]:
    from veil.media.source import open_source

    with open_source(str(path)) as source:
        return [np.array(f.image) for f in source.frames()]


def test_except_mode_keeps_the_person_and_masks_everything_else(
    analysed: Analysed, tmp_path: Path, signing_home: Path
) -> None:
    analysis = analysed.analysis
    keep = max(
        (t for t in analysis.tracks if t.kind is TrackKind.PERSON), key=lambda t: t.detected_frames
    )
    selection = parse_selection(
        {"mode": "mask-all-except", "tracks": [keep.track_id], "color": "#ff00ff"}
    )
    resolved = resolve(selection, analysis)
    out = tmp_path / "kept.mkv"  # lossless, to compare pixels exactly
    export_redaction(analysed.video, analysis, resolved, out)
    frames = _decode(out)
    assert len(frames) == SLICE_FRAMES
    magenta = np.array([255, 0, 255], np.uint8)
    planner = RedactionPlanner(resolved, analysis)
    for f in (0, SLICE_FRAMES // 2, SLICE_FRAMES - 1):
        hidden = planner.hidden(f)
        # Most of the picture is masked, in the chosen colour ...
        assert hidden.mean() > 0.7
        assert np.all(frames[f][hidden] == magenta)
        # ... and what is shown is the original, inside the kept person's box.
        shown = ~hidden
        assert np.array_equal(frames[f][shown], analysed.frames[f][shown])
        row = keep.row(f)
        if row is not None and int(keep.flags[row]) == D:
            x0, y0, x1, y1 = keep.xyxy[row]
            _ys, xs = np.nonzero(shown)
            assert xs.min() >= x0 - 0.05 * (y1 - y0) - 1
            assert xs.max() <= x1 + 0.05 * (y1 - y0)


def test_preview_writes_the_redacted_frame(analysed: Analysed, tmp_path: Path) -> None:
    resolved = resolve(parse_selection({"mode": "mask-all-except"}), analysed.analysis)
    path = preview_frame(analysed.video, analysed.analysis, resolved, 5, tmp_path / "f5.png")
    image = cv2.imread(str(path))
    assert image is not None
    assert image.shape == analysed.frames[0].shape
    assert not image.any()  # nobody kept: everything is masked black


def test_export_is_recorded_in_the_audit_log(
    analysed: Analysed, tmp_path: Path, signing_home: Path
) -> None:
    from veil.vault.audit import AuditAction, AuditLog
    from veil.vault.db import Database

    db = Database(tmp_path / "veil.db")
    log = AuditLog(db)

    def record(actor: str, details: dict[str, object]) -> int:
        return log.append(actor, AuditAction.EXPORT, "redaction", details).seq  # type: ignore[arg-type]

    resolved = resolve(
        parse_selection({"mode": "mask-selected", "tracks": [1], "reason": "r"}),
        analysed.analysis,
    )
    result = export_redaction(
        analysed.video, analysed.analysis, resolved, tmp_path / "a.mkv", audit=record
    )
    entry = log.entries(limit=1)[0]
    assert entry.seq == result.audit_seq
    assert entry.action == AuditAction.EXPORT
    assert entry.details["output_sha256"] == result.output_sha256
    assert log.verify_chain().ok
    db.close()


# --------------------------------------------------------------------------- quality


@pytest.fixture(scope="module")
def tud_full() -> tuple[Analysis, GroundTruth]:
    need_shared(MODELS / "yolox_nano.onnx")
    gt = load_ground_truth(need_shared(TUD / "gt" / "gt.txt"))
    analysis = analyse_video(
        str(TUD / "img1" / "%06d.jpg"), AnalysisSettings(model_dir=str(MODELS))
    )
    return analysis, gt


@pytest.mark.slow
def test_all_persons_selected_meets_the_bar(tud_full: tuple[Analysis, GroundTruth]) -> None:
    analysis, gt = tud_full
    assert analysis.video.frame_count == 179
    resolved = resolve(parse_selection({"mode": "mask-selected", "kinds": ["person"]}), analysis)
    planner = RedactionPlanner(resolved, analysis)
    acc = MetricsAccumulator(gt)
    for index in range(analysis.video.frame_count):
        acc.add(index, planner.hidden(index))
    report = acc.report()
    assert report.boxes == len(gt)
    assert report.recall is not None
    assert report.recall >= 0.999, report.recall
    assert report.leaked_frames == ()


KEPT_MIN_FRAMES = 20
"""Every TUD-Stadtmitte person in at least this many frames is kept in turn."""
CROWDED = (
    "kept person walks in the group: masked where others' boxes overlap them (people in "
    "front; people behind them the detector misses, whose interpolated boxes stay masked in "
    "doubt)"
)
KEPT_PERSONS = [
    1,
    pytest.param(2, marks=pytest.mark.xfail(reason=CROWDED, strict=True)),
    3,  # in every frame; others walk in front of and beside them
    *(pytest.param(p, marks=pytest.mark.xfail(reason=CROWDED, strict=True)) for p in range(4, 10)),
    10,
]
"""TUD-Stadtmitte persons 2 and 4 to 9 walk as a group and behind one another: keeping one
of them shows them in 32-77% of their frames while everyone else stays masked (see
``python bench/bench_redact.py --except-each``). Strict xfails: an improvement shows."""


def test_every_person_seen_long_enough_is_measured(tud_full: tuple[Analysis, GroundTruth]) -> None:
    _, gt = tud_full
    ids, counts = np.unique(gt.person_id, return_counts=True)
    assert [int(i) for i, c in zip(ids, counts, strict=True) if c >= KEPT_MIN_FRAMES] == list(
        range(1, 11)
    )


@pytest.mark.slow
@pytest.mark.parametrize("person", KEPT_PERSONS)
def test_except_mode_keeps_one_person_and_masks_the_others(
    tud_full: tuple[Analysis, GroundTruth], person: int
) -> None:
    analysis, gt = tud_full
    # The tracks a careful user keeps: every track (or part of one, split where it switches
    # to someone else) that follows the person.
    selection = person_selection(analysis, gt, person)
    assert selection["tracks"]
    resolved = resolve(parse_selection(selection), analysis)
    quality = evaluate_redaction(analysis, resolved, gt, kept_person=person)
    # Shown: less than half of what can be seen of them (their box less the boxes of people
    # in front of or beside them, who stay masked) is masked.
    assert quality.kept_frames > 0
    assert quality.kept_shown is not None
    # Every other person is masked as with all persons selected.
    report = quality.report
    assert report.boxes == int(np.count_nonzero(gt.person_id != person))
    assert report.recall is not None
    assert report.recall >= 0.999, report.recall
    assert report.leaked_frames == ()
    assert quality.kept_shown >= 0.95, quality.kept_shown
