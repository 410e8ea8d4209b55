"""numba kernels of the per-pixel mixture: initialisation, EM and scoring.

Every kernel walks pixels in a ``prange`` loop and reads a pixel's samples from a
``(N, P, C)`` view of the frames.  Consecutive pixels share cache lines, so the strided
reads cost little, and no transposed copy of the learning buffer is ever made.  Sample
values are mapped to the model's intensity scale inside the kernel
(``(value - offset) * scale``), so the buffer stays in the video's own dtype.
"""

import math

import numpy as np
from numba import njit, prange

LOG_2PI = math.log(2.0 * math.pi)

# Fast-math without the no-NaN / no-inf assumptions: the maths never produces either,
# but the flags would let LLVM drop checks that the validation at the boundary relies on.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True)
def _load_pixel(samples, p, offset, scale, x):
    n_samples, _, n_channels = samples.shape
    for n in range(n_samples):
        for c in range(n_channels):
            x[n, c] = (samples[n, p, c] - offset) * scale


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def init_by_brightness(samples, offset, scale, n_components, reg_covar):
    """Deterministic start: split each pixel's samples into K brightness quantiles.

    Returns weights (P, K), means (P, K, C) and variances (P, K, C), float64.
    """
    n_samples, n_pixels, n_channels = samples.shape
    weights = np.empty((n_pixels, n_components))
    means = np.empty((n_pixels, n_components, n_channels))
    variances = np.empty((n_pixels, n_components, n_channels))
    for p in prange(n_pixels):
        x = np.empty((n_samples, n_channels))
        _load_pixel(samples, p, offset, scale, x)
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


@njit(cache=True, fastmath=_FASTMATH)
def _em_pixel(x, w, mu, var, max_iter, tol, reg_covar, log_prob):
    """EM for one pixel's diagonal-covariance mixture; updates w, mu, var in place.

    The M-step is scikit-learn's ``GaussianMixture(covariance_type='diag')``:
    ``var = E[x^2] - 2 E[x] mu + mu^2 + reg_covar`` with ``nk + 10 eps``.
    Returns the mean log-likelihood per sample under the final parameters' E-step.
    """
    n_samples, n_channels = x.shape
    n_components = w.shape[0]
    eps10 = 10.0 * np.finfo(np.float64).eps
    log_const = np.empty(n_components)
    inv_var = np.empty((n_components, n_channels))
    nk = np.empty(n_components)
    sx = np.empty((n_components, n_channels))
    sxx = np.empty((n_components, n_channels))
    previous = -np.inf
    mean_ll = -np.inf
    for _ in range(max_iter):
        for k in range(n_components):
            s = 0.0
            for c in range(n_channels):
                s += math.log(var[k, c])
                inv_var[k, c] = 1.0 / var[k, c]
            log_const[k] = math.log(w[k]) - 0.5 * (n_channels * LOG_2PI + s)
            nk[k] = 0.0
            for c in range(n_channels):
                sx[k, c] = 0.0
                sxx[k, c] = 0.0
        total = 0.0
        for n in range(n_samples):
            best = -np.inf
            for k in range(n_components):
                d = 0.0
                for c in range(n_channels):
                    diff = x[n, c] - mu[k, c]
                    d += diff * diff * inv_var[k, c]
                lp = log_const[k] - 0.5 * d
                log_prob[k] = lp
                if lp > best:
                    best = lp
            s = 0.0
            for k in range(n_components):
                log_prob[k] = math.exp(log_prob[k] - best)
                s += log_prob[k]
            total += best + math.log(s)
            inv = 1.0 / s
            for k in range(n_components):
                r = log_prob[k] * inv
                nk[k] += r
                for c in range(n_channels):
                    v = x[n, c]
                    sx[k, c] += r * v
                    sxx[k, c] += r * v * v
        mean_ll = total / n_samples
        # M-step
        for k in range(n_components):
            n_k = nk[k] + eps10
            w[k] = n_k / (n_samples + n_components * eps10)
            for c in range(n_channels):
                m = sx[k, c] / n_k
                mu[k, c] = m
                v = sxx[k, c] / n_k - m * m
                var[k, c] = max(v, 0.0) + reg_covar
        if tol > 0.0 and abs(mean_ll - previous) < tol:
            break
        previous = mean_ll
    return mean_ll


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def em_fit(samples, offset, scale, weights, means, variances, max_iter, tol, reg_covar):
    """Run EM on every pixel, starting from (and overwriting) the given parameters.

    samples: (N, P, C); weights (P, K); means and variances (P, K, C), float64.
    Returns the mean log-likelihood per sample of each pixel (P,), from the last E-step.
    """
    n_samples, n_pixels, n_channels = samples.shape
    n_components = weights.shape[1]
    mean_ll = np.empty(n_pixels)
    for p in prange(n_pixels):
        x = np.empty((n_samples, n_channels))
        log_prob = np.empty(n_components)
        _load_pixel(samples, p, offset, scale, x)
        mean_ll[p] = _em_pixel(
            x, weights[p], means[p], variances[p], max_iter, tol, reg_covar, log_prob
        )
    return mean_ll


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def score_background(frames, offset, scale, means, inv_var, log_const, n_background, out):
    """Log-likelihood of every pixel of every frame under its background components.

    frames: (T, P, C); means, inv_var: (P, K, C) float32; log_const: (P, K) float32, the
    log of the renormalised background weight plus the Gaussian's normalising constant;
    n_background: (P,) how many of the (weight-sorted) components are background.
    out: (T, P) float32.
    """
    n_frames, n_pixels, n_channels = frames.shape
    for t in range(n_frames):
        for p in prange(n_pixels):
            nb = n_background[p]
            best = -np.inf
            # At most a handful of components: two passes beat a scratch array.
            for k in range(nb):
                d = 0.0
                for c in range(n_channels):
                    diff = (frames[t, p, c] - offset) * scale - means[p, k, c]
                    d += diff * diff * inv_var[p, k, c]
                lp = log_const[p, k] - 0.5 * d
                if lp > best:
                    best = lp
            s = 0.0
            for k in range(nb):
                d = 0.0
                for c in range(n_channels):
                    diff = (frames[t, p, c] - offset) * scale - means[p, k, c]
                    d += diff * diff * inv_var[p, k, c]
                s += math.exp(log_const[p, k] - 0.5 * d - best)
            out[t, p] = best + math.log(s)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def classify_background(
    frames, offset, scale, means, inv_var, log_const, n_background, threshold, out
):
    """Foreground labels (1 where the log-likelihood is below ``threshold``, else 0).

    The same decision as thresholding :func:`score_background`, without computing the
    log-likelihood where it is not needed: a pixel that one background component alone
    explains above the threshold is background, since the mixture's density is at least
    that component's.  Most pixels are settled by their heaviest component, with no exp.
    out: (T, P) uint8.
    """
    n_frames, n_pixels, n_channels = frames.shape
    for t in range(n_frames):
        for p in prange(n_pixels):
            nb = n_background[p]
            label = 1
            best = -np.inf
            for k in range(nb):
                d = 0.0
                for c in range(n_channels):
                    diff = (frames[t, p, c] - offset) * scale - means[p, k, c]
                    d += diff * diff * inv_var[p, k, c]
                lp = log_const[p, k] - 0.5 * d
                if lp >= threshold:
                    label = 0
                    break
                if lp > best:
                    best = lp
            if label == 1 and nb > 1 and best > threshold - math.log(nb):
                # nb terms, each at most exp(best), can only cross if best is this close.
                s = 0.0
                for k in range(nb):
                    d = 0.0
                    for c in range(n_channels):
                        diff = (frames[t, p, c] - offset) * scale - means[p, k, c]
                        d += diff * diff * inv_var[p, k, c]
                    s += math.exp(log_const[p, k] - 0.5 * d - best)
                if best + math.log(s) >= threshold:
                    label = 0
            out[t, p] = label
