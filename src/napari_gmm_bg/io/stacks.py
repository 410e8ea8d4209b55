"""Reading back what the writers write, lazily: TIFF stacks and zarr stores."""

import json
import os
from pathlib import Path

import dask.array as da
import tifffile
import zarr


def open_tiff(path: str | os.PathLike) -> tuple[da.Array, dict]:
    """Open a TIFF stack lazily, with the metadata this package stores in it.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif`` / ``.tiff`` file.

    Returns
    -------
    tuple
        A dask array (one page per chunk) and the JSON metadata of the first page's
        description (empty when there is none).

    Raises
    ------
    ValueError
        If the file is not a readable TIFF.
    """
    path = Path(path)
    try:
        store = tifffile.imread(path, aszarr=True)
        array = zarr.open(store, mode="r")
        with tifffile.TiffFile(path) as tif:
            description = getattr(tif.pages[0], "description", "") or ""
    except Exception as exc:  # tifffile raises many kinds for a file that is not TIFF
        raise ValueError(f"cannot read TIFF {path}: {exc}") from None
    try:
        metadata = json.loads(description) if description.startswith("{") else {}
    except json.JSONDecodeError:
        metadata = {}
    return da.from_zarr(array), metadata


def open_zarr(path: str | os.PathLike) -> tuple[da.Array, dict]:
    """Open a zarr array lazily, with its attributes.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.zarr`` store holding one array.

    Returns
    -------
    tuple
        A dask array and the array's attributes.

    Raises
    ------
    ValueError
        If the store holds no array.
    """
    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as exc:  # zarr raises several kinds for what is not an array store
        raise ValueError(f"cannot read zarr array {path}: {exc}") from None
    return da.from_zarr(array), dict(array.attrs)
