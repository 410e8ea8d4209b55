"""OpenCV's KNN background subtractor (Zivkovic & van der Heijden 2006), for comparison.

Each pixel keeps samples of its recent colours; a pixel is background when at least
``knn_samples`` of them lie within ``dist2_threshold`` (squared distance).  Every setting
of ``cv2.createBackgroundSubtractorKNN`` and its setters is exposed, at OpenCV's defaults.
"""

from dataclasses import dataclass
from typing import Any

import cv2

from .interface import Method, MethodResult, Steps, setting
from .mog2 import (
    check_opencv_settings,
    detect_shadows_setting,
    history_setting,
    learning_rate_setting,
    run_subtractor_steps,
    shadow_threshold_setting,
)


@dataclass(frozen=True)
class KnnSettings:
    """All of KNN's settings, with OpenCV's defaults."""

    history: int = history_setting()
    dist2_threshold: float = setting(
        400.0,
        label="match distance²",
        help="OpenCV Dist2Threshold: squared colour distance under which a sample "
        "is close to the pixel",
        minimum=0.0,
        maximum=200_000.0,
        step=1.0,
    )
    detect_shadows: bool = detect_shadows_setting()
    learning_rate: float = learning_rate_setting()
    knn_samples: int = setting(
        2,
        label="close samples needed",
        help="OpenCV kNNSamples: how many close samples make a pixel background",
        minimum=1,
        maximum=100,
    )
    n_samples: int = setting(
        7,
        label="samples kept",
        help="OpenCV NSamples: samples kept per pixel",
        minimum=1,
        maximum=100,
    )
    shadow_threshold: float = shadow_threshold_setting()

    def validate(self) -> None:
        """Raise ValueError on settings OpenCV would reject or misuse."""
        check_opencv_settings(self)
        if not self.dist2_threshold > 0:
            raise ValueError(f"dist2_threshold must be positive, got {self.dist2_threshold}")
        if not 1 <= self.knn_samples <= self.n_samples:
            raise ValueError("need 1 <= knn_samples <= n_samples")

    def create(self) -> Any:
        """Build the OpenCV subtractor with these settings."""
        knn = cv2.createBackgroundSubtractorKNN(
            history=int(self.history),
            dist2Threshold=float(self.dist2_threshold),
            detectShadows=bool(self.detect_shadows),
        )
        knn.setkNNSamples(int(self.knn_samples))
        knn.setNSamples(int(self.n_samples))
        knn.setShadowThreshold(float(self.shadow_threshold))
        return knn


def _knn_steps(video: Any, settings: KnnSettings) -> Steps:
    settings.validate()
    steps = run_subtractor_steps(video, settings.create(), settings.learning_rate, seed=0)
    mask, background = yield from steps
    return MethodResult("knn", settings, lambda: mask, background=background)


METHOD = Method(name="knn", title="KNN", settings_type=KnnSettings, run_steps=_knn_steps)
