"""On-line GMM: how many frames a parked object takes to become background, by history.

    python benchmarks/online_history.py

A static synthetic scene; a red box drives in from the left and parks.  The documented
absorption time is ``ln(background_ratio) / ln(1 - 1 / history)`` frames (about 0.105 x
history at the default ratio 0.9); MOG2 absorbs after about the same time.  The measured
time is the first frame after parking on which less than half the box is foreground.
"""

import sys

import cv2
import numpy as np

from napari_gmm_bg import make_sample
from napari_gmm_bg.core.online import OnlineSettings, run_online


def parked_clip(history):
    # Parked once the learning rate has reached 1 / history (after history / 2 frames).
    stop = max(80, history // 2 + 10)
    n = stop + int(0.5 * history) + 20
    scene = make_sample("moving-shapes", n_frames=n, shape=(48, 96), n_objects=0, seed=2)
    video = scene.video.copy()
    truth = np.zeros(video.shape[:3], np.uint8)
    for t in range(stop - 10, n):
        x0 = 8 * (min(t, stop) - stop + 10)  # 8 pixels a frame, parked at x = 80
        box = (slice(15, 30), slice(max(x0 - 16, 0), x0))
        video[(t, *box)] = (200, 30, 30)
        truth[(t, *box)] = 1
    return video, truth, stop


def absorbed_after(mask, truth, stop):
    for i, t in enumerate(range(stop, len(mask))):
        if (mask[t][truth[t] == 1] == 1).mean() < 0.5:
            return i
    return None


def mog2_mask(video, history):
    mog2 = cv2.createBackgroundSubtractorMOG2(history=history, detectShadows=False)
    return np.stack([(mog2.apply(f[..., ::-1]) == 255).astype(np.uint8) for f in video])


def main():
    print("history  documented  ours (on-line GMM)  MOG2")
    for history in (50, 100, 200, 400):
        video, truth, stop = parked_clip(history)
        settings = OnlineSettings(history=history, compensate_brightness=False)
        ours = absorbed_after(run_online(video, settings).foreground(), truth, stop)
        theirs = absorbed_after(mog2_mask(video, history), truth, stop)
        print(f"{history:7d}  {settings.absorption_frames():10.1f}  {ours!s:>18}  {theirs!s:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
