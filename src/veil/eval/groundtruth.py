"""Ground truth in the MOTChallenge text formats.

Two formats are read; which one a file uses is detected from its column count, then
every row is checked against that format's value ranges, so a file that is neither
fails loudly at its first bad line (with ``file:line``):

- **MOT15** (2D MOT 2015), 10 columns:
  ``frame, id, bb_left, bb_top, bb_width, bb_height, flag, x_world, y_world, z_world``.
  ``flag`` is 1 for a box that counts and 0 for one that is ignored; any other value is
  an error (a detection file, whose 7th column is a score, is refused this way).
- **MOT17** (also MOT16 and MOT20 ground truth), 9 columns:
  ``frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility``.
  A row counts when ``conf`` is 1, ``class`` is 1 (pedestrian) and ``visibility`` is at
  least :data:`MIN_VISIBILITY`. ``conf`` must be 0 or 1, ``class`` a positive integer and
  ``visibility`` within 0..1.

Frame numbers are 1-based (frame 1 is the first decoded frame, index 0). Coordinates
are pixels and are taken as they are: ``bb_left, bb_top`` is the box's top-left corner
and the box spans ``[left, left + width) x [top, top + height)``. Boxes may run past
the picture's edge; :mod:`veil.eval.metrics` clips them to the frame.

Rows that do not count are kept apart as *ignored* boxes when they show a person
(MOT15 flag 0; MOT17 classes in :data:`PERSON_LIKE_CLASSES`): masking such a box is not
over-masking. Ignored rows of other classes (cars, bicycles, occluders) are dropped.

Example::

    gt = load_ground_truth(Path("TUD-Stadtmitte/gt/gt.txt"))
    len(gt), gt.format  # (1156, GTFormat.MOT15)
"""

from __future__ import annotations

import builtins
import configparser
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from veil.core.errors import ConfigError, ShapeError, VeilError

MIN_VISIBILITY = 0.25
"""MOT17 rows with a lower visibility (mostly occluded people) are ignored."""

PEDESTRIAN_CLASS = 1
"""The MOT17 class that counts."""

PERSON_LIKE_CLASSES = frozenset({1, 2, 7, 8, 12, 13})
"""MOT17/MOT20 classes that show a person (pedestrian, person on vehicle, static person,
distractor, reflection, crowd): when such a row is ignored, its box is still a place where
masking is not over-masking."""

MOT15_COLUMNS = 10
MOT17_COLUMNS = 9


class GTFormat(str, Enum):
    """A MOTChallenge ground-truth format."""

    MOT15 = "mot15"
    """frame, id, x, y, w, h, flag, x_world, y_world, z_world."""
    MOT17 = "mot17"
    """frame, id, x, y, w, h, conf, class, visibility."""

    @property
    def columns(self) -> int:
        return MOT15_COLUMNS if self is GTFormat.MOT15 else MOT17_COLUMNS


class GroundTruthError(ConfigError):
    """A ground-truth file is malformed; ``location`` is ``file:line``."""


class GroundTruthNotFoundError(VeilError, builtins.FileNotFoundError):
    """The ground-truth file does not exist."""

    exit_code = 2


def _readonly(array: NDArray[np.generic]) -> None:
    array.flags.writeable = False


@dataclass(frozen=True, slots=True, eq=False)
class GroundTruth:
    """The boxes of one sequence, as columns.

    Counted boxes: ``frame`` ``(N,)`` int64 1-based frame numbers, ``person_id`` ``(N,)``
    int64, ``xywh`` ``(N, 4)`` float64 pixel boxes (left, top, width, height).
    Ignored person boxes (see the module docstring): ``ignored_frame`` ``(M,)`` and
    ``ignored_xywh`` ``(M, 4)``. ``dropped`` counts the rows that do not count, by reason
    (``flag``, ``class``, ``visibility``).
    """

    frame: NDArray[np.int64]
    person_id: NDArray[np.int64]
    xywh: NDArray[np.float64]
    ignored_frame: NDArray[np.int64]
    ignored_xywh: NDArray[np.float64]
    format: GTFormat
    source: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    _rows: dict[int, NDArray[np.intp]] = field(init=False, repr=False)
    _ignored_rows: dict[int, NDArray[np.intp]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n, m = len(self.frame), len(self.ignored_frame)
        for name, array, shape in (
            ("frame", self.frame, (n,)),
            ("person_id", self.person_id, (n,)),
            ("xywh", self.xywh, (n, 4)),
            ("ignored_frame", self.ignored_frame, (m,)),
            ("ignored_xywh", self.ignored_xywh, (m, 4)),
        ):
            if array.shape != shape:
                raise ShapeError(f"GroundTruth.{name} must have shape {shape}, got {array.shape}")
        for array in (self.frame, self.person_id, self.xywh, self.ignored_frame, self.ignored_xywh):
            _readonly(array)
        object.__setattr__(self, "_rows", _group_rows(self.frame))
        object.__setattr__(self, "_ignored_rows", _group_rows(self.ignored_frame))

    def __len__(self) -> int:
        """The number of boxes that count."""
        return len(self.frame)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        """The 1-based frames that hold at least one counted or ignored box, in order."""
        return tuple(sorted(set(self._rows) | set(self._ignored_rows)))

    def rows(self, frame_number: int) -> NDArray[np.intp]:
        """Indices of the counted boxes in 1-based frame ``frame_number``."""
        return self._rows.get(frame_number, _NO_ROWS)

    def ignored_rows(self, frame_number: int) -> NDArray[np.intp]:
        """Indices into ``ignored_*`` of the ignored person boxes in that frame."""
        return self._ignored_rows.get(frame_number, _NO_ROWS)

    def up_to(self, last_frame: int) -> GroundTruth:
        """The ground truth of frames ``1..last_frame`` only."""
        keep = self.frame <= last_frame
        keep_ignored = self.ignored_frame <= last_frame
        return GroundTruth(
            frame=self.frame[keep].copy(),
            person_id=self.person_id[keep].copy(),
            xywh=self.xywh[keep].copy(),
            ignored_frame=self.ignored_frame[keep_ignored].copy(),
            ignored_xywh=self.ignored_xywh[keep_ignored].copy(),
            format=self.format,
            source=self.source,
            dropped=dict(self.dropped),
        )


_NO_ROWS: NDArray[np.intp] = np.zeros((0,), dtype=np.intp)
_readonly(_NO_ROWS)


def _group_rows(frames: NDArray[np.int64]) -> dict[int, NDArray[np.intp]]:
    if len(frames) == 0:
        return {}
    order = np.argsort(frames, kind="stable")
    sorted_frames = frames[order]
    uniques, starts = np.unique(sorted_frames, return_index=True)
    ends = [*starts[1:].tolist(), len(order)]
    groups: dict[int, NDArray[np.intp]] = {}
    for value, start, end in zip(uniques.tolist(), starts.tolist(), ends, strict=True):
        rows = order[start:end].astype(np.intp)
        _readonly(rows)
        groups[int(value)] = rows
    return groups


def detect_format(column_count: int) -> GTFormat:
    """The format a row with ``column_count`` columns is in; ValueError if neither."""
    if column_count == MOT15_COLUMNS:
        return GTFormat.MOT15
    if column_count == MOT17_COLUMNS:
        return GTFormat.MOT17
    raise ValueError(
        f"expected {MOT17_COLUMNS} columns (MOT17: frame, id, x, y, w, h, conf, class, "
        f"visibility) or {MOT15_COLUMNS} (MOT15: frame, id, x, y, w, h, flag, x, y, z), "
        f"got {column_count}"
    )


def _split(line: str) -> list[str]:
    """Columns of one line: comma-separated, or whitespace-separated as in old files."""
    if "," in line:
        return [part.strip() for part in line.split(",")]
    return line.split()


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {text!r}")
    return value


def _integer(text: str, name: str) -> int:
    value = _number(text, name)
    if not value.is_integer():
        raise ValueError(f"{name} must be a whole number, got {text!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class _Row:
    frame: int
    person_id: int
    xywh: tuple[float, float, float, float]
    counts: bool
    drop_reason: str
    person_like: bool


def _parse_row(fields: Sequence[str], fmt: GTFormat) -> _Row:
    frame = _integer(fields[0], "frame")
    if frame < 1:
        raise ValueError(f"frame numbers start at 1, got {frame}")
    person_id = _integer(fields[1], "id")
    x, y, w, h = (
        _number(fields[i], n) for i, n in zip(range(2, 6), ("x", "y", "w", "h"), strict=True)
    )
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be positive, got {w} x {h}")
    flag = _integer(fields[6], "flag" if fmt is GTFormat.MOT15 else "conf")
    if flag not in (0, 1):
        raise ValueError(
            f"column 7 ({'flag' if fmt is GTFormat.MOT15 else 'conf'}) must be 0 or 1 in "
            f"ground truth, got {fields[6]!r} (is this a detection file?)"
        )
    box = (x, y, w, h)
    if fmt is GTFormat.MOT15:
        for i, name in zip(range(7, 10), ("x_world", "y_world", "z_world"), strict=True):
            _number(fields[i], name)
        return _Row(frame, person_id, box, flag == 1, "" if flag else "flag", True)
    cls = _integer(fields[7], "class")
    if cls < 1:
        raise ValueError(f"class must be a positive integer, got {fields[7]!r}")
    visibility = _number(fields[8], "visibility")
    if not 0.0 <= visibility <= 1.0:
        raise ValueError(f"visibility must be within 0..1, got {fields[8]!r}")
    reason = (
        "flag"
        if flag == 0
        else "class"
        if cls != PEDESTRIAN_CLASS
        else "visibility"
        if visibility < MIN_VISIBILITY
        else ""
    )
    return _Row(frame, person_id, box, not reason, reason, cls in PERSON_LIKE_CLASSES)


def parse_ground_truth(
    lines: Iterable[str], *, source: str = "<ground truth>", fmt: GTFormat | None = None
) -> GroundTruth:
    """Parse MOTChallenge ground-truth lines (see the module docstring).

    ``fmt`` forces a format; by default the first data line decides and every other
    line must have the same number of columns. Blank lines are skipped. Raises
    :class:`GroundTruthError` naming ``source:line`` for a malformed line, and for a
    person id that appears twice in one frame.
    """
    counted: list[_Row] = []
    ignored: list[_Row] = []
    dropped: dict[str, int] = {"flag": 0, "class": 0, "visibility": 0}
    first_line: dict[tuple[int, int], int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        location = f"{source}:{number}"
        fields = _split(line)
        try:
            if fmt is None:
                fmt = detect_format(len(fields))
            elif len(fields) != fmt.columns:
                raise ValueError(
                    f"expected {fmt.columns} columns ({fmt.value}) like the lines before, "
                    f"got {len(fields)}"
                )
            row = _parse_row(fields, fmt)
        except ValueError as error:
            raise GroundTruthError(str(error), location=location) from None
        if row.counts:
            key = (row.frame, row.person_id)
            if key in first_line:
                raise GroundTruthError(
                    f"person {row.person_id} appears twice in frame {row.frame} "
                    f"(first on line {first_line[key]})",
                    location=location,
                )
            first_line[key] = number
            counted.append(row)
        else:
            dropped[row.drop_reason] += 1
            if row.person_like:
                ignored.append(row)
    if fmt is None:
        raise GroundTruthError("the ground truth holds no boxes", location=source)
    return GroundTruth(
        frame=np.array([r.frame for r in counted], dtype=np.int64),
        person_id=np.array([r.person_id for r in counted], dtype=np.int64),
        xywh=np.array([r.xywh for r in counted], dtype=np.float64).reshape(-1, 4),
        ignored_frame=np.array([r.frame for r in ignored], dtype=np.int64),
        ignored_xywh=np.array([r.xywh for r in ignored], dtype=np.float64).reshape(-1, 4),
        format=fmt,
        source=source,
        dropped=dropped,
    )


def load_ground_truth(path: Path, fmt: GTFormat | None = None) -> GroundTruth:
    """Read a MOTChallenge ``gt.txt`` (see :func:`parse_ground_truth`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GroundTruthNotFoundError(
            f"ground truth {str(path)!r} does not exist",
            hint="give the MOTChallenge gt/gt.txt with --gt",
        ) from None
    except UnicodeDecodeError:
        raise GroundTruthError(
            "is not a text file", location=str(path), hint="expected MOTChallenge gt.txt"
        ) from None
    except OSError as error:
        raise GroundTruthError(f"cannot be read: {error.strerror}", location=str(path)) from None
    return parse_ground_truth(text.splitlines(), source=str(path), fmt=fmt)


@dataclass(frozen=True, slots=True)
class SeqInfo:
    """A MOTChallenge ``seqinfo.ini``: what the sequence's frames should look like."""

    name: str
    frame_rate: float | None
    length: int | None
    width: int | None
    height: int | None


def read_seqinfo(gt_path: Path) -> SeqInfo | None:
    """The ``seqinfo.ini`` of the sequence that ``gt_path`` (``SEQ/gt/gt.txt``) belongs to.

    Looked for next to the ground truth and one folder up; None when there is none.
    A file that is there but malformed raises :class:`GroundTruthError`.
    """
    for folder in (gt_path.parent, gt_path.parent.parent):
        path = folder / "seqinfo.ini"
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
            section = parser["Sequence"]
            rate, length, width, height = (
                _optional_number(section.get(key), key)
                for key in ("frameRate", "seqLength", "imWidth", "imHeight")
            )
        except (configparser.Error, KeyError, ValueError) as error:
            raise GroundTruthError(f"malformed seqinfo.ini: {error}", location=str(path)) from None
        return SeqInfo(
            name=section.get("name", folder.name),
            frame_rate=rate,
            length=None if length is None else int(length),
            width=None if width is None else int(width),
            height=None if height is None else int(height),
        )
    return None


def _optional_number(text: str | None, name: str) -> float | None:
    return None if text is None else _number(text, name)
