"""numba kernels of the per-pixel mixture: fit, scoring, labels, clean-up, brightness.

The kernels are written for the SIMD units: pixels are *lanes*, the pixel index is the
innermost loop over float32 scratch arrays, and exp and log are polynomials (``math.exp``
and ``math.log`` are libm calls that keep a loop scalar).  Three rules make LLVM actually
vectorise numba code, each worth 3-5x here:

* the lane count is a run-time value (a compile-time 16 gets the loop fully unrolled and
  left scalar);
* the hot loops live in plain ``njit`` functions called from the ``prange`` body, not in
  the body itself (parfor bodies do not vectorise);
* arrays are indexed by bare loop variables on sliced views: ``row[b]`` on
  ``row = frame[p0:p1]``, never ``frame[p0 + b]``, whose possibly negative index numba
  wraps at run time, which turns every access into a scalar one.

Sample values are mapped to the model's 0-255 intensity scale inside the kernels,
``(value - offsets[t]) * scales[t]``, so frames stay in the video's own dtype; an offset
and a scale per frame also carry the brightness compensation (``gmm.frame_transform``).
"""

import math

import numpy as np
from numba import njit, prange

LOG_2PI = math.log(2.0 * math.pi)
FIT_LANES = 128  # pixels fitted together
SCORE_TILE = 256  # pixels scored together, frame after frame (their model stays in cache)

# Fast-math without the no-NaN / no-inf assumptions: the maths never produces either,
# but the flags would let LLVM drop checks that the validation at the boundary relies on.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# error_model="numpy": no ZeroDivisionError branch in every division (it blocks SIMD).
_OPTS = {"cache": True, "fastmath": _FASTMATH, "error_model": "numpy"}

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
#: Added to log(number of background components) when the mask kernel decides a pixel
#: without its log-likelihood: covers the error of the polynomial exp and log.
LOG_MARGIN = 1e-3


# --- vectorisable exp and log -----------------------------------------------------------
@njit(inline="always", **_OPTS)
def _exp_neg(x):
    # exp(x) for x <= 0: exp(x/32)^32, degree-6 Taylor; relative error < 1e-6 down to
    # x = -10, and 9e-14 (not 0) below x = -30, far below any term that matters.
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


def _interleaved(n_items: int) -> np.ndarray:
    # Work items in an order that deals neighbours to different threads: prange hands
    # out contiguous ranges, and neighbouring tiles cost alike (a busy road, the sky).
    i = np.arange(n_items)
    return np.argsort(i % 16, kind="stable").astype(np.int64)


# --- fit: deterministic start and EM, one block of pixels at a time ----------------------
@njit(**_OPTS)
def _load_samples(samples, p0, nb, off, sc, x):
    # x[n, c, b] = sample n of pixel p0 + b on the model's scale; lanes past nb repeat
    # the last pixel, so every lane holds real data.
    n_samples, _, n_channels = samples.shape
    lanes = x.shape[2]
    for n in range(n_samples):
        o = off[n]
        s = sc[n]
        block = samples[n, p0 : p0 + nb]
        for c in range(n_channels):
            xc = x[n, c]
            for b in range(nb):
                xc[b] = (_F(block[b, c]) - o) * s
            for b in range(nb, lanes):
                xc[b] = xc[nb - 1]


@njit(**_OPTS)
def _start_by_brightness(x, starts, reg, w, mu, var, bright, rank, acc):
    # Split each lane's samples into K brightness quantiles: sample n's rank (ties broken
    # by frame order, as a stable sort would) says which.  O(N^2) compares, all in SIMD.
    n_samples, n_channels, lanes = x.shape
    n_components = w.shape[0]
    for n in range(n_samples):
        bn = bright[n]
        for b in range(lanes):
            bn[b] = _ZERO
        for c in range(n_channels):
            xc = x[n, c]
            for b in range(lanes):
                bn[b] += xc[b]
    for n in range(n_samples):
        rn = rank[n]
        bn = bright[n]
        for b in range(lanes):
            rn[b] = _ZERO
        for m in range(n):
            bm = bright[m]
            for b in range(lanes):
                rn[b] += _ONE if bm[b] <= bn[b] else _ZERO
        for m in range(n + 1, n_samples):
            bm = bright[m]
            for b in range(lanes):
                rn[b] += _ONE if bm[b] < bn[b] else _ZERO
    group = bright  # brightness is no longer needed: each sample's quantile goes there
    for n in range(n_samples):
        rn = rank[n]
        gn = group[n]
        for b in range(lanes):
            gn[b] = _ZERO
        for k in range(1, n_components):
            first = _F(starts[k])
            for b in range(lanes):
                gn[b] += _ONE if rn[b] >= first else _ZERO
    inv_n = _ONE / _F(n_samples)
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


@njit(**_OPTS)
def _em(x, max_iter, tol, reg, w, mu, var):
    # EM from (w, mu, var), in place.  The M-step is scikit-learn's
    # GaussianMixture(covariance_type="diag") with nk + 10 eps, computed around each
    # component's previous mean (float32 keeps its precision that way).  A lane whose
    # mean log-likelihood improves by less than tol stops updating, as if it ran alone.
    n_samples, n_channels, lanes = x.shape
    n_components = w.shape[0]
    iv = np.empty((n_components, n_channels, lanes), np.float32)
    lc = np.empty((n_components, lanes), np.float32)
    lp = np.empty((n_components, lanes), np.float32)
    nk = np.empty((n_components, lanes), np.float32)
    s1 = np.empty((n_components, n_channels, lanes), np.float32)
    s2 = np.empty((n_components, n_channels, lanes), np.float32)
    best = np.empty(lanes, np.float32)
    ssum = np.empty(lanes, np.float32)
    total = np.empty(lanes, np.float32)
    prev = np.full(lanes, -np.inf, np.float32)
    active = np.ones(lanes, np.float32)
    updating = np.empty(lanes, np.float32)
    tmp = np.empty(lanes, np.float32)
    fbits, ibits, mbits, mfloat = _log_scratch(lanes)
    eps10 = _F(10.0 * np.finfo(np.float64).eps)
    weight_scale = _ONE / (_F(n_samples) + _F(n_components) * eps10)
    log_norm = _F(-0.5 * n_channels * LOG_2PI)
    inv_n = _ONE / _F(n_samples)
    check = tol > 0.0
    ftol = _F(tol)
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
        for b in range(lanes):
            total[b] = _ZERO
        for n in range(n_samples):
            # E-step: responsibilities of sample n.
            for k in range(n_components):
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


@njit(**_OPTS)
def _store_sorted(w, mu, var, weights, means, variances):
    # Write each lane's components sorted by weight, heaviest first (stable).
    n_components, n_channels, _ = mu.shape
    order = np.empty(n_components, np.int64)
    for b in range(weights.shape[0]):
        for i in range(n_components):
            order[i] = i
        for i in range(1, n_components):
            j = i
            while j > 0 and w[order[j], b] > w[order[j - 1], b]:
                order[j], order[j - 1] = order[j - 1], order[j]
                j -= 1
        for i in range(n_components):
            k = order[i]
            weights[b, i] = w[k, b]
            for c in range(n_channels):
                means[b, i, c] = mu[k, c, b]
                variances[b, i, c] = var[k, c, b]


@njit(**_OPTS)
def _fit_block(
    samples, p0, nb, off, sc, starts, max_iter, tol, reg, lanes, weights, means, variances
):
    n_samples, _, n_channels = samples.shape
    n_components = starts.shape[0] - 1
    x = np.empty((n_samples, n_channels, lanes), np.float32)
    _load_samples(samples, p0, nb, off, sc, x)
    w = np.empty((n_components, lanes), np.float32)
    mu = np.empty((n_components, n_channels, lanes), np.float32)
    var = np.empty((n_components, n_channels, lanes), np.float32)
    bright = np.empty((n_samples, lanes), np.float32)
    rank = np.empty((n_samples, lanes), np.float32)
    acc = np.empty(lanes, np.float32)
    _start_by_brightness(x, starts, reg, w, mu, var, bright, rank, acc)
    _em(x, max_iter, tol, reg, w, mu, var)
    _store_sorted(w, mu, var, weights[p0 : p0 + nb], means[p0 : p0 + nb], variances[p0 : p0 + nb])


@njit(parallel=True, **_OPTS)
def _fit_pixels(
    samples,
    offsets,
    scales,
    starts,
    max_iter,
    tol,
    reg_covar,
    lanes,
    order,
    weights,
    means,
    variances,
):
    n_pixels = samples.shape[1]
    off = offsets.astype(np.float32)
    sc = scales.astype(np.float32)
    reg = _F(reg_covar)
    for i in prange(order.shape[0]):
        p0 = order[i] * lanes
        nb = min(lanes, n_pixels - p0)
        _fit_block(
            samples, p0, nb, off, sc, starts, max_iter, tol, reg, lanes, weights, means, variances
        )


def fit_pixels(samples, offsets, scales, n_components, max_iter, tol, reg_covar):
    """Start and run EM on every pixel of a learning buffer.

    samples: ``(N, P, C)`` in the video's dtype; offsets, scales: ``(N,)`` map sample n
    to the model's scale.  The start splits each pixel's samples into K brightness
    quantiles (``max_iter=0`` returns it).  Returns weights ``(P, K)``, means and
    variances ``(P, K, C)``, float32, components sorted by weight, heaviest first.
    """
    n_samples, n_pixels, n_channels = samples.shape
    k = int(n_components)
    starts = np.array([(i * n_samples) // k for i in range(k + 1)], np.int64)
    weights = np.empty((n_pixels, k), np.float32)
    means = np.empty((n_pixels, k, n_channels), np.float32)
    variances = np.empty((n_pixels, k, n_channels), np.float32)
    lanes = FIT_LANES
    order = _interleaved((n_pixels + lanes - 1) // lanes)
    _fit_pixels(
        samples,
        offsets,
        scales,
        starts,
        int(max_iter),
        float(tol),
        float(reg_covar),
        lanes,
        order,
        weights,
        means,
        variances,
    )
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


@njit(**_OPTS)
def _score_tile(
    frames, off, sc, mu, iv, lc, log_nb, threshold, tau, distortion2, labels, out, p0, n
):
    n_components, n_channels, _ = mu.shape
    lnb = log_nb[p0 : p0 + n]
    if frames.shape[0] < 8:  # a frame or two (scrubbing): read the model in place
        _score_tile_frames(
            frames,
            off,
            sc,
            mu[:, :, p0 : p0 + n],
            iv[:, :, p0 : p0 + n],
            lc[:, p0 : p0 + n],
            lnb,
            threshold,
            tau,
            distortion2,
            labels,
            out,
            p0,
            n,
        )
        return
    # Many frames: the tile's model is copied once into contiguous scratch, which stays
    # in cache while every frame streams past it.
    m_ = np.empty((n_components, n_channels, n), np.float32)
    i_ = np.empty((n_components, n_channels, n), np.float32)
    l_ = np.empty((n_components, n), np.float32)
    for k in range(n_components):
        l_[k] = lc[k, p0 : p0 + n]
        for c in range(n_channels):
            m_[k, c] = mu[k, c, p0 : p0 + n]
            i_[k, c] = iv[k, c, p0 : p0 + n]
    _score_tile_frames(
        frames, off, sc, m_, i_, l_, lnb, threshold, tau, distortion2, labels, out, p0, n
    )


@njit(**_OPTS)
def _score_tile_frames(
    frames, off, sc, m_, i_, l_, lnb, threshold, tau, distortion2, labels, out, p0, n
):
    n_frames = frames.shape[0]
    n_components, n_channels, _ = m_.shape
    x = np.empty((n_channels, n), np.float32)
    lp = np.empty((n_components, n), np.float32)
    best = np.empty(n, np.float32)
    ssum = np.empty(n, np.float32)
    ll = np.empty(n, np.float32)
    lab = np.empty(n, np.uint8)
    fbits, ibits, mbits, mfloat = _log_scratch(n)
    for t in range(n_frames):
        _load_frame(frames[t, p0 * n_channels : (p0 + n) * n_channels], off[t], sc[t], x)
        _densities(x, m_, i_, l_, lp, best, n)
        if not labels:
            _log_sum_exp(lp, best, n, ssum, ll, fbits, ibits, mbits, mfloat)
            out_t = out[t, p0 : p0 + n]
            for b in range(n):
                out_t[b] = ll[b]
            continue
        # Most pixels are settled without the log-likelihood: one background component
        # alone above the threshold makes it background; all of them together (at most
        # nb times the best) below it, foreground.  Only a tile holding a pixel in
        # between pays for the exact log-sum-exp.
        n_unsure = 0
        for b in range(n):
            above = best[b] >= threshold
            lab[b] = 0 if above else 1
            n_unsure += 1 if not above and best[b] >= threshold - lnb[b] else 0
        if n_unsure > 0:
            _log_sum_exp(lp, best, n, ssum, ll, fbits, ibits, mbits, mfloat)
            for b in range(n):
                lab[b] = 1 if ll[b] < threshold else 0
        if tau > _ZERO:
            _shadow_labels(x, m_[0], lab, n, tau, distortion2)
        out_t = out[t, p0 : p0 + n]
        for b in range(n):
            out_t[b] = lab[b]


@njit(parallel=True, **_OPTS)
def _score_pixels(
    frames,
    offsets,
    scales,
    mu,
    iv,
    lc,
    log_nb,
    threshold,
    tau,
    distortion2,
    labels,
    out,
    tile,
    order,
):
    n_pixels = mu.shape[2]
    off = offsets.astype(np.float32)
    sc = scales.astype(np.float32)
    thr = _F(threshold)
    for i in prange(order.shape[0]):
        p0 = order[i] * tile
        _score_tile(
            frames,
            off,
            sc,
            mu,
            iv,
            lc,
            log_nb,
            thr,
            _F(tau),
            _F(distortion2),
            labels,
            out,
            p0,
            min(tile, n_pixels - p0),
        )


def score_pixels(
    frames,
    offsets,
    scales,
    mu,
    iv,
    lc,
    log_nb,
    out,
    threshold=0.0,
    shadow_tau=0.0,
    shadow_distortion=0.0,
):
    """Log-likelihood (``out`` float32) or labels (``out`` uint8) of every pixel and frame.

    frames: ``(T, P * C)`` in the video's dtype; offsets, scales: ``(T,)``; mu, iv:
    ``(K, C, P)`` float32 means and inverse variances; lc: ``(K, P)`` float32 log of the
    renormalised background weight plus the Gaussian's normalising constant (a huge
    negative number for components that are not background); log_nb: ``(P,)`` float32,
    log of the number of background components plus ``LOG_MARGIN``.  With a uint8
    ``out``, 1 marks a log-likelihood below ``threshold``, exactly as thresholding the
    float32 scores would, and 2 a shadow (``shadow_tau > 0``) among those.
    """
    tile = SCORE_TILE
    n_pixels = mu.shape[2]
    order = _interleaved((n_pixels + tile - 1) // tile)
    _score_pixels(
        frames,
        offsets,
        scales,
        mu,
        iv,
        lc,
        log_nb,
        float(threshold),
        float(shadow_tau),
        float(shadow_distortion) ** 2,
        out.dtype == np.uint8,
        out,
        tile,
        order,
    )


# --- clean-up ------------------------------------------------------------------------------
@njit(**_OPTS)
def _majority_frame(labels, size, out):
    height, width = labels.shape
    r = size // 2
    half = (size * size) // 2
    col = np.zeros(width + 2 * r, np.uint16)  # per column: foreground in the window's rows
    inner = col[r : r + width]
    acc = np.empty(width, np.uint16)
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
        for x in range(width):
            acc[x] = 0
        for dx in range(size):
            shifted = col[dx : dx + width]
            for x in range(width):
                acc[x] += shifted[x]
        row = labels[y]
        out_row = out[y]
        for x in range(width):
            out_row[x] = 1 if acc[x] > half else (2 if row[x] == 2 else 0)


@njit(parallel=True, **_OPTS)
def majority_filter(labels, size, out):
    """Median-filter the foreground (label 1) of every frame; shadows (2) stay beneath it.

    The median of a binary neighbourhood is its majority: a box count over ``size`` x
    ``size`` with the border replicated, equal to ``cv2.medianBlur``.  labels, out:
    ``(T, Y, X)`` uint8.
    """
    for t in prange(labels.shape[0]):
        _majority_frame(labels[t], size, out[t])


# --- brightness ---------------------------------------------------------------------------
@njit(**_OPTS)
def _frame_band_medians(frame, pixels, bounds, o, s, values, out):
    n_channels = frame.shape[1]
    inv_c = _ONE / _F(n_channels)
    for i in range(pixels.shape[0]):
        px = frame[pixels[i]]
        acc = _ZERO
        for c in range(n_channels):
            acc += _F(px[c])
        values[i] = (acc * inv_c - o) * s
    for j in range(bounds.shape[0] - 1):
        out[j] = np.median(values[bounds[j] : bounds[j + 1]])


@njit(parallel=True, **_OPTS)
def band_medians(frames, pixels, bounds, offset, scale):
    """Each frame's median luminance (0-255 scale) in each band of pixels.

    frames: ``(T, P, C)``; pixels: flat pixel indices grouped by band, band j being
    ``pixels[bounds[j]:bounds[j + 1]]``.  Returns ``(T, n_bands)`` float64.
    """
    out = np.empty((frames.shape[0], bounds.shape[0] - 1))
    o = _F(offset)
    s = _F(scale)
    for t in prange(frames.shape[0]):
        values = np.empty(pixels.shape[0], np.float32)
        _frame_band_medians(frames[t], pixels, bounds, o, s, values, out[t])
    return out


@njit(**_OPTS)
def _frame_luminance(frame, stride, o, s, out):
    n_channels = frame.shape[2]
    inv_c = _ONE / _F(n_channels)
    for i in range(out.shape[0]):
        row = frame[i * stride]
        out_row = out[i]
        for j in range(out.shape[1]):
            acc = _ZERO
            px = row[j * stride]
            for c in range(n_channels):
                acc += _F(px[c])
            out_row[j] = (acc * inv_c - o) * s


@njit(parallel=True, **_OPTS)
def luminance_grid(frames, stride, offset, scale):
    """Mean of the channels of every ``stride``-th pixel of every ``stride``-th row.

    frames: ``(T, Y, X, C)``.  Returns ``(T, ceil(Y / stride), ceil(X / stride))``
    float32 on the model's 0-255 scale.
    """
    n_frames, height, width, _ = frames.shape
    out = np.empty(
        (n_frames, (height + stride - 1) // stride, (width + stride - 1) // stride), np.float32
    )
    for t in prange(n_frames):
        _frame_luminance(frames[t], stride, _F(offset), _F(scale), out[t])
    return out


# --- on-line GMM ---------------------------------------------------------------------------
@njit(**_OPTS)
def _online_tile(
    frames,
    off,
    sc,
    alphas,
    w_all,
    mu_all,
    var_all,
    ln_all,
    nm_all,
    settings,
    out_ll,
    out_shadow,
    p0,
    n,
):
    # One tile of pixels through a chunk of frames.  State: weights w (K, n), means
    # mu (K, C, n), isotropic variances var (K, n), Gaussian log-normalisers ln (K, n),
    # component counts nm (n,), all float32, components sorted by weight, unused ones at
    # weight 0.  Every branch of MOG2's per-pixel update is a select over the lanes.
    ratio = _F(settings[0])
    match = _F(settings[1])
    var_init = _F(settings[2])
    var_min = _F(settings[3])
    var_max = _F(settings[4])
    tau = _F(settings[5])
    distortion2 = _F(settings[6])
    n_frames = frames.shape[0]
    n_components, n_channels, _ = mu_all.shape
    fk = np.empty(n_components, np.float32)
    for k in range(n_components):
        fk[k] = k
    w = np.empty((n_components, n), np.float32)
    mu = np.empty((n_components, n_channels, n), np.float32)
    var = np.empty((n_components, n), np.float32)
    ln = np.empty((n_components, n), np.float32)
    for k in range(n_components):
        w[k] = w_all[k, p0 : p0 + n]
        var[k] = var_all[k, p0 : p0 + n]
        ln[k] = ln_all[k, p0 : p0 + n]
        for c in range(n_channels):
            mu[k, c] = mu_all[k, c, p0 : p0 + n]
    nm = np.empty(n, np.float32)
    nm[:] = nm_all[p0 : p0 + n]
    x = np.empty((n_channels, n), np.float32)
    d2 = np.empty((n_components, n), np.float32)
    lp = np.empty((n_components, n), np.float32)
    hit = np.empty((n_components, n), np.float32)  # 1 where component k is updated
    best = np.empty(n, np.float32)
    total = np.empty(n, np.float32)
    below = np.empty(n, np.float32)
    ssum = np.empty(n, np.float32)
    ll = np.empty(n, np.float32)
    found = np.empty(n, np.float32)
    changed = np.empty(n, np.float32)
    new_var = np.empty(n, np.float32)
    new_ln = np.empty(n, np.float32)
    lab = np.empty(n, np.uint8)
    fbits, ibits, mbits, mfloat = _log_scratch(n)
    half_c = _F(0.5 * n_channels)
    log_2pi = _F(LOG_2PI)
    inv_c = _ONE / _F(n_channels)
    for t in range(n_frames):
        a = alphas[t]
        _load_frame(frames[t, p0 * n_channels : (p0 + n) * n_channels], off[t], sc[t], x)
        # Squared distances in variances; the background: the heaviest components up to
        # the ratio (component k is one while the weights before it stay <= ratio).
        for b in range(n):
            below[b] = _ZERO
            total[b] = _ZERO
            best[b] = _F(-1e30)
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
            wk = w[k]
            lnk = ln[k]
            lpk = lp[k]
            hk = hit[k]
            f = fk[k]
            for b in range(n):
                d2k[b] = d2k[b] / vk[b]
                bg = f < nm[b] and below[b] <= ratio
                below[b] += wk[b]
                total[b] += wk[b] if bg else _ZERO
                lpk[b] = lnk[b] - _HALF * d2k[b] if bg else _F(-1e30)
                best[b] = max(best[b], lpk[b])
                hk[b] = _ONE if bg else _ZERO  # background flag, for now
        # Score before the update: log sum_bg (w_k / total) N_k = best + log(sum w_k
        # exp(lp_k - best) / total), one log per pixel.
        for b in range(n):
            ssum[b] = _ZERO
        for k in range(n_components):
            lpk = lp[k]
            wk = w[k]
            hk = hit[k]
            for b in range(n):
                ssum[b] += hk[b] * wk[b] * _exp_neg(lpk[b] - best[b])
        for b in range(n):
            ssum[b] = ssum[b] / max(total[b], _F(1e-30)) if total[b] > _ZERO else _ONE
        _log_lanes(ssum, ll, n, fbits, ibits, mbits, mfloat)
        ll_t = out_ll[t, p0 : p0 + n]
        for b in range(n):
            ll_t[b] = ll[b] + best[b] if total[b] > _ZERO else _ZERO
        if tau > _ZERO:
            for b in range(n):
                lab[b] = 1 if nm[b] > _ZERO else 0
            _shadow_labels(x, mu[0], lab, n, tau, distortion2)
            sh_t = out_shadow[t, p0 : p0 + n]
            for b in range(n):
                sh_t[b] = lab[b] == 2
        # Update: the first (heaviest) component within the match distance, or else a
        # new one in place of the weakest.
        for b in range(n):
            found[b] = _ZERO
        for k in range(n_components):
            d2k = d2[k]
            hk = hit[k]
            f = fk[k]
            for b in range(n):
                h = found[b] == _ZERO and f < nm[b] and d2k[b] < match
                hk[b] = _ONE if h else _ZERO
                found[b] = _ONE if h else found[b]
        decay = _ONE - a
        for b in range(n):
            changed[b] = _ZERO
            total[b] = _ZERO
        for k in range(n_components):
            wk = w[k]
            hk = hit[k]
            f = fk[k]
            for b in range(n):
                matched = hk[b] > _ZERO
                nw = wk[b] * decay + (a if matched else _ZERO)
                rate = a / nw if matched else _ZERO
                wk[b] = nw
                changed[b] = f if matched else changed[b]
                hk[b] = rate
            for c in range(n_channels):
                xc = x[c]
                mk = mu[k, c]
                for b in range(n):
                    mk[b] += hk[b] * (xc[b] - mk[b])
        # Variance of the matched component: rate * (squared distance / C - var).
        for k in range(n_components):
            vk = var[k]
            hk = hit[k]
            d2k = d2[k]
            for b in range(n):
                v = vk[b] + hk[b] * (d2k[b] * vk[b] * inv_c - vk[b])
                v = min(max(v, var_min), var_max)
                go = hk[b] > _ZERO
                vk[b] = v if go else vk[b]
                new_var[b] = v if go else new_var[b]
        # No match: a new component (var_init) at index nm, or in place of the weakest.
        for b in range(n):
            slot = nm[b] if nm[b] < _F(n_components) else _F(n_components - 1)
            changed[b] = changed[b] if found[b] > _ZERO else slot
            nm[b] = nm[b] + (_ONE if found[b] == _ZERO and nm[b] < _F(n_components) else _ZERO)
            new_var[b] = new_var[b] if found[b] > _ZERO else var_init
        for k in range(n_components):
            wk = w[k]
            vk = var[k]
            f = fk[k]
            for b in range(n):
                new = found[b] == _ZERO and changed[b] == f
                wk[b] = (a if nm[b] > _ONE else _ONE) if new else wk[b]
                vk[b] = var_init if new else vk[b]
            for c in range(n_channels):
                xc = x[c]
                mk = mu[k, c]
                for b in range(n):
                    new = found[b] == _ZERO and changed[b] == f
                    mk[b] = xc[b] if new else mk[b]
        # The changed component's Gaussian normaliser: one log per pixel.
        _log_lanes(new_var, new_ln, n, fbits, ibits, mbits, mfloat)
        for k in range(n_components):
            lnk = ln[k]
            f = fk[k]
            for b in range(n):
                lnk[b] = -half_c * (log_2pi + new_ln[b]) if changed[b] == f else lnk[b]
        for k in range(n_components):
            wk = w[k]
            for b in range(n):
                total[b] += wk[b]
        for k in range(n_components):
            wk = w[k]
            for b in range(n):
                wk[b] = wk[b] / total[b]
        # Keep the components sorted by weight: only the changed one can be out of
        # order (it grew, the others shrank alike), so one pass from the bottom up.
        for k in range(n_components - 1, 0, -1):
            hi = k - 1
            wl = w[k]
            wh = w[hi]
            for b in range(n):
                found[b] = _ONE if wl[b] > wh[b] else _ZERO  # reused: swap flags
            _swap_where(found, w[hi], w[k], n)
            _swap_where(found, var[hi], var[k], n)
            _swap_where(found, ln[hi], ln[k], n)
            for c in range(n_channels):
                _swap_where(found, mu[hi, c], mu[k, c], n)
    for k in range(n_components):
        w_all[k, p0 : p0 + n] = w[k]
        var_all[k, p0 : p0 + n] = var[k]
        ln_all[k, p0 : p0 + n] = ln[k]
        for c in range(n_channels):
            mu_all[k, c, p0 : p0 + n] = mu[k, c]
    nm_all[p0 : p0 + n] = nm


@njit(inline="always", **_OPTS)
def _swap_where(flag, a, b, n):
    for i in range(n):
        s = flag[i] > _ZERO
        lo = b[i] if s else a[i]
        hi = a[i] if s else b[i]
        a[i] = lo
        b[i] = hi


@njit(parallel=True, **_OPTS)
def _online_update(
    frames, offsets, scales, alphas, w, mu, var, ln, nm, settings, out_ll, out_shadow, tile, order
):
    n_pixels = w.shape[1]
    off = offsets.astype(np.float32)
    sc = scales.astype(np.float32)
    al = alphas.astype(np.float32)
    for i in prange(order.shape[0]):
        p0 = order[i] * tile
        _online_tile(
            frames,
            off,
            sc,
            al,
            w,
            mu,
            var,
            ln,
            nm,
            settings,
            out_ll,
            out_shadow,
            p0,
            min(tile, n_pixels - p0),
        )


def online_update(frames, offsets, scales, alphas, state, settings, out_ll, out_shadow):
    """Score a chunk of frames, each before it updates every pixel's on-line mixture.

    frames: ``(F, P * C)`` in the video's dtype; offsets, scales, alphas (learning rates):
    ``(F,)``; state: ``(w, mu, var, ln, nm)``, float32 arrays ``(K, P)``, ``(K, C, P)``,
    ``(K, P)``, ``(K, P)`` and ``(P,)`` updated in place (see ``online.OnlineState``);
    settings: ``(background_ratio, match_distance, var_init, var_min, var_max,
    shadow_tau, shadow_distortion ** 2)``; out_ll ``(F, P)`` float32 and out_shadow
    ``(F, P)`` bool (left as they are when shadow_tau is 0) are written.
    """
    tile = SCORE_TILE
    n_pixels = state[0].shape[1]
    order = _interleaved((n_pixels + tile - 1) // tile)
    _online_update(
        frames,
        offsets,
        scales,
        alphas,
        *state,
        tuple(float(v) for v in settings),
        out_ll,
        out_shadow,
        tile,
        order,
    )
