"""Leave-one-scene-out check of the offline GMM's defaults over the seven scenes.

    python benchmarks/scenes_loo.py

For every scene and every point of a small grid around the defaults (the distance
threshold, the median filter's fraction of the frame and the weight the earliest still
colour needs), the offline GMM's F-measure; then, for each scene left out, the grid
point with the best mean F over the other six, and the left-out scene's F at it.  The
defaults are chosen on the mean over all seven; this says whether that choice holds on a
scene it was not chosen on.  The same scenes and scoring as ``quality_scenes.py``.
"""

import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality_scenes import SCENES, WHERE, f_measure, scene_folder  # noqa: E402

import napari_gmm_bg.core.gmm as gmm  # noqa: E402
from napari_gmm_bg import MaskCleanup, fit_background  # noqa: E402
from napari_gmm_bg.core import cleanup  # noqa: E402
from napari_gmm_bg.io.cdnet import read_cdnet  # noqa: E402

THRESHOLDS = (0.9, 1.0, 1.1)
MEDIAN_FRACTIONS = (0.04, 0.05, 0.06)
STILL_WEIGHTS = (0.1, 0.15, 0.2)


def median_side(fraction, shape):
    side = fraction * float(np.sqrt(shape[0] * shape[1]))
    return max(3, 2 * int(round((side - 1) / 2)) + 1)


def grid_scores():
    """``{(scene, still weight, threshold, fraction): F}``."""
    scores = {}
    for name in SCENES:
        folder = scene_folder(name)
        if not folder.is_dir():
            sys.exit(WHERE.format(missing=name, root=folder.parent))
        seq = read_cdnet(folder)
        video = np.asarray(seq.video)
        start = time.perf_counter()
        for weight in STILL_WEIGHTS:
            gmm.STILL_WEIGHT = weight
            model = fit_background(video)
            for threshold, fraction in itertools.product(THRESHOLDS, MEDIAN_FRACTIONS):
                clean = MaskCleanup(median=median_side(fraction, video.shape[1:3]))
                mask = model.foreground(video, threshold=threshold, cleanup=clean)
                scores[(name, weight, threshold, fraction)] = f_measure(mask, seq)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return scores


def main():
    defaults = (gmm.STILL_WEIGHT, gmm.DEFAULT_DISTANCE, cleanup.MEDIAN_FRACTION)
    scores = grid_scores()
    points = list(itertools.product(STILL_WEIGHTS, THRESHOLDS, MEDIAN_FRACTIONS))

    def mean(point, scenes):
        return float(np.mean([scores[(s, *point)] for s in scenes]))

    best_all = max(points, key=lambda p: mean(p, SCENES))
    print(f"defaults (still weight, threshold, median fraction): {defaults}")
    print(f"mean F at the defaults: {mean(defaults, SCENES):.3f}")
    print(f"best on all seven: {best_all}, mean F {mean(best_all, SCENES):.3f}")
    print()
    header = ("scene left out", "chosen on the other six", "F there", "F at defaults")
    print(f"{header[0]:24s} {header[1]:>26s} {header[2]:>8s} {header[3]:>14s}")
    for left in SCENES:
        others = [s for s in SCENES if s != left]
        chosen = max(points, key=lambda p: mean(p, others))
        print(
            f"{left:24s} {str(chosen):>26s} {scores[(left, *chosen)]:8.3f} "
            f"{scores[(left, *defaults)]:14.3f}"
        )


if __name__ == "__main__":
    main()
