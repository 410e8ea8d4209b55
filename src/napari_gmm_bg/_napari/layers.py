"""Turning results into napari layers: conversion functions and in-place updates, no Qt."""

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from napari.layers import Image, Layer

from ..core import BackgroundModel, MaskCleanup, as_frames
from ..core.online import OnlineResult


@dataclass(frozen=True)
class Placement:
    """Where a source layer sits in the world: kept by the layers made from it."""

    scale: tuple
    translate: tuple
    axis_labels: tuple

    @classmethod
    def of(cls, layer: Any) -> "Placement":
        """Read the placement of a napari layer."""
        return cls(
            scale=tuple(layer.scale),
            translate=tuple(layer.translate),
            axis_labels=tuple(getattr(layer, "axis_labels", ())),
        )

    def kwargs(self, last: int | None = None) -> dict:
        """Layer keyword arguments; ``last`` keeps only the trailing spatial axes."""
        cut = slice(None) if last is None else slice(-last, None)
        out = {"scale": self.scale[cut], "translate": self.translate[cut]}
        if self.axis_labels:
            out["axis_labels"] = self.axis_labels[cut]
        return out


def result_names(source: str) -> dict[str, str]:
    """Names of the layers a fit of ``source`` makes."""
    return {
        "loglik": f"{source} GMM log-likelihood",
        "mask": f"{source} GMM mask",
        "background": f"{source} GMM background",
    }


def video_frames(layer: Any) -> da.Array:
    """Check that a layer holds a video and view its data lazily, frame by frame.

    Parameters
    ----------
    layer : napari.layers.Layer or None
        The layer chosen as video.

    Returns
    -------
    dask.array.Array
        ``(T, Y, X)`` or ``(T, Y, X, 3)``.

    Raises
    ------
    ValueError
        If the layer is missing, not an Image, multiscale, or has no time axis.
    """
    if layer is None:
        raise ValueError("choose a video layer (an Image layer with a time axis) first")
    if not isinstance(layer, Image):
        raise ValueError(
            f"'{layer.name}' is a {type(layer).__name__} layer; "
            "choose an Image layer with a time axis"
        )
    if layer.multiscale:
        raise ValueError(f"'{layer.name}' is multiscale; choose a single-scale video")
    if layer.data.ndim == 3 and layer.rgb:
        raise ValueError(f"'{layer.name}' is a single 2-D RGB image; a video needs a time axis")
    as_frames(layer.data, name=f"'{layer.name}'")  # shape and dtype, without reading pixels
    return lazy_frames(layer.data)


def lazy_frames(data: Any) -> da.Array:
    """View layer data as a dask array of single frames (a numpy array is not copied)."""
    if isinstance(data, da.Array):
        return data
    return da.from_array(data, chunks=(1,) + tuple(data.shape[1:]))


def loglik_contrast_limits(model: BackgroundModel, frames: np.ndarray) -> tuple[float, float]:
    """Contrast limits for the log-likelihood layer, from a few scored frames.

    The scale runs from well below the threshold (clearly foreground) to the top of the
    background's values, so the threshold sits in the visible range.
    """
    return contrast_limits_of(model.log_likelihood(frames), model.threshold)


def contrast_limits_of(scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """Contrast limits from scored frames: from well below the threshold to the top."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return threshold - 10.0, threshold + 10.0
    high = float(np.percentile(finite, 99.9))
    low = min(float(np.percentile(finite, 1)), threshold - 10.0)
    low = max(low, threshold - 100.0)
    if not high > low:
        high = low + 1.0
    return low, high


def mask_data(
    model: BackgroundModel | OnlineResult,
    frames: da.Array,
    threshold: float,
    region: np.ndarray | None,
    cleanup: MaskCleanup,
    shadows: str,
) -> Any:
    """Return the foreground labels of a clip (0, 1, and 2 for shadows).

    Lazy for an offline model; an on-line result re-thresholds its stored scores.
    """
    if isinstance(model, OnlineResult):
        labels = model.foreground(threshold=threshold, cleanup=cleanup, shadows=shadows)
        if region is not None:
            labels[:, ~region] = 0
        return labels
    return model.foreground(
        frames, threshold=threshold, region=region, cleanup=cleanup, shadows=shadows
    )


def set_layer(viewer: Any, data: Any, kwargs: dict, layer_type: str) -> Layer:
    """Update the layer of that name in place, or add it.

    ``viewer.add_*`` would add a twin named "name [1]"; a layer of the same name and kind
    gets the new data (and placement, contrast limits, metadata) instead.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.
    data : array-like
        Layer data.
    kwargs : dict
        Layer keyword arguments; ``name`` is required.
    layer_type : str
        ``"image"``, ``"labels"``, ...

    Returns
    -------
    napari.layers.Layer
        The layer shown.
    """
    name = kwargs["name"]
    new = Layer.create(data, kwargs, layer_type)
    if name not in viewer.layers:
        viewer.add_layer(new)
        return new
    old = viewer.layers[name]
    if type(old) is type(new) and getattr(old, "rgb", None) == getattr(new, "rgb", None):
        old.data = data
        for key in ("contrast_limits", "scale", "translate", "metadata"):
            if key in kwargs:
                setattr(old, key, kwargs[key])
        return old
    index = viewer.layers.index(old)
    viewer.layers.remove(old)
    viewer.layers.insert(index, new)
    return new


def fit_layer_data(
    model: BackgroundModel | OnlineResult,
    frames: da.Array,
    source: str,
    placement: Placement,
    threshold: float,
    region: np.ndarray | None,
    cleanup: MaskCleanup,
    shadows: str,
    contrast_limits: tuple[float, float],
) -> list[tuple]:
    """LayerDataTuples of a fit: log-likelihood, mask and background.

    Parameters
    ----------
    model : BackgroundModel or OnlineResult
        The fitted model, or the on-line GMM's result.
    frames : dask.array.Array
        The source clip, lazily.
    source : str
        Name of the source layer.
    placement : Placement
        The source layer's scale, translate and axis labels.
    threshold : float
        Foreground threshold (log-likelihood).
    region : numpy.ndarray or None
        ``(Y, X)`` boolean region outside which nothing is foreground.
    cleanup : MaskCleanup
        Spatial clean-up of the mask.
    shadows : str
        "off", "show" (label 2) or "background".
    contrast_limits : tuple of float
        For the log-likelihood layer.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` for each of the three layers.
    """
    names = result_names(source)
    meta = {"napari-gmm-bg": {"source": source, "threshold": threshold}}
    if isinstance(model, OnlineResult):
        background, loglik, scores_meta = model.background, model.log_likelihood, meta
    else:
        background, loglik = model.background_image(), model.log_likelihood(frames)
        # The model travels with its scores: the pixel inspector reads it here.
        scores_meta = {"napari-gmm-bg": {**meta["napari-gmm-bg"], "model": model}}
    return [
        (
            loglik,
            {
                "name": names["loglik"],
                "colormap": "magma",
                "contrast_limits": contrast_limits,
                "multiscale": False,
                "metadata": scores_meta,
                **placement.kwargs(),
            },
            "image",
        ),
        (
            mask_data(model, frames, threshold, region, cleanup, shadows),
            {"name": names["mask"], "opacity": 0.6, "metadata": meta, **placement.kwargs()},
            "labels",
        ),
        (
            background,
            {
                "name": names["background"],
                "rgb": background.ndim == 3,
                "metadata": meta,
                "visible": False,
                **placement.kwargs(last=2),
            },
            "image",
        ),
    ]
