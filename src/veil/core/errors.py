"""One exception root for Veil.

Every error Veil raises on purpose derives from :class:`VeilError`. Subclasses also
derive from the matching built-in exception (as PyAV does), so callers that catch
``FileNotFoundError`` or ``ValueError`` keep working.

The command line maps each class to an exit code with :attr:`VeilError.exit_code`:
2 for bad usage or configuration, 1 for media and runtime errors.
"""

from __future__ import annotations

import builtins


class VeilError(Exception):
    """Root of all Veil errors. ``hint`` tells the user how to fix the problem."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(VeilError, builtins.ValueError):
    """The command was called wrongly (bad option value, conflicting options)."""

    exit_code = 2


class ConfigError(VeilError, builtins.ValueError):
    """A configuration file or value is invalid. ``location`` names file and line."""

    exit_code = 2

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        full = f"{location}: {message}" if location else message
        super().__init__(full, hint=hint)
        self.location = location


class ShapeError(VeilError, builtins.ValueError):
    """An array or geometry does not have the shape a stage expects."""

    exit_code = 2


class MediaError(VeilError):
    """Reading or writing video failed."""

    exit_code = 1


class MediaNotFoundError(MediaError, builtins.FileNotFoundError):
    """The input video does not exist."""


class MediaDecodeError(MediaError):
    """The input is not video, is truncated or corrupt, or uses an unknown codec."""


class OutputError(MediaError, builtins.OSError):
    """The output cannot be written (exists, unwritable folder, disk full)."""


class ModelError(VeilError):
    """A detector's weights are missing, corrupt or cannot be loaded."""

    exit_code = 1


class DetectorError(VeilError):
    """A detector failed on a frame. The pipeline masks the whole frame when this happens."""

    exit_code = 1
