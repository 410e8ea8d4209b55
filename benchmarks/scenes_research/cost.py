"""Per-stage cost on cdnet_highway_dev (1000 frames 320x240), 2 threads, vs MOG2."""
import time, numpy as np, numba, cv2
from cache import load
from napari_gmm_bg import fit_background, MaskCleanup
from napari_gmm_bg.core.cleanup import clean_mask
from bgsel import learning_samples
from bgsel_nb import choose_background
from proto import prepare, labels_kernel, own_kernel, run_scores, ratio_gains, frame_transform
numba.set_num_threads(2)
video = np.ascontiguousarray(load("cdnet_highway_dev")[0])
def best(fn, n=3):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); r = fn(); ts.append(time.perf_counter() - t)
    return min(ts), r
def mog2():
    m = cv2.createBackgroundSubtractorMOG2()
    for f in video: m.apply(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
tm, _ = best(mog2)
tf, model = best(lambda: fit_background(video, compensate_brightness=False))
tdef, _ = best(lambda: fit_background(video).foreground(video))
x = learning_samples(model, video)
Y, X, K = model.weights.shape; P = Y * X
xs = np.ascontiguousarray(x.reshape(len(x), P, 3))
bg = np.zeros((P, K), bool); rs = np.zeros((len(x), P), bool)
args = (xs, model.weights.reshape(P, K), model.means.reshape(P, K, 3), model.variances.reshape(P, K, 3),
        model.n_background().reshape(P).astype(np.int64), 0.05, 3, 0.5, 300.0)
choose_background(*args, bg, rs)
tb, _ = best(lambda: choose_background(*args, bg, rs))
bgm = bg.reshape(Y, X, K)
mu, iv = prepare(model, 100.0, 300.0, bgm)
lv = np.ascontiguousarray(video[model.learning_indices])
run_scores(model, lv[:2], 100.0, 300.0, gate=3.0, bg_mask=bgm)
tc, (lo, l1, l2) = best(lambda: run_scores(model, lv, 100.0, 300.0, gate=3.0, bg_mask=bgm))
fail = lo > 3
saved = (fail & (l1 <= 1.5)).sum(0); rho = saved / np.maximum(fail.sum(0), 1)
E = (rho >= 0.4) & (saved >= 2)
tg, (g, l) = best(lambda: ratio_gains(model, video))
off, sc = frame_transform(model.intensity, (g, l), len(video))
off = off.astype(np.float32); sc = sc.astype(np.float32)
out = np.empty(video.shape[:3], np.uint8); cand = np.zeros(len(video), np.int64)
labels_kernel(video[:2], off, sc, mu, iv, E, np.float32(3), np.float32(1.5), 1, out[:2], cand[:2])
own_kernel(video[:2], off, sc, mu, iv, np.float32(3), out[:2])
to, _ = best(lambda: own_kernel(video, off, sc, mu, iv, np.float32(3), out))
ts, _ = best(lambda: labels_kernel(video, off, sc, mu, iv, E, np.float32(3), np.float32(1.5), 1, out, cand))
E1 = np.ones_like(E)
ta, _ = best(lambda: labels_kernel(video, off, sc, mu, iv, E1, np.float32(3), np.float32(1.5), 1, out, cand))
raw = out.copy()
tm9, _ = best(lambda: clean_mask(raw.copy(), MaskCleanup(median=9)))
tm7, _ = best(lambda: clean_mask(raw.copy(), MaskCleanup(median=15)))
tcv, _ = best(lambda: [cv2.medianBlur(f, 9) for f in raw])
print(f"MOG2 {tm:.2f}s | today's default pipeline {tdef:.2f}s ({tdef/tm:.2f}x)")
rows = [("fit (EM, 40 frames)", tf), ("background choice (numba)", tb), ("consensus map (40 learning frames, full 5x5 prototype)", tc),
        ("brightness gains (ratio, numpy)", tg), ("score, own test only", to), ("score + consensus where enabled (%.0f%% px)" % (100 * E.mean()), ts),
        ("score + consensus everywhere", ta), ("clean-up median 9 (package)", tm9), ("clean-up median 15 (package)", tm7), ("clean-up median 9 (cv2 per frame)", tcv)]
for n, t in rows:
    print(f"{n:55s} {t:6.2f}s  {t/tm:5.2f}x MOG2")
tot = tf + tb + tc + tg + ts + tm9
print(f"{'total (fit+choice+map+gains+score/consensus+median 9)':55s} {tot:6.2f}s  {tot/tm:5.2f}x MOG2")
