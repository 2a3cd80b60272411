"""What to redact: a selection file (YAML or JSON), checked against an analysis.

Example (YAML)::

    mode: mask-selected          # or mask-all-except: keep the listed tracks, mask the rest
    tracks: [3, 7, "12b"]        # track ids from the analysis ("12b": a part of a split;
                                 # a split track's plain id means all its parts)
    kinds: [face]                # mask-selected only: also every track of these kinds
    merges: [[3, 9], [5, "12b"]] # 3 and 9 are one person: the gap between them is filled;
                                 # a split part can be merged too (5 and the second part of 12)
    splits:                      # track 12 is two people: 12a before frame 140, 12b from it
      - {track: 12, frame: 140}
    regions:                     # manual masks, keyframes interpolated linearly
      - name: plate
        keyframes:
          - {frame: 10, box: [100, 200, 180, 240]}        # pixels x0, y0, x1, y1
          - {frame: 60, box: [300, 210, 380, 250]}
      - name: window
        units: normalised
        keyframes:
          - {frame: 0, polygon: [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4]]}
    trim: {start_time: 2.0, end_time: 14.5}   # or start_frame / end_frame (inclusive)
    style: mosaic                 # fill, mosaic or blur
    color: black
    margin: medium                # small, medium, large, '12px' or '10%'
    reason: "Request 2026-117: footage of the incident at the door, bystanders masked"

A region is present from its first keyframe to its last; between two keyframes its box or
polygon moves linearly (polygons need the same number of points in each keyframe).

:func:`resolve` applies the merges of whole tracks, then the splits (a merged track can be
split), then the merges that name a split part (a part can join another track or part: a track
that followed two people is split, and each person's part merged with the rest of that person),
and checks every id: a selection naming tracks or parts the analysis does not have is refused
with a :class:`SelectionError` (exit code 2) that names them. A merged group is named by its
first member (the smallest id, or ref), and every member's name selects it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from veil.config.colors import parse_color_rgb, rgb_to_bgr
from veil.core.errors import ConfigError
from veil.core.style import DEFAULT_BLUR_RADIUS, DEFAULT_MOSAIC_CELL, Style, StyleKind
from veil.policy.margin import Margin
from veil.redact.analysis import Analysis
from veil.redact.offline_tracks import (
    BoxFlag,
    OfflineTrack,
    TrackKind,
    flag_code,
    interpolate_boxes,
)
from veil.track.tracker import DEFAULT_UNCERTAINTY_GROWTH

__all__ = [
    "Keyframe",
    "Mode",
    "RegionSpec",
    "ResolvedRegion",
    "ResolvedSelection",
    "Selection",
    "SelectionError",
    "load_selection",
    "resolve",
]


class SelectionError(ConfigError):
    """The selection is invalid or names tracks the analysis does not have."""


class Mode(StrEnum):
    """What the listed tracks are."""

    MASK_SELECTED = "mask-selected"
    """The listed tracks (and kinds) are masked; the rest of the picture stays."""
    MASK_ALL_EXCEPT = "mask-all-except"
    """The listed tracks (persons of interest) stay visible; everything else, still or
    moving, is masked."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TrackRef = int | str
"""A track id, or a split part such as "12b"."""


class Keyframe(_Strict):
    """A region's shape at one frame: a ``box`` (x0, y0, x1, y1) or a ``polygon``."""

    frame: int = Field(ge=0, description="0-based frame index.")
    box: tuple[float, float, float, float] | None = None
    polygon: list[tuple[float, float]] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Keyframe:
        if (self.box is None) == (self.polygon is None):
            raise ValueError("a keyframe needs exactly one of 'box' or 'polygon'")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"box {list(self.box)} must have x1 > x0 and y1 > y0")
        if self.polygon is not None and not 3 <= len(self.polygon) <= 64:
            raise ValueError(f"a polygon needs 3 to 64 points, got {len(self.polygon)}")
        values = list(self.box or ()) + [v for p in self.polygon or () for v in p]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("coordinates must be finite numbers")
        return self


class RegionSpec(_Strict):
    """A manual mask that follows keyframes."""

    name: str = ""
    units: Literal["pixels", "normalised"] = "pixels"
    keyframes: list[Keyframe] = Field(min_length=1)

    @field_validator("keyframes")
    @classmethod
    def _ordered(cls, keyframes: list[Keyframe]) -> list[Keyframe]:
        frames = [k.frame for k in keyframes]
        if len(set(frames)) != len(frames):
            raise ValueError(f"two keyframes at the same frame: {frames}")
        ordered = sorted(keyframes, key=lambda k: k.frame)
        kinds = {k.box is not None for k in ordered}
        if len(kinds) > 1:
            raise ValueError("a region's keyframes must all be boxes or all be polygons")
        sizes = {len(k.polygon) for k in ordered if k.polygon is not None}
        if len(sizes) > 1:
            raise ValueError(
                f"a polygon region's keyframes must have the same number of points, got "
                f"{sorted(sizes)}"
            )
        return ordered


class Split(_Strict):
    track: int
    frame: int = Field(ge=1, description="The first frame of the second part.")


class Trim(_Strict):
    """The frames exported: frame indices (inclusive) or times in seconds."""

    start_frame: int | None = Field(default=None, ge=0)
    end_frame: int | None = Field(default=None, ge=0)
    start_time: float | None = Field(default=None, ge=0)
    end_time: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Trim:
        if self.start_frame is not None and self.start_time is not None:
            raise ValueError("give start_frame or start_time, not both")
        if self.end_frame is not None and self.end_time is not None:
            raise ValueError("give end_frame or end_time, not both")
        return self

    def frames(self, fps: float, frame_count: int) -> tuple[int, int]:
        start = self.start_frame
        if self.start_time is not None:
            start = math.floor(self.start_time * fps + 1e-9)
        end = self.end_frame
        if self.end_time is not None:
            end = math.ceil(self.end_time * fps - 1e-9) - 1
        first = 0 if start is None else start
        last = frame_count - 1 if end is None else min(end, frame_count - 1)
        if first > last:
            raise SelectionError(
                f"trim selects no frames (from {first} to {last} of {frame_count})",
                hint="check trim: the start must come before the end, inside the video",
            )
        return first, last


class Selection(_Strict):
    """A selection file's content (see the module docstring)."""

    mode: Mode
    tracks: list[TrackRef] = Field(default_factory=list)
    kinds: list[TrackKind] = Field(default_factory=list)
    merges: list[Annotated[list[TrackRef], Field(min_length=2)]] = Field(default_factory=list)
    splits: list[Split] = Field(default_factory=list)
    regions: list[RegionSpec] = Field(default_factory=list)
    trim: Trim | None = None
    style: StyleKind = StyleKind.FILL
    color: str = "black"
    cell_size: int = Field(default=DEFAULT_MOSAIC_CELL, ge=2, le=512)
    blur_radius: int = Field(default=DEFAULT_BLUR_RADIUS, ge=2, le=512)
    margin: str = "medium"
    reason: str = ""

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        parse_color_rgb(value)
        return value

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: str) -> str:
        Margin.parse(value)
        return value

    @model_validator(mode="after")
    def _kinds_only_when_masking(self) -> Selection:
        if self.kinds and self.mode is Mode.MASK_ALL_EXCEPT:
            raise ValueError(
                "'kinds' selects tracks to mask; in mask-all-except everything not kept is "
                "masked already, so list the persons to keep in 'tracks'"
            )
        return self

    def to_style(self) -> Style:
        return Style(
            kind=self.style,
            color=rgb_to_bgr(parse_color_rgb(self.color)),
            cell_size=self.cell_size,
            blur_radius=self.blur_radius,
        )

    def to_margin(self) -> Margin:
        return Margin.parse(self.margin)


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SelectionError(f"{path}: no such selection file", hint="check the path") from None
    except OSError as error:
        raise SelectionError(f"{path}: cannot be read ({error})") from error
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as error:
            raise SelectionError(f"{path}: not valid JSON ({error})") from error
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise SelectionError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from error


def parse_selection(data: Any, source: str = "selection") -> Selection:
    """A selection from parsed YAML/JSON; SelectionError naming each bad field."""
    if not isinstance(data, dict):
        raise SelectionError(
            f"{source}: expected a mapping with at least 'mode'",
            hint="start the file with 'mode: mask-selected' or 'mode: mask-all-except'",
        )
    try:
        return Selection.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in issue['loc']) or '(top)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise SelectionError(f"{source}: {problems}") from None


def load_selection(path: str | os.PathLike[str]) -> Selection:
    """Read and check a selection file (YAML, or JSON by its ``.json`` extension)."""
    p = Path(path)
    return parse_selection(_read_document(p), str(p))


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True, slots=True, eq=False)
class ResolvedTrack:
    """A track after merges and splits, under the name the selection uses."""

    ref: str
    track: OfflineTrack
    sources: tuple[int, ...]
    """The analysis track ids it was made from."""


@dataclass(frozen=True, slots=True, eq=False)
class ResolvedRegion:
    """A manual region with a pixel polygon per frame it is in."""

    name: str
    first_frame: int
    last_frame: int
    keyframes: tuple[tuple[int, NDArray[np.float64]], ...]
    """(frame, (K, 2) pixel points) in frame order."""

    def points_at(self, frame: int) -> NDArray[np.float64] | None:
        """The region's pixel polygon at ``frame`` (None outside its keyframes)."""
        if not self.first_frame <= frame <= self.last_frame:
            return None
        keys = self.keyframes
        for (f1, p1), (f2, p2) in itertools.pairwise(keys):
            if f1 <= frame <= f2:
                a = (frame - f1) / (f2 - f1)
                result: NDArray[np.float64] = (1.0 - a) * p1 + a * p2
                return result
        return keys[-1][1] if frame == keys[-1][0] else keys[0][1]


@dataclass(frozen=True, slots=True, eq=False)
class ResolvedSelection:
    """A selection checked against an analysis, ready to plan frames."""

    selection: Selection
    mode: Mode
    tracks: tuple[ResolvedTrack, ...]
    """Every track after merges and splits."""
    chosen: frozenset[str]
    """Refs of the tracks masked (mask-selected) or kept (mask-all-except)."""
    regions: tuple[ResolvedRegion, ...]
    first_frame: int
    last_frame: int
    style: Style
    margin: Margin

    @property
    def chosen_tracks(self) -> tuple[ResolvedTrack, ...]:
        return tuple(t for t in self.tracks if t.ref in self.chosen)

    @property
    def other_tracks(self) -> tuple[ResolvedTrack, ...]:
        return tuple(t for t in self.tracks if t.ref not in self.chosen)


def _merge(tracks: Sequence[OfflineTrack], new_id: int, growth: float) -> OfflineTrack:
    """One track from several: boxes united where they overlap in time, gaps between them
    interpolated (flag interpolated, growing uncertainty)."""
    rows: dict[int, tuple[NDArray[np.float32], int, float]] = {}
    for t in tracks:
        for f, box, flag, unc in zip(t.frames, t.xyxy, t.flags, t.uncertainty, strict=True):
            key = int(f)
            if key in rows:
                old_box, old_flag, old_unc = rows[key]
                box = np.concatenate(
                    [np.minimum(old_box[:2], box[:2]), np.maximum(old_box[2:], box[2:])]
                )
                flag = min(int(flag), old_flag)
                unc = max(float(unc), old_unc)
            rows[key] = (np.asarray(box, np.float32), int(flag), float(unc))
    frames = sorted(rows)
    for f1, f2 in itertools.pairwise(frames):
        if f2 - f1 > 1:
            for f, box, unc in interpolate_boxes(
                f1, rows[f1][0].astype(np.float64), f2, rows[f2][0].astype(np.float64), growth
            ):
                rows[f] = (box, flag_code(BoxFlag.INTERPOLATED), unc)
    ordered = sorted(rows)
    return OfflineTrack(
        track_id=new_id,
        kind=tracks[0].kind,
        frames=np.asarray(ordered, np.int64),
        xyxy=np.stack([rows[f][0] for f in ordered]).astype(np.float32),
        flags=np.asarray([rows[f][1] for f in ordered], np.int8),
        uncertainty=np.asarray([rows[f][2] for f in ordered], np.float32),
        confidence=max(t.confidence for t in tracks),
        best_frame=max(tracks, key=lambda t: t.confidence).best_frame,
        # Merged by the user, who saw they are one person: one chain wherever seen.
        segments=np.asarray(
            [-1 if rows[f][1] == flag_code(BoxFlag.EXTRAPOLATED) else 0 for f in ordered],
            np.int32,
        ),
    )


def _part(track: OfflineTrack, keep: NDArray[np.bool_]) -> OfflineTrack:
    return OfflineTrack(
        track_id=track.track_id,
        kind=track.kind,
        frames=track.frames[keep],
        xyxy=track.xyxy[keep],
        flags=track.flags[keep],
        uncertainty=track.uncertainty[keep],
        confidence=track.confidence,
        best_frame=track.best_frame,
        segments=track.segment_column()[keep],
    )


def _unknown(refs: Sequence[object], known: Sequence[str], what: str) -> SelectionError:
    listed = ", ".join(str(r) for r in refs)
    shown = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
    return SelectionError(
        f"the selection names {what} the analysis does not have: {listed}",
        hint=f"tracks are: {shown or 'none'} (see `veil redact tracks ANALYSIS`)",
    )


def _whole_id(ref: TrackRef) -> int | None:
    """The track id a ref names as a whole track (3, "3"), None for a part ("3b")."""
    text = str(ref).strip()
    return int(text) if text.isdigit() else None


def resolve(selection: Selection, analysis: Analysis) -> ResolvedSelection:
    """Apply merges and splits and check every id against ``analysis`` (see the module
    docstring for the order)."""
    growth = DEFAULT_UNCERTAINTY_GROWTH
    by_id: dict[int, OfflineTrack] = {t.track_id: t for t in analysis.tracks}
    known_ids = [str(i) for i in sorted(by_id)]
    whole_merges = [
        [i for r in m if (i := _whole_id(r)) is not None]
        for m in selection.merges
        if all(_whole_id(r) is not None for r in m)
    ]
    part_merges = [m for m in selection.merges if any(_whole_id(r) is None for r in m)]
    named = {i for m in selection.merges for r in m if (i := _whole_id(r)) is not None}
    named |= {s.track for s in selection.splits}
    missing = sorted(i for i in named if i not in by_id)
    if missing:
        raise _unknown(missing, known_ids, "tracks (in merges or splits)")
    # Merges of whole tracks: the group takes its smallest id; every member id refers to it.
    alias: dict[int, int] = {i: i for i in by_id}
    groups: dict[int, set[int]] = {}
    for merge in whole_merges:
        roots = {alias[i] for i in merge}
        members = set().union(*(groups.pop(r, {r}) for r in roots))
        root = min(members)
        groups[root] = members
        for m in members:
            alias[m] = root
    for root, members in groups.items():
        parts = [by_id[m] for m in sorted(members)]
        _check_one_kind(parts, [str(m) for m in sorted(members)])
        for m in members:
            by_id.pop(m)
        by_id[root] = _merge(parts, root, growth)
    # Splits: parts named <id>a, <id>b, ... in frame order.
    cuts: dict[int, list[int]] = {}
    for split in selection.splits:
        cuts.setdefault(alias[split.track], []).append(split.frame)
    resolved: dict[str, ResolvedTrack] = {}
    split_names: dict[int, list[str]] = {}
    for tid in sorted(by_id):
        track = by_id[tid]
        sources = tuple(sorted(groups.get(tid, {tid})))
        if tid not in cuts:
            resolved[str(tid)] = ResolvedTrack(str(tid), track, sources)
            continue
        edges = sorted(set(cuts[tid]))
        bounds = [-1, *edges, math.inf]
        names = []
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            name = f"{tid}{chr(ord('a') + k)}"
            names.append(name)
            keep = (track.frames >= max(lo, 0)) & (track.frames < hi)
            resolved[name] = ResolvedTrack(name, _part(track, keep), sources)
        split_names[tid] = names
    # Parts (and tracks) merged after the splits: member ref -> its group's ref.
    part_alias: dict[str, str] = {}

    def refs_of(ref: TrackRef) -> list[str] | None:
        """The current refs a selection's ref names (a whole split track: all its parts)."""
        text = str(ref).strip()
        whole = _whole_id(text)
        if whole is not None and whole in alias:
            root = alias[whole]
            names = split_names.get(root, [str(root)])
        else:
            names = [text]
        targets = list(dict.fromkeys(part_alias.get(n, n) for n in names))
        return targets if all(t in resolved for t in targets) else None

    # Merges naming a split part: after the splits, on the parts.
    for part_merge in part_merges:
        group: list[str] = []
        bad = []
        for member in part_merge:
            found = refs_of(member)
            if found is None:
                bad.append(str(member).strip())
            else:
                group += [n for n in found if n not in group]
        if bad:
            raise _unknown(bad, sorted(resolved, key=_ref_key), "tracks or parts (in merges)")
        if len(group) < 2:
            continue
        group.sort(key=_ref_key)
        tracks = [resolved[n].track for n in group]
        _check_one_kind(tracks, group)
        head = group[0]
        merged = _merge(tracks, tracks[0].track_id, growth)
        sources = tuple(sorted({s for n in group for s in resolved[n].sources}))
        for n in group:
            del resolved[n]
            part_alias[n] = head
        for old, target in part_alias.items():
            if target in group:
                part_alias[old] = head
        resolved[head] = ResolvedTrack(head, merged, sources)
    # The chosen refs.
    chosen: set[str] = set()
    unknown: list[str] = []
    for chosen_ref in selection.tracks:
        found = refs_of(chosen_ref)
        if found is None:
            unknown.append(str(chosen_ref).strip())
        else:
            chosen.update(found)
    if unknown:
        raise _unknown(unknown, sorted(resolved, key=_ref_key), "tracks")
    ordered = sorted(resolved.values(), key=lambda r: _ref_key(r.ref))
    if selection.mode is Mode.MASK_SELECTED:
        chosen.update(r.ref for r in ordered if r.track.kind in selection.kinds)
        # A predicted-only track left where a chosen track's object was is masked with it.
        while True:
            masked = {s for r in ordered if r.ref in chosen for s in r.sources}
            more = {
                r.ref
                for r in ordered
                if r.ref not in chosen and r.track.parent is not None and r.track.parent in masked
            }
            if not more:
                break
            chosen |= more
    info = analysis.video
    first, last = (
        selection.trim.frames(info.fps_value, info.frame_count)
        if selection.trim
        else (0, info.frame_count - 1)
    )
    regions = tuple(
        _resolve_region(spec, i, info.width, info.height)
        for i, spec in enumerate(selection.regions, 1)
    )
    return ResolvedSelection(
        selection=selection,
        mode=selection.mode,
        tracks=tuple(ordered),
        chosen=frozenset(chosen),
        regions=regions,
        first_frame=first,
        last_frame=last,
        style=selection.to_style(),
        margin=selection.to_margin(),
    )


def _check_one_kind(tracks: Sequence[OfflineTrack], refs: Sequence[str]) -> None:
    kinds = {t.kind for t in tracks}
    if len(kinds) > 1:
        raise SelectionError(
            f"merge of tracks {', '.join(refs)} mixes kinds {sorted(k.value for k in kinds)}",
            hint="merge only tracks of one kind (a person with a person)",
        )


def _ref_key(ref: str) -> tuple[int, str]:
    digits = "".join(c for c in ref if c.isdigit())
    return (int(digits) if digits else 0, ref)


def _resolve_region(spec: RegionSpec, number: int, width: int, height: int) -> ResolvedRegion:
    scale = np.array([width, height], np.float64) if spec.units == "normalised" else 1.0
    keys: list[tuple[int, NDArray[np.float64]]] = []
    for key in spec.keyframes:
        if key.box is not None:
            x0, y0, x1, y1 = key.box
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        else:
            pts = np.asarray(key.polygon, np.float64)
        keys.append((key.frame, pts * scale))
    return ResolvedRegion(
        name=spec.name or f"region-{number}",
        first_frame=keys[0][0],
        last_frame=keys[-1][0],
        keyframes=tuple(keys),
    )
