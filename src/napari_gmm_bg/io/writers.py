"""Writing results: TIFF stacks, zarr stores, MP4 previews, PNG images and CSV tables.

Every file goes to a hidden temporary name in its destination folder and is renamed
only when complete, so a failure (or an interruption: any exception, KeyboardInterrupt
included) never leaves a half-written file nor destroys an existing one.  Stacks are
written a block of frames at a time, so a lazy (dask) stack is never held whole.
"""

import csv
import errno
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import dask.array as da
import numpy as np
import tifffile

from ..core._files import (
    atomic_write,
    final_name_error,
    fsync_path,
    held_signals,
    temporary_path,
)

# Beyond this, classic TIFF's 32-bit offsets overflow: switch to BigTIFF.
_BIGTIFF_BYTES = 2**32 - 2**25

# Frames computed together when a lazy stack's chunks do not say better.
FRAME_BLOCK = 16
# A lazy chunk up to this size is computed whole (its frames share the computation);
# a larger one is sliced into blocks of about this size.
_BLOCK_BYTES = 256 * 2**20

Progress = Callable[[int], None]
"""Called with the number of frames written so far after each block; may raise to stop."""


def frame_blocks(stack: Any, step: int = FRAME_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """Yield a stack's frames in blocks, computing a lazy stack one block at a time.

    Parameters
    ----------
    stack : numpy.ndarray or dask.array.Array
        Any array; blocks run along its first axis.
    step : int
        Frames in a block of a numpy array.

    Yields
    ------
    tuple
        ``(start, block)``: the index of the block's first frame and the block, a numpy
        array.  A dask array's blocks follow its chunks along the first axis, whole
        chunks joined until a block holds ``step`` frames (frames computed together
        share their sources' computation: a mask of one frame per chunk reads a
        decoded group of frames once, not once a frame); a chunk larger than 256 MB is
        sliced.
    """
    n = stack.shape[0]
    if not isinstance(stack, da.Array):  # numpy, or any array that slices to numpy
        for start in range(0, n, step):
            yield start, np.asarray(stack[start : start + step])
        return
    frame_bytes = max(1, int(np.prod(stack.shape[1:])) * np.dtype(stack.dtype).itemsize)
    most = max(1, _BLOCK_BYTES // frame_bytes)
    bounds = np.cumsum((0, *stack.chunks[0]))
    first = 0
    for i, end in enumerate(bounds[1:], start=1):
        full = end - first >= step or i == len(bounds) - 1
        if not full and bounds[i + 1] - first <= most:
            continue  # join the next chunk too
        for a in range(first, end, most):
            yield int(a), np.asarray(stack[a : min(a + most, end)])
        first = end


def _check_not_empty(shape: tuple[int, ...]) -> None:
    if len(shape) == 0 or 0 in shape:
        raise ValueError(f"nothing to save: the data have shape {tuple(shape)}")


def write_tiff_stack(
    path: Path, stack: Any, metadata: dict | None = None, progress: Progress | None = None
) -> None:
    """Write a ``(T, Y, X[, C])`` stack frame by frame as a multi-page TIFF.

    Parameters
    ----------
    path : pathlib.Path
        The file to write (not atomic by itself: see :class:`AtomicFiles`).
    stack : numpy.ndarray or dask.array.Array
        The frames; a dask array is computed a chunk of frames at a time
        (:func:`frame_blocks`).
    metadata : dict, optional
        Stored as JSON in the TIFF's image description.
    progress : callable, optional
        Called with the number of frames written after each block.
    """
    with tiff_stack_writer(path, stack.shape, stack.dtype, metadata) as write:
        for start, block in frame_blocks(stack):
            write(block)
            if progress is not None:
                progress(start + len(block))


@contextmanager
def tiff_stack_writer(
    path: Path, shape: tuple[int, ...], dtype: Any, metadata: dict | None = None
) -> Iterator[Callable[[np.ndarray], None]]:
    """Open a multi-page TIFF to be written a block of frames at a time, as made.

    The file is the one :func:`write_tiff_stack` writes for a stack of this shape and
    dtype, for frames computed on the fly (a stream that is never held whole).

    Parameters
    ----------
    path : pathlib.Path
        The file to write (not atomic by itself: see :class:`AtomicFiles`).
    shape : tuple of int
        ``(T, Y, X[, C])`` of the whole stack (it chooses BigTIFF beyond 4 GB).
    dtype : numpy.dtype
        The frames' dtype.
    metadata : dict, optional
        Stored as JSON in the first page's image description.

    Yields
    ------
    callable
        ``write(block)``: appends the frames of a ``(n, Y, X[, C])`` block.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    description = json.dumps(metadata or {})
    rgb = len(shape) == 4 and shape[-1] == 3
    written = 0
    try:
        with tifffile.TiffWriter(path, bigtiff=nbytes > _BIGTIFF_BYTES) as tif:

            def write(block: np.ndarray) -> None:
                nonlocal written
                for frame in block:
                    tif.write(
                        frame,
                        photometric="rgb" if rgb else "minisblack",
                        description=description if written == 0 else None,
                        metadata=None,
                        contiguous=False,
                    )
                    written += 1

            yield write
    except OSError as exc:
        if type(exc) is OSError and _SHORT_WRITE.fullmatch(str(exc)):
            raise _short_write(exc, Path(path)) from exc
        raise


# numpy's ``tofile`` (which tifffile uses) reports a full disk so, with no errno.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def _short_write(exc: OSError, path: Path) -> OSError:
    """Say why a write stopped short when the library lost the system's error number."""
    free = shutil.disk_usage(path.parent).free
    if free < 2**20:
        return OSError(errno.ENOSPC, f"No space left on device ({exc})", str(path))
    return OSError(errno.EIO, f"Only part of the data could be written ({exc})", str(path))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a 2-D grey, RGB or RGBA image as PNG.

    Parameters
    ----------
    path : pathlib.Path
        The file to write (not atomic by itself: see :func:`save_png`).
    image : numpy.ndarray
        ``(Y, X)``, ``(Y, X, 3)`` RGB or ``(Y, X, 4)`` RGBA, uint8 or uint16.
    """
    path.write_bytes(_encode_png(image))


def _encode_png(image: np.ndarray) -> bytes:
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        code = cv2.COLOR_RGB2BGR if image.shape[-1] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} {image.shape} image as PNG")
    return encoded.tobytes()


def write_csv(path: str | os.PathLike, header: list[str], rows: list[list[Any]]) -> Path:
    """Write rows to a CSV file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    header : list of str
        Column names.
    rows : list of list
        The rows.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write(Path(path), lambda f: f.write(text.getvalue().encode()))


class AtomicFiles:
    """Write several files all or nothing.

    Each :meth:`path` call returns a temporary name beside the destination; the caller
    writes there.  On success every temporary file is flushed to disk, the files it
    replaces are moved aside, the new ones renamed into place and the old ones deleted
    (then the folder's entries are flushed).  On any error, or a stop signal, before the
    last rename, every rename is undone: the previous outputs are back, byte for byte,
    the temporary files are deleted, and folders this object created are removed again.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._pending: list[tuple[Path, Path]] = []
        self._created: list[Path] = []

    def path(self, name: str) -> Path:
        """Return the temporary path to write ``folder / name`` through.

        Parameters
        ----------
        name : str
            The final file name.

        Returns
        -------
        pathlib.Path
            Where to write it now.
        """
        final = self.folder / name
        with held_signals():  # registered as soon as it exists, so it is cleaned up
            tmp = temporary_path(final)
            self._pending.append((tmp, final))
        return tmp

    def _make_folder(self) -> None:
        missing = []
        folder = self.folder
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # another process made it meanwhile
                if not folder.is_dir():
                    raise
                continue
            self._created.append(folder)

    def _rollback(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                pass

    def _check_destinations(self) -> None:
        for tmp, final in self._pending:
            if not tmp.is_file():
                raise OSError(errno.ENOENT, "the new file was not written", str(final))
            if final.is_dir() or (final.exists() and not final.is_file()):
                raise OSError(errno.EISDIR, "a folder (or not a file) has this name", str(final))

    def _commit(self) -> None:
        """Move the old files aside, the new ones in; undo it all if anything fails."""
        for tmp, _ in self._pending:
            fsync_path(tmp)
        self._check_destinations()
        aside: list[tuple[Path, Path]] = []  # (final, where its old version waits)
        placed: list[Path] = []
        with held_signals() as received:
            try:
                for _, final in self._pending:
                    if os.path.lexists(final):
                        old = final.with_name(f".{final.name}.{os.getpid()}.old")
                        os.replace(final, old)
                        aside.append((final, old))
                for tmp, final in self._pending:
                    os.replace(tmp, final)
                    placed.append(final)
                if received:  # stopped while saving: undo, as for an error
                    raise KeyboardInterrupt
            except BaseException:
                for final in reversed(placed):
                    final.unlink(missing_ok=True)
                for final, old in reversed(aside):
                    os.replace(old, final)
                raise
            for _, old in aside:
                old.unlink(missing_ok=True)
        fsync_path(self.folder)

    @contextmanager
    def transaction(self) -> Iterator["AtomicFiles"]:
        """Create the folder, let the caller write, then commit or roll back.

        Yields
        ------
        AtomicFiles
            This object, to call :meth:`path` on.
        """
        try:
            self._make_folder()
            yield self
            self._commit()
        except BaseException as exc:
            self._rollback()
            for tmp, final in self._pending:
                renamed = final_name_error(exc, tmp, final)
                if renamed is not exc:
                    raise renamed from exc
            raise


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Check, before any work, that files can be written into a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder, or one that can be created.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    ValueError
        If the path is a file, or sits under a file or a folder that cannot be written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output {folder} exists and is not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot create output folder {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {existing} is not writable")
    return folder


def json_safe(metadata: dict) -> dict:
    """Keep what JSON can hold: numbers, strings, lists, dicts (arrays become lists).

    Parameters
    ----------
    metadata : dict
        Layer metadata, possibly holding objects (a fitted model, say).

    Returns
    -------
    dict
        A copy without what cannot be written as JSON.
    """
    out = {}
    for key, value in metadata.items():
        if isinstance(value, dict):
            out[str(key)] = json_safe(value)
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


def save_tiff(
    path: str | os.PathLike,
    data: Any,
    metadata: dict | None = None,
    progress: Progress | None = None,
) -> Path:
    """Save a stack (lazy ones included) as a multi-page TIFF, atomically and streaming.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.tif``; written to a temporary name and renamed when complete, so
        a failure leaves no partial file and an existing file as it was.
    data : numpy.ndarray or dask.array.Array
        ``(T, Y, X)`` or ``(T, Y, X, 3)``; a dask array is computed a chunk of frames at
        a time.  BigTIFF is used when the data pass 4 GB.
    metadata : dict, optional
        Stored as JSON in the first page's description (what JSON cannot hold is dropped).
    progress : callable, optional
        Called with the number of frames written after each block; an exception it
        raises (a Cancel, say) stops the write, leaving nothing behind.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the data are empty.
    """
    _check_not_empty(data.shape)
    final = Path(path)
    tmp = temporary_path(final)
    try:
        write_tiff_stack(tmp, data, json_safe(metadata or {}), progress)
        _move_into_place(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_naming(exc, tmp, final)
    return final


def _move_into_place(tmp: Path, final: Path) -> None:
    """Flush a complete temporary file to disk, rename it onto ``final``, flush the folder."""
    fsync_path(tmp)
    with held_signals():
        os.replace(tmp, final)
    fsync_path(final.parent)


def _raise_naming(exc: BaseException, tmp: Path, final: Path) -> None:
    """Re-raise ``exc`` (inside an ``except``) naming ``final`` instead of ``tmp``."""
    renamed = final_name_error(exc, tmp, final)
    if renamed is exc:
        raise exc
    raise renamed from exc


def save_zarr(
    path: str | os.PathLike,
    data: Any,
    metadata: dict | None = None,
    progress: Progress | None = None,
) -> Path:
    """Save an array (lazy ones included) as a zarr store, block by block, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination folder ``.zarr``; written beside it under a temporary name, then
        swapped in (an existing store is replaced only once the new one is complete).
    data : numpy.ndarray or dask.array.Array
        Any shape; stored in chunks of one frame (one slice of the first axis), and a
        dask array is computed a chunk of frames at a time.
    metadata : dict, optional
        Stored in the array's attributes (what JSON cannot hold is dropped).
    progress : callable, optional
        Called with the number of frames written after each block; an exception it
        raises stops the write, leaving nothing behind.

    Returns
    -------
    pathlib.Path
        The store written.

    Raises
    ------
    ValueError
        If the data are empty.
    """
    import zarr

    _check_not_empty(data.shape)
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    try:
        store = zarr.open_array(
            str(tmp),
            mode="w",
            shape=data.shape,
            chunks=(1, *data.shape[1:]),
            dtype=data.dtype,
        )
        store.attrs.update(json_safe(metadata or {}))
        for start, block in frame_blocks(data):
            # One chunk per call: a call writing many chunks writes them concurrently, and
            # after a failure (a full disk) some of them land after the clean-up.
            for i, frame in enumerate(block, start=start):
                store[i] = frame
            if progress is not None:
                progress(start + len(block))
        for name in (*(p for p in tmp.rglob("*") if p.is_file()), tmp):
            fsync_path(name)
        with held_signals() as received:
            if os.path.lexists(final):
                os.replace(final, old)
            os.replace(tmp, final)
            if received:  # stopped while swapping: undo, as for an error
                shutil.rmtree(final)
                raise KeyboardInterrupt
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.lexists(old) and not os.path.lexists(final):
            os.replace(old, final)
        _raise_naming(exc, tmp, final)
    _remove(old)
    fsync_path(final.parent)
    return final


def _remove(path: Path) -> None:
    """Delete a file, a link or a folder tree, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink(missing_ok=True)


def png_image(image: Any, labels: bool = False, rgb: bool | None = None) -> np.ndarray:
    """Check that an image fits in a PNG file and return it as PNG can hold it.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        ``(Y, X)`` grey or labels, or ``(Y, X, 3)`` RGB / ``(Y, X, 4)`` RGBA image.
    labels : bool
        Labels: only ``(Y, X)`` is accepted.
    rgb : bool, optional
        Whether a last axis of 3 or 4 is colour (by default it is, for an image).

    Returns
    -------
    numpy.ndarray
        uint8 or uint16: those dtypes unchanged, booleans as 0/1 uint8, other integers
        whose values all fit as the smallest of uint8 and uint16 that holds them.

    Raises
    ------
    ValueError
        For more than one 2-D image (a time axis, say), floats, or integers outside
        0..65535: PNG cannot hold them, and nothing should be lost silently.
    """
    if rgb is None:
        rgb = not labels
    rgb = rgb and not labels and image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim != 2 and not rgb:
        kind = "(Y, X)" if labels else "(Y, X), (Y, X, 3) or (Y, X, 4)"
        raise ValueError(
            f"PNG holds one 2-D image, {kind}; these data have shape {tuple(image.shape)}: "
            "save them as a TIFF stack, zarr or MP4 preview instead"
        )
    _check_not_empty(image.shape)
    dtype = np.dtype(image.dtype)
    image = np.asarray(image)
    if dtype in (np.uint8, np.uint16):
        return image
    if dtype.kind == "b":
        return image.astype(np.uint8)
    if dtype.kind in "iu":
        low, high = int(image.min()), int(image.max())
        if low >= 0 and high <= 65535:
            return image.astype(np.uint8 if high <= 255 else np.uint16)
        raise ValueError(
            f"PNG holds values 0..65535; these {dtype} data span {low}..{high}: "
            "save them as a TIFF stack or zarr instead"
        )
    raise ValueError(
        f"PNG holds 8- or 16-bit integers, not {dtype} values: "
        "save them as a TIFF stack or zarr instead"
    )


def save_png(
    path: str | os.PathLike, image: Any, labels: bool = False, rgb: bool | None = None
) -> Path:
    """Save a 2-D image or labels as PNG, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.png``; written to a temporary name and renamed when complete.
    image : numpy.ndarray or dask.array.Array
        See :func:`png_image` for what is accepted and how it is stored.
    labels : bool
        The image is labels (``(Y, X)`` only).
    rgb : bool, optional
        Whether a last axis of 3 or 4 is colour (by default it is, for an image).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If PNG cannot hold the image (checked before anything is written).
    """
    encoded = _encode_png(png_image(image, labels, rgb))
    return atomic_write(Path(path), lambda f: f.write(encoded))


# Labels in the MP4 preview: 0 black, 1 white, 2 (shadow) mid grey; larger labels cycle
# through saturated colours.
LABEL_COLOURS = np.array(
    [
        [0, 0, 0],
        [255, 255, 255],
        [128, 128, 128],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ],
    np.uint8,
)


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """Colour labels as the MP4 preview shows them.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or boolean labels, any shape.

    Returns
    -------
    numpy.ndarray
        uint8, the input's shape plus a last axis of 3 (RGB): 0 black, 1 white, 2 grey,
        3 and above the colours of :data:`LABEL_COLOURS` in turn.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "b" or (labels.dtype.kind == "u" and labels.itemsize == 1):
        lut = LABEL_COLOURS[np.r_[0:3, 3 + np.arange(253) % (len(LABEL_COLOURS) - 3)]]
        return lut[labels.astype(np.uint8)]
    cycle = len(LABEL_COLOURS) - 3
    index = np.where((labels >= 0) & (labels < 3), labels, 3 + (labels - 3) % cycle)
    return LABEL_COLOURS[index]


def display_range(data: Any, contrast_limits: Any = None) -> tuple[float, float]:
    """Return the values that map to 0 and 255 in an 8-bit preview.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        The image.
    contrast_limits : sequence of two floats, optional
        Used when given (a napari layer's display range).

    Returns
    -------
    tuple of float
        ``(low, high)``, high > low: the contrast limits; else 0..255 for uint8, the
        dtype's range for other integers, 0..1 for booleans, and the data's finite range
        for floats (a pass over a lazy array).
    """
    dtype = np.dtype(data.dtype)
    if contrast_limits is not None:
        low, high = (float(v) for v in contrast_limits)
    elif dtype.kind == "b":
        low, high = 0.0, 1.0
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        import dask.array as da

        finite = da.asarray(data)
        finite = da.where(da.isfinite(finite), finite, np.nan)
        low, high = (float(v) for v in da.compute(da.nanmin(finite), da.nanmax(finite)))
        if not np.isfinite(low):
            low, high = 0.0, 1.0
    return (low, high) if high > low else (low, low + 1.0)


def to_uint8(block: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale values so that ``low`` is 0 and ``high`` 255, clipped (NaN becomes 0).

    Parameters
    ----------
    block : numpy.ndarray
        Any numbers.
    low, high : float
        The display range.

    Returns
    -------
    numpy.ndarray
        uint8, the same shape.
    """
    scaled = (block.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.nan_to_num(np.clip(scaled + 0.5, 0, 255), nan=0.0).astype(np.uint8)


def _even(block: np.ndarray) -> np.ndarray:
    """Pad a ``(n, Y, X[, 3])`` block by repeating its last row / column to even sizes."""
    pad = [(0, 0), (0, block.shape[1] % 2), (0, block.shape[2] % 2)]
    if not any(after for _, after in pad):
        return block
    return np.pad(block, pad + [(0, 0)] * (block.ndim - 3), mode="edge")


def save_mp4(
    path: str | os.PathLike,
    data: Any,
    *,
    labels: bool = False,
    rgb: bool | None = None,
    contrast_limits: Any = None,
    fps: float = 30.0,
    crf: int = 18,
    title: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Save a stack as an H.264 MP4 preview (lossy), streamed a block at a time, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.mp4``; written to a temporary name and renamed when complete.
    data : numpy.ndarray or dask.array.Array
        ``(T, Y, X)`` grey or labels, or ``(T, Y, X, 3)`` RGB (``(T, Y, X, 4)``: the alpha
        channel is dropped).  A dask array is computed a chunk of frames at a time.
    labels : bool
        Colour the values as labels (:func:`labels_to_rgb`: 0 black, 1 white, 2 grey,
        others in colour) instead of as intensities.
    rgb : bool, optional
        Whether the last axis is colour; by default, when ``data`` is 4-D with 3 or 4
        channels.
    contrast_limits : sequence of two floats, optional
        The display range of a non-uint8 image (:func:`display_range`); uint8 images are
        written as they are.
    fps : float
        Frames per second.
    crf : int
        x264 constant rate factor: lower is better quality and a larger file.
    title : str, optional
        Stored in the file's title tag.
    progress : callable, optional
        Called with the number of frames written after each block; an exception it
        raises stops the write, leaving nothing behind.

    Returns
    -------
    pathlib.Path
        The file written.  H.264 in yuv420p needs even sizes: an odd height or width is
        padded by repeating the last row or column, so the video can be one pixel larger.

    Raises
    ------
    ValueError
        If the data are not a stack of 2-D frames (checked before anything is written).
    """
    from fractions import Fraction

    import av

    if rgb is None:
        rgb = not labels and data.ndim == 4 and data.shape[-1] in (3, 4)
    if data.ndim != (4 if rgb else 3) or (rgb and data.shape[-1] not in (3, 4)):
        kind = "(T, Y, X)" if labels else "(T, Y, X) grey or (T, Y, X, 3) RGB"
        raise ValueError(
            f"the MP4 preview needs a stack of 2-D frames, {kind}; these data have shape "
            f"{tuple(data.shape)}"
        )
    _check_not_empty(data.shape)
    scale = None
    if not labels and np.dtype(data.dtype) != np.uint8:
        scale = display_range(data, contrast_limits)
    height, width = data.shape[1] + data.shape[1] % 2, data.shape[2] + data.shape[2] % 2
    final = Path(path)
    tmp = temporary_path(final)
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            container.metadata["title"] = title or final.stem
            container.metadata["comment"] = "lossy preview written by napari-gmm-bg"
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for start, block in frame_blocks(data):
                if labels:
                    block = labels_to_rgb(block)
                else:
                    block = block[..., :3] if rgb else block
                    block = block if scale is None else to_uint8(block, *scale)
                fmt = "rgb24" if block.ndim == 4 else "gray"
                for frame in _even(block):
                    video_frame = av.VideoFrame.from_ndarray(frame, format=fmt)
                    for packet in stream.encode(video_frame):
                        container.mux(packet)
                if progress is not None:
                    progress(start + len(block))
            for packet in stream.encode():
                container.mux(packet)
        _move_into_place(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_naming(exc, tmp, final)
    return final
