"""Sample data: the built-in synthetic clips with their ground truth."""

from ..core import make_sample


def _layers(name: str) -> list[tuple]:
    sample = make_sample(name)
    return [
        (sample.video, {"name": name, "rgb": sample.video.ndim == 4}, "image"),
        (sample.ground_truth, {"name": f"{name} ground truth", "opacity": 0.5}, "labels"),
    ]


def moving_shapes() -> list[tuple]:
    """Open the RGB synthetic clip and its ground-truth mask."""
    return _layers("moving-shapes")


def moving_shapes_grey() -> list[tuple]:
    """Open the grey synthetic clip and its ground-truth mask."""
    return _layers("moving-shapes-grey")
