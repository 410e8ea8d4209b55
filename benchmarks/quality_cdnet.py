"""F-measure and friends on CDnet highway: GMM vs MOG2 vs the ten-line baseline.

    python benchmarks/quality_cdnet.py            # the table, at default settings
    python benchmarks/quality_cdnet.py --tune     # the grid search that chose the defaults

Defaults are tuned on frames 470-735 only; 736-1000 is held out and reported.
"""

import argparse
import dataclasses
import itertools
import sys
import time

import numpy as np

import napari_gmm_bg.core.gmm as gmm
from napari_gmm_bg import FitParameters, MaskCleanup, fit_background, get_method
from napari_gmm_bg.core import _kernels
from napari_gmm_bg.core.cleanup import clean_mask
from napari_gmm_bg.core.intensity import frame_transform
from napari_gmm_bg.core.metrics import evaluate_mask
from napari_gmm_bg.core.mog2 import Mog2Settings
from napari_gmm_bg.core.online import OnlineSettings
from napari_gmm_bg.io.cdnet import read_cdnet

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _data import missing, shared  # noqa: E402

TUNE = range(469, 735)  # frames 470-735, 1-based
TEST = range(735, 1000)  # frames 736-1000
ALL = range(469, 1000)


#: (row label, registered method, settings or None for its defaults), through the one
#: method interface.
VARIANTS = (
    ("baseline (median, d>40, 5x5)", "baseline", None),
    ("MOG2 defaults", "mog2", None),
    ("MOG2 no shadows", "mog2", Mog2Settings(detect_shadows=False)),
    ("KNN defaults", "knn", None),
    ("GMM defaults", "gmm", None),
    ("GMM, shadows shown (label 2)", "gmm", FitParameters(shadows="show")),
    # On-line: frame by frame from the first frame, no learning buffer.
    ("GMM on-line", "online", None),
    ("GMM on-line, shadows shown", "online", OnlineSettings(shadows="show")),
)


def timed(fn):
    start = time.perf_counter()
    mask = fn()
    return mask, time.perf_counter() - start


def methods(seq):
    video = seq.video
    for label, name, settings in VARIANTS:
        method = get_method(name)
        yield label, timed(lambda m=method, s=settings: m.run(video, s).labels())
    # The slow reference, not a method: every frame, float64, all iterations.
    yield "GMM, float64 EM on every frame", timed(lambda: full_em(video).foreground(video))


def full_em(video, max_iter=10, chunk=4096):
    """The slow reference: EM in float64 numpy on every frame, all 10 iterations (tol 0),
    from the same start as the default fit (learning frames uncorrected, as it fits)."""
    model = fit_background(video, learning_frames=len(video), max_iter=0)
    frames = video.reshape(len(video), -1, video.shape[-1]).astype(np.float64)
    offsets, scales = frame_transform(model.intensity, None, len(video))
    x = (frames - offsets[:, None, None]) * scales[:, None, None]
    k = model.n_components
    w = model.weights.reshape(-1, k).astype(np.float64)
    mu = model.means.reshape(-1, k, x.shape[-1]).astype(np.float64)
    var = model.variances.reshape(-1, k, x.shape[-1]).astype(np.float64)
    reg = model.params.reg_covar
    for p0 in range(0, x.shape[1], chunk):
        xs = x[:, p0 : p0 + chunk]  # (N, p, C)
        ws, ms, vs = w[p0 : p0 + chunk], mu[p0 : p0 + chunk], var[p0 : p0 + chunk]
        for _ in range(max_iter):
            # E-step (scikit-learn's, diagonal covariances), then its M-step.
            diff = xs[:, :, None, :] - ms[None]
            log_p = np.log(ws)[None] - 0.5 * (
                np.log(2 * np.pi * vs)[None] + diff**2 / vs[None]
            ).sum(-1)
            top = log_p.max(-1, keepdims=True)
            resp = np.exp(log_p - top)
            resp /= resp.sum(-1, keepdims=True)
            nk = resp.sum(0) + 10 * np.finfo(np.float64).eps
            ws = nk / len(xs)
            ms = np.einsum("npk,npc->pkc", resp, xs) / nk[..., None]
            ex2 = np.einsum("npk,npc->pkc", resp, xs**2) / nk[..., None]
            vs = ex2 - ms**2 + reg
        order = np.argsort(-ws, axis=1, kind="stable")
        w[p0 : p0 + chunk] = np.take_along_axis(ws, order, 1)
        mu[p0 : p0 + chunk] = np.take_along_axis(ms, order[..., None], 1)
        var[p0 : p0 + chunk] = np.take_along_axis(vs, order[..., None], 1)
    shape = model.weights.shape
    w, mu, var = (a.astype(np.float32) for a in (w, mu, var))
    # The background chosen, and the consensus map drawn, as the fit does, from these.
    params = dataclasses.replace(model.params, max_iter=max_iter, tol=0.0)
    flags = _kernels.choose_background(
        video.reshape(len(video), -1, video.shape[-1]),
        offsets,
        scales,
        w,
        mu,
        var,
        gmm.weight_rule_count(w, params.background_ratio),
        gmm.STILL_WEIGHT,
        gmm.STILL_SAMPLES,
        gmm._short_still(gmm.STILL_SAMPLES),
        gmm.SHORT_STILL_RATIO,
        gmm.REST_SAMPLES,
        gmm.REST_SHARE,
        params.max_variance,
        0,
    )
    full = dataclasses.replace(
        model,
        weights=w.reshape(shape),
        means=mu.reshape(model.means.shape),
        variances=var.reshape(model.means.shape),
        params=params,
        flags=flags.reshape(shape),
        consensus=None,
        _scoring={},
    )
    full.consensus = gmm.consensus_map(full, video)
    full._scoring.clear()
    return full


def shadow_called_foreground(mask, seq):
    """Fraction of CDnet's hard-shadow pixels (label 50) called foreground (label 1)."""
    frames = slice(ALL.start, ALL.stop)
    shadow = seq.ground_truth[frames] == 50
    if seq.roi is not None:
        shadow &= seq.roi
    return float((mask[frames][shadow] == 1).mean())


def table(seq):
    rows = []
    for name, (mask, seconds) in methods(seq):
        scores = [evaluate_mask(mask, seq.ground_truth, seq.roi, r) for r in (TUNE, TEST, ALL)]
        rows.append((name, seconds, scores, shadow_called_foreground(mask, seq)))
    print(
        f"CDnet {seq.name}: {seq.video.shape[0]} frames {seq.video.shape[2]}x{seq.video.shape[1]}"
    )
    print(
        f"{'method':30s} {'F 470-735':>10s} {'F 736-1000':>11s} {'F 470-1000':>11s} "
        f"{'recall':>7s} {'prec.':>7s} {'PWC':>6s} {'shadow->fg':>10s} {'time s':>7s}"
    )
    for name, seconds, (tune, test, whole), shadow in rows:
        print(
            f"{name:30s} {tune['f_measure']:10.3f} {test['f_measure']:11.3f} "
            f"{whole['f_measure']:11.3f} {whole['recall']:7.3f} {whole['precision']:7.3f} "
            f"{whole['pwc']:6.2f} {100 * shadow:9.1f}% {seconds:7.2f}"
        )
    return rows


def tune(seq):
    video, truth, roi = seq.video, seq.ground_truth, seq.roi
    results = []
    for reg, ratio in itertools.product((4.0, 16.0, 36.0, 64.0, 100.0), (0.7, 0.8, 0.9)):
        model = fit_background(video, reg_covar=reg, background_ratio=ratio)
        score = model.distance(video[ALL.start : ALL.stop])
        for threshold, median in itertools.product(np.arange(0.6, 1.7, 0.1), (0, 5, 9, 13, 17)):
            # Threshold and clean the scores once computed (the same as model.foreground).
            mask = clean_mask((score > threshold).astype(np.uint8), MaskCleanup(median=median))
            offset = ALL.start
            f_tune = evaluate_mask(
                mask,
                truth[ALL.start : ALL.stop],
                roi,
                range(TUNE.start - offset, TUNE.stop - offset),
            )["f_measure"]
            results.append((f_tune, reg, ratio, float(threshold), median, mask))
        best = max(results, key=lambda r: r[0])
        print(
            f"reg {reg:5.1f} ratio {ratio}: best so far F(tune) {best[0]:.4f} at "
            f"reg {best[1]} ratio {best[2]} threshold {best[3]} median {best[4]}",
            flush=True,
        )
        results = [best]
    f_tune, reg, ratio, threshold, median, mask = results[0]
    offset = ALL.start
    f_test = evaluate_mask(
        mask, truth[ALL.start : ALL.stop], roi, range(TEST.start - offset, TEST.stop - offset)
    )["f_measure"]
    print(
        f"chosen on 470-735: reg_covar {reg}, background_ratio {ratio}, threshold {threshold}, "
        f"median {median}: F 470-735 {f_tune:.4f}, held-out F 736-1000 {f_test:.4f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--data", default=None, help="a CDnet folder (default: shared highway)")
    args = parser.parse_args()
    folder = args.data or shared("cdnet_highway_dev")
    if folder is None:
        print(missing("cdnet_highway_dev"))
        return 0
    seq = read_cdnet(folder)
    if args.tune:
        tune(seq)
    else:
        table(seq)
    return 0


if __name__ == "__main__":
    sys.exit(main())
