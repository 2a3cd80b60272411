"""The quality gate of issue 3: the `humans` method at its defaults on TUD-Stadtmitte.

Bars: recall at least 99.8 %, head recall 100 %, no leaked frame, over-masking under
20 % of the frame. Runs the real detector on the real sequence; fails (not skips) in CI
when the shared data or weights are missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MODELS, TUD, need_shared
from veil.config.schema import DynamicConfig, Method, VeilConfig
from veil.eval.metrics import Thresholds
from veil.eval.runner import evaluate
from veil.models import MODEL_DIR_ENV
from veil.policy.build import build_planners


@pytest.fixture
def tud() -> Path:
    need_shared(MODELS / "yolox_nano.onnx")
    need_shared(TUD / "gt" / "gt.txt")
    return TUD


@pytest.mark.slow
def test_humans_at_defaults_meets_the_bar(tud: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(MODELS))
    config = VeilConfig(dynamic=DynamicConfig(methods=[Method.HUMANS]))
    report = evaluate(
        str(tud / "img1" / "%06d.jpg"),
        tud / "gt" / "gt.txt",
        lambda fps: build_planners(config, fps),
    )
    bars = Thresholds(
        min_recall=0.998, min_head_recall=1.0, max_leaked_frames=0, max_over_masking=0.2
    )
    assert report.boxes == 1156
    assert bars.check(report) == (), report.to_json()
