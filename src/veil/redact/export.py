"""Render a redaction: plan each frame from the analysis and the selection, and export.

:class:`RedactionPlanner` is a :class:`~veil.policy.base.FramePlanner`: for a frame it returns
the :class:`~veil.core.plan.MaskPlan` that the :class:`~veil.render.FrameRenderer` draws.

- ``mask-selected``: each chosen track's box, grown by the margin plus the box's uncertainty
  (interpolated and extrapolated boxes are uncertain, so their margin is larger, and at least
  :data:`UNCERTAIN_EXTRA` of the box's size), and each manual region.
- ``mask-all-except``: everything except the kept tracks' boxes (grown by the small
  :data:`KEEP_MARGIN`); inside a kept box, other people's boxes (grown by
  :data:`OTHERS_MARGIN` and their uncertainty, including their extrapolated boxes close to a
  sighting, :data:`FRESH_EXTRAPOLATED`) and manual regions are masked too: where keeping one
  person and masking another conflict, the other is masked. Extrapolated boxes of a kept
  track are not kept visible: where the person was not seen, nothing is shown.
- A frame listed as unsafe in the analysis (a detector failed) or marked corrupt by the
  decoder is masked whole.

:func:`export_redaction` checks the video's SHA-256 against the analysis, renders the trimmed
range into a hidden temporary file, writes the signed manifest (JSON and HTML), records the
export in the gateway's audit log when asked, and only then renames everything into place
(the manifest first, the video last): a failure at any step leaves no file that looks finished,
and the source is only read.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from veil import __version__
from veil.core.errors import MediaDecodeError, OutputError, UsageError
from veil.core.files import sha256_file
from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import BBox, BoolMask, Region
from veil.core.style import Style, StyleKind
from veil.eval.groundtruth import GroundTruth
from veil.eval.metrics import LEAK_COVERAGE, EvalReport, MetricsAccumulator, pixel_boxes
from veil.media.sink import ENCODINGS, open_sink
from veil.media.source import is_image_sequence, open_source
from veil.policy.margin import Margin
from veil.redact.analysis import Analysis, _frames_threaded, write_atomic
from veil.redact.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    fingerprint,
    load_or_create_signing_key,
    manifest_json,
    manifest_paths,
    render_html,
    sign_manifest,
)
from veil.redact.offline_tracks import BoxFlag, OfflineTrack, TrackKind, flag_code, frame_ranges
from veil.redact.selection import Mode, ResolvedSelection, parse_selection, resolve
from veil.render.renderers import FrameRenderer
from veil.track import iou_matrix

log = logging.getLogger(__name__)

KEEP_MARGIN = Margin(fraction=0.03)
"""Extra area kept visible around a person of interest's box (detector boxes are a little
tight; 3% of the box's larger side)."""
OTHERS_MARGIN = Margin(fraction=0.10)
"""In mask-all-except, margin of other people's boxes where they overlap a kept box (outside
kept boxes everything is masked anyway): the ``medium`` preset that mask-selected uses by
default, so that others are masked "as before". 5% left the sides of people walking beside a
kept person uncovered (their ground-truth boxes are wider than the detector's)."""
FRESH_EXTRAPOLATED = 0.15
"""In mask-all-except, another person's extrapolated (unseen) box is cut out of the kept
area while its uncertainty is at most this share of its larger side: a few frames after
they were last (or before they are first) seen, when they are most likely hidden behind or
beside the kept person, not gone. Older predictions drift far from anyone and, grown by
their uncertainty, would hide the kept person for a whole hold time."""
DUPLICATE_IOU = 0.5
DUPLICATE_INSIDE = 0.85
"""A person box overlapping a kept box by this IoU, or lying this much inside it, duplicates it."""
SHADOW_SHARE = 0.8
"""A person track that duplicates kept boxes in this share of its detected frames is taken as
the kept person's own second detection and not cut out of the kept area."""
UNCERTAIN_EXTRA = 0.03
"""Least extra margin of an interpolated or extrapolated box, as a share of its larger side."""
_DETECTED = flag_code(BoxFlag.DETECTED)
_EXTRAPOLATED = flag_code(BoxFlag.EXTRAPOLATED)
_FAIL_STYLE = Style(kind=StyleKind.FILL, color=(0, 0, 0))

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class _Entry:
    box: NDArray[np.float32]
    uncertainty: float
    flag: int
    chosen: bool
    kind: TrackKind
    ref: str
    keep: bool
    """mask-all-except: this box of a kept track is shown."""


def kept_rows(track: OfflineTrack) -> NDArray[np.bool_]:
    """The rows of a person of interest's track that mask-all-except shows: those on the
    chain of links both tracking passes agree on that holds the track's best view (its
    thumbnail, which the user chose), or the longest chain; never extrapolated rows."""
    segments = track.segment_column()
    valid = segments[segments >= 0]
    if len(valid) == 0:
        return np.zeros(len(track), np.bool_)
    row = track.row(track.best_frame) if track.best_frame >= 0 else None
    if row is not None and segments[row] >= 0:
        chosen = int(segments[row])
    else:
        values, counts = np.unique(valid, return_counts=True)
        chosen = int(values[np.argmax(counts)])
    keep: NDArray[np.bool_] = (segments == chosen) & (track.flags != _EXTRAPOLATED)
    return keep


class RedactionPlanner:
    """Plans each frame of a redaction (see the module docstring)."""

    def __init__(
        self,
        resolved: ResolvedSelection,
        analysis: Analysis,
        *,
        keep_margin: Margin = KEEP_MARGIN,
        others_margin: Margin = OTHERS_MARGIN,
    ) -> None:
        self.resolved = resolved
        self._width = analysis.video.width
        self._height = analysis.video.height
        self._unsafe = frozenset(analysis.unsafe_frames)
        self._keep_margin = keep_margin
        self._others_margin = others_margin
        self._by_frame: dict[int, list[_Entry]] = {}
        for rt in resolved.tracks:
            chosen = rt.ref in resolved.chosen
            t = rt.track
            keep = kept_rows(t) if chosen else np.zeros(len(t), np.bool_)
            for f, box, flag, unc, k in zip(
                t.frames, t.xyxy, t.flags, t.uncertainty, keep, strict=True
            ):
                self._by_frame.setdefault(int(f), []).append(
                    _Entry(box, float(unc), int(flag), chosen, t.kind, rt.ref, bool(k))
                )
        self._shadows = self._find_shadows() if resolved.mode is Mode.MASK_ALL_EXCEPT else set()

    def _find_shadows(self) -> set[str]:
        """Other person tracks that are second detections of a kept person (a part of the
        body): seen almost only as duplicates of kept boxes (:data:`SHADOW_SHARE` of their
        detected frames). A person seen on their own at times is never one."""
        dup: dict[str, int] = {}
        seen: dict[str, int] = {}
        for entries in self._by_frame.values():
            kept = [e.box for e in entries if e.keep]
            for e in entries:
                if e.chosen or e.kind is not TrackKind.PERSON or e.flag != _DETECTED:
                    continue
                seen[e.ref] = seen.get(e.ref, 0) + 1
                if kept and _duplicate(e.box, np.stack(kept)):
                    dup[e.ref] = dup.get(e.ref, 0) + 1
        return {ref for ref, n in seen.items() if dup.get(ref, 0) >= SHADOW_SHARE * n}

    def plan(self, frame: Frame) -> MaskPlan:
        """The plan for a decoded frame (a corrupt one is masked whole)."""
        if frame.corrupt:
            return self._full(frame.width, frame.height)
        return self.plan_index(frame.index, frame.width, frame.height)

    def plan_index(
        self, index: int, width: int | None = None, height: int | None = None
    ) -> MaskPlan:
        w = self._width if width is None else width
        h = self._height if height is None else height
        if index in self._unsafe:
            return self._full(w, h)
        entries = self._by_frame.get(index, [])
        if self.resolved.mode is Mode.MASK_SELECTED:
            return self._selected(index, entries, w, h)
        return self._all_except(index, entries, w, h)

    def draw_labels(self, picture: NDArray[np.uint8], index: int) -> None:
        """Outline each track in frame ``index`` with its ref (see :func:`preview_frame`)."""
        masking = self.resolved.mode is Mode.MASK_SELECTED
        for e in self._by_frame.get(index, []):
            if e.chosen:
                color = (0, 0, 255) if masking else (0, 200, 0)
            else:
                color = (160, 160, 160) if masking else (0, 0, 255)
            x0, y0, x1, y1 = (round(float(v)) for v in e.box)
            thickness = 1 if e.flag == _EXTRAPOLATED else 2
            cv2.rectangle(picture, (x0, y0), (x1, y1), color, thickness)
            text = f"{e.ref} {e.kind.value}"
            cv2.putText(
                picture, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1
            )

    def hidden(self, index: int) -> BoolMask:
        """The pixels hidden in frame ``index`` (for measuring against ground truth)."""
        return self.plan_index(index).union()

    # -- plans ---------------------------------------------------------------------------

    def _full(self, w: int, h: int) -> MaskPlan:
        return MaskPlan(w, h, (MaskLayer.full_frame(w, h, _FAIL_STYLE, MaskReason.FAIL_CLOSED),))

    def _grown(self, entries: list[_Entry], margin: Margin | None = None) -> NDArray[np.float32]:
        if not entries:
            return np.zeros((0, 4), np.float32)
        boxes = np.stack([e.box for e in entries]).astype(np.float32)
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        floor = np.where(
            np.array([e.flag != _DETECTED for e in entries]), UNCERTAIN_EXTRA * size, 0.0
        )
        extra = np.maximum(np.array([e.uncertainty for e in entries], np.float32), floor)
        return (margin or self.resolved.margin).grow(boxes, extra.astype(np.float32))

    def _selected(self, index: int, entries: list[_Entry], w: int, h: int) -> MaskPlan:
        style = self.resolved.style
        chosen = [e for e in entries if e.chosen]
        layers: list[MaskLayer] = []
        for e, grown in zip(chosen, self._grown(chosen), strict=True):
            box = _pixel_box(grown, w, h)
            if not box.empty:
                coverage = np.ones((box.height, box.width), np.bool_)
                layers.append(
                    MaskLayer(box, coverage, style, MaskReason.REDACTION, f"track {e.ref}")
                )
        layers += self._region_layers(index, w, h)
        return MaskPlan(w, h, tuple(layers))

    def _region_layers(self, index: int, w: int, h: int) -> list[MaskLayer]:
        layers = []
        for region in self.resolved.regions:
            pts = region.points_at(index)
            if pts is None:
                continue
            poly = Region.from_pixels(pts, w, h)
            box = poly.bbox(w, h)
            if box.empty:
                continue
            coverage = poly.rasterize_in(box, w, h)
            if coverage.any():
                layers.append(
                    MaskLayer(box, coverage, self.resolved.style, MaskReason.REDACTION, region.name)
                )
        return layers

    def _all_except(self, index: int, entries: list[_Entry], w: int, h: int) -> MaskPlan:
        """Everything but the kept boxes. Drawn as up to four solid bands around the kept
        boxes' union and one layer inside it: solid layers render fastest."""
        style = self.resolved.style
        kept = [e for e in entries if e.keep]
        regions = self._region_layers(index, w, h)
        boxes = np.stack([e.box for e in kept]).astype(np.float32) if kept else None
        shown = (
            []
            if boxes is None
            else [
                b
                for g in self._keep_margin.grow(boxes, np.zeros(len(kept), np.float32))
                if not (b := _pixel_box(g, w, h)).empty
            ]
        )
        if not shown:
            whole = MaskLayer.full_frame(w, h, style, MaskReason.REDACTION)
            return MaskPlan(w, h, (whole, *regions))
        area = shown[0]
        for b in shown[1:]:
            area = area.union(b)
        visible = np.zeros((area.height, area.width), np.bool_)
        for b in shown:
            visible[b.y0 - area.y0 : b.y1 - area.y0, b.x0 - area.x0 : b.x1 - area.x0] = True
        # Other people inside the kept area are cut out of it: seen ones and those between
        # two sightings (grown by their uncertainty, as when masking them), and unseen ones
        # just before or after a sighting (FRESH_EXTRAPOLATED): a person walking behind the
        # kept one is often missed for a few frames, and showing the kept box would show them.
        others = [
            e
            for e in entries
            if not e.chosen
            and e.kind is TrackKind.PERSON
            and (e.flag != _EXTRAPOLATED or _fresh(e))
            and e.ref not in self._shadows
        ]
        for grown in self._grown(others, self._others_margin):
            b = _pixel_box(grown, w, h)
            x0, y0 = max(b.x0, area.x0) - area.x0, max(b.y0, area.y0) - area.y0
            x1, y1 = min(b.x1, area.x1) - area.x0, min(b.y1, area.y1) - area.y0
            if x1 > x0 and y1 > y0:
                visible[y0:y1, x0:x1] = False
        layers: list[MaskLayer] = []
        for band in (
            BBox(0, 0, w, area.y0),
            BBox(0, area.y1, w, h),
            BBox(0, area.y0, area.x0, area.y1),
            BBox(area.x1, area.y0, w, area.y1),
        ):
            if not band.empty:
                solid = np.ones((band.height, band.width), np.bool_)
                layers.append(MaskLayer(band, solid, style, MaskReason.REDACTION, "all-except"))
        inner = ~visible
        if inner.any():
            layers.append(MaskLayer(area, inner, style, MaskReason.REDACTION, "all-except"))
        return MaskPlan(w, h, (*layers, *regions))


def _fresh(entry: _Entry) -> bool:
    """An extrapolated box still close to a sighting (see :data:`FRESH_EXTRAPOLATED`)."""
    size = float(max(entry.box[2] - entry.box[0], entry.box[3] - entry.box[1]))
    return entry.uncertainty <= FRESH_EXTRAPOLATED * size


def _duplicate(box: NDArray[np.float32], kept: NDArray[np.float32]) -> bool:
    b = box.astype(np.float64)
    k = kept.astype(np.float64)
    iw = np.clip(np.minimum(b[2], k[:, 2]) - np.maximum(b[0], k[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], k[:, 3]) - np.maximum(b[1], k[:, 1]), 0, None)
    inter = iw * ih
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
    area_k = (k[:, 2] - k[:, 0]) * (k[:, 3] - k[:, 1])
    iou = inter / np.maximum(area_b + area_k - inter, 1e-9)
    return bool(np.any(iou >= DUPLICATE_IOU) or np.any(inter / area_b >= DUPLICATE_INSIDE))


def _pixel_box(xyxy: NDArray[np.float32], w: int, h: int) -> BBox:
    """Every pixel the box touches at all (outward rounding), clipped to the frame."""
    return BBox(
        int(np.floor(xyxy[0])), int(np.floor(xyxy[1])), int(np.ceil(xyxy[2])), int(np.ceil(xyxy[3]))
    ).clip(w, h)


# --------------------------------------------------------------------------- export


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote."""

    output: Path
    manifest_json: Path
    manifest_html: Path
    frames: int
    source_sha256: str
    output_sha256: str
    key_path: Path
    key_created: bool
    fingerprint: str
    seconds: float
    fully_masked_frames: int
    audit_seq: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


AuditRecorder = Callable[[str, dict[str, Any]], int]
"""Records an export in an audit log: (actor, details) -> the entry's sequence number."""


def _temp_beside(target: Path, suffix: str) -> Path:
    return target.parent / f".{target.name}.partial-{secrets.token_hex(4)}{suffix}"


def export_redaction(
    video: str | os.PathLike[str],
    analysis: Analysis,
    resolved: ResolvedSelection,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    operator: str | None = None,
    signing_key: Path | None = None,
    audit: AuditRecorder | None = None,
    progress: ProgressCallback | None = None,
    analysis_path: Path | None = None,
    selection_path: Path | None = None,
) -> ExportResult:
    """Export ``video`` redacted as ``resolved`` says (see the module docstring)."""
    started = time.perf_counter()
    text = os.fspath(video)
    target = Path(output)
    if is_image_sequence(os.fspath(output)) or target.suffix.lower() not in ENCODINGS:
        raise UsageError(
            f"{target}: a redacted export is one video file",
            hint=f"end the output name with one of {', '.join(ENCODINGS)}",
        )
    json_path, html_path = manifest_paths(target)
    for path in (target, json_path, html_path):
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: already exists", hint="use --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"{target.parent}: the output folder does not exist", hint="create it")
    analysis.check_video(text)
    key, key_path, key_created = load_or_create_signing_key(signing_key)
    planner = RedactionPlanner(resolved, analysis)
    renderer = FrameRenderer()
    temp_video = _temp_beside(target, target.suffix)
    temps = [temp_video]
    try:
        written, full_frames = _render(
            text, planner, renderer, temp_video, resolved, analysis, progress
        )
        out_sha = sha256_file(temp_video)
        manifest = _manifest(
            text,
            analysis,
            resolved,
            target,
            out_sha,
            temp_video.stat().st_size,
            written,
            full_frames,
            operator or _os_user(),
            analysis_path,
            selection_path,
        )
        signed = sign_manifest(manifest, key)
        temp_json = _temp_beside(json_path, ".json")
        temp_html = _temp_beside(html_path, ".html")
        temps += [temp_json, temp_html]
        write_atomic(temp_json, manifest_json(signed).encode(), overwrite=False)
        write_atomic(temp_html, render_html(signed).encode(), overwrite=False)
        seq = None
        if audit is not None:
            seq = audit(
                str(signed["exported_by"]),
                {
                    "kind": "redaction",
                    "source": str(signed["source"]["path"]),
                    "source_sha256": analysis.video.sha256,
                    "output": str(target.resolve()),
                    "output_sha256": out_sha,
                    "manifest_sha256": sha256_file(temp_json),
                    "mode": resolved.mode.value,
                    "tracks": sorted(resolved.chosen),
                    "frames": [resolved.first_frame, resolved.last_frame],
                    "reason": resolved.selection.reason,
                    "key_fingerprint": fingerprint(key.public_key()),
                },
            )
        # The manifest first, the video last: a crash in between leaves no video without
        # its manifest.
        os.replace(temp_json, json_path)
        os.replace(temp_html, html_path)
        os.replace(temp_video, target)
    except BaseException:
        for temp in temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    return ExportResult(
        output=target,
        manifest_json=json_path,
        manifest_html=html_path,
        frames=written,
        source_sha256=analysis.video.sha256,
        output_sha256=out_sha,
        key_path=key_path,
        key_created=key_created,
        fingerprint=fingerprint(key.public_key()),
        seconds=time.perf_counter() - started,
        fully_masked_frames=full_frames,
        audit_seq=seq,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _render(
    video: str,
    planner: RedactionPlanner,
    renderer: FrameRenderer,
    temp: Path,
    resolved: ResolvedSelection,
    analysis: Analysis,
    progress: ProgressCallback | None,
) -> tuple[int, int]:
    first, last = resolved.first_frame, resolved.last_frame
    written = 0
    full = 0
    with open_source(video, fps=_sequence_fps(analysis)) as source:
        if (source.width, source.height) != (analysis.video.width, analysis.video.height):
            raise MediaDecodeError(
                f"{video} decodes at {source.width}x{source.height}, the analysis says "
                f"{analysis.video.width}x{analysis.video.height}",
                hint="run `veil redact analyse` again",
            )
        sink = open_sink(temp, source, overwrite=False)
        try:
            start_pts: int | None = None
            with contextlib.closing(_frames_threaded(source)) as frames:
                for frame in frames:
                    if frame.index < first:
                        continue
                    if frame.index > last:
                        break
                    try:
                        plan = planner.plan(frame)
                        masked = renderer.render(frame, plan)
                        full += any(x.reason is MaskReason.FAIL_CLOSED for x in plan.layers)
                    except Exception:
                        log.exception("redaction failed on frame %d; masked whole", frame.index)
                        masked = frame.blacked_out()
                        full += 1
                    if frame.pts is not None:
                        start_pts = frame.pts if start_pts is None else start_pts
                        masked = masked.replace(pts=frame.pts - start_pts)
                    sink.write(masked)
                    written += 1
                    if progress is not None:
                        progress(written)
            if written != last - first + 1:
                raise MediaDecodeError(
                    f"{video}: only {written} of the {last - first + 1} frames to export "
                    f"could be read (the analysis counted {analysis.video.frame_count})",
                    hint="the video may be damaged; nothing was exported",
                )
            sink.close()
        except BaseException:
            sink.abort()
            raise
    return written, full


def _sequence_fps(analysis: Analysis) -> Fraction | None:
    """An image sequence's frame rate as analysed (its files carry none of their own)."""
    return Fraction(analysis.video.fps) if is_image_sequence(analysis.video.path) else None


def _manifest(
    video: str,
    analysis: Analysis,
    resolved: ResolvedSelection,
    target: Path,
    out_sha: str,
    out_size: int,
    written: int,
    full_frames: int,
    operator: str,
    analysis_path: Path | None,
    selection_path: Path | None,
) -> dict[str, Any]:
    first, last = resolved.first_frame, resolved.last_frame
    sel = resolved.selection
    tracks = []
    for rt in resolved.tracks:
        in_range = rt.track.frames[(rt.track.frames >= first) & (rt.track.frames <= last)]
        if len(in_range) == 0:
            continue
        chosen = rt.ref in resolved.chosen
        if resolved.mode is Mode.MASK_SELECTED and not chosen:
            continue
        entry: dict[str, Any] = {
            "track": rt.ref,
            "kind": rt.track.kind.value,
            "action": "masked",
            "frames": [list(r) for r in frame_ranges(in_range)],
            "analysis_tracks": list(rt.sources),
        }
        if resolved.mode is Mode.MASK_ALL_EXCEPT and chosen:
            keep = kept_rows(rt.track)
            frames = rt.track.frames[keep]
            shown = frames[(frames >= first) & (frames <= last)]
            entry["action"] = "kept visible"
            entry["shown_frames"] = [list(r) for r in frame_ranges(shown)]
        tracks.append(entry)
    regions = []
    for region in resolved.regions:
        lo, hi = max(first, region.first_frame), min(last, region.last_frame)
        regions.append(
            {
                "name": region.name,
                "frames": [[lo, hi]] if lo <= hi else [],
                "keyframes": [
                    {"frame": f, "points": np.round(p, 2).tolist()} for f, p in region.keyframes
                ],
            }
        )
    unsafe = [f for f in analysis.unsafe_frames if first <= f <= last]
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "veil_version": __version__,
        "exported_by": operator,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": sel.reason,
        "source": {
            "path": analysis.video.path if is_image_sequence(video) else str(Path(video).resolve()),
            "sha256": analysis.video.sha256,
            "size": analysis.video.size,
            "frames": analysis.video.frame_count,
            "fps": analysis.video.fps,
            "width": analysis.video.width,
            "height": analysis.video.height,
        },
        "output": {
            "path": target.name,
            "sha256": out_sha,
            "size": out_size,
            "frames": written,
            "first_frame": first,
            "last_frame": last,
        },
        "analysis": {
            "path": str(analysis_path) if analysis_path else None,
            "created": analysis.created,
            "settings": analysis.settings.to_dict(),
        },
        "selection_file": str(selection_path) if selection_path else None,
        "settings": {
            "mode": resolved.mode.value,
            "style": sel.style.value,
            "color": sel.color,
            "cell_size": sel.cell_size,
            "blur_radius": sel.blur_radius,
            "margin": sel.margin,
            "keep_margin": "3%" if resolved.mode is Mode.MASK_ALL_EXCEPT else None,
            "kinds": [k.value for k in sel.kinds],
            "merges": [list(m) for m in sel.merges],
            "splits": [{"track": s.track, "frame": s.frame} for s in sel.splits],
            "trim": [first, last],
        },
        "tracks": tracks,
        "regions": regions,
        "fully_masked_frames": [list(r) for r in frame_ranges(unsafe)],
        "fully_masked_count": full_frames,
    }


# --------------------------------------------------------------------------- preview


def preview_frame(
    video: str | os.PathLike[str],
    analysis: Analysis,
    resolved: ResolvedSelection,
    index: int,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    labels: bool = False,
) -> Path:
    """Write frame ``index`` redacted as an image (PNG or JPEG by the extension).

    ``labels`` outlines every track in the frame with its id (the ref a selection uses):
    red for tracks masked, green for tracks kept, grey for the others; for the operator
    choosing tracks, not for sharing."""
    target = Path(output)
    if target.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"{target}: a preview is a .png or .jpg image", hint="-o frame.png")
    if not 0 <= index < analysis.video.frame_count:
        raise UsageError(
            f"--frame {index} is outside the video (frames 0 to {analysis.video.frame_count - 1})"
        )
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists", hint="use --overwrite to replace it")
    analysis.check_video(video)
    planner = RedactionPlanner(resolved, analysis)
    with open_source(os.fspath(video), fps=_sequence_fps(analysis)) as source:
        for frame in source.frames():
            if frame.index == index:
                masked = FrameRenderer().render(frame, planner.plan(frame))
                break
        else:
            raise MediaDecodeError(f"{video}: frame {index} could not be read")
    picture = np.array(masked.image)
    if labels:
        planner.draw_labels(picture, index)
    ok, data = cv2.imencode(target.suffix.lower(), picture)
    if not ok:
        raise OutputError(f"{target}: the image could not be encoded")
    write_atomic(target, bytes(data.tobytes()), overwrite=overwrite)
    return target


# --------------------------------------------------------------------------- measuring


KEPT_VISIBLE = 0.5
"""For :attr:`RedactionQuality.kept_visible_shown`: the share of the kept person's box that
must be clear of other people's boxes."""


@dataclass(frozen=True, slots=True)
class RedactionQuality:
    """A redaction plan measured against ground truth (see :func:`evaluate_redaction`).

    ``report``: veil.eval's report over every ground-truth person except the kept one.
    ``kept_shown``: the share of the kept person's frames in which they are shown: less than
    half of what can be seen of them (their box less the boxes of other people, who stay
    masked in front of or beside them) is masked, the metrics' leak bar the other way round;
    None when no kept person was named.
    """

    report: EvalReport
    kept_person: int | None = None
    kept_shown: float | None = None
    kept_frames: int = 0
    kept_visible_shown: float | None = None
    """``kept_shown`` over the frames where at least :data:`KEPT_VISIBLE` of the kept
    person's box is clear of other people's boxes: in the others, the kept person stands
    mostly behind or among people who stay masked, with their margins."""
    kept_visible_frames: int = 0


def evaluate_redaction(
    analysis: Analysis,
    resolved: ResolvedSelection,
    gt: GroundTruth,
    *,
    kept_person: int | None = None,
) -> RedactionQuality:
    """Measure the hidden pixels of every frame of the plan with veil.eval's metrics.

    ``kept_person``: a ground-truth person id that the selection keeps (mask-all-except);
    it is measured for being shown and left out of the report's recall and leaks.
    """
    planner = RedactionPlanner(resolved, analysis)
    others = gt
    if kept_person is not None:
        keep = gt.person_id != kept_person
        others = replace(
            gt,
            frame=gt.frame[keep].copy(),
            person_id=gt.person_id[keep].copy(),
            xywh=gt.xywh[keep].copy(),
            ignored_frame=gt.ignored_frame.copy(),
            ignored_xywh=gt.ignored_xywh.copy(),
        )
    acc = MetricsAccumulator(others)
    shown: list[bool] = []
    visible: list[bool] = []
    w, h = analysis.video.width, analysis.video.height
    for index in range(analysis.video.frame_count):
        hidden = planner.hidden(index)
        acc.add(index, hidden)
        if kept_person is None:
            continue
        rows = gt.rows(index + 1)
        mine = [int(r) for r in rows if gt.person_id[r] == kept_person]
        if not mine:
            continue
        own = np.zeros((h, w), np.bool_)
        rest = np.zeros((h, w), np.bool_)
        for r, (x0, y0, x1, y1) in zip(rows, pixel_boxes(gt.xywh[rows], w, h), strict=True):
            (own if int(r) == mine[0] else rest)[y0:y1, x0:x1] = True
        whole = int(own.sum())
        own &= ~rest
        if own.any():
            shown.append(float(hidden[own].mean()) < LEAK_COVERAGE)
            if own.sum() >= KEPT_VISIBLE * whole:
                visible.append(shown[-1])
    return RedactionQuality(
        report=acc.report(video=analysis.video.path),
        kept_person=kept_person,
        kept_shown=float(np.mean(shown)) if shown else None,
        kept_frames=len(shown),
        kept_visible_shown=float(np.mean(visible)) if visible else None,
        kept_visible_frames=len(visible),
    )


PERSON_MATCH_IOU = 0.5
"""A detected box is a ground-truth person's when it overlaps their box at least this much
(IoU) and more than any other person's box in that frame."""


def person_selection(
    analysis: Analysis, gt: GroundTruth, person_id: int, *, min_iou: float = PERSON_MATCH_IOU
) -> dict[str, Any]:
    """The mask-all-except selection a careful user makes to keep ground-truth person
    ``person_id``, for measuring (see :func:`evaluate_each_kept`).

    Every detected box of every person track is labelled with the ground-truth person it
    matches (IoU at least ``min_iou``, best in its frame) or none. Like a user going through
    the timeline, a track that follows the kept person and, at other times, someone else is
    split where the label changes between them, and every track or part whose boxes are the
    kept person's (at least one, and none of another person) is kept. When that makes more
    than one track or part, they are merged, as a user who sees they are one person does: a
    merged group is shown wherever it is seen and between its sightings, where a single track
    shows only the chain of links both tracking passes agree on (see :func:`kept_rows`). The
    ground truth's frame numbers are 1-based, the analysis' 0-based.
    """
    tracks: list[str] = []
    splits: list[dict[str, int]] = []
    for track in analysis.tracks:
        if track.kind is not TrackKind.PERSON:
            continue
        labels = _gt_labels(track, gt, min_iou)
        if person_id not in labels.values():
            continue
        runs: list[tuple[int, int]] = []  # (first frame, label) of each run of one person
        for frame, label in sorted(labels.items()):
            if label is not None and (not runs or runs[-1][1] != label):
                runs.append((frame, label))
        cuts = [frame for frame, _ in runs[1:]]
        splits += [{"track": track.track_id, "frame": f} for f in cuts]
        for k, (_, label) in enumerate(runs):
            if label == person_id:
                tracks.append(
                    f"{track.track_id}{chr(ord('a') + k)}" if cuts else str(track.track_id)
                )
    merges = [tracks] if len(tracks) > 1 else []
    return {
        "mode": Mode.MASK_ALL_EXCEPT.value,
        "tracks": tracks,
        "splits": splits,
        "merges": merges,
    }


def _gt_labels(track: OfflineTrack, gt: GroundTruth, min_iou: float) -> dict[int, int | None]:
    """Frame -> the ground-truth person each detected box of ``track`` is (None: nobody)."""
    out: dict[int, int | None] = {}
    for frame, box, flag in zip(track.frames, track.xyxy, track.flags, strict=True):
        if int(flag) != _DETECTED:
            continue
        rows = gt.rows(int(frame) + 1)
        if len(rows) == 0:
            out[int(frame)] = None
            continue
        xywh = gt.xywh[rows].astype(np.float64)
        truth = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        iou = iou_matrix(box[None].astype(np.float64), truth)[0]
        best = int(np.argmax(iou))
        out[int(frame)] = int(gt.person_id[rows[best]]) if iou[best] >= min_iou else None
    return out


def evaluate_each_kept(
    analysis: Analysis, gt: GroundTruth, *, min_frames: int = 20
) -> list[RedactionQuality]:
    """Keep each ground-truth person seen in at least ``min_frames`` frames in turn (with
    :func:`person_selection`) and measure it with :func:`evaluate_redaction`."""
    ids, counts = np.unique(gt.person_id, return_counts=True)
    out = []
    for person, count in zip(ids, counts, strict=True):
        if count < min_frames:
            continue
        selection = parse_selection(person_selection(analysis, gt, int(person)))
        resolved = resolve(selection, analysis)
        out.append(evaluate_redaction(analysis, resolved, gt, kept_person=int(person)))
    return out
