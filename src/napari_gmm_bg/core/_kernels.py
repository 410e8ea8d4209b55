"""numba kernels of the per-pixel mixture: initialisation, EM and scoring.

Every kernel walks pixels in a ``prange`` loop and reads a pixel's samples from a
``(N, P, C)`` view of the frames.  Consecutive pixels share cache lines, so the strided
reads cost little, and no transposed copy of the learning buffer is ever made.  Sample
values are mapped to the model's intensity scale inside the kernel
(``(value - offsets[frame]) * scales[frame]``), so the buffer stays in the video's own
dtype; an offset and a scale per frame carry the brightness compensation (see
``gmm.brightness_correction``).
"""

import math

import numpy as np
from numba import njit, prange

LOG_2PI = math.log(2.0 * math.pi)
LANES = 64  # pixels per SIMD block in em_fit

# Fast-math without the no-NaN / no-inf assumptions: the maths never produces either,
# but the flags would let LLVM drop checks that the validation at the boundary relies on.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True)
def _load_pixel(samples, p, offsets, scales, x):
    n_samples, _, n_channels = samples.shape
    for n in range(n_samples):
        for c in range(n_channels):
            x[n, c] = (samples[n, p, c] - offsets[n]) * scales[n]


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def init_by_brightness(samples, offsets, scales, n_components, reg_covar):
    """Deterministic start: split each pixel's samples into K brightness quantiles.

    Returns weights (P, K), means (P, K, C) and variances (P, K, C), float64.
    """
    n_samples, n_pixels, n_channels = samples.shape
    weights = np.empty((n_pixels, n_components))
    means = np.empty((n_pixels, n_components, n_channels))
    variances = np.empty((n_pixels, n_components, n_channels))
    for p in prange(n_pixels):
        x = np.empty((n_samples, n_channels))
        _load_pixel(samples, p, offsets, scales, x)
        brightness = np.empty(n_samples)
        for n in range(n_samples):
            s = 0.0
            for c in range(n_channels):
                s += x[n, c]
            brightness[n] = s
        order = np.argsort(brightness, kind="mergesort")
        for k in range(n_components):
            start = (k * n_samples) // n_components
            stop = ((k + 1) * n_samples) // n_components
            count = stop - start
            weights[p, k] = count / n_samples
            for c in range(n_channels):
                s = 0.0
                ss = 0.0
                for i in range(start, stop):
                    v = x[order[i], c]
                    s += v
                    ss += v * v
                m = s / count
                means[p, k, c] = m
                variances[p, k, c] = max(ss / count - m * m, 0.0) + reg_covar
    return weights, means, variances


@njit(inline="always", fastmath=_FASTMATH)
def _exp_neg(x):
    # exp(x) for x <= 0 without a libm call, so loops over it vectorise: exp(x/64)^64
    # with a degree-7 Taylor polynomial; relative error < 1e-5, and 0 below exp(-40).
    x = max(x, -40.0) * 0.015625
    p = 1.0 + x * (
        1.0
        + x
        * (
            0.5
            + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x * (1.0 / 720 + x * (1.0 / 5040)))))
        )
    )
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(inline="always", fastmath=_FASTMATH)
def _log_1_to_k(s):
    # log(s) for 1 <= s <= 8 (a sum of K <= 8 terms, the largest being 1), vectorisable:
    # 2 atanh(u) with u = (s-1)/(s+1) < 0.78, its odd series to u^21 (error < 1e-3).
    u = (s - 1.0) / (s + 1.0)
    u2 = u * u
    q = 1.0 / 21
    q = 1.0 / 19 + u2 * q
    q = 1.0 / 17 + u2 * q
    q = 1.0 / 15 + u2 * q
    q = 1.0 / 13 + u2 * q
    q = 1.0 / 11 + u2 * q
    q = 1.0 / 9 + u2 * q
    q = 1.0 / 7 + u2 * q
    q = 1.0 / 5 + u2 * q
    q = 1.0 / 3 + u2 * q
    q = 1.0 + u2 * q
    return 2.0 * u * q


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def em_fit(samples, offsets, scales, weights, means, variances, max_iter, tol, reg_covar):
    """Run EM on every pixel, starting from (and overwriting) the given parameters.

    samples: (N, P, C); weights (P, K); means and variances (P, K, C), float64.
    Returns the mean log-likelihood per sample of each pixel (P,), from the last E-step.

    The M-step is scikit-learn's ``GaussianMixture(covariance_type='diag')``:
    ``var = E[x^2] - 2 E[x] mu + mu^2 + reg_covar``, with ``nk + 10 eps``.  Pixels are
    processed in blocks of ``LANES`` with the pixel index innermost, so that every inner
    loop is a straight run over contiguous lanes that LLVM turns into SIMD; the exp and
    log above keep it so.  A pixel stops updating once its mean log-likelihood improves by
    less than ``tol``, as if it ran alone.
    """
    n_samples, n_pixels, n_channels = samples.shape
    K = weights.shape[1]
    B = LANES
    n_blocks = (n_pixels + B - 1) // B
    eps10 = 10.0 * np.finfo(np.float64).eps
    mean_ll = np.empty(n_pixels)
    for blk in prange(n_blocks):
        p0 = blk * B
        nb = min(B, n_pixels - p0)
        x = np.empty((n_samples, n_channels, B))
        for n in range(n_samples):
            for c in range(n_channels):
                for b in range(B):
                    pb = p0 + min(b, nb - 1)
                    x[n, c, b] = (samples[n, pb, c] - offsets[n]) * scales[n]
        w = np.empty((K, B))
        mu = np.empty((K, n_channels, B))
        var = np.empty((K, n_channels, B))
        for k in range(K):
            for b in range(B):
                pb = p0 + min(b, nb - 1)
                w[k, b] = weights[pb, k]
                for c in range(n_channels):
                    mu[k, c, b] = means[pb, k, c]
                    var[k, c, b] = variances[pb, k, c]
        iv = np.empty((K, n_channels, B))
        lc = np.empty((K, B))
        lp = np.empty((K, B))
        best = np.empty(B)
        ssum = np.empty(B)
        total = np.empty(B)
        prev = np.full(B, -np.inf)
        done = np.zeros(B, np.bool_)
        last = np.full(B, -np.inf)
        nk = np.empty((K, B))
        sx = np.empty((K, n_channels, B))
        sxx = np.empty((K, n_channels, B))
        for _ in range(max_iter):
            for k in range(K):
                for b in range(B):
                    lc[k, b] = math.log(w[k, b]) - 0.5 * n_channels * LOG_2PI
                    nk[k, b] = 0.0
                for c in range(n_channels):
                    for b in range(B):
                        lc[k, b] -= 0.5 * math.log(var[k, c, b])
                        iv[k, c, b] = 1.0 / var[k, c, b]
                        sx[k, c, b] = 0.0
                        sxx[k, c, b] = 0.0
            for b in range(B):
                total[b] = 0.0
            for n in range(n_samples):
                for k in range(K):
                    for b in range(B):
                        lp[k, b] = lc[k, b]
                    for c in range(n_channels):
                        for b in range(B):
                            diff = x[n, c, b] - mu[k, c, b]
                            lp[k, b] -= 0.5 * diff * diff * iv[k, c, b]
                for b in range(B):
                    best[b] = lp[0, b]
                for k in range(1, K):
                    for b in range(B):
                        best[b] = max(best[b], lp[k, b])
                for b in range(B):
                    ssum[b] = 0.0
                for k in range(K):
                    for b in range(B):
                        e = _exp_neg(lp[k, b] - best[b])
                        lp[k, b] = e
                        ssum[b] += e
                for b in range(B):
                    total[b] += best[b] + _log_1_to_k(ssum[b])
                    ssum[b] = 1.0 / ssum[b]
                for k in range(K):
                    for b in range(B):
                        lp[k, b] *= ssum[b]
                        nk[k, b] += lp[k, b]
                    for c in range(n_channels):
                        for b in range(B):
                            r = lp[k, b]
                            v = x[n, c, b]
                            sx[k, c, b] += r * v
                            sxx[k, c, b] += r * v * v
            all_done = True
            for b in range(B):
                if done[b]:
                    continue
                last[b] = total[b] / n_samples
                for k in range(K):
                    n_k = nk[k, b] + eps10
                    w[k, b] = n_k / (n_samples + K * eps10)
                    for c in range(n_channels):
                        m = sx[k, c, b] / n_k
                        mu[k, c, b] = m
                        var[k, c, b] = max(sxx[k, c, b] / n_k - m * m, 0.0) + reg_covar
                if tol > 0.0 and abs(last[b] - prev[b]) < tol:
                    done[b] = True
                else:
                    all_done = False
                prev[b] = last[b]
            if all_done:
                break
        for b in range(nb):
            pb = p0 + b
            mean_ll[pb] = last[b]
            for k in range(K):
                weights[pb, k] = w[k, b]
                for c in range(n_channels):
                    means[pb, k, c] = mu[k, c, b]
                    variances[pb, k, c] = var[k, c, b]
    return mean_ll


@njit(inline="always", fastmath=_FASTMATH)
def _log_density(frames, t, p, k, offsets, scales, means, inv_var, log_const):
    # One component's weighted log-density at pixel p of frame t (same order of
    # operations everywhere, so the mask's shortcut decides exactly as the scores do).
    d = 0.0
    for c in range(frames.shape[2]):
        diff = (frames[t, p, c] - offsets[t]) * scales[t] - means[p, k, c]
        d += diff * diff * inv_var[p, k, c]
    return log_const[p, k] - 0.5 * d


@njit(inline="always", fastmath=_FASTMATH)
def _is_shadow(values, offset, scale, mean, shadow_tau, shadow_distortion):
    # The background colour ``mean`` darkened by a in [shadow_tau, 1), give or take a
    # relative colour distortion |x - a mean| < shadow_distortion |a mean|.
    num = 0.0
    den = 0.0
    for c in range(values.shape[0]):
        num += ((values[c] - offset) * scale) * mean[c]
        den += mean[c] * mean[c]
    if den <= 0.0:
        return False
    a = num / den
    if not shadow_tau <= a < 1.0:
        return False
    d = 0.0
    for c in range(values.shape[0]):
        diff = ((values[c] - offset) * scale) - a * mean[c]
        d += diff * diff
    return d < shadow_distortion * shadow_distortion * a * a * den


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def score_background(frames, offsets, scales, means, inv_var, log_const, n_background, out):
    """Log-likelihood of every pixel of every frame under its background components.

    frames: (T, P, C); means, inv_var: (P, K, C) float32; log_const: (P, K) float32, the
    log of the renormalised background weight plus the Gaussian's normalising constant;
    n_background: (P,) how many of the (weight-sorted) components are background.
    out: (T, P) float32.
    """
    n_frames, n_pixels, _ = frames.shape
    for t in range(n_frames):
        for p in prange(n_pixels):
            nb = n_background[p]
            best = -np.inf
            # At most a handful of components: two passes beat a scratch array.
            for k in range(nb):
                best = max(
                    best, _log_density(frames, t, p, k, offsets, scales, means, inv_var, log_const)
                )
            s = 0.0
            for k in range(nb):
                s += math.exp(
                    _log_density(frames, t, p, k, offsets, scales, means, inv_var, log_const)
                    - best
                )
            out[t, p] = best + math.log(s)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def classify_background(
    frames,
    offsets,
    scales,
    means,
    inv_var,
    log_const,
    n_background,
    threshold,
    shadow_tau,
    shadow_distortion,
    out,
):
    """Foreground labels (1 where the log-likelihood is below ``threshold``, else 0).

    The same decision as thresholding :func:`score_background`, without computing the
    log-likelihood where it is not needed: a pixel that one background component alone
    explains above the threshold is background, since the mixture's density is at least
    that component's.  Most pixels are settled by their heaviest component, with no exp.

    Shadows (``shadow_tau > 0``): a foreground pixel that is the heaviest component's
    colour scaled by ``a`` in [shadow_tau, 1), give or take a relative colour distortion
    ``|x - a mean| < shadow_distortion |a mean|``, is labelled 2.  (MOG2 measures the
    distortion in units of its variance; ours carries a broad variance floor, so the
    distortion is measured relative to the colour instead.)  out: (T, P) uint8.
    """
    n_frames, n_pixels, _ = frames.shape
    for t in range(n_frames):
        for p in prange(n_pixels):
            nb = n_background[p]
            label = 1
            best = -np.inf
            for k in range(nb):
                lp = _log_density(frames, t, p, k, offsets, scales, means, inv_var, log_const)
                if lp >= threshold:
                    label = 0
                    break
                if lp > best:
                    best = lp
            if label == 1 and nb > 1 and best > threshold - math.log(nb):
                # nb terms, each at most exp(best), can only cross if best is this close.
                s = 0.0
                for k in range(nb):
                    s += math.exp(
                        _log_density(frames, t, p, k, offsets, scales, means, inv_var, log_const)
                        - best
                    )
                if best + math.log(s) >= threshold:
                    label = 0
            if label == 1 and shadow_tau > 0.0:
                pixel, background = frames[t, p], means[p, 0]
                if _is_shadow(
                    pixel, offsets[t], scales[t], background, shadow_tau, shadow_distortion
                ):
                    label = 2
            out[t, p] = label


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def online_update(
    frame,
    offset,
    scale,
    weights,
    means,
    variances,
    n_modes,
    alpha,
    settings,
    d2s,
    log_norm,
    out_ll,
    out_shadow,
):
    """Score one frame (P, C) against the background, then update every pixel's mixture.

    The on-line GMM of :mod:`napari_gmm_bg.core.online`; ``d2s`` (P, K) is scratch space,
    so the loop over pixels allocates nothing; ``log_norm`` (P, K) keeps each component's
    Gaussian normaliser, recomputed only when its variance changes.  A pixel with one
    background component (most of them) is scored with no log or exp.
    """
    ratio, match, var_init, var_min, var_max, shadow_tau, shadow_dist = settings
    n_pixels, n_channels = frame.shape
    n_components = weights.shape[1]
    for p in prange(n_pixels):
        nm = n_modes[p]
        # Background components: the heaviest up to the ratio, renormalised.
        total = 0.0
        nb = 0
        for k in range(nm):
            total += weights[p, k]
            nb = k + 1
            if total > ratio:
                break
        best = -np.inf
        s = 0.0
        for k in range(nm):
            d2 = 0.0
            for c in range(n_channels):
                diff = (frame[p, c] - offset) * scale - means[p, k, c]
                d2 += diff * diff
            d2s[p, k] = d2 / variances[p, k]
        if nm == 0 or total <= 0.0:
            out_ll[p] = 0.0  # the very first sample: nothing to tell it from yet
        elif nb == 1:
            out_ll[p] = log_norm[p, 0] - 0.5 * d2s[p, 0]
        else:
            for k in range(nb):
                lp = math.log(weights[p, k] / total) + log_norm[p, k] - 0.5 * d2s[p, k]
                if lp > best:
                    best = lp
            for k in range(nb):
                lp = math.log(weights[p, k] / total) + log_norm[p, k] - 0.5 * d2s[p, k]
                s += math.exp(lp - best)
            out_ll[p] = best + math.log(s)
        out_shadow[p] = False
        if shadow_tau > 0.0 and nm > 0:
            out_shadow[p] = _is_shadow(
                frame[p], offset, scale, means[p, 0], shadow_tau, shadow_dist
            )
        # Update: the first (heaviest) component within the match distance.
        matched = -1
        for k in range(nm):
            if d2s[p, k] < match:
                matched = k
                break
        for k in range(nm):
            weights[p, k] *= 1.0 - alpha
        if matched >= 0:
            w = weights[p, matched] + alpha
            weights[p, matched] = w
            rate = alpha / w
            dist2 = 0.0
            for c in range(n_channels):
                diff = ((frame[p, c] - offset) * scale) - means[p, matched, c]
                means[p, matched, c] += rate * diff
                dist2 += diff * diff
            var = variances[p, matched] + rate * (dist2 / n_channels - variances[p, matched])
            var = min(max(var, var_min), var_max)
            variances[p, matched] = var
            log_norm[p, matched] = -0.5 * n_channels * (LOG_2PI + math.log(var))
            k = matched
        else:
            k = nm if nm < n_components else n_components - 1
            if nm < n_components:
                n_modes[p] = nm + 1
                nm += 1
            weights[p, k] = alpha if nm > 1 else 1.0
            for c in range(n_channels):
                means[p, k, c] = (frame[p, c] - offset) * scale
            variances[p, k] = var_init
            log_norm[p, k] = -0.5 * n_channels * (LOG_2PI + math.log(var_init))
        total = 0.0
        for j in range(nm):
            total += weights[p, j]
        for j in range(nm):
            weights[p, j] /= total
        # Keep the components sorted by weight: bubble the one that changed.
        while k > 0 and weights[p, k] > weights[p, k - 1]:
            tmp = weights[p, k]
            weights[p, k] = weights[p, k - 1]
            weights[p, k - 1] = tmp
            tmp = variances[p, k]
            variances[p, k] = variances[p, k - 1]
            variances[p, k - 1] = tmp
            tmp = log_norm[p, k]
            log_norm[p, k] = log_norm[p, k - 1]
            log_norm[p, k - 1] = tmp
            for c in range(n_channels):
                tmp = means[p, k, c]
                means[p, k, c] = means[p, k - 1, c]
                means[p, k - 1, c] = tmp
            k -= 1
