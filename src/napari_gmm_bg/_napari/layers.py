"""Turning results into napari layers: conversion functions and in-place updates, no Qt."""

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from napari.layers import Image, Layer

from ..core import BackgroundModel, MaskCleanup, as_frames
from ..core.interface import Method, MethodResult

#: Foreground colour of each method's mask, so masks shown together tell apart; shadows
#: (label 2) are grey in every mask.  Other methods take the next colour of the cycle.
MASK_COLOURS = {
    "gmm": "#ff2bd6",  # magenta
    "online": "#ff2bd6",
    "mog2": "#00d5ff",  # cyan
    "knn": "#ffd000",  # yellow
    "baseline": "#6cff3a",  # green
}
OTHER_COLOURS = ("#ff7a00", "#9d7bff", "#ff4a4a", "#00ffa2")
SHADOW_COLOUR = "#9a9a9a"


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


#: This plugin's entry in a result layer's metadata: ``source`` (the video layer's name
#: when made), ``source_id`` (its identity: renaming either layer keeps the link),
#: ``method`` (the registered name) and ``kind`` ("mask", "score" or "background").
META_KEY = "napari-gmm-bg"
#: The methods whose layers the Fit widget makes (the others come from "Compare with
#: other methods").
FIT_METHODS = ("gmm", "online")


def source_id(layer: Any) -> str:
    """Return a layer's identity for the metadata of the layers made from it.

    Parameters
    ----------
    layer : napari.layers.Layer
        The source (video) layer.

    Returns
    -------
    str
        Its ``unique_id``: unlike the name, the user cannot change it.
    """
    return str(layer.unique_id)


def result_meta(source: str, identity: str | None, method: str, kind: str, **extra: Any) -> dict:
    """The metadata of a result layer (see :data:`META_KEY`)."""
    entry = {"source": source, "source_id": identity, "method": method, "kind": kind}
    return {META_KEY: {**entry, **extra}}


def plugin_meta(layer: Any) -> dict:
    """This plugin's metadata entry of a layer (empty for a layer it did not make)."""
    meta = getattr(layer, "metadata", None) or {}
    entry = meta.get(META_KEY)
    return entry if isinstance(entry, dict) else {}


def layers_from(viewer: Any, source: Any, kind: str) -> list[Layer]:
    """Return the result layers of one kind made from a source layer, by its identity.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.
    source : napari.layers.Layer
        The video layer the results were made from.
    kind : str
        "mask", "score" or "background".

    Returns
    -------
    list of napari.layers.Layer
        In the viewer's order; found by metadata, so renamed layers are found too.
    """
    identity = source_id(source)
    return [
        layer
        for layer in viewer.layers
        if plugin_meta(layer).get("source_id") == identity
        and plugin_meta(layer).get("kind") == kind
    ]


def result_names(source: str) -> dict[str, str]:
    """Names of the layers a fit of ``source`` makes."""
    return {
        "loglik": f"{source} GMM distance",
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


def contrast_limits_of(scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """Contrast limits of a distance (the score of every method that has one): from 0 to
    where the foreground tail thins out, at least twice the threshold."""
    finite = scores[np.isfinite(scores)]
    high = 2.0 * threshold if finite.size == 0 else float(np.percentile(finite, 99.5))
    high = max(high, 2.0 * threshold)
    return 0.0, high if high > 0 else 1.0


def mask_colour(method: str) -> str:
    """Return the foreground colour of a method's mask (a hex string).

    Parameters
    ----------
    method : str
        The method's registered name.

    Returns
    -------
    str
        ``#rrggbb``.
    """
    if method in MASK_COLOURS:
        return MASK_COLOURS[method]
    return OTHER_COLOURS[sum(map(ord, method)) % len(OTHER_COLOURS)]


def mask_colormap(method: str) -> Any:
    """A labels colormap: 1 in the method's colour, 2 (shadow) grey, the rest clear."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={
            None: "transparent",
            0: "transparent",
            1: mask_colour(method),
            2: SHADOW_COLOUR,
        }
    )


#: CDnet ground truth: what each value means and how it is drawn.  "Not scored" values
#: (85 outside the region of interest, 170 unknown motion) are transparent, so the
#: frames before the scored range are not tinted.
TRUTH_COLOURS: dict[int | None, str] = {
    50: "#7f7f7f",
    85: "transparent",
    170: "transparent",
    255: "#ffffff",
}
TRUTH_MEANING = {
    50: "shadow",
    85: "outside the scored region",
    170: "unknown (not scored)",
    255: "moving object",
}


def truth_colormap() -> Any:
    """A labels colormap for CDnet ground truth (and 0/1 truth): foreground white, hard
    shadow grey, everything not scored clear."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict[int | None, str] = {None: "transparent", 0: "transparent", 1: "#ffffff"}
    colours.update(TRUTH_COLOURS)
    return DirectLabelColormap(color_dict=colours)


def mask_data(
    result: MethodResult,
    threshold: float,
    region: np.ndarray | None,
    cleanup: MaskCleanup,
    shadows: str,
) -> Any:
    """Return the foreground labels of a clip (0, 1, and 2 for shadows) at these settings.

    Lazy for an offline model; an on-line result re-thresholds its stored scores.
    """
    if result.relabel is None:
        raise ValueError(f"the {result.method} result cannot be relabelled")
    return result.relabel(threshold=threshold, cleanup=cleanup, shadows=shadows, region=region)


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
    result: MethodResult,
    source: str,
    placement: Placement,
    threshold: float,
    region: np.ndarray | None,
    cleanup: MaskCleanup,
    shadows: str,
    contrast_limits: tuple[float, float],
    identity: str | None = None,
) -> list[tuple]:
    """LayerDataTuples of a fit: distance (the score), mask and background.

    Parameters
    ----------
    result : MethodResult
        The offline or on-line GMM's result.
    source : str
        Name of the source layer.
    placement : Placement
        The source layer's scale, translate and axis labels.
    threshold : float
        Foreground threshold (distance, standard deviations).
    region : numpy.ndarray or None
        ``(Y, X)`` boolean region outside which nothing is foreground.
    cleanup : MaskCleanup
        Spatial clean-up of the mask.
    shadows : str
        "off", "show" (label 2) or "background".
    contrast_limits : tuple of float
        For the distance layer.
    identity : str, optional
        The source layer's :func:`source_id`, kept in the layers' metadata.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` for each of the three layers.
    """
    names = result_names(source)

    def meta(kind: str, **extra: Any) -> dict:
        return result_meta(source, identity, result.method, kind, threshold=threshold, **extra)

    scores_meta = meta("score")
    if isinstance(result.model, BackgroundModel):
        # The model travels with its scores: the pixel inspector reads it here.
        scores_meta = meta("score", model=result.model)
    background = result.background
    return [
        (
            result.score(),
            {
                "name": names["loglik"],
                "colormap": "magma",
                "contrast_limits": contrast_limits,
                "multiscale": False,
                # Hidden: an opaque heatmap over the video would hide what the user came
                # for (their video with its mask); one click on the eye shows it.
                "visible": False,
                "metadata": scores_meta,
                **placement.kwargs(),
            },
            "image",
        ),
        (
            mask_data(result, threshold, region, cleanup, shadows),
            {
                "name": names["mask"],
                "opacity": 0.6,
                "metadata": meta("mask"),
                "colormap": mask_colormap("gmm"),
                **placement.kwargs(),
            },
            "labels",
        ),
        (
            background,
            {
                "name": names["background"],
                "rgb": background.ndim == 3,
                "metadata": meta("background"),
                "visible": False,
                **placement.kwargs(last=2),
            },
            "image",
        ),
    ]


def method_layer_data(
    method: Method,
    result: MethodResult,
    source: str,
    placement: Placement,
    identity: str | None = None,
) -> list[tuple]:
    """LayerDataTuples of a comparison method's run: mask, background and score.

    Parameters
    ----------
    method : Method
        The method that ran.
    result : MethodResult
        Its result.
    source : str
        Name of the video layer.
    placement : Placement
        The video layer's scale, translate and axis labels.
    identity : str, optional
        The video layer's :func:`source_id`, kept in the layers' metadata.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)``: "<source> <title> mask" (1 foreground in the
        method's colour, 2 shadow), "<source> <title> background" (hidden) and, for a
        method with a score, "<source> <title> <score name>" (hidden).
    """
    from dataclasses import asdict

    settings = asdict(result.settings)

    def meta(kind: str) -> dict:
        return result_meta(source, identity, method.name, kind, settings=settings)

    prefix = f"{source} {method.title}"
    tuples = [
        (
            result.labels(),
            {
                "name": f"{prefix} mask",
                "opacity": 0.6,
                "metadata": meta("mask"),
                "colormap": mask_colormap(method.name),
                **placement.kwargs(),
            },
            "labels",
        )
    ]
    if result.background is not None:
        background = result.background
        tuples.append(
            (
                background,
                {
                    "name": f"{prefix} background",
                    "rgb": background.ndim == 3,
                    "visible": False,
                    "metadata": meta("background"),
                    **placement.kwargs(last=2),
                },
                "image",
            )
        )
    score = result.score()
    if score is not None:
        threshold = float(result.threshold) if result.threshold is not None else 0.0
        tuples.append(
            (
                score,
                {
                    "name": f"{prefix} {method.score_name}",
                    "colormap": "magma",
                    "contrast_limits": contrast_limits_of(
                        np.asarray(score[len(score) // 2]), threshold
                    ),
                    "multiscale": False,
                    "visible": False,
                    "metadata": meta("score"),
                    **placement.kwargs(),
                },
                "image",
            )
        )
    return tuples
