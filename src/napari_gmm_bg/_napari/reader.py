"""npe2 reader: video files, folders of frames and CDnet sequence folders."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io.cdnet import is_cdnet_folder, open_cdnet
from ..io.lazy_video import open_video, video_bit_depth
from ..io.stacks import open_tiff, open_zarr
from ..io.video import VIDEO_SUFFIXES, frame_files, open_frame_folder
from .writer import FORMAT_KEY


def _ours(path: Path) -> tuple[Any, dict] | None:
    """A TIFF stack or zarr store written by this plugin: its data and metadata."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff") and path.is_file():
            data, meta = open_tiff(path)
        elif suffix == ".zarr" and path.is_dir():
            data, meta = open_zarr(path)
        else:
            return None
    except ValueError:
        return None
    return (data, meta) if FORMAT_KEY in meta else None


def _claims(path: Path) -> bool:
    if _ours(path) is not None:
        return True
    if path.is_dir():
        return is_cdnet_folder(path) or bool(frame_files(path))
    return path.suffix.lower() in VIDEO_SUFFIXES


def get_reader(path: str | os.PathLike | list) -> Callable | None:
    """Return a reader for a video file, a frame folder or a CDnet folder, else None.

    Parameters
    ----------
    path : str, os.PathLike or list
        What napari was asked to open (a list is declined).

    Returns
    -------
    callable or None
        The reader function.
    """
    if isinstance(path, list):
        return None
    return read if _claims(Path(path)) else None


def read(path: str | os.PathLike) -> list[tuple]:
    """Open a video, a folder of frames, a CDnet folder or a saved layer, lazily.

    Parameters
    ----------
    path : str or os.PathLike
        A video file, a folder of frames, a CDnet folder, or a TIFF/zarr written by
        this plugin.

    Returns
    -------
    list of tuple
        The video (image, dask: frames are read as napari shows them, each frame's
        timestamp in ``metadata["timestamps"]``); for CDnet also the ground truth and
        region of interest (labels).

    Raises
    ------
    ValueError
        With one line naming the file: not a video, truncated, no frames, a codec that
        cannot be decoded, frames of different sizes, an unknown extension.  Nothing is
        added to the viewer.
    """
    path = Path(path)
    saved = _ours(path)
    if saved is not None:
        data, meta = saved
        layer = meta[FORMAT_KEY]
        kwargs = {"name": layer.get("name") or path.stem, "metadata": meta.get("metadata", {})}
        for key in ("scale", "translate", "axis_labels"):
            if layer.get(key):
                kwargs[key] = layer[key]
        if layer["layer_type"] == "image":
            kwargs.update(rgb=bool(layer.get("rgb")), multiscale=False)
        return [(data, kwargs, layer["layer_type"])]
    if path.is_dir() and is_cdnet_folder(path):
        from .layers import truth_colormap

        seq = open_cdnet(path)  # lazily: frames and labels are read as napari shows them
        temporal = [seq.temporal_roi.start, seq.temporal_roi.stop]
        layers = [
            (seq.video, _image_kwargs(seq.video, seq.name, path / "input"), "image"),
            (
                seq.ground_truth,
                {
                    "name": f"{seq.name} ground truth",
                    "opacity": 0.5,
                    "colormap": truth_colormap(),  # "not scored" values clear
                    "multiscale": False,
                    "metadata": {"temporal_roi": temporal},
                },
                "labels",
            ),
        ]
        if seq.roi is not None:
            roi_kwargs = {"name": f"{seq.name} ROI", "opacity": 0.2, "visible": False}
            layers.append((seq.roi.astype("uint8"), roi_kwargs, "labels"))
        return layers
    if path.is_dir():
        video, _ = open_frame_folder(path)
        return [(video, _image_kwargs(video, path.name, path), "image")]
    if not path.exists():
        raise ValueError(f"no such file or folder: {path}")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        # Lazily: frames are decoded as napari asks for them (decoding a long clip
        # whole to check it would take minutes).  The frame napari shows first (the
        # middle one, (T - 1) // 2) and the ends are decoded now: a file damaged there
        # (the decoder fails, or flags a frame it concealed errors in) is refused here,
        # before napari makes a layer (one whose first drawing fails stays half-made
        # in the viewer).  A damaged frame met later raises its error when napari asks
        # for it, which napari shows as a notification; it is never shown repaired.
        # (An AVI with B-frames, or an MPEG stream, is decoded whole to index it: its
        # damage is refused here, wherever it lies.)
        video, index = open_video(path)
        n = len(video)
        for t in dict.fromkeys((0, (n - 1) // 2, n // 2, n - 1)):
            np.asarray(video[t])
        kwargs = _image_kwargs(video, path.stem, path)
        kwargs["metadata"]["timestamps"] = index.seconds
        kwargs["metadata"]["bit_depth"] = video_bit_depth(path)
        return [(video, kwargs, "image")]
    if suffix in (".tif", ".tiff"):
        data, _ = open_tiff(path)
        return [(data, _image_kwargs(data, path.stem, path), "image")]
    raise ValueError(
        f"{path.name}: unknown video type {path.suffix!r}; expected one of "
        f"{', '.join(VIDEO_SUFFIXES)}, a .tif stack, a .zarr store or a folder of frames"
    )


def _image_kwargs(data: Any, name: str, source: Path) -> dict:
    """Layer settings for a lazy clip: napari must not scan it for its contrast limits."""
    limits: tuple[float, float]
    if data.dtype == np.uint8:
        limits = (0.0, 255.0)
    else:  # from the first frame holding numbers (the first, middle or last)
        low, high = 0.0, 1.0
        for t in dict.fromkeys((0, len(data) // 2, len(data) - 1)):
            frame = np.asarray(data[t])
            finite = frame[np.isfinite(frame)]
            if finite.size:
                low, high = float(finite.min()), float(finite.max())
                break
        limits = (low, high if high > low else low + 1.0)
    rgb = data.ndim == 4 and data.shape[-1] in (3, 4)
    return {
        "name": name,
        "rgb": rgb,
        "contrast_limits": limits,
        "multiscale": False,
        "metadata": {"source": str(source)},
    }


__all__ = ["get_reader", "read"]
