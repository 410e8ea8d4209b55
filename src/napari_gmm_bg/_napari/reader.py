"""npe2 reader: video files, folders of frames and CDnet sequence folders."""

import os
from collections.abc import Callable
from pathlib import Path

from ..io.cdnet import is_cdnet_folder, read_cdnet
from ..io.lazy_video import open_video
from ..io.video import VIDEO_SUFFIXES, frame_files, read_video


def _claims(path: Path) -> bool:
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
    """Read a video or a CDnet folder into layer data.

    Parameters
    ----------
    path : str or os.PathLike
        A video file, a folder of frames, or a CDnet folder.

    Returns
    -------
    list of tuple
        The video (image); for CDnet also the ground truth and region of interest
        (labels).
    """
    path = Path(path)
    if path.is_dir() and is_cdnet_folder(path):
        seq = read_cdnet(path)
        temporal = [seq.temporal_roi.start, seq.temporal_roi.stop]
        layers = [
            (seq.video, {"name": seq.name, "rgb": True}, "image"),
            (
                seq.ground_truth,
                {
                    "name": f"{seq.name} ground truth",
                    "opacity": 0.5,
                    "metadata": {"temporal_roi": temporal},
                },
                "labels",
            ),
        ]
        if seq.roi is not None:
            roi_kwargs = {"name": f"{seq.name} ROI", "opacity": 0.2, "visible": False}
            layers.append((seq.roi.astype("uint8"), roi_kwargs, "labels"))
        return layers
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        # Lazily: frames are decoded chunk by chunk as napari asks for them.
        video, index = open_video(path)
        kwargs = {
            "name": path.stem,
            "rgb": True,
            "contrast_limits": (0, 255),  # or napari would scan the whole clip for them
            "multiscale": False,
            "metadata": {"source": str(path), "timestamps": index.seconds},
        }
        return [(video, kwargs, "image")]
    video = read_video(path)
    return [(video, {"name": path.name, "rgb": video.ndim == 4}, "image")]


__all__ = ["get_reader", "read"]
