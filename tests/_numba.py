"""A kernel numba has never compiled, for tests of what a compilation says."""

from collections.abc import Callable

import numba


def fresh_kernel() -> Callable[[int], int]:
    """A new ``njit`` function that passes for one of the package's kernels (by module)."""

    def kernel(x):
        return x + 1

    kernel.__module__ = "napari_gmm_bg.core._test_kernel"
    return numba.njit(kernel)
