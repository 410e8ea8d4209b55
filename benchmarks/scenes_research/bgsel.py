"""Which components are background: the weight rule, plus the earliest stable colour, minus
objects that arrive and rest (one long run of learning samples after the earliest colour)."""

import numpy as np

from napari_gmm_bg.core.gmm import learning_correction
from napari_gmm_bg.core.intensity import frame_transform, luminance


def learning_samples(model, video):
    idx = model.learning_indices
    frames = np.asarray(video[idx])
    luma = luminance(frames, model.intensity)
    corr = learning_correction(luma, model.params)
    off, sc = frame_transform(model.intensity, corr, len(idx))
    return ((frames.astype(np.float32) - off[:, None, None, None]) * sc[:, None, None, None]).astype(
        np.float32
    )


def assignments(model, x):
    """Hard assignment of each learning sample: (N, Y, X) int8."""
    var = model.variances
    lc = np.log(model.weights) - 0.5 * np.log(var).sum(-1)
    best = None
    z = np.zeros(x.shape[:3], np.int8)
    for k in range(model.n_components):
        lp = lc[None, :, :, k] - 0.5 * (((x - model.means[None, :, :, k]) ** 2) / var[None, :, :, k]).sum(-1)
        if best is None:
            best = lp
        else:
            better = lp > best
            z[better] = k
            best = np.where(better, lp, best)
    return z


def background_mask(model, z, w_min=0.05, l_min=2, r_max=2, w_rest=0.0, absorb=None):
    """(Y, X, K) bool.

    k0: the component of the earliest run of >= l_min consecutive learning samples, among
    components of weight >= w_min (the heaviest when none).  Background: the weight rule's
    components and k0, less any other component first seen after k0's run started that
    forms at most r_max runs and weighs >= w_rest (an object that arrived and rested);
    absorb: such a component whose longest run spans more than ``absorb`` learning
    samples stays background.
    """
    n, Y, X = z.shape
    K = model.n_components
    nb = model.n_background()
    bg = np.arange(K)[None, None, :] < nb[..., None]
    first_run = np.full((Y, X, K), n, np.int32)
    first_seen = np.full((Y, X, K), n, np.int32)
    runs = np.zeros((Y, X, K), np.int32)
    longest = np.zeros((Y, X, K), np.int32)
    for k in range(K):
        is_k = z == k
        prev = np.zeros_like(is_k)
        prev[1:] = is_k[:-1]
        runs[..., k] = (is_k & ~prev).sum(0)
        seen = is_k.any(0)
        first_seen[..., k] = np.where(seen, is_k.argmax(0), n)
        stable = is_k.copy()
        for j in range(1, l_min):
            stable[:-j] &= is_k[j:]
            stable[n - j :] = False
        has = stable.any(0)
        first_run[..., k] = np.where(has, stable.argmax(0), n)
        # longest run
        cur = np.zeros((Y, X), np.int32)
        for i in range(n):
            cur = np.where(is_k[i], cur + 1, 0)
            longest[..., k] = np.maximum(longest[..., k], cur)
    heavy = model.weights >= w_min
    cand = np.where(heavy, first_run, n + 1)
    k0 = cand.argmin(-1)
    none = cand.min(-1) > n - 1
    k0[none] = 0
    onehot = np.arange(K)[None, None, :] == k0[..., None]
    t0 = np.take_along_axis(first_run, k0[..., None], -1)
    resting = (
        ~onehot
        & (first_seen > t0)
        & (runs <= r_max)
        & (model.weights >= w_rest)
    )
    if absorb is not None:
        resting &= longest <= absorb
    return (bg | onehot) & ~resting


def responsibilities(model, x):
    """(N, Y, X, K) float32 soft assignments of the learning samples."""
    var = model.variances
    lc = np.log(model.weights) - 0.5 * np.log(var).sum(-1)
    lp = np.stack(
        [
            lc[None, :, :, k]
            - 0.5 * (((x - model.means[None, :, :, k]) ** 2) / var[None, :, :, k]).sum(-1)
            for k in range(model.n_components)
        ],
        -1,
    )
    lp -= lp.max(-1, keepdims=True)
    r = np.exp(lp)
    return (r / r.sum(-1, keepdims=True)).astype(np.float32)


def rest_mask(model, z, resp, w_min=0.05, l_min=2, l_rest=4, frac=0.5, keep_k0=True):
    """Background: weight rule + k0 (earliest stable colour), less components whose
    (soft) samples lie mostly in 'rests': runs of >= l_rest consecutive learning samples
    where the pixel is not k0."""
    n, Y, X = z.shape
    K = model.n_components
    nb = model.n_background()
    bg = np.arange(K)[None, None, :] < nb[..., None]
    first_run = np.full((Y, X, K), n, np.int32)
    for k in range(K):
        is_k = z == k
        stable = is_k.copy()
        for j in range(1, l_min):
            stable[:-j] &= is_k[j:]
            stable[n - j :] = False
        first_run[..., k] = np.where(stable.any(0), stable.argmax(0), n)
    cand = np.where(model.weights >= w_min, first_run, n + 1)
    k0 = cand.argmin(-1)
    k0[cand.min(-1) > n - 1] = 0
    occ = z != k0[None]
    fwd = np.zeros(occ.shape, np.int32)
    bwd = np.zeros(occ.shape, np.int32)
    c = np.zeros((Y, X), np.int32)
    for i in range(n):
        c = np.where(occ[i], c + 1, 0)
        fwd[i] = c
    c[:] = 0
    for i in range(n - 1, -1, -1):
        c = np.where(occ[i], c + 1, 0)
        bwd[i] = c
    in_rest = occ & (fwd + bwd - 1 >= l_rest)
    mass = resp.sum(0)
    rest_mass = (resp * in_rest[..., None]).sum(0)
    onehot = np.arange(K)[None, None, :] == k0[..., None]
    resting = ~onehot & (rest_mass >= frac * np.maximum(mass, 1e-6))
    out = (bg | onehot) & ~resting
    rest_sample = np.take_along_axis(resting, z.transpose(1, 2, 0).astype(np.int64), -1).transpose(2, 0, 1)
    return out, k0, rest_sample
