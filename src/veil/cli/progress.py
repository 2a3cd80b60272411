"""A progress bar for long runs: frames, frames per second, time left.

Shown only on a terminal and never with ``--quiet``, so scripts and logs get clean
output. Use it as the pipeline's progress callback::

    with FrameProgress(total=source.frame_count, enabled=not quiet) as progress:
        stats = pipeline.run(source, sink, progress=progress)
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class FpsColumn(ProgressColumn):
    """Frames per second, averaged by rich over the last few seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- fps" if speed is None else f"{speed:.1f} fps")


class FrameProgress:
    """Counts frames on a rich progress bar; does nothing when disabled or not a terminal.

    ``total`` is the frame count when known: then a bar and the time left are shown;
    otherwise only the count, the speed and the elapsed time.
    """

    def __init__(
        self,
        total: int | None,
        *,
        enabled: bool = True,
        console: Console | None = None,
        description: str = "masking",
    ) -> None:
        self._console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled and self._console.is_terminal:
            columns: list[ProgressColumn] = [TextColumn("{task.description}")]
            if total:
                columns += [BarColumn(), MofNCompleteColumn(), FpsColumn(), TimeRemainingColumn()]
            else:
                columns += [TextColumn("{task.completed} frames"), FpsColumn(), TimeElapsedColumn()]
            self._progress = Progress(*columns, console=self._console, transient=True)
            self._task = self._progress.add_task(description, total=total or None)

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def __call__(self, frames_done: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=frames_done)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
