"""npe2 writers: image and labels layers (lazy ones too) to TIFF, zarr, MP4 previews, PNG.

napari's own writers load a lazy layer whole into memory; these stream it a block of
frames at a time, with a napari progress bar that has a Cancel button, write through a
temporary name, and (TIFF, zarr) keep the layer's placement and metadata so our reader
restores it.  Whatever goes wrong (a refused layer, a full disk, a read-only folder,
Cancel) raises :class:`SaveError` with a message for the user, and nothing is left
behind: no partial file, and an existing file as it was.
"""

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..io.writers import Progress, save_mp4, save_png, save_tiff, save_zarr

FORMAT_KEY = "napari-gmm-bg-layer"

# The MP4 preview's frame rate when the layer's metadata carry no timestamps.
DEFAULT_FPS = 30.0


class SaveError(OSError):
    """A layer was not saved; the message says why, and that nothing was written.

    An ``OSError`` like napari's own failed saves, and deliberately not a ``ValueError``:
    npe2 treats a ``ValueError`` from a writer as "no writer found" and napari would then
    show a misleading message instead of ours.
    """


class SaveCancelled(SaveError):
    """The user cancelled a save; nothing was written."""


def layer_metadata(meta: dict, layer_type: str) -> dict:
    """Build what is stored with the data: the layer's kind, name, placement and metadata.

    Parameters
    ----------
    meta : dict
        The layer's attributes, as napari passes them to a writer.
    layer_type : str
        "image" or "labels".

    Returns
    -------
    dict
        ``{FORMAT_KEY: {...}, "metadata": ...}``, what our reader reads back.
    """
    return {
        FORMAT_KEY: {
            "layer_type": layer_type,
            "name": meta.get("name"),
            "scale": meta.get("scale"),
            "translate": meta.get("translate"),
            "axis_labels": meta.get("axis_labels"),
            "rgb": meta.get("rgb", False),
        },
        "metadata": meta.get("metadata", {}),
    }


# A name's last suffix that looks like a file type (".png", ".mp4"), not a version
# number or a dotted name (".2", "mask v1.5").
_FILE_TYPE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}")


def destination(path: str, suffixes: tuple[str, ...], title: str) -> str:
    """Return where to write: ``path``, with the format's suffix added when it has none.

    Parameters
    ----------
    path : str
        What the user chose.
    suffixes : tuple of str
        The format's suffixes, the first being the default.
    title : str
        The format, for the message.

    Returns
    -------
    str
        ``path`` if it ends in one of ``suffixes``, else ``path`` + ``suffixes[0]``.

    Raises
    ------
    SaveError
        If ``path`` ends in another file type (``mask.png`` given to the TIFF writer,
        say: napari's save dialog passes the name typed with the file type selected).
    """
    if path.lower().endswith(suffixes):
        return path
    suffix = Path(path).suffix
    if _FILE_TYPE.fullmatch(suffix):
        raise SaveError(
            f"Not saved: {Path(path).name!r} ends in {suffix}, but {title} files end in "
            f"{' or '.join(suffixes)}. Choose a name ending in {suffixes[0]}, or the file "
            f"type that writes {suffix} files."
        )
    return path + suffixes[0]


def _frames_per_second(meta: dict) -> float:
    """From the timestamps our video reader keeps in the layer's metadata, if any."""
    stamps = (meta.get("metadata") or {}).get("timestamps")
    try:
        steps = np.diff(np.asarray(stamps, dtype=float))
    except (TypeError, ValueError):
        return DEFAULT_FPS
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(1.0 / np.median(steps)) if len(steps) else DEFAULT_FPS


@contextmanager
def _progress(total: int, name: str, existed: bool) -> Iterator[Progress]:
    """A napari progress bar with a Cancel button, as a :data:`Progress` callback.

    The writer runs on the GUI thread; each update lets napari process events, so the
    bar moves and a click on Cancel is seen at the next block, which then raises
    :class:`SaveCancelled`.
    """
    from napari.utils import cancelable_progress

    with cancelable_progress(total=total, desc=f"Saving {name}") as bar:

        def report(done: int) -> None:
            bar.update(done - bar.n)
            if bar.is_canceled:
                raise SaveCancelled(f"Saving {name!r} was cancelled: {_nothing_written(existed)}")

        yield report


def _one_image(data: Any, meta: dict) -> bool:
    """Whether a layer's data are a single 2-D image (grey, or RGB/RGBA), not frames."""
    return data.ndim == 2 or (data.ndim == 3 and bool(meta.get("rgb")))


def _save_tiff(path: str, data: Any, meta: dict, layer_type: str, report: Progress) -> Path:
    if _one_image(data, meta):
        data = data[None]  # one page
    return save_tiff(path, data, layer_metadata(meta, layer_type), report)


def _save_zarr(path: str, data: Any, meta: dict, layer_type: str, report: Progress) -> Path:
    return save_zarr(path, data, layer_metadata(meta, layer_type), report)


def _save_mp4(path: str, data: Any, meta: dict, layer_type: str, report: Progress) -> Path:
    labels = layer_type == "labels"
    return save_mp4(
        path,
        data,
        labels=labels,
        rgb=None if labels else bool(meta.get("rgb")),
        contrast_limits=meta.get("contrast_limits"),
        fps=_frames_per_second(meta),
        title=meta.get("name"),
        progress=report,
    )


def _save_png(path: str, data: Any, meta: dict, layer_type: str, report: Progress) -> Path:
    labels = layer_type == "labels"
    return save_png(path, data, labels=labels, rgb=None if labels else bool(meta.get("rgb")))


_FORMATS: dict[str, tuple[Callable, tuple[str, ...], str]] = {
    "tiff": (_save_tiff, (".tif", ".tiff"), "TIFF stack"),
    "zarr": (_save_zarr, (".zarr",), "zarr"),
    "mp4": (_save_mp4, (".mp4",), "MP4 preview"),
    "png": (_save_png, (".png",), "PNG"),
}


def _nothing_written(existed: bool) -> str:
    return "nothing was written" + ("; the existing file is unchanged." if existed else ".")


def _failure(name: str, path: str, exc: BaseException, existed: bool) -> str:
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return f"Could not save {name!r} to {path}: {reason}; {_nothing_written(existed)}"


def _writer(fmt: str, layer_type: str) -> Callable:
    save, suffixes, title = _FORMATS[fmt]

    def write(path: str, data: Any, meta: dict) -> list[str]:
        path = destination(os.fspath(path), suffixes, title)
        name = meta.get("name") or Path(path).stem
        if meta.get("multiscale"):
            data = data[0]  # the full resolution
        existed = os.path.lexists(path)
        total = 1 if _one_image(data, meta) else int(data.shape[0])
        try:
            with _progress(total, name, existed) as report:
                written = save(path, data, meta, layer_type, report)
        except SaveError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise SaveError(_failure(name, path, exc, existed)) from exc
        return [str(written)]

    write.__name__ = f"write_{layer_type}_{fmt}"
    article = "an" if layer_type[0] in "aeiou" else "a"
    write.__doc__ = f"""Write {article} {layer_type} layer as {title} ({suffixes[0]}), atomically.

    Parameters
    ----------
    path : str
        Destination; {suffixes[0]} is appended when the name has no file type.
    data : array-like
        The layer's data (numpy or dask; a multiscale layer's full resolution is saved).
    meta : dict
        The layer's attributes, as napari passes them (name, scale, metadata, ...).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    SaveError
        With a message for the user when nothing could be saved (or on Cancel).
    """
    return write


write_image_tiff = _writer("tiff", "image")
write_labels_tiff = _writer("tiff", "labels")
write_image_zarr = _writer("zarr", "image")
write_labels_zarr = _writer("zarr", "labels")
write_image_mp4 = _writer("mp4", "image")
write_labels_mp4 = _writer("mp4", "labels")
write_image_png = _writer("png", "image")
write_labels_png = _writer("png", "labels")
