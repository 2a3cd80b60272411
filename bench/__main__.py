"""Run every benchmark module present: ``python -m bench`` (``make bench``).

Each ``bench/bench_*.py`` module defines ``main() -> None`` and prints its own figures;
they run one after another, in name order, so their timings do not disturb each other.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _modules() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_")
    )


def main() -> int:
    names = _modules()
    if not names:
        print("no bench_*.py modules found", file=sys.stderr)
        return 1
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        entry: Callable[[], object] | None = getattr(module, "main", None)
        if entry is None:
            print(f"bench/{name}.py has no main(); skipped", file=sys.stderr)
            continue
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        entry()
        print(f"=== {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
