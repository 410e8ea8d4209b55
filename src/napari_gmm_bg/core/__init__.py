"""The pure core: per-pixel mixture models and their maths (no napari, no Qt)."""

from .cleanup import MaskCleanup, clean_mask
from .frames import Frames, as_frames
from .gmm import (
    BackgroundModel,
    FitParameters,
    default_threshold,
    fit_background,
    fit_background_steps,
    learning_indices,
    load_model,
)
from .online import OnlineModel, OnlineResult, OnlineSettings, run_online, run_online_steps
from .synthetic import SAMPLE_NAMES, Sample, make_sample

__all__ = [
    "SAMPLE_NAMES",
    "BackgroundModel",
    "FitParameters",
    "MaskCleanup",
    "OnlineModel",
    "OnlineResult",
    "OnlineSettings",
    "Frames",
    "Sample",
    "as_frames",
    "clean_mask",
    "default_threshold",
    "fit_background",
    "fit_background_steps",
    "learning_indices",
    "load_model",
    "make_sample",
    "run_online",
    "run_online_steps",
]
