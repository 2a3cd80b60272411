"""The latest frame of a stream, for live viewers.

Live viewers never queue: each reads the newest frame when it is ready for one, so a
slow viewer skips frames instead of growing a buffer (the problem of an unbounded
relay). Publishing replaces the frame and wakes the waiting readers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from veil.core.frame import Image


@dataclass(frozen=True, slots=True)
class Published:
    """One published picture; ``seq`` increases by one per publish."""

    seq: int
    image: Image
    monotonic: float
    """When it was published (time.monotonic())."""


class LatestFrame:
    """Holds the newest published picture and lets readers wait for a newer one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._latest: Published | None = None

    def publish(self, image: Image) -> Published:
        with self._cond:
            seq = 1 if self._latest is None else self._latest.seq + 1
            self._latest = Published(seq, image, time.monotonic())
            self._cond.notify_all()
            return self._latest

    def latest(self) -> Published | None:
        with self._cond:
            return self._latest

    def wait_newer(self, seq: int, timeout: float) -> Published | None:
        """The newest frame with a sequence number above ``seq``, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._latest
