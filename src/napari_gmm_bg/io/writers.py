"""Writing results: TIFF stacks, PNG images and sets of files written all or nothing.

Every file goes to a hidden temporary name in its destination folder and is renamed
only when complete, so a failure never leaves a half-written file nor destroys an
existing one.
"""

import csv
import io
import json
import os
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
