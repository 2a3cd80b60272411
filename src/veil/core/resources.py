"""Objects used with ``with``: what happens when the block ends.

- :class:`Closing`: closed however the block ends (inputs, connections, pollers).
- :class:`Committing`: an output, finished (``close``) when the block ends normally and
  dropped (``abort``) when it ends with an exception, so a failed run never leaves a file
  that looks complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """Closed when its ``with`` block ends, however it ends."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Committing(ABC):
    """Committed (:meth:`close`) when its ``with`` block ends normally, aborted otherwise."""

    @abstractmethod
    def close(self) -> object:
        """Finish the output and put it in place (what it returns is the subclass's)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop everything written so far; what was in place stays untouched."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()
