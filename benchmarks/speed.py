"""Speed of the default pipeline against OpenCV MOG2, measured in one process.

    python benchmarks/speed.py              # synthetic clip, and the shared clips if present
    python benchmarks/speed.py --quick      # synthetic clip only

For each clip (decoded into memory first; decoding is not timed): MOG2 at defaults with
2 threads applied to every frame; our default pipeline (fit_background + the cleaned
mask of every frame + the background image); their ratio; frames per second; the
on-line GMM, streamed (blocks of 16 frames labelled and dropped, as MOG2's loop drops its
masks; at its defaults, spatial consensus on, and without the consensus) and over the
whole clip (scores
and masks kept, as napari's layers hold them); the peak RSS; scikit-learn fitted pixel
by pixel, extrapolated from a crop; and the time to score one frame on demand (what
napari does while you scrub).  Ratios, not seconds, are the
figures to compare across machines.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import missing, peak_rss_mb, shared  # noqa: E402

from napari_gmm_bg import fit_background, make_sample  # noqa: E402
from napari_gmm_bg.core.online import OnlineModel, OnlineSettings, run_online  # noqa: E402
from napari_gmm_bg.io.video import read_video  # noqa: E402


def best_of(fn, repeat=3):
    times = []
    result = None
    for _ in range(repeat):
        # Drop the last result first: two live copies of a clip-sized output would make
        # every run fault in fresh memory, which is slow on VMs that hand freed pages back.
        result = None
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def mog2_all(video):
    mog2 = cv2.createBackgroundSubtractorMOG2()
    for frame in video:
        mog2.apply(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else frame)


def online_stream(video, block=16, settings=None):
    # As the MOG2 loop above: every frame labelled (thresholded, cleaned), then dropped.
    model = OnlineModel(settings)
    for start in range(0, len(video), block):
        model.apply(video[start : start + block])


def ours_all(video):
    model = fit_background(video)
    mask = model.foreground(video)
    model.background_image()
    return model, mask


def sklearn_per_pixel(video, model, n_pixels=64):
    from sklearn.mixture import GaussianMixture

    frames = video[model.learning_indices].reshape(len(model.learning_indices), -1, 3)
    rng = np.random.default_rng(0)
    picks = rng.choice(frames.shape[1], n_pixels, replace=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in picks:
            GaussianMixture(
                3, covariance_type="diag", max_iter=10, reg_covar=model.params.reg_covar
            ).fit(frames[:, p].astype(np.float64))
    per_pixel = (time.perf_counter() - start) / n_pixels
    return per_pixel * frames.shape[1]


def scrub_latency(video, model, n=40):
    times = []
    for t in np.linspace(0, len(video) - 1, n).astype(int):
        start = time.perf_counter()
        model.foreground(video[t : t + 1])
        model.distance(video[t : t + 1])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(name, video):
    cv2.setNumThreads(2)
    t_mog2, _ = best_of(lambda: mog2_all(video))
    t_ours, (model, _) = best_of(lambda: ours_all(video))
    t_fit, _ = best_of(lambda: fit_background(video), repeat=1)
    t_stream, _ = best_of(lambda: online_stream(video))
    alone = OnlineSettings(consensus_radius=0)
    t_alone, _ = best_of(lambda: online_stream(video, settings=alone))
    # The whole clip's scores and masks kept, as the napari layers hold them.
    t_online, _ = best_of(lambda: run_online(video).foreground())
    t_sklearn = sklearn_per_pixel(video, model)
    latency = scrub_latency(video, model)
    n = len(video)
    print(f"\n{name}: {n} frames {video.shape[2]}x{video.shape[1]}")
    print(f"  cv2 MOG2 (defaults, 2 threads)   {t_mog2:8.3f} s  {n / t_mog2:8.0f} fps")
    print(
        f"  ours (fit + mask + background)   {t_ours:8.3f} s  {n / t_ours:8.0f} fps   "
        f"ratio to MOG2 {t_ours / t_mog2:.2f}x   (fit alone {t_fit:.3f} s)"
    )
    print(
        f"  ours on-line, streamed           {t_stream:8.3f} s  {n / t_stream:8.0f} fps   "
        f"fps ratio to MOG2 {t_mog2 / t_stream:.2f}x (>= 1: faster)"
    )
    print(
        f"  on-line, no consensus, streamed  {t_alone:8.3f} s  {n / t_alone:8.0f} fps   "
        f"fps ratio to MOG2 {t_mog2 / t_alone:.2f}x (consensus_radius=0, an option)"
    )
    print(
        f"  ours on-line, whole clip kept    {t_online:8.3f} s  {n / t_online:8.0f} fps   "
        f"fps ratio to MOG2 {t_mog2 / t_online:.2f}x"
    )
    print(
        f"  scikit-learn per pixel (extrap.) {t_sklearn:8.1f} s            "
        f"ratio to MOG2 {t_sklearn / t_mog2:.0f}x"
    )
    print(f"  one frame on demand (mask + score) {1000 * latency:.1f} ms median")
    print(f"  peak RSS so far                  {peak_rss_mb():8.0f} MB")


def cold_start():
    code = (
        "import time; t=time.perf_counter();"
        "from napari_gmm_bg import fit_background, make_sample;"
        "from napari_gmm_bg.core.online import run_online;"
        "s=make_sample(n_frames=20, shape=(32,48)); m=fit_background(s.video);"
        "m.foreground(s.video); m.distance(s.video); run_online(s.video);"
        "print(time.perf_counter()-t)"
    )

    def run(env=None):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        return float(out.stdout)

    with tempfile.TemporaryDirectory() as empty:
        compiled = run({**os.environ, "NUMBA_CACHE_DIR": empty})
    run()  # fills the on-disk cache, if this install had none yet
    cached = run()
    print(
        f"\ncold start (fresh process: import + a first tiny fit, mask, scores, on-line run): "
        f"{cached:.2f} s with numba's on-disk cache; {compiled:.1f} s when every kernel "
        "is compiled first (an empty cache: the first run after installing)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="synthetic clip only")
    args = parser.parse_args()
    cold_start()
    sample = make_sample("moving-shapes", n_frames=240, shape=(360, 640), seed=0)
    measure("synthetic moving-shapes (seeded)", sample.video)
    if args.quick:
        return 0
    for parts in (("opencv_samples", "vtest.avi"), ("cdnet_highway_dev", "input")):
        path = shared(*parts)
        if path is None:
            print("\n" + missing(*parts))
            continue
        measure("/".join(parts), read_video(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
