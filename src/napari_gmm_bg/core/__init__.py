"""The pure core: per-pixel mixture models and their maths (no napari, no Qt)."""

from .cleanup import MaskCleanup, clean_mask
from .frames import Frames, as_frames
from .gmm import (
    BackgroundModel,
    FitParameters,
    fit_background,
    fit_background_steps,
    learning_indices,
    load_model,
)
from .interface import Method, MethodResult
from .labels import DEFAULT_DISTANCE, default_threshold
from .online import OnlineModel, OnlineResult, OnlineSettings, run_online, run_online_steps
from .registry import comparison_methods, get_method, method_names, register_method
from .synthetic import SAMPLE_NAMES, Sample, make_sample

__all__ = [
    "DEFAULT_DISTANCE",
    "SAMPLE_NAMES",
    "BackgroundModel",
    "FitParameters",
    "MaskCleanup",
    "Method",
    "MethodResult",
    "OnlineModel",
    "OnlineResult",
    "OnlineSettings",
    "Frames",
    "Sample",
    "as_frames",
    "clean_mask",
    "comparison_methods",
    "default_threshold",
    "fit_background",
    "fit_background_steps",
    "get_method",
    "learning_indices",
    "load_model",
    "make_sample",
    "method_names",
    "register_method",
    "run_online",
    "run_online_steps",
]
