"""Full-data check of one design: per-scene F, jitter, per-stage costs vs MOG2.

python final.py VMAX T R FAC RHO DIL MED FIT [scenes]   (FIT: nocomp | ratio)
"""
import sys, time, json
from pathlib import Path
import cv2, numba, numpy as np
import proto
from proto import (Truth, median_clean, run_scores, prepare, labels_kernel, ratio_gains,
                   frame_transform, patch_ratio_learning)
from bgsel import learning_samples, assignments, responsibilities, rest_mask
from cache import load
from napari_gmm_bg import fit_background
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_scenes import jitter_offsets, shifted

import os
EXCLUDE_RESTS = os.environ.get("EXCLUDE_RESTS", "1") == "1"
L_REST = int(os.environ.get("L_REST", "3"))
SAME = os.environ.get("SAME", "0") == "1"
R_MAX = int(os.environ.get("R_MAX", "0"))
FRAC = float(os.environ.get("FRAC", "0.5"))
W_MIN = float(os.environ.get("W_MIN", "0.05"))
SCENES = ["cdnet_fall_1460_1560", "sbi_board", "sbi_candela", "sbi_hall_and_monitor",
          "sbi_highway_i", "sbi_people_and_foliage", "cdnet_highway_dev"]


def pipeline(video, cfg, costs):
    vmax, T, r, fac, rho_min, dil, med, fitmode = cfg
    c = time.perf_counter
    t0 = c()
    model = fit_background(video, compensate_brightness=(fitmode == "ratio"))
    t1 = c(); costs["fit"] += t1 - t0
    x = learning_samples(model, video)
    if R_MAX > 0:
        from bgsel_nb import choose_background
        Y, X, K = model.weights.shape; P = Y * X
        bg = np.zeros((P, K), bool); rs = np.zeros((len(x), P), bool)
        choose_background(np.ascontiguousarray(x.reshape(len(x), P, 3)), model.weights.reshape(P, K),
                          model.means.reshape(P, K, 3), model.variances.reshape(P, K, 3),
                          model.n_background().reshape(P).astype(np.int64), W_MIN, L_REST, FRAC, 1e9, bg, rs, R_MAX, SAME)
        bgm = bg.reshape(Y, X, K); in_rest = rs.reshape(len(x), Y, X)
    else:
        z = assignments(model, x); resp = responsibilities(model, x)
        bgm, _, in_rest = rest_mask(model, z, resp, l_rest=L_REST, w_min=W_MIN)
    mu, iv = prepare(model, 100.0, vmax, bgm)
    t2 = c(); costs["background choice"] += t2 - t1
    lv = np.ascontiguousarray(video[model.learning_indices])
    lo, l1, l2 = run_scores(model, lv, 100.0, vmax, gate=T, bg_mask=bgm)
    lnbr = l1 if r == 1 else np.minimum(l1, l2)
    fail = lo > T
    if EXCLUDE_RESTS:
        fail &= ~in_rest
    saved = (fail & (lnbr <= T * fac)).sum(0)
    rho = saved / np.maximum(fail.sum(0), 1)
    E = (rho >= rho_min) & (saved >= 2) if rho_min > 0 else np.ones(rho.shape, bool)
    if dil and rho_min > 0:
        E = cv2.dilate(E.astype(np.uint8), np.ones((2 * dil + 1,) * 2, np.uint8)).astype(bool)
    if rho_min > 1:
        E[:] = False
    t3 = c(); costs["consensus map"] += t3 - t2
    g, l = ratio_gains(model, video)
    off, sc = frame_transform(model.intensity, (g, l), len(video))
    out = np.empty(video.shape[:3], np.uint8)
    cand = np.zeros(len(video), np.int64)
    labels_kernel(video, off.astype(np.float32), sc.astype(np.float32), mu, iv, E,
                  np.float32(T), np.float32(T * fac), r, out, cand)
    t4 = c(); costs["score+consensus"] += t4 - t3
    mask = median_clean(out, med)
    t5 = c(); costs["clean-up"] += t5 - t4
    costs["candidates"] += cand.sum() / out.size * (1 if True else 0)
    costs["enabled"] += E.mean()
    return mask


def mog2_time(video):
    m = cv2.createBackgroundSubtractorMOG2()
    t = time.perf_counter()
    for f in video:
        m.apply(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return time.perf_counter() - t


def main():
    a = sys.argv[1:]
    cfg = (float(a[0]), float(a[1]), int(a[2]), float(a[3]), float(a[4]), int(a[5]), int(a[6]), a[7])
    scenes = a[8].split(",") if len(a) > 8 else SCENES
    numba.set_num_threads(2)
    if cfg[7] == "ratio":
        patch_ratio_learning()
    # warm-up compile
    v, g, roi, fr = load("sbi_board")
    pipeline(np.ascontiguousarray(v[:20]), cfg, {k: 0.0 for k in ["fit", "background choice", "consensus map", "score+consensus", "clean-up", "candidates", "enabled"]})
    fs = {}
    for name in scenes:
        v, g, roi, fr = load(name)
        video = np.ascontiguousarray(v)
        costs = {k: 0.0 for k in ["fit", "background choice", "consensus map", "score+consensus", "clean-up", "candidates", "enabled"]}
        mask = pipeline(video, cfg, costs)
        tr = Truth(g[fr.start:fr.stop], roi, range(len(fr)))
        fs[name] = tr.f(mask[fr.start:fr.stop])
        mt = mog2_time(video)
        tot = sum(costs[k] for k in ["fit", "background choice", "consensus map", "score+consensus", "clean-up"])
        print(f"{name:24s} F {fs[name]:.3f}  total {tot:.2f}s  MOG2 {mt:.2f}s  ratio {tot / mt:.2f}  "
              + "  ".join(f"{k} {v:.2f}" for k, v in costs.items()), flush=True)
    if len(fs) == 7:
        print(f"mean F {np.mean(list(fs.values())):.3f}")
    if "jitter" in a[9:] or (len(a) > 9 and a[9] == "jitter"):
        v, g, roi, fr = load("cdnet_highway_dev")
        video = np.ascontiguousarray(v)
        truth = np.asarray(g).copy(); truth[:, ~roi] = 85
        inner = np.zeros(roi.shape, bool); inner[2:-2, 2:-2] = True
        off = jitter_offsets(len(video))
        vj, tj = shifted(video, off), shifted(truth, off)
        costs = {k: 0.0 for k in ["fit", "background choice", "consensus map", "score+consensus", "clean-up", "candidates", "enabled"]}
        still = Truth(truth[fr.start:fr.stop], inner, range(len(fr))).f(pipeline(video, cfg, costs)[fr.start:fr.stop])
        shaken = Truth(tj[fr.start:fr.stop], inner, range(len(fr))).f(pipeline(vj, cfg, costs)[fr.start:fr.stop])
        print(f"jitter: F still {still:.3f} shaken {shaken:.3f} drop {still - shaken:.3f}")


if __name__ == "__main__":
    main()
