"""Validation of video input at the boundary of the core.

Every public entry point turns its input into a :class:`Frames` first, so the maths
downstream can assume a 4-D ``(T, Y, X, C)`` array of a supported dtype, whether it is a
numpy or a dask array.  Checks that need pixel values (NaN, transparent alpha) run on the
frames that are actually read, so a lazy video is never read in full to validate it.
"""

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np


@dataclass(frozen=True)
class Frames:
    """A video normalised to ``(T, Y, X, C)`` with C = 1 (grey) or 3 (RGB).

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        The pixels, ``(T, Y, X, C)``; a view of the input where possible.
    grey : bool
        True when the input had no channel axis (the outputs drop it again).
    had_alpha : bool
        True when a fourth (alpha) channel was dropped; its opacity is checked whenever
        pixel values are read with :meth:`read`.
    alpha : numpy.ndarray or dask.array.Array or None
        ``(T, Y, X)`` the dropped alpha channel, for checks made elsewhere (on a cluster).
    """

    data: Any
    grey: bool
    had_alpha: bool
    alpha: Any = None

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.data.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(Y, X)``."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def n_channels(self) -> int:
        """1 or 3."""
        return int(self.data.shape[3])

    @property
    def dtype(self) -> np.dtype:
        """The input's dtype."""
        return self.data.dtype

    @property
    def is_lazy(self) -> bool:
        """True for a dask array."""
        return isinstance(self.data, da.Array)

    def read(self, index: Any) -> np.ndarray:
        """Read frames into memory and check their values.

        Parameters
        ----------
        index : int, slice or sequence of int
            Which frames.

        Returns
        -------
        numpy.ndarray
            ``(n, Y, X, C)`` in the input's dtype.

        Raises
        ------
        ValueError
            If the pixels hold NaN or infinity, or the dropped alpha is not fully opaque.
        """
        if isinstance(index, int | np.integer):
            index = slice(int(index), int(index) + 1)
        data = self.data[index]
        alpha = self.alpha[index] if self.had_alpha else None
        if isinstance(data, da.Array):
            if alpha is not None:
                data, alpha = da.compute(data, alpha)
            else:
                data = data.compute()
        data = np.asarray(data)
        if alpha is not None:
            check_opaque(np.asarray(alpha))
        check_finite(data)
        return data


def as_frames(video: Any, *, name: str = "video") -> Frames:
    """Validate a video and view it as ``(T, Y, X, C)``.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X)`` grey or ``(T, Y, X, 3)`` RGB; ``(T, Y, X, 4)`` RGBA is accepted when
        its alpha is fully opaque (checked when frames are read).  uint8, uint16 or float;
        numpy, dask or anything ``numpy.asarray`` accepts.
    name : str
        What to call the input in error messages.

    Returns
    -------
    Frames
        The normalised view.

    Raises
    ------
    ValueError
        If the shape or dtype is not a video this package handles.
    """
    if not isinstance(video, da.Array | np.ndarray):
        if hasattr(video, "shape") and hasattr(video, "dtype") and hasattr(video, "__getitem__"):
            video = da.from_array(video, chunks=(1,) + tuple(video.shape[1:]))
        else:
            video = np.asarray(video)
    ndim = video.ndim
    if ndim == 2:
        raise ValueError(
            f"{name} is a single 2-D image of shape {tuple(video.shape)}; "
            "a video needs a time axis: (T, Y, X) or (T, Y, X, 3)"
        )
    if ndim not in (3, 4):
        raise ValueError(
            f"{name} has {ndim} dimensions {tuple(video.shape)}; "
            "expected (T, Y, X) grey or (T, Y, X, 3) RGB"
        )
    dtype = np.dtype(video.dtype)
    if dtype == np.bool_ or dtype.kind not in "uif":
        raise ValueError(f"{name} has dtype {dtype}; expected uint8, uint16 or float")
    if dtype.kind in "ui" and dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{name} has dtype {dtype}; expected uint8, uint16 or float")
    if dtype.kind == "f" and dtype not in (np.float32, np.float64):
        video = video.astype(np.float32)
    grey = ndim == 3
    had_alpha = False
    alpha = None
    if grey:
        data = video[..., None]
    else:
        channels = video.shape[3]
        if channels == 4:
            had_alpha = True
            alpha = video[..., 3]
            data = video[..., :3]
        elif channels in (1, 3):
            data = video
        else:
            raise ValueError(
                f"{name} has {channels} channels in shape {tuple(video.shape)}; "
                "expected 1 (grey), 3 (RGB) or 4 (RGBA with opaque alpha)"
            )
    if min(video.shape[:3]) == 0:
        raise ValueError(f"{name} is empty: shape {tuple(video.shape)}")
    return Frames(data=data, grey=grey, had_alpha=had_alpha, alpha=alpha)


#: The largest float pixel magnitude accepted: the models compute in float32 (largest
#: 3.4e38), and a difference of two values, or a value times a small scale, must fit.
MAX_FLOAT_VALUE = 1e38


def check_finite(data: np.ndarray) -> None:
    """Raise ValueError if float pixels hold NaN, infinity, or values float32 cannot hold.

    Parameters
    ----------
    data : numpy.ndarray
        Pixels of any dtype (integers always pass).
    """
    if data.dtype.kind != "f" or data.size == 0:
        return
    if not np.isfinite(data).all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(np.isinf(data).sum())
        raise ValueError(
            f"video holds {n_nan} NaN and {n_inf} infinite pixel values; "
            "replace them (e.g. numpy.nan_to_num) before fitting"
        )
    largest = float(np.abs(data).max())
    if largest > MAX_FLOAT_VALUE:
        raise ValueError(
            f"video holds pixel values up to {largest:.3g}; the models compute in float32 "
            f"and take values within +-{MAX_FLOAT_VALUE:.0e}: scale the video down first"
        )


def check_opaque(alpha: np.ndarray) -> None:
    """Raise ValueError unless an alpha channel is fully opaque.

    Parameters
    ----------
    alpha : numpy.ndarray
        The alpha channel: opaque is the dtype's maximum for integers, 1.0 for floats.
    """
    opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
    if not (alpha == opaque).all():
        n = int((alpha != opaque).sum())
        raise ValueError(
            f"RGBA video has {n} transparent or translucent pixels; "
            "only RGBA with a fully opaque alpha channel is accepted (its alpha is dropped)"
        )
