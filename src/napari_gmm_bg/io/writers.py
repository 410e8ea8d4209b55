"""Writing results: TIFF stacks, PNG images and sets of files written all or nothing.

Every file goes to a hidden temporary name in its destination folder and is renamed
only when complete, so a failure never leaves a half-written file nor destroys an
existing one.
"""

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from ..core._files import atomic_write, temporary_path

# Beyond this, classic TIFF's 32-bit offsets overflow: switch to BigTIFF.
_BIGTIFF_BYTES = 2**32 - 2**25


def write_tiff_stack(path: Path, stack: Any, metadata: dict | None = None) -> None:
    """Write a ``(T, Y, X[, C])`` stack frame by frame as a multi-page TIFF.

    Parameters
    ----------
    path : pathlib.Path
        The file to write (not atomic by itself: see :class:`AtomicFiles`).
    stack : numpy.ndarray or dask.array.Array
        The frames; a dask array is computed one frame at a time.
    metadata : dict, optional
        Stored as JSON in the TIFF's image description.
    """
    nbytes = int(np.prod(stack.shape)) * np.dtype(stack.dtype).itemsize
    description = json.dumps(metadata or {})
    rgb = stack.ndim == 4 and stack.shape[-1] == 3
    # A lazy stack is computed a few frames at a time: frames that share a source chunk
    # (a decoded group of frames, say) then share its computation, and memory stays
    # bounded by the group.
    step = 16 if hasattr(stack, "compute") else 1
    with tifffile.TiffWriter(path, bigtiff=nbytes > _BIGTIFF_BYTES) as tif:
        for start in range(0, stack.shape[0], step):
            block = np.asarray(stack[start : start + step])
            for i, frame in enumerate(block, start=start):
                tif.write(
                    frame,
                    photometric="rgb" if rgb else "minisblack",
                    description=description if i == 0 else None,
                    metadata=None,
                    contiguous=False,
                )


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a 2-D grey or RGB image as PNG.

    Parameters
    ----------
    path : pathlib.Path
        The file to write.
    image : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, 3)`` RGB, uint8 or uint16.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} {image.shape} image as PNG")
    path.write_bytes(encoded.tobytes())


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
    writes there.  On success every temporary file is renamed onto its destination; on
    any error they are all deleted, and folders this object created are removed again.
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
            folder.mkdir()
            self._created.append(folder)

    def _rollback(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                pass

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
            for tmp, final in self._pending:
                os.replace(tmp, final)
        except BaseException:
            self._rollback()
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


def save_tiff(path: str | os.PathLike, data: Any, metadata: dict | None = None) -> Path:
    """Save a stack (lazy ones included) as a multi-page TIFF, atomically and streaming.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.tif``; written to a temporary name and renamed when complete, so
        a failure leaves no partial file and an existing file as it was.
    data : numpy.ndarray or dask.array.Array
        ``(T, Y, X)`` or ``(T, Y, X, 3)``; a dask array is computed 16 frames at a time.
        BigTIFF is used when the data pass 4 GB.
    metadata : dict, optional
        Stored as JSON in the first page's description (what JSON cannot hold is dropped).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    final = Path(path)
    tmp = temporary_path(final)
    try:
        write_tiff_stack(tmp, data, json_safe(metadata or {}))
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def save_zarr(path: str | os.PathLike, data: Any, metadata: dict | None = None) -> Path:
    """Save an array (lazy ones included) as a zarr store, chunk by chunk, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination folder ``.zarr``; written beside it under a temporary name, then
        swapped in (an existing store is replaced only once the new one is complete).
    data : numpy.ndarray or dask.array.Array
        Any shape; stored in chunks of one frame.
    metadata : dict, optional
        Stored in the array's attributes (what JSON cannot hold is dropped).

    Returns
    -------
    pathlib.Path
        The store written.
    """
    import dask.array as da
    import zarr

    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    lazy = data if isinstance(data, da.Array) else da.from_array(data)
    lazy = lazy.rechunk({0: 1, **{i: -1 for i in range(1, lazy.ndim)}})
    try:
        store = zarr.open_array(
            str(tmp), mode="w", shape=lazy.shape, chunks=lazy.chunksize, dtype=lazy.dtype
        )
        store.attrs.update(json_safe(metadata or {}))
        da.store(lazy, store, lock=False)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final
