"""Labels of a long clip written to disk as they are made, not held whole in memory.

A method that labels frame by frame (OpenCV's MOG2 and KNN) writes each block of labels
here.  Short clips stay in memory (a numpy array); beyond :data:`IN_MEMORY_BYTES` the
labels go to a compressed zarr array in a temporary folder and come back as a dask array
read block by block (what napari shows and the metrics score).  The folder is removed
once nothing refers to the labels any more (the layer removed, the result dropped) or
when the process exits.
"""

import shutil
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any

import numpy as np

#: Labels larger than this (bytes) are kept on disk: 64 MB is about 150 frames of
#: 768x576, so a short clip stays a plain array and vtest.avi's 352 MB do not.
IN_MEMORY_BYTES = 64 * 2**20


class _DiskLabels:
    """A zarr array in a temporary folder, removed when this object is collected."""

    def __init__(self, shape: tuple[int, ...], chunk: int) -> None:
        import zarr

        self.folder = Path(tempfile.mkdtemp(prefix="napari-gmm-bg-labels-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self.array = zarr.open_array(
            str(self.folder / "labels.zarr"),
            mode="w",
            shape=shape,
            chunks=(chunk, *shape[1:]),
            dtype=np.uint8,
        )
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key])


class LabelWriter:
    """Collect ``(T, Y, X)`` uint8 labels block by block, in memory or on disk by size.

    Parameters
    ----------
    shape : tuple of int
        ``(T, Y, X)``.
    chunk : int
        Frames per block written (and per chunk of the on-disk array).
    in_memory_bytes : int, optional
        Labels up to this size stay in memory; :data:`IN_MEMORY_BYTES` when None.
    """

    def __init__(
        self, shape: tuple[int, ...], chunk: int = 16, in_memory_bytes: int | None = None
    ) -> None:
        limit = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
        self.shape = tuple(int(n) for n in shape)
        self.chunk = max(1, int(chunk))
        self._memory: np.ndarray | None = None
        self._disk: _DiskLabels | None = None
        if int(np.prod(self.shape)) <= limit:
            self._memory = np.empty(self.shape, np.uint8)
        else:
            self._disk = _DiskLabels(self.shape, self.chunk)

    @property
    def on_disk(self) -> bool:
        """Whether the labels go to a temporary folder."""
        return self._disk is not None

    @property
    def folder(self) -> Path | None:
        """The temporary folder of labels kept on disk (None in memory)."""
        return None if self._disk is None else self._disk.folder

    def write(self, start: int, labels: np.ndarray) -> None:
        """Store the labels of frames ``start:start + len(labels)``.

        Parameters
        ----------
        start : int
            The first frame.
        labels : numpy.ndarray
            ``(n, Y, X)`` uint8.
        """
        stop = start + len(labels)
        if self._memory is not None:
            self._memory[start:stop] = labels
        else:
            assert self._disk is not None  # one or the other
            self._disk.array[start:stop] = labels

    def result(self) -> Any:
        """Return the labels: a numpy array, or a dask array read from disk block by block.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            ``(T, Y, X)`` uint8.
        """
        if self._memory is not None:
            return self._memory
        import dask.array as da

        disk = self._disk
        assert disk is not None  # one or the other
        # The dask graph holds ``disk``: the folder lives as long as any array made
        # from it (a layer's data, a slice of it).
        return da.from_array(
            disk,
            chunks=(self.chunk, *self.shape[1:]),
            name=f"napari-gmm-bg-labels-{uuid.uuid4().hex}",
            asarray=True,
            fancy=False,
        )
