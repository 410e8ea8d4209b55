"""numba kernels of the per-pixel mixture: fit, scoring, labels, clean-up, brightness.

The kernels are written for the SIMD units: pixels are *lanes*, the pixel index is the
innermost loop over float32 scratch arrays, and exp and log are polynomials (``math.exp``
and ``math.log`` are libm calls that keep a loop scalar).  Three rules make LLVM actually
vectorise numba code, each worth 3-5x here:

* the lane count is a run-time value (a compile-time 16 gets the loop fully unrolled and
  left scalar);
* the hot loops live in plain ``njit`` functions (numba's ``prange`` bodies do not
  vectorise; the kernels are run on several threads by ``_in_threads`` instead);
* arrays are indexed by bare loop variables on sliced views: ``row[b]`` on
  ``row = frame[p0:p1]``, never ``frame[p0 + b]``, whose possibly negative index numba
  wraps at run time, which turns every access into a scalar one.

Sample values are mapped to the model's 0-255 intensity scale inside the kernels,
``(value - offsets[t]) * scales[t]``, so frames stay in the video's own dtype; an offset
and a scale per frame also carry the brightness compensation
(``intensity.frame_transform``).

Every kernel lives in this one file on purpose: numba's on-disk cache (``cache=True``)
keys each function on its own source file's timestamp and does not notice a change in a
kernel it calls from another file, so a kernel split across modules could run stale
cached code after an edit.
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal, TypedDict

import numba
import numpy as np
from numba import njit

from ._numba_cache import ensure_cache_dir

LOG_2PI = math.log(2.0 * math.pi)
FIT_LANES = 128  # pixels fitted together
# EM iterations before the pixels still improving are re-packed into fresh blocks
FIT_FIRST_ROUND, FIT_ROUND = 4, 3
RANK_SAMPLES = 64  # up to this many samples, quantiles by rank; beyond, by sorting
SCORE_TILE = 256  # pixels scored together, frame after frame (their model stays in cache)
SCORE_FRAMES = 64  # frames of another dtype than uint8 or float32 converted at a time
BLOCK_PIXELS = 4096  # pixels per work item of the per-pixel passes

# Fast-math without the no-NaN / no-inf assumptions: the maths never produces either,
# but the flags would let LLVM drop checks that the validation at the boundary relies on.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


class _JitOptions(TypedDict):
    cache: bool
    fastmath: set[str]
    error_model: Literal["python", "numpy"]
    nogil: bool


# error_model="numpy": no ZeroDivisionError branch in every division (it blocks SIMD).
# nogil: the kernels run on several Python threads at once (see _in_threads).
# cache: on disk, in a writable folder (_numba_cache falls back to a temporary one).
_OPTS: _JitOptions = {
    "cache": ensure_cache_dir(__file__),
    "fastmath": _FASTMATH,
    "error_model": "numpy",
    "nogil": True,
}

_F = np.float32
_ZERO = _F(0.0)
_ONE = _F(1.0)
_HALF = _F(0.5)
_LN2 = _F(math.log(2.0))
_SQRT2 = _F(math.sqrt(2.0))
_EXP_MIN = _F(-30.0)
_EXP_SCALE = _F(1.0 / 32.0)
_C2, _C3, _C5, _C6, _C7, _C9 = (_F(v) for v in (1 / 2, 1 / 3, 1 / 5, 1 / 6, 1 / 7, 1 / 9))
_C24, _C120, _C720 = (_F(v) for v in (1 / 24, 1 / 120, 1 / 720))


# --- vectorisable exp and log -----------------------------------------------------------
@njit(inline="always", **_OPTS)
def _exp_neg(x):
    # exp(x) for x <= 0: exp(x/32)^32, degree-6 Taylor; relative error about 1e-6 down to
    # x = -10, 4e-4 at -20, 1e-2 at -30, and 9e-14 (not 0) below: terms that small no
    # longer matter next to the largest (1), which is exact to 1e-6.
    x = max(x, _EXP_MIN) * _EXP_SCALE
    p = _ONE + x * (_ONE + x * (_C2 + x * (_C6 + x * (_C24 + x * (_C120 + x * _C720)))))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(inline="always", **_OPTS)
def _log_mantissa(m, e):
    # log(m 2^e) for m in [1, 2): centre m on [sqrt(1/2), sqrt(2)), then 2 atanh(u) with
    # u = (m - 1) / (m + 1), |u| < 0.172, to u^9 (relative error < 1e-7).
    big = m > _SQRT2
    m = m * _HALF if big else m
    e = e + _ONE if big else e
    u = (m - _ONE) / (m + _ONE)
    u2 = u * u
    q = _ONE + u2 * (_C3 + u2 * (_C5 + u2 * (_C7 + u2 * _C9)))
    return e * _LN2 + _F(2.0) * u * q


@njit(**_OPTS)
def _log_scratch(n):
    # float32 and int32 views of the same memory, and a second pair, for _log_lanes.
    bits = np.empty(n, np.float32)
    mantissa = np.empty(n, np.int32)
    return bits, bits.view(np.int32), mantissa, mantissa.view(np.float32)


@njit(inline="always", **_OPTS)
def _log_lanes(src, dst, n, fbits, ibits, mbits, mfloat):
    # dst[:n] = log(src[:n]) for positive float32, in SIMD: the exponent and mantissa are
    # read off the IEEE bits through the int32 views of _log_scratch.
    for b in range(n):
        fbits[b] = src[b]
    for b in range(n):
        i = ibits[b]
        dst[b] = _F((i >> 23) - 127)
        mbits[b] = (i & 0x007FFFFF) | 0x3F800000
    for b in range(n):
        dst[b] = _log_mantissa(mfloat[b], dst[b])


@njit(**_OPTS)
def _copy(dst, src):
    # dst[:] = src for 1-D arrays of one length, as a loop: numba's own array assignment
    # checks the shapes and compiles an error message for a mismatch, string formatting
    # that costs some 4 s of every first run's compilation.
    for i in range(src.shape[0]):
        dst[i] = src[i]


def _supported(frames: np.ndarray, offsets: Any) -> tuple[np.ndarray, np.ndarray]:
    """Frames in a dtype the kernels are compiled for, and their float32 offsets.

    The kernels take uint8 and float32 pixels only (each dtype costs half a minute of
    compilation).  Small integers are exact in float32; wider values (float64 around
    1e6, say) are first shifted by the first offset in float64, so that the
    differences the model sees keep their precision.
    """
    offsets = np.asarray(offsets, np.float64)
    kind, size = frames.dtype.kind, frames.dtype.itemsize
    if frames.dtype in (np.uint8, np.float32):
        return frames, offsets.astype(np.float32)
    if kind in "ui" and size <= 2:
        return frames.astype(np.float32), offsets.astype(np.float32)
    base = float(offsets.flat[0]) if offsets.size else 0.0
    shifted = np.subtract(frames, base, dtype=np.float64).astype(np.float32)
    return shifted, (offsets - base).astype(np.float32)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _threads() -> int:
    # NUMBA_NUM_THREADS, as for numba's own parallel loops (set it per dask worker).
    return max(1, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]


def _blocks(n_pixels: int) -> int:
    return (n_pixels + BLOCK_PIXELS - 1) // BLOCK_PIXELS


def _in_threads(worker, n_items: int, *args) -> None:
    """Run ``worker(*args, items)`` on every thread, each with its share of the items.

    The kernels are plain ``nogil`` functions run on a pool of Python threads rather than
    numba ``prange`` loops: a parallel loop costs some 20 s of compilation each, and
    nested in dask's own threads it oversubscribes the cores.  Item i goes to thread
    i % n, so neighbouring tiles, which cost alike (a busy road, the sky), are shared.
    """
    global _POOL
    n = min(_threads(), n_items)
    if n <= 1:
        worker(*args, np.arange(n_items, dtype=np.int64))
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_threads() - 1, thread_name_prefix="napari-gmm-bg")
        pool = _POOL
    parts = [np.arange(i, n_items, n, dtype=np.int64) for i in range(n)]
    futures = [pool.submit(worker, *(*args, part)) for part in parts[1:]]
    try:
        worker(*args, parts[0])
    finally:
        # Every thread done before anything is raised: none may write on afterwards.
        wait(futures)
    for future in futures:
        future.result()


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads (nor a lock's holder).
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX only: Windows has no fork (nor the need)
    os.register_at_fork(after_in_child=_forget_pool)


# --- fit: deterministic start and EM, one block of pixels at a time ----------------------
@njit(**_OPTS)
def _load_samples(samples, pixels, off, sc, x):
    # x[n, c, b] = sample n of pixel pixels[b] on the model's scale; lanes past the list
    # repeat its last pixel, so every lane holds real data.
    n_samples, _, n_channels = samples.shape
    lanes = x.shape[2]
    nb = pixels.shape[0]
    p0 = pixels[0]
    consecutive = pixels[nb - 1] - p0 == nb - 1  # the first round: a plain slice
    for n in range(n_samples):
        o = off[n]
        s = sc[n]
        if consecutive:
            block = samples[n, p0 : p0 + nb]
            for c in range(n_channels):
                xc = x[n, c]
                for b in range(nb):
                    xc[b] = (_F(block[b, c]) - o) * s
        else:
            frame = samples[n]
            for c in range(n_channels):
                xc = x[n, c]
                for b in range(nb):
                    xc[b] = (_F(frame[pixels[b], c]) - o) * s
        for c in range(n_channels):
            xc = x[n, c]
            for b in range(nb, lanes):
                xc[b] = xc[nb - 1]


@njit(**_OPTS)
def _sort_lanes(v):
    # Sort v[:, b] ascending in every lane b: a bitonic network (len(v) a power of 2),
    # each compare-exchange a min and a max over all lanes.
    n, lanes = v.shape
    k = 2
    while k <= n:
        j = k // 2
        while j > 0:
            for i in range(n):
                partner = i ^ j
                if partner > i:
                    lo = v[i] if (i & k) == 0 else v[partner]
                    hi = v[partner] if (i & k) == 0 else v[i]
                    for b in range(lanes):
                        a = lo[b]
                        c = hi[b]
                        lo[b] = min(a, c)
                        hi[b] = max(a, c)
            j //= 2
        k *= 2


@njit(**_OPTS)
def _quantiles_by_rank(bright, starts, group):
    # group[n] = the quantile of sample n: its rank (ties in frame order) against the
    # quantiles' first positions.  O(N^2) compares: the fastest for a few dozen samples.
    n_samples, lanes = bright.shape
    rank = np.empty(lanes, np.float32)
    for n in range(n_samples):
        bn = bright[n]
        for b in range(lanes):
            rank[b] = _ZERO
        for m in range(n):
            bm = bright[m]
            for b in range(lanes):
                rank[b] += _ONE if bm[b] <= bn[b] else _ZERO
        for m in range(n + 1, n_samples):
            bm = bright[m]
            for b in range(lanes):
                rank[b] += _ONE if bm[b] < bn[b] else _ZERO
        gn = group[n]
        for b in range(lanes):
            gn[b] = _ZERO
        for k in range(1, starts.shape[0] - 1):
            first = _F(starts[k])
            for b in range(lanes):
                gn[b] += _ONE if rank[b] >= first else _ZERO


@njit(**_OPTS)
def _quantiles_by_sorting(bright, starts, ranked, scratch, group):
    # The same quantiles in O(N log^2 N): sample n belongs to quantile k or above when it
    # is brighter than the sorted value at position starts[k], or equal to it and among
    # the later of its ties in frame order.
    n_samples, lanes = bright.shape
    for n in range(n_samples):
        _copy(ranked[n], bright[n])
    ranked[n_samples:] = np.inf
    _sort_lanes(ranked)
    for n in range(n_samples):
        gn = group[n]
        for b in range(lanes):
            gn[b] = _ZERO
    for k in range(1, starts.shape[0] - 1):
        edge = ranked[starts[k]]
        need = scratch[0]  # ties at the edge that stay below quantile k
        ties = scratch[1]
        for b in range(lanes):
            need[b] = _F(starts[k])
            ties[b] = _ZERO
        for n in range(n_samples):
            bn = bright[n]
            for b in range(lanes):
                need[b] -= _ONE if bn[b] < edge[b] else _ZERO
        for n in range(n_samples):
            bn = bright[n]
            gn = group[n]
            for b in range(lanes):
                tie = bn[b] == edge[b]
                above = bn[b] > edge[b] or (tie and ties[b] >= need[b])
                gn[b] += _ONE if above else _ZERO
                ties[b] += _ONE if tie else _ZERO


@njit(**_OPTS)
def _block_state(pixels, W, MU, VAR, PREV, ACTIVE, w, mu, var, prev, active):
    # Lanes of a block from the (K, [C,] P) state arrays; lanes past the block's pixels
    # repeat its last one, as the samples do (_load_samples).
    n_components, n_channels, lanes = mu.shape
    nb = pixels.shape[0]
    for b in range(lanes):
        p = pixels[min(b, nb - 1)]
        prev[b] = PREV[p]
        active[b] = ACTIVE[p]
        for k in range(n_components):
            w[k, b] = W[k, p]
            for c in range(n_channels):
                mu[k, c, b] = MU[k, c, p]
                var[k, c, b] = VAR[k, c, p]


@njit(**_OPTS)
def _store_block(pixels, w, mu, var, prev, active, W, MU, VAR, PREV, ACTIVE):
    # The block's lanes back into the state arrays, one lane per pixel of `pixels`.
    # (Consecutive pixels, as in the first round, could be copied as slices: twice the
    # compiled code, for a copy that costs little next to the EM.)
    n_components, n_channels, _ = mu.shape
    nb = pixels.shape[0]
    for b in range(nb):
        p = pixels[b]
        PREV[p] = prev[b]
        ACTIVE[p] = active[b]
        for k in range(n_components):
            W[k, p] = w[k, b]
            for c in range(n_channels):
                MU[k, c, p] = mu[k, c, b]
                VAR[k, c, p] = var[k, c, b]


# Each pass over blocks is one jitted function that loops over its blocks itself (items:
# block numbers, lanes pixels each), with the per-block work in its own body rather than
# in a jitted callee: numba links a callee's code into every caller and optimises and
# compiles it again there, so each level of calls paid the whole fit's compilation once
# more (about 7 s of a first run's 22).  Scratch is allocated once per call.
@njit(**_OPTS)
def _start_blocks(
    samples, pixels, off, sc, starts, reg, lanes, sort, W, MU, VAR, PREV, ACTIVE, items
):
    # The start of EM: split each lane's samples into K equal-count brightness
    # quantiles, as a stable sort of their brightness would; each quantile's weight,
    # mean and variance; no log-likelihood yet (PREV -inf) and every lane active.  sort:
    # None ranks the samples (RANK_SAMPLES at most), True sorts them; a branch chosen by
    # the argument's type, so numba compiles only the one a call takes.
    n_samples, _, n_channels = samples.shape
    n_components = starts.shape[0] - 1
    n_pixels = pixels.shape[0]
    x = np.empty((n_samples, n_channels, lanes), np.float32)
    w = np.empty((n_components, lanes), np.float32)
    mu = np.empty((n_components, n_channels, lanes), np.float32)
    var = np.empty((n_components, n_channels, lanes), np.float32)
    prev = np.empty(lanes, np.float32)
    active = np.empty(lanes, np.float32)
    for b in range(lanes):
        prev[b] = -np.inf
        active[b] = _ONE
    padded = 1
    while padded < n_samples:
        padded *= 2
    bright = np.empty((n_samples, lanes), np.float32)
    ranked = np.empty((padded, lanes), np.float32)
    scratch = np.empty((2, n_samples, lanes), np.float32)
    group = scratch[0]  # each sample's quantile, one row per sample: group[n, b]
    acc = scratch[1, 0]
    inv_n = _ONE / _F(n_samples)
    for item in items:
        block = pixels[item * lanes : min((item + 1) * lanes, n_pixels)]
        _load_samples(samples, block, off, sc, x)
        for n in range(n_samples):
            bn = bright[n]
            for b in range(lanes):
                bn[b] = _ZERO
            for c in range(n_channels):
                xc = x[n, c]
                for b in range(lanes):
                    bn[b] += xc[b]
        if sort is None:
            _quantiles_by_rank(bright, starts, group)
        else:
            _quantiles_by_sorting(bright, starts, ranked, scratch[1], group)
        for k in range(n_components):
            count = _F(starts[k + 1] - starts[k])
            fk = _F(k)
            wk = w[k]
            for b in range(lanes):
                wk[b] = count * inv_n
            for c in range(n_channels):
                for b in range(lanes):
                    acc[b] = _ZERO
                for n in range(n_samples):
                    xc = x[n, c]
                    gn = group[n]
                    for b in range(lanes):
                        acc[b] += xc[b] if gn[b] == fk else _ZERO
                mk = mu[k, c]
                for b in range(lanes):
                    mk[b] = acc[b] / count
                for b in range(lanes):
                    acc[b] = _ZERO
                for n in range(n_samples):
                    xc = x[n, c]
                    gn = group[n]
                    for b in range(lanes):
                        d = xc[b] - mk[b]
                        acc[b] += d * d if gn[b] == fk else _ZERO
                vk = var[k, c]
                for b in range(lanes):
                    vk[b] = acc[b] / count + reg
        _store_block(block, w, mu, var, prev, active, W, MU, VAR, PREV, ACTIVE)


@njit(inline="always", **_OPTS)
def _rgb_log_density(x0, x1, x2, m0, m1, m2, i0, i1, i2, lc, lp):
    # lp = lc - 0.5 sum_c (x_c - m_c)^2 i_c over three channels, in one pass.  (A fused
    # loop vectorises when the few arrays it stores to are allocations of their own:
    # LLVM checks them for overlap at run time, but only up to a handful of arrays.)
    for b in range(lp.shape[0]):
        d0 = x0[b] - m0[b]
        d1 = x1[b] - m1[b]
        d2 = x2[b] - m2[b]
        lp[b] = lc[b] - _HALF * (d0 * d0 * i0[b] + d1 * d1 * i1[b] + d2 * d2 * i2[b])


@njit(inline="always", **_OPTS)
def _rgb_statistics(x0, x1, x2, m0, m1, m2, e, inv_sum, nk, a0, a1, a2, q0, q1, q2):
    # Responsibility r = e / sum, and its share of the sums of (x - m) and (x - m)^2.
    for b in range(e.shape[0]):
        r = e[b] * inv_sum[b]
        nk[b] += r
        d0 = x0[b] - m0[b]
        d1 = x1[b] - m1[b]
        d2 = x2[b] - m2[b]
        a0[b] += r * d0
        a1[b] += r * d1
        a2[b] += r * d2
        q0[b] += r * d0 * d0
        q1[b] += r * d1 * d1
        q2[b] += r * d2 * d2


@njit(**_OPTS)
def _em_blocks(
    samples, pixels, off, sc, max_iter, tol, reg, lanes, W, MU, VAR, PREV, ACTIVE, items
):
    # EM on each block from its state in W, MU, VAR, PREV, ACTIVE, for at most max_iter
    # iterations, the state stored back.  The M-step is scikit-learn's
    # GaussianMixture(covariance_type="diag") with nk + 10 eps, computed around each
    # component's previous mean (float32 keeps its precision that way).  A lane whose mean
    # log-likelihood (prev: the last one) improves by less than tol stops updating
    # (active 0), as if it ran alone.
    n_samples, _, n_channels = samples.shape
    n_components = W.shape[0]
    n_pixels = pixels.shape[0]
    x = np.empty((n_samples, n_channels, lanes), np.float32)
    w = np.empty((n_components, lanes), np.float32)
    mu = np.empty((n_components, n_channels, lanes), np.float32)
    var = np.empty((n_components, n_channels, lanes), np.float32)
    prev = np.empty(lanes, np.float32)
    active = np.empty(lanes, np.float32)
    iv = np.empty((n_components, n_channels, lanes), np.float32)
    lc = np.empty((n_components, lanes), np.float32)
    lp = np.empty((n_components, lanes), np.float32)
    nk = np.empty((n_components, lanes), np.float32)
    s1 = np.empty((n_components, n_channels, lanes), np.float32)
    s2 = np.empty((n_components, n_channels, lanes), np.float32)
    best = np.empty(lanes, np.float32)
    ssum = np.empty(lanes, np.float32)
    total = np.empty(lanes, np.float32)
    updating = np.empty(lanes, np.float32)
    tmp = np.empty(lanes, np.float32)
    fbits, ibits, mbits, mfloat = _log_scratch(lanes)
    rgb = n_channels == 3
    # RGB: the sums per channel in arrays of their own, so the fused loop vectorises.
    a0 = np.zeros((n_components, lanes), np.float32)
    a1 = np.zeros((n_components, lanes), np.float32)
    a2 = np.zeros((n_components, lanes), np.float32)
    q0 = np.zeros((n_components, lanes), np.float32)
    q1 = np.zeros((n_components, lanes), np.float32)
    q2 = np.zeros((n_components, lanes), np.float32)
    eps10 = _F(10.0 * np.finfo(np.float64).eps)
    weight_scale = _ONE / (_F(n_samples) + _F(n_components) * eps10)
    log_norm = _F(-0.5 * n_channels * LOG_2PI)
    inv_n = _ONE / _F(n_samples)
    check = tol > 0.0
    ftol = _F(tol)
    for item in items:
        block = pixels[item * lanes : min((item + 1) * lanes, n_pixels)]
        _load_samples(samples, block, off, sc, x)
        _block_state(block, W, MU, VAR, PREV, ACTIVE, w, mu, var, prev, active)
        for _ in range(max_iter):
            for k in range(n_components):
                wk = w[k]
                for b in range(lanes):
                    tmp[b] = wk[b]
                for c in range(n_channels):
                    vk = var[k, c]
                    ik = iv[k, c]
                    for b in range(lanes):
                        ik[b] = _ONE / vk[b]
                        tmp[b] *= math.sqrt(ik[b])
                lk = lc[k]
                _log_lanes(tmp, lk, lanes, fbits, ibits, mbits, mfloat)
                nkk = nk[k]
                for b in range(lanes):
                    lk[b] += log_norm
                    nkk[b] = _ZERO
                for c in range(n_channels):
                    s1k = s1[k, c]
                    s2k = s2[k, c]
                    for b in range(lanes):
                        s1k[b] = _ZERO
                        s2k[b] = _ZERO
            if rgb:
                for arr in (a0, a1, a2, q0, q1, q2):
                    arr[:] = _ZERO
            for b in range(lanes):
                total[b] = _ZERO
            for n in range(n_samples):
                # E-step: responsibilities of sample n.
                for k in range(n_components):
                    if rgb:
                        _rgb_log_density(
                            x[n, 0],
                            x[n, 1],
                            x[n, 2],
                            mu[k, 0],
                            mu[k, 1],
                            mu[k, 2],
                            iv[k, 0],
                            iv[k, 1],
                            iv[k, 2],
                            lc[k],
                            lp[k],
                        )
                        continue
                    lpk = lp[k]
                    for b in range(lanes):
                        lpk[b] = _ZERO
                    for c in range(n_channels):
                        xc = x[n, c]
                        mk = mu[k, c]
                        ik = iv[k, c]
                        for b in range(lanes):
                            d = xc[b] - mk[b]
                            lpk[b] += d * d * ik[b]
                    lk = lc[k]
                    for b in range(lanes):
                        lpk[b] = lk[b] - _HALF * lpk[b]
                lp0 = lp[0]
                for b in range(lanes):
                    best[b] = lp0[b]
                for k in range(1, n_components):
                    lpk = lp[k]
                    for b in range(lanes):
                        best[b] = max(best[b], lpk[b])
                for b in range(lanes):
                    ssum[b] = _ZERO
                for k in range(n_components):
                    lpk = lp[k]
                    for b in range(lanes):
                        e = _exp_neg(lpk[b] - best[b])
                        lpk[b] = e
                        ssum[b] += e
                _log_lanes(ssum, tmp, lanes, fbits, ibits, mbits, mfloat)
                for b in range(lanes):
                    total[b] += best[b] + tmp[b]
                    ssum[b] = _ONE / ssum[b]
                # Sufficient statistics around each component's current mean.
                for k in range(n_components):
                    if rgb:
                        _rgb_statistics(
                            x[n, 0],
                            x[n, 1],
                            x[n, 2],
                            mu[k, 0],
                            mu[k, 1],
                            mu[k, 2],
                            lp[k],
                            ssum,
                            nk[k],
                            a0[k],
                            a1[k],
                            a2[k],
                            q0[k],
                            q1[k],
                            q2[k],
                        )
                        continue
                    lpk = lp[k]
                    nkk = nk[k]
                    for b in range(lanes):
                        r = lpk[b] * ssum[b]
                        lpk[b] = r
                        nkk[b] += r
                    for c in range(n_channels):
                        xc = x[n, c]
                        mk = mu[k, c]
                        s1k = s1[k, c]
                        s2k = s2[k, c]
                        for b in range(lanes):
                            d = xc[b] - mk[b]
                            rd = lpk[b] * d
                            s1k[b] += rd
                            s2k[b] += rd * d
            if rgb:
                for k in range(n_components):
                    _copy(s1[k, 0], a0[k])
                    _copy(s1[k, 1], a1[k])
                    _copy(s1[k, 2], a2[k])
                    _copy(s2[k, 0], q0[k])
                    _copy(s2[k, 1], q1[k])
                    _copy(s2[k, 2], q2[k])
            n_active = _ZERO
            for b in range(lanes):
                last = total[b] * inv_n
                keep = active[b]
                converged = check and abs(last - prev[b]) < ftol
                prev[b] = last if keep > _ZERO else prev[b]
                active[b] = _ZERO if converged else keep
                updating[b] = keep
                n_active += active[b]
            # M-step, in the lanes still updating.
            for k in range(n_components):
                nkk = nk[k]
                wk = w[k]
                for b in range(lanes):
                    nkk[b] += eps10
                    wk[b] = nkk[b] * weight_scale if updating[b] > _ZERO else wk[b]
                for c in range(n_channels):
                    mk = mu[k, c]
                    vk = var[k, c]
                    s1k = s1[k, c]
                    s2k = s2[k, c]
                    for b in range(lanes):
                        shift = s1k[b] / nkk[b]
                        v = max(s2k[b] / nkk[b] - shift * shift, _ZERO) + reg
                        go = updating[b] > _ZERO
                        mk[b] = mk[b] + shift if go else mk[b]
                        vk[b] = v if go else vk[b]
            if n_active == _ZERO:
                break
        _store_block(block, w, mu, var, prev, active, W, MU, VAR, PREV, ACTIVE)


@njit(**_OPTS)
def _store_sorted(W, MU, VAR, weights, means, variances, items):
    # Each pixel's components, sorted by weight, heaviest first (stable), into
    # (P, K) and (P, K, C) outputs; items: blocks of BLOCK_PIXELS pixels.
    n_components, n_channels, n_pixels = MU.shape
    order = np.empty(n_components, np.int64)
    for item in items:
        for p in range(item * BLOCK_PIXELS, min((item + 1) * BLOCK_PIXELS, n_pixels)):
            for i in range(n_components):
                order[i] = i
            for i in range(1, n_components):
                j = i
                while j > 0 and W[order[j], p] > W[order[j - 1], p]:
                    order[j], order[j - 1] = order[j - 1], order[j]
                    j -= 1
            for i in range(n_components):
                k = order[i]
                weights[p, i] = W[k, p]
                for c in range(n_channels):
                    means[p, i, c] = MU[k, c, p]
                    variances[p, i, c] = VAR[k, c, p]


def fit_pixels(samples, offsets, scales, n_components, max_iter, tol, reg_covar):
    """Start and run EM on every pixel of a learning buffer.

    samples: ``(N, P, C)`` in the video's dtype; offsets, scales: ``(N,)`` map sample n
    to the model's scale.  The start splits each pixel's samples into K brightness
    quantiles (``max_iter=0`` returns it).  EM runs in rounds: after each, the pixels
    still improving are packed into fresh blocks, so a block's lanes rarely idle waiting
    for its slowest pixel.  Returns weights ``(P, K)``, means and variances ``(P, K, C)``,
    float32, components sorted by weight, heaviest first.
    """
    samples, offsets = _supported(samples, offsets)
    scales = np.asarray(scales, np.float32)
    n_samples, n_pixels, n_channels = samples.shape
    k = int(n_components)
    starts = np.array([(i * n_samples) // k for i in range(k + 1)], np.int64)
    state = (
        np.empty((k, n_pixels), np.float32),
        np.empty((k, n_channels, n_pixels), np.float32),
        np.empty((k, n_channels, n_pixels), np.float32),
        np.empty(n_pixels, np.float32),
        np.empty(n_pixels, np.float32),
    )
    lanes = FIT_LANES
    pixels = np.arange(n_pixels, dtype=np.int64)
    n_blocks = (n_pixels + lanes - 1) // lanes
    common = (offsets, scales)
    sort = None if n_samples <= RANK_SAMPLES else True
    _in_threads(
        _start_blocks,
        n_blocks,
        samples,
        pixels,
        *common,
        starts,
        _F(reg_covar),
        lanes,
        sort,
        *state,
    )
    done = 0
    while done < max_iter and len(pixels):
        iterations = min(FIT_ROUND if done else FIT_FIRST_ROUND, int(max_iter) - done)
        _in_threads(
            _em_blocks,
            (len(pixels) + lanes - 1) // lanes,
            samples,
            pixels,
            *common,
            iterations,
            float(tol),
            _F(reg_covar),
            lanes,
            *state,
        )
        done += iterations
        pixels = np.flatnonzero(state[4] > 0)
    weights = np.empty((n_pixels, k), np.float32)
    means = np.empty((n_pixels, k, n_channels), np.float32)
    variances = np.empty((n_pixels, k, n_channels), np.float32)
    _in_threads(_store_sorted, _blocks(n_pixels), *state[:3], weights, means, variances)
    return weights, means, variances


# --- scoring and labelling, one tile of pixels over all frames ---------------------------
@njit(**_OPTS)
def _load_frame(row, o, s, x):
    # x[c, b] = channel c of pixel b of one frame's tile (row: (n * C,) interleaved).
    n_channels = x.shape[0]
    n = row.shape[0] // n_channels
    if n_channels == 3:  # a constant stride: LLVM de-interleaves with shuffles
        x0 = x[0]
        x1 = x[1]
        x2 = x[2]
        for b in range(n):
            x0[b] = (_F(row[3 * b]) - o) * s
            x1[b] = (_F(row[3 * b + 1]) - o) * s
            x2[b] = (_F(row[3 * b + 2]) - o) * s
    else:
        for c in range(n_channels):
            xc = x[c]
            for b in range(n):
                xc[b] = (_F(row[n_channels * b + c]) - o) * s


@njit(**_OPTS)
def _densities(x, mu, iv, lc, lp, best, n):
    # lp[k] = lc[k] - 0.5 sum_c (x_c - mu_kc)^2 iv_kc: component k's weighted log-density;
    # best = the largest of them.
    n_components, n_channels, _ = mu.shape
    for k in range(n_components):
        if n_channels == 3:
            _rgb_log_density(
                x[0],
                x[1],
                x[2],
                mu[k, 0],
                mu[k, 1],
                mu[k, 2],
                iv[k, 0],
                iv[k, 1],
                iv[k, 2],
                lc[k],
                lp[k],
            )
            continue
        lpk = lp[k]
        for b in range(n):
            lpk[b] = _ZERO
        for c in range(n_channels):
            xc = x[c]
            mk = mu[k, c]
            ik = iv[k, c]
            for b in range(n):
                d = xc[b] - mk[b]
                lpk[b] += d * d * ik[b]
        lk = lc[k]
        for b in range(n):
            lpk[b] = lk[b] - _HALF * lpk[b]
    lp0 = lp[0]
    for b in range(n):
        best[b] = lp0[b]
    for k in range(1, n_components):
        lpk = lp[k]
        for b in range(n):
            best[b] = max(best[b], lpk[b])


@njit(**_OPTS)
def _log_sum_exp(lp, best, n, ssum, ll, fbits, ibits, mbits, mfloat):
    # ll = log sum_k exp(lp[k]), computed as best + log sum_k exp(lp[k] - best).  One
    # function for the scores and the labels, so both decide with the same arithmetic.
    for b in range(n):
        ssum[b] = _ZERO
    for k in range(lp.shape[0]):
        lpk = lp[k]
        for b in range(n):
            ssum[b] += _exp_neg(lpk[b] - best[b])
    _log_lanes(ssum, ll, n, fbits, ibits, mbits, mfloat)
    for b in range(n):
        ll[b] += best[b]


@njit(**_OPTS)
def _shadow_labels(x, background, labels, n, tau, distortion2):
    # A foreground pixel that is the background colour darkened by a in [tau, 1), give or
    # take a relative colour distortion |x - a bg| < distortion |a bg|, becomes 2.
    n_channels = x.shape[0]
    for b in range(n):
        num = _ZERO
        den = _ZERO
        for c in range(n_channels):
            m = background[c, b]
            num += x[c, b] * m
            den += m * m
        a = num / max(den, _F(1e-30))
        dist = _ZERO
        for c in range(n_channels):
            d = x[c, b] - a * background[c, b]
            dist += d * d
        shadow = den > _ZERO and a >= tau and a < _ONE and dist < distortion2 * a * a * den
        labels[b] = 2 if labels[b] == 1 and shadow else labels[b]


#: Component flags: not background, background, background with its variances capped (the
#: fallback of a pixel whose background components are all too broad).
NOT_BG, BACKGROUND, BACKGROUND_CAPPED = 0, 1, 2


#: What ``_score_tiles`` computes: labels, distances or log-likelihoods.
MODE_LABELS, MODE_DISTANCE, MODE_LOG_LIKELIHOOD = 0, 1, 2


# One compiled kernel for distances, log-likelihoods and labels: the scores go to out_sc
# (float32) or the labels to out_lab (uint8), the other being an empty array.  (Each out
# dtype compiled separately would double the compilation of a first run.)  The loop over
# tiles and the one over frames are in this one function: each level of jitted calls
# compiles its callees again (see _start_blocks).
@njit(**_OPTS)
def _score_tiles(
    frames,
    off,
    sc,
    mu,
    iv,
    lc,
    threshold,
    tau,
    distortion2,
    mode,
    loglik,
    out_sc,
    out_lab,
    tile,
    items,
):
    # Distance: with lc 0 for background components (and hugely negative for the others)
    # best = -d2 / 2, d2 the smallest squared Mahalanobis distance to a background
    # component; the distance is sqrt(d2 / C).  Labels threshold that same float32 value.
    # loglik: None, or True for log-likelihoods (mode ignored): a branch chosen by the
    # argument's type, so distances and labels do not compile the log-sum-exp.
    n_frames = frames.shape[0]
    n_components, n_channels, n_pixels = mu.shape
    scale = _F(-2.0) / _F(n_channels)
    for item in items:
        p0 = item * tile
        n = min(tile, n_pixels - p0)
        # The tile's model is copied once into contiguous scratch, which stays in cache
        # while the frames stream past it.  (Even for one frame, on demand: reading the
        # model in place compiled a second scoring kernel, 2 s more of a first run.)
        m_ = np.empty((n_components, n_channels, n), np.float32)
        i_ = np.empty((n_components, n_channels, n), np.float32)
        l_ = np.empty((n_components, n), np.float32)
        for k in range(n_components):
            _copy(l_[k], lc[k, p0 : p0 + n])
            for c in range(n_channels):
                _copy(m_[k, c], mu[k, c, p0 : p0 + n])
                _copy(i_[k, c], iv[k, c, p0 : p0 + n])
        x = np.empty((n_channels, n), np.float32)
        lp = np.empty((n_components, n), np.float32)
        best = np.empty(n, np.float32)
        ssum = np.empty(n, np.float32)
        ll = np.empty(n, np.float32)
        lab = np.empty(n, np.uint8)
        if loglik is not None:
            fbits, ibits, mbits, mfloat = _log_scratch(n)
        for t in range(n_frames):
            _load_frame(frames[t, p0 * n_channels : (p0 + n) * n_channels], off[t], sc[t], x)
            _densities(x, m_, i_, l_, lp, best, n)
            if loglik is not None:
                _log_sum_exp(lp, best, n, ssum, ll, fbits, ibits, mbits, mfloat)
                out_t = out_sc[t, p0 : p0 + n]
                for b in range(n):
                    out_t[b] = ll[b]
                continue
            for b in range(n):
                ll[b] = math.sqrt(max(best[b] * scale, _ZERO))
            if mode == MODE_DISTANCE:
                out_t = out_sc[t, p0 : p0 + n]
                for b in range(n):
                    out_t[b] = ll[b]
                continue
            for b in range(n):
                lab[b] = 1 if ll[b] > threshold else 0
            if tau > _ZERO:
                _shadow_labels(x, m_[0], lab, n, tau, distortion2)
            out_t = out_lab[t, p0 : p0 + n]
            for b in range(n):
                out_t[b] = lab[b]


_NO_SCORES = np.empty((0, 0), np.float32)
_NO_LABELS = np.empty((0, 0), np.uint8)


def score_pixels(
    frames,
    offsets,
    scales,
    mu,
    iv,
    lc,
    out,
    threshold=0.0,
    shadow_tau=0.0,
    shadow_distortion=0.0,
    log_likelihood=False,
):
    """Distances (``out`` float32) or labels (``out`` uint8) of every pixel and frame.

    frames: ``(T, P * C)`` in the video's dtype; offsets, scales: ``(T,)``; mu, iv:
    ``(K, C, P)`` float32 means and inverse variances; lc: ``(K, P)`` float32, 0 for a
    background component and a huge negative number for the others.  The distance is
    ``sqrt(min_k sum_c (x_c - mu_kc)^2 iv_kc / C)`` over the background components k: a
    root-mean-square z-score.  With a uint8 ``out``, 1 marks a distance above
    ``threshold``, exactly as thresholding the float32 distances would, and 2 a shadow
    (``shadow_tau > 0``) among those.  With ``log_likelihood``, ``out`` gets the
    log-likelihood of each pixel under the mixture whose log-constants (log weight plus
    the Gaussian's normaliser) ``lc`` holds.
    """
    tile = SCORE_TILE
    n_pixels = mu.shape[2]
    scales = np.asarray(scales, np.float32)
    labels = out.dtype == np.uint8
    mode = MODE_LABELS if labels else MODE_LOG_LIKELIHOOD if log_likelihood else MODE_DISTANCE
    # Other dtypes are converted SCORE_FRAMES frames at a time, to bound the copy.
    step = len(frames) if frames.dtype in (np.uint8, np.float32) else SCORE_FRAMES
    for t in range(0, len(frames), max(step, 1)):
        block, block_offsets = _supported(frames[t : t + step], offsets[t : t + step])
        _in_threads(
            _score_tiles,
            (n_pixels + tile - 1) // tile,
            block,
            block_offsets,
            scales[t : t + step],
            mu,
            iv,
            lc,
            _F(threshold),
            _F(shadow_tau),
            _F(float(shadow_distortion) ** 2),
            mode,
            True if mode == MODE_LOG_LIKELIHOOD else None,
            _NO_SCORES if labels else out[t : t + step],
            out[t : t + step] if labels else _NO_LABELS,
            tile,
        )


# --- spatial consensus: a neighbour's background explains the colour -----------------------
CONSENSUS_GAP = 16  # pixels not needed between two that are, within one run of a row


@njit(inline="always", **_OPTS)
def _consensus_needed(radii, labels, scores, use_labels, t, p):
    # The radius of pixel p in frame t if it has something to change, else 0.
    r = np.int64(radii[p])
    if r == 0:
        return 0
    if use_labels:
        return r if labels[t, p] != 0 else 0
    return r if scores[t, p] > _ZERO else 0


@njit(**_OPTS)
def _start_run(row, base, lo, hi, o, s, x, best):
    # A consensus run's colours, (C, width) on the model's scale, and its best distances
    # not yet found (1e30).
    n_channels = x.shape[0]
    for c in range(n_channels):
        xc = x[c]
        for j in range(lo, hi):
            xc[j] = (_F(row[(base + j) * n_channels + c]) - o) * s
    for j in range(lo, hi):
        best[j] = _F(1e30)


@njit(**_OPTS)
def _consensus_frames(
    frames, off, sc, mu, iv, not_bg, in_row, radii, width, penalty, threshold, labels, scores,
    items,
):  # fmt: skip
    # labels (uint8) given: clear a labelled pixel that a neighbour's background explains
    # (penalty x its distance <= threshold); scores (float32) given: lower a pixel's score
    # to penalty x its neighbours' distance where that is smaller.  Only pixels with a
    # radius and something to change are needed; each row is computed in runs of them
    # (gaps up to CONSENSUS_GAP computed too), one loop for both modes, so labels and
    # scores decide with the same float32 arithmetic.  not_bg (K, P): 0 for a background
    # component, 1e30 for another (it never wins).
    n_components, n_channels, n_pixels = mu.shape
    height = n_pixels // width
    x = np.empty((n_channels, width), np.float32)
    best = np.empty(width, np.float32)
    d = np.empty(width, np.float32)
    inv_c = _ONE / _F(n_channels)
    big = _F(1e30)
    use_labels = labels.shape[0] > 0
    for t in items:
        row = frames[t]
        o = off[t]
        s = sc[t]
        for y in range(height):
            base = y * width
            # Most rows need nothing: a branch-free test first (SIMD).
            any_needed = False
            if use_labels:
                for xp in range(width):
                    any_needed |= (radii[base + xp] > 0) & (labels[t, base + xp] != 0)
            else:
                for xp in range(width):
                    any_needed |= (radii[base + xp] > 0) & (scores[t, base + xp] > _ZERO)
            if not any_needed:
                continue
            xp = 0
            while xp < width:
                reach = _consensus_needed(radii, labels, scores, use_labels, t, base + xp)
                if reach == 0:
                    xp += 1
                    continue
                lo = last = xp
                xp += 1
                while xp < width and xp - last <= CONSENSUS_GAP:
                    r = _consensus_needed(radii, labels, scores, use_labels, t, base + xp)
                    if r > 0:
                        last = xp
                        reach = max(reach, r)
                    xp += 1
                hi = last + 1
                # best[lo:hi] = the smallest squared distance (summed over channels)
                # from each pixel's colour in row y to a background component of a
                # pixel within its radius, itself excluded: neighbour offset by offset,
                # over contiguous lanes (SIMD).
                _start_run(row, base, lo, hi, o, s, x, best)
                for dy in range(-reach, reach + 1):
                    yy = y + dy
                    if yy < 0 or yy >= height:
                        continue
                    for dx in range(-reach, reach + 1):
                        if dy == 0 and dx == 0:
                            continue
                        ring = max(abs(dy), abs(dx))
                        a, b = max(lo, -dx), min(hi, width - dx)
                        n = b - a
                        q = yy * width + dx + a  # >= 0: slices from here index from 0 (SIMD)
                        bs = best[a:b]
                        ds = d[:n]
                        for k in range(n_components):
                            if not in_row[k, yy]:  # no pixel of that row has it as
                                continue  # background
                            nk = not_bg[k, q : q + n]
                            for i in range(n):
                                ds[i] = nk[i]
                            for c in range(n_channels):
                                xs = x[c, a:b]
                                m = mu[k, c, q : q + n]
                                v = iv[k, c, q : q + n]
                                for i in range(n):
                                    e = xs[i] - m[i]
                                    ds[i] += e * e * v[i]
                            if ring == 1:  # every pixel of the run reaches it
                                for i in range(n):
                                    bs[i] = min(bs[i], ds[i])
                            else:
                                rs = radii[base + a : base + b]
                                for i in range(n):
                                    di = ds[i] if np.int64(rs[i]) >= ring else big
                                    bs[i] = min(bs[i], di)
                for xq in range(lo, hi):
                    p = base + xq
                    if radii[p] == 0:
                        continue
                    near = penalty * _F(math.sqrt(best[xq] * inv_c))
                    if use_labels:
                        if labels[t, p] != 0 and near <= threshold:
                            labels[t, p] = 0
                    elif scores[t, p] > _ZERO:
                        scores[t, p] = min(scores[t, p], near)


@njit(**_OPTS)
def _background_first(w, mu, var, nm, ratio, out_mu, out_iv, out_n, items):
    n_components, n_channels, n_pixels = mu.shape
    for i in items:
        for p in range(i * BLOCK_PIXELS, min((i + 1) * BLOCK_PIXELS, n_pixels)):
            j = 0
            for k in range(n_components):
                # As _online_tiles ranks: the weights ahead of slot k, summed in order.
                ahead = _ZERO
                wk = w[k, p]
                for m in range(n_components):
                    wm = w[m, p]
                    first = wm >= wk if m < k else wm > wk
                    ahead += wm if first and m != k else _ZERO
                if _F(k) < nm[p] and ahead <= ratio:
                    for c in range(n_channels):
                        out_mu[j, c, p] = mu[k, c, p]
                    out_iv[j, p] = _ONE / var[k, p]
                    j += 1
            out_n[p] = j


def background_first(state, ratio, out):
    """The on-line state's background components, for :func:`online_consensus`.

    state: weights ``(K, P)``, means ``(K, C, P)``, isotropic variances ``(K, P)``, slots
    in use ``(P,)``, all float32.  A slot is background as :func:`online_update` decides:
    in use, with the weights ranked before it (heavier, or as heavy in a lower slot)
    summing to at most ``ratio``.  Writes ``out``, arrays kept from call to call (fresh
    memory costs page faults): each pixel's background means ``(K, C, P)`` and inverse
    variances ``(K, P)`` float32 in its first slots, and their number ``(P,)`` uint8; the
    slots after them are left as they were (nothing reads them).
    """
    weights, means, variances, in_use = state[:4]
    _in_threads(
        _background_first,
        _blocks(weights.shape[1]),
        weights,
        means,
        variances,
        in_use,
        _F(ratio),
        *out,
    )


@njit(**_OPTS)
def _online_consensus_rows(
    frames, off, sc, mu, iv, n_bg, width, penalty, threshold, radii, scores, misses, saves,
    items,
):  # fmt: skip
    # As _consensus_frames, for the on-line model's pixels beyond the threshold only, row
    # by row (a thread owns whole rows, so the per-pixel counts need no lock), one ring
    # of neighbours after another: after ring r a pixel counts a save at r if the
    # nearest background within r explains it, and takes that distance if its radius
    # is r; a pixel then within the threshold is done.  n_bg (P,): background slots
    # first, so a slot that no pixel of a run has as background ends the slots.
    n_frames = scores.shape[0]
    n_components, n_channels, n_pixels = mu.shape
    height = n_pixels // width
    widest = saves.shape[0]
    x = np.empty((n_channels, width), np.float32)
    best = np.empty(width, np.float32)
    d = np.empty(width, np.float32)
    found = np.empty(width, np.int64)
    inv_c = _ONE / _F(n_channels)
    big = _F(1e30)
    for y in items:
        base = y * width
        for t in range(n_frames):
            row = frames[t]
            o = off[t]
            s = sc[t]
            here = scores[t, base : base + width]
            # The row's misses, in order: 32 pixels at a time, a chunk without any
            # skipped with one branch-free test (SIMD; most rows have none, a busy one a
            # few percent).
            count = 0
            for c0 in range(0, width, 32):
                chunk = here[c0 : min(c0 + 32, width)]
                any_chunk = False
                for i in range(chunk.shape[0]):
                    any_chunk |= chunk[i] > threshold
                if any_chunk:
                    for i in range(chunk.shape[0]):
                        found[count] = c0 + i
                        count += 1 if chunk[i] > threshold else 0
            f = 0
            while f < count:
                # A run: misses at most CONSENSUS_GAP apart (the pixels between computed too).
                lo = last = found[f]
                f += 1
                while f < count and found[f] - last <= CONSENSUS_GAP:
                    last = found[f]
                    f += 1
                hi = last + 1
                _start_run(row, base, lo, hi, o, s, x, best)
                for r in range(1, widest + 1):
                    # best[lo:hi]: the smallest squared distance (summed over channels)
                    # to a background component of a pixel within r, over contiguous
                    # lanes (SIMD), ring r added to the rings before it.
                    for dy in range(-r, r + 1):
                        yy = y + dy
                        if yy < 0 or yy >= height:
                            continue
                        step = 1 if dy == -r or dy == r else 2 * r
                        for dx in range(-r, r + 1, step):
                            a, b = max(lo, -dx), min(hi, width - dx)
                            n = b - a
                            if n <= 0:
                                continue
                            q = yy * width + dx + a  # >= 0: slices index from 0 (SIMD)
                            bs = best[a:b]
                            ds = d[:n]
                            nb = n_bg[q : q + n]
                            for k in range(n_components):
                                used = False
                                for i in range(n):
                                    used |= nb[i] > k
                                if not used:
                                    break
                                v = iv[k, q : q + n]
                                for i in range(n):
                                    ds[i] = _ZERO
                                for c in range(n_channels):
                                    xs = x[c, a:b]
                                    m = mu[k, c, q : q + n]
                                    for i in range(n):
                                        e = xs[i] - m[i]
                                        ds[i] += e * e * v[i]
                                for i in range(n):
                                    di = ds[i] if nb[i] > k else big
                                    bs[i] = min(bs[i], di)
                    for xq in range(lo, hi):
                        score = here[xq]
                        if not score > threshold:
                            continue
                        p = base + xq
                        near = penalty * _F(math.sqrt(best[xq] * inv_c))
                        if r == 1:
                            misses[p] += 1
                        if near <= threshold:
                            saves[r - 1, p] += 1
                        if np.int64(radii[p]) == r:
                            here[xq] = min(score, near)


def online_consensus(
    frames, offsets, scales, background, width, penalty, threshold, radii, scores, misses, saves
):
    """The on-line model's spatial consensus on a window's frames, in place.

    frames: ``(T, P * C)``; background: :func:`background_first`'s arrays; radii ``(P,)``
    uint8, each pixel's neighbourhood by the evidence so far (0: it decides alone);
    scores ``(T, P)`` float32 distances.  For every score above ``threshold`` (a miss)
    and every r up to ``len(saves)``, the neighbours' distance within r is the
    root-mean-square z-score of the pixel's colour to the nearest background component
    of a pixel at most r away (Chebyshev, itself excluded), times ``penalty``: it adds
    1 to ``misses[p]`` (``(P,)`` int32) and, when within the threshold, to
    ``saves[r - 1, p]`` (``(R, P)`` int32); a pixel whose radius is r takes it where it
    is smaller.  A pixel brought within the threshold is not counted at wider radii.
    """
    block, block_offsets = _supported(frames, offsets)
    _in_threads(
        _online_consensus_rows,
        len(radii) // int(width),
        block,
        block_offsets,
        np.asarray(scales, np.float32),
        *background,
        int(width),
        _F(penalty),
        _F(threshold),
        radii,
        scores,
        misses,
        saves,
    )


_NO_FLOATS = np.empty((0, 0), np.float32)
_NO_BYTES = np.empty((0, 0), np.uint8)


def spatial_consensus(
    frames, offsets, scales, mu, iv, is_bg, radii, width, penalty, out, threshold=0.0
):
    """Apply spatial consensus to labels or scores, in place.

    frames: ``(T, P * C)``; mu, iv: ``(K, C, P)``; is_bg: ``(K, P)`` bool; radii:
    ``(P,)`` uint8, each pixel's neighbourhood (0: it decides alone).  The neighbours'
    distance of a pixel is the root-mean-square z-score (as :func:`score_pixels`') of its
    colour to the nearest background component of a pixel at most ``radii[p]`` away
    (Chebyshev, itself excluded).  ``out`` uint8 labels: a labelled pixel whose
    neighbours' distance times ``penalty`` is at most ``threshold`` becomes 0.  ``out``
    float32 distances: each becomes the smaller of itself and ``penalty`` times the
    neighbours' distance.  Both decide alike: labels stay exactly the scores above the
    threshold.
    """
    # not_bg: 0 for a background component, 1e30 for another (it never wins); in_row
    # (K, rows): whether any pixel of a row has slot k as background.
    not_bg = np.where(is_bg, _ZERO, _F(1e30)).astype(np.float32)
    in_row = np.ascontiguousarray(is_bg.reshape(len(is_bg), -1, int(width)).any(axis=2))
    scales = np.asarray(scales, np.float32)
    labels = out.dtype == np.uint8
    step = len(frames) if frames.dtype in (np.uint8, np.float32) else SCORE_FRAMES
    for t in range(0, len(frames), max(step, 1)):
        block, block_offsets = _supported(frames[t : t + step], offsets[t : t + step])
        _in_threads(
            _consensus_frames,
            len(block),
            block,
            block_offsets,
            scales[t : t + step],
            mu,
            iv,
            not_bg,
            in_row,
            radii,
            int(width),
            _F(penalty),
            _F(threshold),
            out[t : t + step] if labels else _NO_BYTES,
            _NO_FLOATS if labels else out[t : t + step],
        )


@njit(**_OPTS)
def _scoring_arrays(weights, means, variances, flags, not_background, vmax, mu, iv, lc, ld, items):
    n_pixels, n_components, n_channels = means.shape
    for item in items:
        for p in range(item * BLOCK_PIXELS, min((item + 1) * BLOCK_PIXELS, n_pixels)):
            total = 0.0
            for k in range(n_components):
                if flags[p, k]:
                    total += weights[p, k]
            for k in range(n_components):
                log_det = 0.0
                for c in range(n_channels):
                    v = np.float64(variances[p, k, c])
                    if flags[p, k] == BACKGROUND_CAPPED:
                        v = min(v, vmax)
                    mu[k, c, p] = means[p, k, c]
                    iv[k, c, p] = 1.0 / v
                    log_det += math.log(v)
                if flags[p, k]:
                    lc[k, p] = math.log(max(weights[p, k], 1e-30) / total) - 0.5 * (
                        n_channels * LOG_2PI + log_det
                    )
                    ld[k, p] = 0.0
                else:
                    lc[k, p] = not_background
                    ld[k, p] = not_background


def scoring_arrays(weights, means, variances, flags, not_background, vmax):
    """The scoring kernels' model arrays, from ``(P, K[, C])`` weights, means, variances.

    flags: ``(P, K)`` uint8, nonzero for a background component (``BACKGROUND_CAPPED``: its
    variances capped at ``vmax``).  Returns means and inverse variances ``(K, C, P)``, and
    two ``(K, P)`` log-constant arrays, all float32: for the log-likelihood, the log of
    each background component's renormalised weight plus its Gaussian's normaliser
    (computed in float64); for the distance, 0; ``not_background`` for the others.
    """
    n_pixels, k, c = means.shape
    mu = np.empty((k, c, n_pixels), np.float32)
    iv = np.empty((k, c, n_pixels), np.float32)
    lc = np.empty((k, n_pixels), np.float32)
    ld = np.empty((k, n_pixels), np.float32)
    _in_threads(
        _scoring_arrays,
        _blocks(n_pixels),
        weights,
        means,
        variances,
        flags,
        float(not_background),
        float(vmax),
        mu,
        iv,
        lc,
        ld,
    )
    return mu, iv, lc, ld


# --- which components are background ---------------------------------------------------------
CHOOSE_LANES = 64  # pixels whose learning samples are labelled together


@njit(inline="always", **_OPTS)
def _mean_variance(var, p, k):
    v = 0.0
    for c in range(var.shape[2]):
        v += var[p, k, c]
    return v / var.shape[2]


@njit(**_OPTS)
def _choose_flags(p, b, z, resp, w, var, nb, w_min, l_still, l_short, short_ratio, l_rest,
                  share, vmax, absorb, mass, rmass, flags):  # fmt: skip
    # The decision for pixel p (lane b of z and resp), in time order.
    n_samples = z.shape[0]
    n_components = w.shape[1]
    # k0: the component of the earliest run of l_still consecutive samples (a still
    # scene), among those of weight >= w_min; the heaviest when there is none.
    k0 = 0
    end = n_samples
    run = 0
    for i in range(n_samples):
        run = run + 1 if i > 0 and z[i, b] == z[i - 1, b] else 1
        if run >= l_still and w[p, z[i, b]] >= w_min:
            k0 = z[i, b]
            end = i
            break
    # An earlier, shorter still moment (l_short samples) is the scene when its colour
    # weighs at least short_ratio times k0's: plants that sway rarely hold a colour for
    # l_still samples, and a person who stands later would; a car that stops early
    # weighs less than the road.
    need = max(w_min, short_ratio * w[p, k0])
    run = 0
    for i in range(end):
        run = run + 1 if i > 0 and z[i, b] == z[i - 1, b] else 1
        if run >= l_short and w[p, z[i, b]] >= need:
            k0 = z[i, b]
            break
    # Rests: runs of >= l_rest consecutive samples away from k0 (shorter than absorb,
    # when absorb > 0).  A component is resting when most of its mass lies in rests.
    for k in range(n_components):
        mass[k] = 0.0
        rmass[k] = 0.0
    i = 0
    while i < n_samples:
        j = i
        while j < n_samples and z[j, b] != k0:
            j += 1
        run = j - i
        is_rest = run >= l_rest and (absorb <= 0 or run <= absorb)
        for m in range(i, max(j, i + 1)):
            for k in range(n_components):
                mass[k] += resp[m, k, b]
                if is_rest:
                    rmass[k] += resp[m, k, b]
        i = max(j, i + 1)
    # A component broader than vmax is a catch-all of passing objects (or leaves that
    # sway): not background, and its runs away from k0 are no object at rest.
    any_bg = False
    for k in range(n_components):
        broad = _mean_variance(var, p, k) > vmax
        resting = k != k0 and not broad and rmass[k] >= share * max(mass[k], 1e-6)
        flags[p, k] = BACKGROUND if (k < nb[p] or k == k0) and not resting else NOT_BG
        any_bg = any_bg or flags[p, k] != NOT_BG
    if not any_bg:
        flags[p, k0] = BACKGROUND
    # A pixel left with no background once the broad ones go keeps its heaviest
    # background so far (never an object at rest: a bag left on a sofa that passers-by
    # made broad), its variances capped.
    kept = 0
    while flags[p, kept] == NOT_BG:
        kept += 1
    any_bg = False
    for k in range(n_components):
        if _mean_variance(var, p, k) > vmax:
            flags[p, k] = NOT_BG
        any_bg = any_bg or flags[p, k] != NOT_BG
    if not any_bg:
        flags[p, kept] = BACKGROUND_CAPPED


@njit(**_OPTS)
def _choose_blocks(
    samples, off, sc, w, mu, var, nb, w_min, l_still, l_short, short_ratio, l_rest, share, vmax,
    absorb, flags, items,
):  # fmt: skip
    n_samples, n_pixels, n_channels = samples.shape
    n_components = w.shape[1]
    z = np.empty((n_samples, CHOOSE_LANES), np.int64)
    # A run-time lane count, not the constant: _densities is then the scoring's own
    # specialisation (a literal 64 compiled it a second time, 1 s of a first run).
    lanes = z.shape[1]
    resp = np.empty((n_samples, n_components, lanes), np.float32)
    x = np.empty((n_channels, lanes), np.float32)
    lmu = np.empty((n_components, n_channels, lanes), np.float32)
    liv = np.empty((n_components, n_channels, lanes), np.float32)
    llc = np.empty((n_components, lanes), np.float32)
    lp = np.empty((n_components, lanes), np.float32)
    best = np.empty(lanes, np.float32)
    tot = np.empty(lanes, np.float32)
    bk = np.empty(lanes, np.int64)
    mass = np.empty(n_components)
    rmass = np.empty(n_components)
    for item in items:
        stop = min((item + 1) * BLOCK_PIXELS, n_pixels)
        for p0 in range(item * BLOCK_PIXELS, stop, lanes):
            count = min(lanes, stop - p0)
            # Each learning sample's most likely component (z[i, b]) and responsibilities
            # (resp[i, k, b]) for pixels p0 .. p0 + count, one per lane (float32, SIMD).  A
            # component 25 nats below the best gets none (exp(-25) is 1e-11 of it).
            for b in range(lanes):
                q = p0 + min(b, count - 1)  # lanes past the pixels repeat the last one
                for k in range(n_components):
                    s = 0.0
                    for c in range(n_channels):
                        v = np.float64(var[q, k, c])
                        s += math.log(v)
                        lmu[k, c, b] = mu[q, k, c]
                        liv[k, c, b] = _F(1.0 / v)
                    llc[k, b] = _F(math.log(max(np.float64(w[q, k]), 1e-12)) - 0.5 * s)
            for i in range(n_samples):
                o = _F(off[i])
                s = _F(sc[i])
                row = samples[i]
                for c in range(n_channels):
                    xc = x[c]
                    for b in range(lanes):
                        xc[b] = (_F(row[p0 + min(b, count - 1), c]) - o) * s
                _densities(x, lmu, liv, llc, lp, best, lanes)
                # The most likely component: the first that reaches the best.
                for b in range(lanes):
                    bk[b] = n_components
                for k in range(n_components - 1, -1, -1):
                    lk = lp[k]
                    for b in range(lanes):
                        bk[b] = k if lk[b] == best[b] else bk[b]
                zi = z[i]
                for b in range(lanes):
                    zi[b] = bk[b]
                    tot[b] = _ZERO
                for k in range(n_components):
                    lk = lp[k]
                    for b in range(lanes):
                        gap = lk[b] - best[b]
                        e = _exp_neg(gap) if gap > _F(-25.0) else _ZERO
                        lk[b] = _ONE if bk[b] == k else e
                        tot[b] += lk[b]
                for k in range(n_components):
                    lk = lp[k]
                    rk = resp[i, k]
                    for b in range(lanes):
                        rk[b] = lk[b] / tot[b]
            for b in range(count):
                _choose_flags(
                    p0 + b, b, z, resp, w, var, nb, w_min, l_still, l_short, short_ratio,
                    l_rest, share, vmax, absorb, mass, rmass, flags,
                )  # fmt: skip


def choose_background(
    samples,
    offsets,
    scales,
    weights,
    means,
    variances,
    n_background,
    w_min,
    l_still,
    l_short,
    short_ratio,
    l_rest,
    share,
    vmax,
    absorb,
):
    """Flag each pixel's background components from its learning samples, in time order.

    samples: ``(N, P, C)`` in the video's dtype (``(raw - offsets) * scales`` on the model
    scale); weights ``(P, K)``, means and variances ``(P, K, C)`` of the fit;
    n_background: ``(P,)`` the weight rule's count.  Background: the weight rule's
    components and k0, the colour of the earliest still moment (``l_still`` consecutive
    samples in one component of weight >= ``w_min``, or an earlier one of ``l_short``
    samples whose component weighs at least ``short_ratio`` times as much), less resting
    components (at least ``share`` of their mass in runs of >= ``l_rest`` samples away
    from k0, runs longer than ``absorb`` samples not counted when ``absorb`` > 0; a
    component broader than ``vmax`` never rests), less components whose mean variance
    exceeds ``vmax``; a pixel left with none keeps the heaviest of the others, capped.
    Returns ``(P, K)`` uint8 flags (``NOT_BG``, ``BACKGROUND``, ``BACKGROUND_CAPPED``).
    """
    n_pixels, k = weights.shape
    flags = np.zeros((n_pixels, k), np.uint8)
    if samples.dtype not in (np.uint8, np.float32):
        samples, offsets = _supported(samples, offsets)
    _in_threads(
        _choose_blocks,
        _blocks(n_pixels),
        samples,
        np.asarray(offsets, np.float64),
        np.asarray(scales, np.float64),
        weights,
        means,
        variances,
        n_background.astype(np.int64),
        float(w_min),
        int(l_still),
        int(l_short),
        float(short_ratio),
        int(l_rest),
        float(share),
        float(vmax),
        int(absorb),
        flags,
    )
    return flags


@njit(**_OPTS)
def _median_over_frames(values, out, items):
    n, n_pixels = values.shape
    column = np.empty(n, values.dtype)
    for i in items:
        for p in range(i * BLOCK_PIXELS, min((i + 1) * BLOCK_PIXELS, n_pixels)):
            for t in range(n):
                column[t] = values[t, p]
            out[p] = np.median(column)


def median_over_frames(values):
    """Each pixel's median over the first axis of ``(T, ...)`` float32 (numpy.median(axis=0)).

    In the input's dtype: an even count's middle pair is averaged in it.
    """
    flat = values.reshape(len(values), -1)
    out = np.empty(flat.shape[1], values.dtype)
    _in_threads(_median_over_frames, _blocks(flat.shape[1]), flat, out)
    return out.reshape(values.shape[1:])


# --- clean-up ------------------------------------------------------------------------------
@njit(**_OPTS)
def _majority_frames(frames, size, items):
    # Each frame t of items through the majority filter, in place (one function for the
    # loop over frames and the filter: see _start_blocks).
    _, height, width = frames.shape
    r = size // 2
    half = (size * size) // 2
    for t in items:
        labels = frames[t].copy()
        out = frames[t]
        col = np.zeros(width + 2 * r, np.uint16)  # per column: foreground in the window's rows
        inner = col[r : r + width]
        prefix = np.zeros(width + 2 * r + 1, np.int32)  # running sums of col: any size, O(1)
        for dy in range(-r, r + 1):
            row = labels[min(max(dy, 0), height - 1)]
            for x in range(width):
                inner[x] += 1 if row[x] == 1 else 0
        for y in range(height):
            if y > 0:
                enter = labels[min(y + r, height - 1)]
                leave = labels[max(y - r - 1, 0)]
                for x in range(width):
                    inner[x] += (1 if enter[x] == 1 else 0) - (1 if leave[x] == 1 else 0)
            for x in range(r):  # replicated border
                col[x] = inner[0]
                col[r + width + x] = inner[width - 1]
            for i in range(width + 2 * r):
                prefix[i + 1] = prefix[i] + np.int32(col[i])
            high = prefix[size : size + width]
            low = prefix[0:width]
            row = labels[y]
            out_row = out[y]
            for x in range(width):
                out_row[x] = 1 if high[x] - low[x] > half else (2 if row[x] == 2 else 0)


def majority_filter(labels, size):
    """Median-filter the foreground (label 1) of every frame, in place; shadows (2) stay
    where the filtered foreground does not cover them.

    The median of a binary neighbourhood is its majority: a box count over ``size`` x
    ``size`` with the border replicated, equal to ``cv2.medianBlur``.  labels:
    ``(T, Y, X)`` uint8.  In place, so a long stack costs no second stack of memory.
    """
    _in_threads(_majority_frames, labels.shape[0], labels, int(size))


# --- brightness ---------------------------------------------------------------------------
@njit(**_OPTS)
def _luminance_grid(frames, stride, offset, scale, out, items):
    n_channels = frames.shape[3]
    inv_c = _ONE / _F(n_channels)
    o = _F(offset)
    s = _F(scale)
    for t in items:
        frame = frames[t]
        out_t = out[t]
        for i in range(out_t.shape[0]):
            row = frame[i * stride]
            out_row = out_t[i]
            for j in range(out_t.shape[1]):
                acc = _ZERO
                px = row[j * stride]
                for c in range(n_channels):
                    acc += _F(px[c])
                out_row[j] = (acc * inv_c - o) * s


def luminance_grid(frames, stride, offset, scale):
    """Mean of the channels of every ``stride``-th pixel of every ``stride``-th row.

    frames: ``(T, Y, X, C)``.  Returns ``(T, ceil(Y / stride), ceil(X / stride))``
    float32 on the model's 0-255 scale.
    """
    if frames.dtype not in (np.uint8, np.float32):
        frames, (offset,) = _supported(frames[:, ::stride, ::stride], [offset])
        stride = 1
    n_frames, height, width, _ = frames.shape
    out = np.empty(
        (n_frames, (height + stride - 1) // stride, (width + stride - 1) // stride), np.float32
    )
    _in_threads(_luminance_grid, n_frames, frames, int(stride), float(offset), float(scale), out)
    return out


# --- on-line GMM ---------------------------------------------------------------------------
@njit(inline="always", **_OPTS)
def _online_settings(settings):
    # (background_ratio, match_distance, var_init, var_min, var_max, shadow_tau,
    # shadow_distortion ** 2) as float32, for lanes of float32.
    return (
        _F(settings[0]),
        _F(settings[1]),
        _F(settings[2]),
        _F(settings[3]),
        _F(settings[4]),
        _F(settings[5]),
        _F(settings[6]),
    )


@njit(**_OPTS)
def _k3_rgb_shadows(S, row, o, s, tau, distortion2, shadow, n):
    # Shadows, before the update: the heaviest component's colour (ties: the lowest slot)
    # darkened by a in [tau, 1), give or take the relative distortion (_shadow_labels).
    L = SCORE_TILE
    for b in range(n):
        x0 = (_F(row[3 * b]) - o) * s
        x1 = (_F(row[3 * b + 1]) - o) * s
        x2 = (_F(row[3 * b + 2]) - o) * s
        w0 = S[_W * L + b]
        w1 = S[(_W + 1) * L + b]
        w2 = S[(_W + 2) * L + b]
        top = max(w0, max(w1, w2))
        first = w0 == top
        second = not first and w1 == top
        k = 0 if first else (1 if second else 2)
        h0 = S[(_M + 3 * k) * L + b]
        h1 = S[(_M + 3 * k + 1) * L + b]
        h2 = S[(_M + 3 * k + 2) * L + b]
        den = h0 * h0 + h1 * h1 + h2 * h2
        shade = (x0 * h0 + x1 * h1 + x2 * h2) / max(den, _F(1e-30))
        e0 = x0 - shade * h0
        e1 = x1 - shade * h1
        e2 = x2 - shade * h2
        shadow[b] = (
            S[_NM * L + b] > _ZERO
            and den > _ZERO
            and shade >= tau
            and shade < _ONE
            and e0 * e0 + e1 * e1 + e2 * e2 < distortion2 * shade * shade * den
        )


@njit(**_OPTS)
def _heaviest_mean(w, mu, top, taken, out, n):
    # out[c] = the mean of each lane's heaviest component (ties: the lowest slot).
    n_components, n_channels, _ = mu.shape
    w0 = w[0]
    for b in range(n):
        top[b] = w0[b]
        taken[b] = _ZERO
    for k in range(1, n_components):
        wk = w[k]
        for b in range(n):
            top[b] = max(top[b], wk[b])
    for c in range(n_channels):
        oc = out[c]
        for b in range(n):
            oc[b] = _ZERO
    for k in range(n_components):
        wk = w[k]
        for c in range(n_channels):
            mk = mu[k, c]
            oc = out[c]
            for b in range(n):
                oc[b] += mk[b] if taken[b] == _ZERO and wk[b] == top[b] else _ZERO
        for b in range(n):
            taken[b] += _ONE if taken[b] == _ZERO and wk[b] == top[b] else _ZERO


# Two loops over tiles rather than one with a branch: numba compiles a kernel with all it
# calls, and the general tile kernel (any K, grey) costs as long to compile as the fused
# one, which the default three components of RGB video need alone.
@njit(**_OPTS)
def _online_tiles(
    frames,
    off,
    sc,
    alphas,
    w_all,
    mu_all,
    var_all,
    nm_all,
    settings,
    out_score,
    out_shadow,
    tile,
    items,
):
    # Each tile of pixels through a chunk of frames.  State per component slot: weight w
    # (K, n), mean mu (K, C, n), isotropic variance var (K, n); per pixel the slots in use,
    # nm (n,), all float32.  Slots are not kept in weight order (moving a component costs
    # more than ranking the K weights when they are needed); every branch of MOG2's
    # per-pixel update is a select over the lanes.
    ratio, match, var_init, var_min, var_max, tau, distortion2 = _online_settings(settings)
    n_frames = frames.shape[0]
    n_components, n_channels, n_pixels = mu_all.shape
    inv_c = _ONE / _F(n_channels)
    big = _F(1e30)
    for item in items:
        p0 = item * tile
        n = min(tile, n_pixels - p0)
        w = np.empty((n_components, n), np.float32)
        mu = np.empty((n_components, n_channels, n), np.float32)
        var = np.empty((n_components, n), np.float32)
        nm = np.empty(n, np.float32)
        for k in range(n_components):
            _copy(w[k], w_all[k, p0 : p0 + n])
            _copy(var[k], var_all[k, p0 : p0 + n])
            for c in range(n_channels):
                _copy(mu[k, c], mu_all[k, c, p0 : p0 + n])
        _copy(nm, nm_all[p0 : p0 + n])
        x = np.empty((n_channels, n), np.float32)
        d2 = np.empty((n_components, n), np.float32)
        sel = np.empty((n_components, n), np.float32)
        best = np.empty(n, np.float32)
        total = np.empty(n, np.float32)
        top = np.empty(n, np.float32)
        slot = np.empty(n, np.float32)
        matched = np.empty(n, np.float32)
        heavy = np.empty((n_channels, n), np.float32)
        lab = np.empty(n, np.uint8)
        for t in range(n_frames):
            a = alphas[t]
            _load_frame(frames[t, p0 * n_channels : (p0 + n) * n_channels], off[t], sc[t], x)
            # Squared distances, in variances.
            for k in range(n_components):
                d2k = d2[k]
                for b in range(n):
                    d2k[b] = _ZERO
                for c in range(n_channels):
                    xc = x[c]
                    mk = mu[k, c]
                    for b in range(n):
                        d = xc[b] - mk[b]
                        d2k[b] += d * d
                vk = var[k]
                for b in range(n):
                    d2k[b] = d2k[b] / vk[b]
            # Background: the heaviest components up to the ratio.  Slot k is one when the
            # weights ranked before it (heavier, or as heavy in a lower slot) sum to <= ratio.
            for k in range(n_components):
                sk = sel[k]
                wk = w[k]
                for b in range(n):
                    sk[b] = _ZERO
                for j in range(n_components):
                    if j == k:
                        continue
                    wj = w[j]
                    first = j < k
                    for b in range(n):
                        ahead = wj[b] > wk[b] or (first and wj[b] == wk[b])
                        sk[b] += wj[b] if ahead else _ZERO
                f = _F(k)
                for b in range(n):
                    sk[b] = _ONE if f < nm[b] and sk[b] <= ratio else _ZERO
            # Score before the update: the distance to the nearest background component,
            # sqrt(min_bg d2_k / C) (0 before the pixel has any).
            for b in range(n):
                best[b] = big
            for k in range(n_components):
                sk = sel[k]
                d2k = d2[k]
                for b in range(n):
                    best[b] = min(best[b], d2k[b] if sk[b] > _ZERO else big)
            score_t = out_score[t, p0 : p0 + n]
            for b in range(n):
                score_t[b] = math.sqrt(best[b] * inv_c) if best[b] < big else _ZERO
            if tau > _ZERO:
                # Shadows: against the heaviest component's colour.
                _heaviest_mean(w, mu, top, matched, heavy, n)
                for b in range(n):
                    lab[b] = 1 if nm[b] > _ZERO else 0
                _shadow_labels(x, heavy, lab, n, tau, distortion2)
                sh_t = out_shadow[t, p0 : p0 + n]
                for b in range(n):
                    sh_t[b] = lab[b] == 2
            # Update: the heaviest component within the match distance (ties: lowest slot)
            # takes the sample; without one, a new component takes a free slot or the
            # weakest's (ties: highest slot).
            for b in range(n):
                top[b] = -_ONE
            for k in range(n_components):
                wk = w[k]
                d2k = d2[k]
                f = _F(k)
                for b in range(n):
                    ok = f < nm[b] and d2k[b] < match
                    top[b] = max(top[b], wk[b] if ok else -_ONE)
            for b in range(n):
                matched[b] = _ZERO
                slot[b] = -_ONE
            for k in range(n_components):
                sk = sel[k]  # reused: 1 where slot k takes the sample
                wk = w[k]
                d2k = d2[k]
                f = _F(k)
                for b in range(n):
                    ok = matched[b] == _ZERO and f < nm[b] and d2k[b] < match and wk[b] == top[b]
                    sk[b] = _ONE if ok else _ZERO
                for b in range(n):
                    matched[b] += sk[b]
            decay = _ONE - a
            for k in range(n_components):
                wk = w[k]
                sk = sel[k]
                for b in range(n):
                    wk[b] = wk[b] * decay + sk[b] * a
                for b in range(n):
                    sk[b] = a / wk[b] if sk[b] > _ZERO else _ZERO  # now the learning rate
                for c in range(n_channels):
                    xc = x[c]
                    mk = mu[k, c]
                    for b in range(n):
                        mk[b] += sk[b] * (xc[b] - mk[b])
                vk = var[k]
                d2k = d2[k]
                for b in range(n):
                    v = vk[b] + sk[b] * (d2k[b] * vk[b] * inv_c - vk[b])
                    vk[b] = min(max(v, var_min), var_max) if sk[b] > _ZERO else vk[b]
                f = _F(k)
                for b in range(n):
                    slot[b] = f if sk[b] > _ZERO else slot[b]
            # No match: the free slot nm, or the weakest component's.
            for b in range(n):
                top[b] = big
            for k in range(n_components):
                wk = w[k]
                f = _F(k)
                for b in range(n):
                    top[b] = min(top[b], wk[b] if f < nm[b] else big)
            for k in range(n_components):
                wk = w[k]
                f = _F(k)
                for b in range(n):
                    weakest = f < nm[b] and wk[b] == top[b]
                    free = nm[b] < _F(n_components)
                    take = matched[b] == _ZERO and (
                        (free and f == nm[b]) or (not free and weakest)
                    )
                    slot[b] = f if take else slot[b]
            for b in range(n):
                grow = matched[b] == _ZERO and nm[b] < _F(n_components)
                nm[b] += _ONE if grow else _ZERO
            for k in range(n_components):
                sk = sel[k]  # reused: 1 where slot k gets the new component
                f = _F(k)
                for b in range(n):
                    sk[b] = _ONE if matched[b] == _ZERO and slot[b] == f else _ZERO
                wk = w[k]
                for b in range(n):
                    wk[b] = (a if nm[b] > _ONE else _ONE) if sk[b] > _ZERO else wk[b]
                vk = var[k]
                for b in range(n):
                    vk[b] = var_init if sk[b] > _ZERO else vk[b]
                for c in range(n_channels):
                    xc = x[c]
                    mk = mu[k, c]
                    for b in range(n):
                        mk[b] += sk[b] * (xc[b] - mk[b])
            for b in range(n):
                total[b] = _ZERO
            for k in range(n_components):
                wk = w[k]
                for b in range(n):
                    total[b] += wk[b]
            for k in range(n_components):
                wk = w[k]
                for b in range(n):
                    wk[b] = wk[b] / total[b]
        for k in range(n_components):
            _copy(w_all[k, p0 : p0 + n], w[k])
            _copy(var_all[k, p0 : p0 + n], var[k])
            for c in range(n_channels):
                _copy(mu_all[k, c, p0 : p0 + n], mu[k, c])
        _copy(nm_all[p0 : p0 + n], nm)


# Rows of the flat scratch of _online_tiles_k3_rgb, SCORE_TILE lanes each: one
# allocation with compile-time distances between its rows is what lets LLVM vectorise a
# loop that stores to all of them (rows of a 2-D array do not, nor do this many separate
# arrays: too many to check for overlap at run time).
_W, _M, _V, _NM, _BEST = 0, 3, 12, 15, 16
_N_ROWS = 17


@njit(**_OPTS)
def _online_tiles_k3_rgb(
    frames,
    off,
    sc,
    alphas,
    w_all,
    mu_all,
    var_all,
    nm_all,
    settings,
    out_score,
    out_shadow,
    tile,
    items,
):
    # _online_tiles for the default three components of three channels: the same
    # decisions, one fused loop per frame over a flat scratch S whose rows are SCORE_TILE
    # apart (row r, lane b: S[r * L + b]).
    ratio, match, var_init, var_min, var_max, tau, distortion2 = _online_settings(settings)
    n_pixels = w_all.shape[1]
    L = SCORE_TILE
    big = _F(1e30)
    third = _ONE / _F(3.0)
    for item in items:
        p0 = item * tile
        n = min(tile, n_pixels - p0)
        S = np.zeros(_N_ROWS * L, np.float32)
        for k in range(3):
            _copy(S[(_W + k) * L : (_W + k) * L + n], w_all[k, p0 : p0 + n])
            _copy(S[(_V + k) * L : (_V + k) * L + n], var_all[k, p0 : p0 + n])
            for c in range(3):
                r = _M + 3 * k + c
                _copy(S[r * L : r * L + n], mu_all[k, c, p0 : p0 + n])
        _copy(S[_NM * L : _NM * L + n], nm_all[p0 : p0 + n])
        for t in range(frames.shape[0]):
            a = alphas[t]
            o = off[t]
            s = sc[t]
            decay = _ONE - a
            row = frames[t, p0 * 3 : (p0 + n) * 3]
            if tau > _ZERO:
                _k3_rgb_shadows(S, row, o, s, tau, distortion2, out_shadow[t, p0 : p0 + n], n)
            for b in range(n):
                x0 = (_F(row[3 * b]) - o) * s
                x1 = (_F(row[3 * b + 1]) - o) * s
                x2 = (_F(row[3 * b + 2]) - o) * s
                w0 = S[_W * L + b]
                w1 = S[(_W + 1) * L + b]
                w2 = S[(_W + 2) * L + b]
                m00 = S[_M * L + b]
                m01 = S[(_M + 1) * L + b]
                m02 = S[(_M + 2) * L + b]
                m10 = S[(_M + 3) * L + b]
                m11 = S[(_M + 4) * L + b]
                m12 = S[(_M + 5) * L + b]
                m20 = S[(_M + 6) * L + b]
                m21 = S[(_M + 7) * L + b]
                m22 = S[(_M + 8) * L + b]
                v0 = S[_V * L + b]
                v1 = S[(_V + 1) * L + b]
                v2 = S[(_V + 2) * L + b]
                nm = S[_NM * L + b]
                e0 = x0 - m00
                e1 = x1 - m01
                e2 = x2 - m02
                d0 = (e0 * e0 + e1 * e1 + e2 * e2) / v0
                e0 = x0 - m10
                e1 = x1 - m11
                e2 = x2 - m12
                d1 = (e0 * e0 + e1 * e1 + e2 * e2) / v1
                e0 = x0 - m20
                e1 = x1 - m21
                e2 = x2 - m22
                d2 = (e0 * e0 + e1 * e1 + e2 * e2) / v2
                # Background: the weights ranked ahead (heavier, or as heavy in a lower slot).
                ahead0 = (w1 if w1 > w0 else _ZERO) + (w2 if w2 > w0 else _ZERO)
                ahead1 = (w0 if w0 >= w1 else _ZERO) + (w2 if w2 > w1 else _ZERO)
                ahead2 = (w0 if w0 >= w2 else _ZERO) + (w1 if w1 >= w2 else _ZERO)
                bg0 = nm > _ZERO and ahead0 <= ratio
                bg1 = nm > _ONE and ahead1 <= ratio
                bg2 = nm > _F(2.0) and ahead2 <= ratio
                # The score: distance to the nearest background component (see _online_tiles).
                nearest = min(d0 if bg0 else big, min(d1 if bg1 else big, d2 if bg2 else big))
                S[_BEST * L + b] = math.sqrt(nearest * third) if nearest < big else _ZERO
                # Update: the heaviest component within the match distance (ties: the lowest
                # slot) takes the sample.
                ok0 = nm > _ZERO and d0 < match
                ok1 = nm > _ONE and d1 < match
                ok2 = nm > _F(2.0) and d2 < match
                top = max(w0 if ok0 else -_ONE, max(w1 if ok1 else -_ONE, w2 if ok2 else -_ONE))
                h0 = ok0 and w0 == top
                h1 = ok1 and w1 == top and not h0
                h2 = ok2 and w2 == top and not h0 and not h1
                matched = h0 or h1 or h2
                w0 = w0 * decay + (a if h0 else _ZERO)
                w1 = w1 * decay + (a if h1 else _ZERO)
                w2 = w2 * decay + (a if h2 else _ZERO)
                r0 = a / w0 if h0 else _ZERO
                r1 = a / w1 if h1 else _ZERO
                r2 = a / w2 if h2 else _ZERO
                m00 += r0 * (x0 - m00)
                m01 += r0 * (x1 - m01)
                m02 += r0 * (x2 - m02)
                m10 += r1 * (x0 - m10)
                m11 += r1 * (x1 - m11)
                m12 += r1 * (x2 - m12)
                m20 += r2 * (x0 - m20)
                m21 += r2 * (x1 - m21)
                m22 += r2 * (x2 - m22)
                u0 = min(max(v0 + r0 * (d0 * v0 * third - v0), var_min), var_max)
                u1 = min(max(v1 + r1 * (d1 * v1 * third - v1), var_min), var_max)
                u2 = min(max(v2 + r2 * (d2 * v2 * third - v2), var_min), var_max)
                v0 = u0 if h0 else v0
                v1 = u1 if h1 else v1
                v2 = u2 if h2 else v2
                slot = _ZERO if h0 else (_ONE if h1 else (_F(2.0) if h2 else -_ONE))
                # No match: the free slot nm, or the weakest component's (ties: the highest).
                low = min(w0, min(w1 if nm > _ONE else big, w2 if nm > _F(2.0) else big))
                weakest = _F(2.0) if w2 == low else (_ONE if w1 == low else _ZERO)
                free = nm < _F(3.0)
                if not matched:
                    slot = nm if free else weakest
                    nm = nm + _ONE if free else nm
                n0 = not matched and slot == _ZERO
                n1 = not matched and slot == _ONE
                n2 = not matched and slot == _F(2.0)
                fresh = a if nm > _ONE else _ONE
                w0 = fresh if n0 else w0
                w1 = fresh if n1 else w1
                w2 = fresh if n2 else w2
                v0 = var_init if n0 else v0
                v1 = var_init if n1 else v1
                v2 = var_init if n2 else v2
                m00 = x0 if n0 else m00
                m01 = x1 if n0 else m01
                m02 = x2 if n0 else m02
                m10 = x0 if n1 else m10
                m11 = x1 if n1 else m11
                m12 = x2 if n1 else m12
                m20 = x0 if n2 else m20
                m21 = x1 if n2 else m21
                m22 = x2 if n2 else m22
                wsum = w0 + w1 + w2
                S[_W * L + b] = w0 / wsum
                S[(_W + 1) * L + b] = w1 / wsum
                S[(_W + 2) * L + b] = w2 / wsum
                S[_M * L + b] = m00
                S[(_M + 1) * L + b] = m01
                S[(_M + 2) * L + b] = m02
                S[(_M + 3) * L + b] = m10
                S[(_M + 4) * L + b] = m11
                S[(_M + 5) * L + b] = m12
                S[(_M + 6) * L + b] = m20
                S[(_M + 7) * L + b] = m21
                S[(_M + 8) * L + b] = m22
                S[_V * L + b] = v0
                S[(_V + 1) * L + b] = v1
                S[(_V + 2) * L + b] = v2
                S[_NM * L + b] = nm
            score_t = out_score[t, p0 : p0 + n]
            for b in range(n):
                score_t[b] = S[_BEST * L + b]
        for k in range(3):
            _copy(w_all[k, p0 : p0 + n], S[(_W + k) * L : (_W + k) * L + n])
            _copy(var_all[k, p0 : p0 + n], S[(_V + k) * L : (_V + k) * L + n])
            for c in range(3):
                r = _M + 3 * k + c
                _copy(mu_all[k, c, p0 : p0 + n], S[r * L : r * L + n])
        _copy(nm_all[p0 : p0 + n], S[_NM * L : _NM * L + n])


def online_update(frames, offsets, scales, alphas, state, settings, out_score, out_shadow):
    """Score a chunk of frames, each before it updates every pixel's on-line mixture.

    frames: ``(F, P * C)`` in the video's dtype; offsets, scales, alphas (learning rates):
    ``(F,)``; state: ``(w, mu, var, nm)``, float32 arrays ``(K, P)``, ``(K, C, P)``,
    ``(K, P)`` and ``(P,)`` updated in place (see ``online.OnlineModel``);
    settings: ``(background_ratio, match_distance, var_init, var_min, var_max,
    shadow_tau, shadow_distortion ** 2)``; out_score ``(F, P)`` float32 (the distance to
    the nearest background component, as :func:`score_pixels`') and out_shadow ``(F, P)``
    bool (left as they are when shadow_tau is 0) are written.
    """
    tile = SCORE_TILE
    n_pixels = state[0].shape[1]
    frames, offsets = _supported(frames, offsets)
    mu = state[1]
    fused = mu.shape[0] == 3 and mu.shape[1] == 3 and tile <= SCORE_TILE
    _in_threads(
        _online_tiles_k3_rgb if fused else _online_tiles,
        (n_pixels + tile - 1) // tile,
        frames,
        offsets,
        np.asarray(scales, np.float32),
        np.asarray(alphas, np.float32),
        *state,
        tuple(float(v) for v in settings),
        out_score,
        out_shadow,
        tile,
    )
