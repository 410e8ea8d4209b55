"""napari-gmm-bg: isolate movement in video with a per-pixel Gaussian mixture.

The public API, shared by the napari widgets, the command line and scripts.  Importing it
imports neither napari nor Qt.
"""

from .core import (
    SAMPLE_NAMES,
    BackgroundModel,
    FitParameters,
    MaskCleanup,
    Method,
    MethodResult,
    OnlineModel,
    OnlineSettings,
    Sample,
    default_threshold,
    fit_background,
    fit_background_steps,
    get_method,
    load_model,
    make_sample,
    method_names,
    register_method,
    run_online,
)

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_NAMES",
    "BackgroundModel",
    "FitParameters",
    "MaskCleanup",
    "Method",
    "MethodResult",
    "OnlineModel",
    "OnlineSettings",
    "Sample",
    "__version__",
    "default_threshold",
    "fit_background",
    "fit_background_steps",
    "get_method",
    "load_model",
    "make_sample",
    "method_names",
    "register_method",
    "run_online",
]
