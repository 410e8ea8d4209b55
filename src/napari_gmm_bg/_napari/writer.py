"""npe2 writers: image and labels layers (lazy ones too) to TIFF stacks or zarr.

napari's own writers load a lazy layer whole into memory; these stream it, write through
a temporary name, and keep the layer's placement and metadata so our reader restores it.
"""

from collections.abc import Callable
from typing import Any

from ..io.writers import save_tiff, save_zarr

FORMAT_KEY = "napari-gmm-bg-layer"


def layer_metadata(meta: dict, layer_type: str) -> dict:
    """What is stored with the data: the layer's kind, name, placement and metadata."""
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


def _writer(save: Callable, suffixes: tuple[str, ...], layer_type: str) -> Callable:
    def write(path: str, data: Any, meta: dict) -> list[str]:
        if not path.lower().endswith(suffixes):
            path += suffixes[0]
        return [str(save(path, data, layer_metadata(meta, layer_type)))]

    write.__doc__ = f"Write a {layer_type} layer to {suffixes[0]} (streamed, atomic)."
    return write


TIFF, ZARR = (".tif", ".tiff"), (".zarr",)
write_image_tiff = _writer(save_tiff, TIFF, "image")
write_labels_tiff = _writer(save_tiff, TIFF, "labels")
write_image_zarr = _writer(save_zarr, ZARR, "image")
write_labels_zarr = _writer(save_zarr, ZARR, "labels")
