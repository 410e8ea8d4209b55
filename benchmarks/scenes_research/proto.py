"""Prototype: scale-free score + spatial consensus on top of a fitted BackgroundModel.

score(p, t) = min over background components k of pixel p of
    d2 = sum_c (x_c - mu_kc)^2 / max(var_kc, floor)
(components with mean variance above vmax are not background);
nbr(p, t)   = the same, min over the background components of the pixels q != p with
    max(|qy - py|, |qx - px|) <= r  (ring 1 and ring 2 kept apart).
"""

import math
import time

import numba
import numpy as np
from numba import njit, prange

from napari_gmm_bg import fit_background
from napari_gmm_bg.core.intensity import frame_transform

BIG = np.float32(1e30)


def prepare(model, floor, vmax, bg_mask=None, cap=False):
    """Means (Y,X,K,3), inverse variances, with non-background components disabled."""
    mu = model.means.astype(np.float32).copy()
    var = np.maximum(model.variances.astype(np.float32), floor)
    if bg_mask is None:
        nb = model.n_background()
        bg_mask = np.arange(model.n_components)[None, None, :] < nb[..., None]
    broad = var.mean(-1) > vmax
    if cap:
        var = np.minimum(var, vmax)
        ok = bg_mask
    else:
        ok = bg_mask & ~broad
    iv = (1.0 / var).astype(np.float32)
    iv[~ok] = 1.0
    mu[~ok] = 1e6
    # a pixel with no background component: keep its heaviest (capped) so it is not all fg
    none = ~ok.any(-1)
    if none.any():
        iv[none, 0] = 1.0 / np.minimum(var[none, 0], vmax)
        mu[none, 0] = model.means[none, 0]
    return np.ascontiguousarray(mu), np.ascontiguousarray(iv)


@njit(inline="always", fastmath=True)
def _d2(x0, x1, x2, mu, iv, y, x):
    best = np.float32(1e30)
    for k in range(mu.shape[2]):
        a = x0 - mu[y, x, k, 0]
        b = x1 - mu[y, x, k, 1]
        c = x2 - mu[y, x, k, 2]
        d = a * a * iv[y, x, k, 0] + b * b * iv[y, x, k, 1] + c * c * iv[y, x, k, 2]
        best = min(best, d)
    return best


@njit(parallel=True, fastmath=True, cache=True)
def scores(frames, off, sc, mu, iv, own, ring1, ring2, gate):
    """own/ring1/ring2: (T, Y, X) float32.  Neighbours only where own > gate."""
    T, Y, X, _ = frames.shape
    for t in prange(T):
        o = off[t]
        s = sc[t]
        for y in range(Y):
            for x in range(X):
                x0 = (np.float32(frames[t, y, x, 0]) - o) * s
                x1 = (np.float32(frames[t, y, x, 1]) - o) * s
                x2 = (np.float32(frames[t, y, x, 2]) - o) * s
                d = _d2(x0, x1, x2, mu, iv, y, x)
                own[t, y, x] = d
                r1 = np.float32(1e30)
                r2 = np.float32(1e30)
                if d > gate:
                    for dy in range(-2, 3):
                        yy = y + dy
                        if yy < 0 or yy >= Y:
                            continue
                        for dx in range(-2, 3):
                            xx = x + dx
                            if xx < 0 or xx >= X or (dy == 0 and dx == 0):
                                continue
                            e = _d2(x0, x1, x2, mu, iv, yy, xx)
                            if abs(dy) <= 1 and abs(dx) <= 1:
                                r1 = min(r1, e)
                            else:
                                r2 = min(r2, e)
                ring1[t, y, x] = r1
                ring2[t, y, x] = r2


def ratio_gains(model, video, stride=4, tol=0.15):
    """Per-frame gain: median of luminance ratios frame / background, refined once on the
    pixels within tol of the first estimate; lift 0."""
    bg = model.means[::stride, ::stride, 0].mean(-1)
    ok = bg > 8.0
    lum = np.asarray(video[:, ::stride, ::stride]).astype(np.float32).mean(-1)
    r = lum[:, ok] / bg[ok][None]
    g = np.median(r, axis=1)
    g2 = np.empty_like(g)
    for t in range(len(g)):
        near = np.abs(r[t] - g[t]) < tol * g[t]
        g2[t] = np.median(r[t][near]) if near.sum() > 16 else g[t]
    return g2.astype(np.float64), np.zeros(len(g))


BRIGHTNESS = "pkg"


def transforms(model, video, brightness=None):
    brightness = BRIGHTNESS if brightness is None else brightness
    if brightness == "none":
        gains_lifts = (np.ones(len(video)), np.zeros(len(video)))
    elif brightness == "ratio":
        gains_lifts = ratio_gains(model, video)
    else:
        gains_lifts = model.brightness(np.asarray(video))
    off, sc = frame_transform(model.intensity, gains_lifts, len(video))
    return off.astype(np.float32), sc.astype(np.float32)


def run_scores(model, video, floor, vmax, gate, bg_mask=None, cap=False):
    mu, iv = prepare(model, floor, vmax, bg_mask, cap)
    video = np.ascontiguousarray(video)
    off, sc = transforms(model, video)
    shape = video.shape[:3]
    own = np.empty(shape, np.float32)
    r1 = np.empty(shape, np.float32)
    r2 = np.empty(shape, np.float32)
    scores(video, off, sc, mu, iv, own, r1, r2, np.float32(gate))
    return own, r1, r2


class Truth:
    """Positives/negatives of a scene's scored frames, for fast F."""

    def __init__(self, truth, roi, frames, border=0):
        g = np.asarray(truth[frames.start : frames.stop])
        roi = roi.copy()
        if border:
            roi[:border] = roi[-border:] = False
            roi[:, :border] = roi[:, -border:] = False
        self.pos = (g == 255) & roi
        self.neg = ((g == 0) | (g == 50)) & roi
        self.n_pos = int(self.pos.sum())
        self.frames = frames

    def f(self, mask):
        """mask: (T_scored, Y, X) bool or 0/1."""
        m = mask.view(bool) if mask.dtype == np.uint8 else mask
        tp = np.count_nonzero(m & self.pos)
        fp = np.count_nonzero(m & self.neg)
        fn = self.n_pos - tp
        return 2 * tp / max(2 * tp + fp + fn, 1)


def median_clean(mask, size):
    import cv2

    if size <= 1:
        return mask
    out = np.empty_like(mask)
    for t in range(len(mask)):
        out[t] = cv2.medianBlur(mask[t], size)
    return out


def timer():
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def ratio_correction(luma, reference, tol=0.15):
    """Robust gain of each frame's luminance against a reference: the median of pixel
    ratios, refined once on the pixels within tol of it; lift 0."""
    ref = reference.ravel()
    ok = ref > 8.0
    r = luma.reshape(len(luma), -1)[:, ok] / ref[ok][None]
    g = np.median(r, axis=1)
    out = g.copy()
    for t in range(len(g)):
        near = np.abs(r[t] - g[t]) < tol * g[t]
        if near.sum() > 16:
            out[t] = np.median(r[t][near])
    return np.clip(out, 0.1, 10.0).astype(np.float64), np.zeros(len(g))


def patch_ratio_learning():
    """Make fit_background's learning correction the robust ratio gain."""
    import napari_gmm_bg.core.gmm as gmm
    from napari_gmm_bg.core import _kernels

    def learning_correction(luma, params):
        if not params.compensate_brightness:
            return None
        return ratio_correction(luma, _kernels.median_over_frames(luma))

    gmm.learning_correction = learning_correction


@njit(parallel=True, fastmath=True, cache=True)
def labels_kernel(frames, off, sc, mu, iv, enable, T, Tn, r, out, cand):
    """Production-like: own d2 > T is a candidate; where enable, a neighbour within
    radius r whose background explains the colour (d2 <= Tn) rescues it (early exit).
    out: (T, Y, X) uint8 labels; cand counts candidates per frame (cost accounting)."""
    NT, Y, X, _ = frames.shape
    for t in prange(NT):
        o = off[t]
        s = sc[t]
        n_c = 0
        for y in range(Y):
            for x in range(X):
                x0 = (np.float32(frames[t, y, x, 0]) - o) * s
                x1 = (np.float32(frames[t, y, x, 1]) - o) * s
                x2 = (np.float32(frames[t, y, x, 2]) - o) * s
                d = _d2(x0, x1, x2, mu, iv, y, x)
                lab = np.uint8(0)
                if d > T:
                    lab = np.uint8(1)
                    if enable[y, x]:
                        n_c += 1
                        for dy in range(-r, r + 1):
                            yy = y + dy
                            if yy < 0 or yy >= Y:
                                continue
                            for dx in range(-r, r + 1):
                                xx = x + dx
                                if xx < 0 or xx >= X or (dy == 0 and dx == 0):
                                    continue
                                if _d2(x0, x1, x2, mu, iv, yy, xx) <= Tn:
                                    lab = np.uint8(0)
                                    break
                            if lab == 0:
                                break
                out[t, y, x] = lab
        cand[t] = n_c


@njit(parallel=True, fastmath=True, cache=True)
def own_kernel(frames, off, sc, mu, iv, T, out):
    """Own test only (no consensus): the cost floor of the score stage."""
    NT, Y, X, _ = frames.shape
    for t in prange(NT):
        o = off[t]
        s = sc[t]
        for y in range(Y):
            for x in range(X):
                x0 = (np.float32(frames[t, y, x, 0]) - o) * s
                x1 = (np.float32(frames[t, y, x, 1]) - o) * s
                x2 = (np.float32(frames[t, y, x, 2]) - o) * s
                out[t, y, x] = np.uint8(_d2(x0, x1, x2, mu, iv, y, x) > T)
