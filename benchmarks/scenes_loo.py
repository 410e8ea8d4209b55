"""Leave-one-scene-out check of the offline GMM's defaults over the seven scenes.

    python benchmarks/scenes_loo.py           # threshold, median filter, still weight
    python benchmarks/scenes_loo.py --rules   # the background choice's rules

For every scene and every point of a small grid around the defaults (the distance
threshold, the median filter's fraction of the frame and the weight the earliest still
colour needs), the offline GMM's F-measure; then, for each scene left out, the grid
point with the best mean F over the other six, and the left-out scene's F at it.  The
defaults are chosen on the mean over all seven; this says whether that choice holds on a
scene it was not chosen on.  The same scenes and scoring as ``quality_scenes.py``.

``--rules`` does the same over the background choice's rules at the default threshold
and filter: how many learning samples the earliest still moment lasts, how much an
earlier still moment half as long must weigh against it, the share of a component's
mass in rests that makes it an object at rest, and the share of a pixel's misses its
neighbours must explain for spatial consensus (rests of 2 samples, or a share of 0.3,
are left out: they take a background that flickers between two colours for an object
at rest, ``tests/core/test_scenes.py``).  The EM fit does not depend on them, so it is
computed once per scene.
"""

import argparse
import hashlib
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality_scenes import SCENES, WHERE, f_measure, scene_folder  # noqa: E402

import napari_gmm_bg.core.gmm as gmm  # noqa: E402
from napari_gmm_bg import MaskCleanup, fit_background  # noqa: E402
from napari_gmm_bg.core import _kernels, cleanup  # noqa: E402
from napari_gmm_bg.io.cdnet import read_cdnet  # noqa: E402

THRESHOLDS = (0.9, 1.0, 1.1)
MEDIAN_FRACTIONS = (0.04, 0.05, 0.06)
STILL_WEIGHTS = (0.1, 0.15, 0.2)
#: --rules: (STILL_SAMPLES, SHORT_STILL_RATIO, REST_SHARE, CONSENSUS_SHARE)
RULES = ("STILL_SAMPLES", "SHORT_STILL_RATIO", "REST_SHARE", "CONSENSUS_SHARE")
RULE_GRID = ((2, 3, 4, 5), (0.5, 0.67, 1.0, 1.5), (0.35, 0.4, 0.5), (0.35, 0.4))


def median_side(fraction, shape):
    side = fraction * float(np.sqrt(shape[0] * shape[1]))
    return max(3, 2 * int(round((side - 1) / 2)) + 1)


def scenes():
    """Each scene's name, CDnet sequence and frames in memory, in turn."""
    for name in SCENES:
        folder = scene_folder(name)
        if not folder.is_dir():
            sys.exit(WHERE.format(missing=name, root=folder.parent))
        seq = read_cdnet(folder)
        yield name, seq, np.asarray(seq.video)


def grid_scores():
    """``{(scene, still weight, threshold, fraction): F}``."""
    scores = {}
    for name, seq, video in scenes():
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


def rule_scores():
    """``{(scene, still samples, rest share, consensus share): F}`` at the defaults."""
    fit_pixels, fitted = _kernels.fit_pixels, {}

    def fit_once(samples, *args):
        # The EM fit is the same at every grid point: compute it once per tile.
        key = hashlib.blake2b(np.ascontiguousarray(samples).view(np.uint8)).hexdigest()
        if key not in fitted:
            fitted[key] = fit_pixels(samples, *args)
        return tuple(a.copy() for a in fitted[key])

    _kernels.fit_pixels = fit_once
    defaults = {name: getattr(gmm, name) for name in RULES}
    scores = {}
    try:
        for name, seq, video in scenes():
            fitted.clear()
            start = time.perf_counter()
            for point in itertools.product(*RULE_GRID):
                for rule, value in zip(RULES, point, strict=True):
                    setattr(gmm, rule, value)
                mask = fit_background(video).foreground(video)
                scores[(name, *point)] = f_measure(mask, seq)
            print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    finally:
        _kernels.fit_pixels = fit_pixels
        for rule, value in defaults.items():
            setattr(gmm, rule, value)
    return scores, tuple(defaults.values()), list(itertools.product(*RULE_GRID)), RULES


def grid_points():
    defaults = (gmm.STILL_WEIGHT, gmm.DEFAULT_DISTANCE, cleanup.MEDIAN_FRACTION)
    scores = grid_scores()
    gmm.STILL_WEIGHT = defaults[0]
    points = list(itertools.product(STILL_WEIGHTS, THRESHOLDS, MEDIAN_FRACTIONS))
    return scores, defaults, points, ("still weight", "threshold", "median fraction")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", action="store_true", help="scan the background choice")
    args = parser.parse_args(argv)
    scores, defaults, points, names = rule_scores() if args.rules else grid_points()

    def mean(point, scenes):
        return float(np.mean([scores[(s, *point)] for s in scenes]))

    best_all = max(points, key=lambda p: mean(p, SCENES))
    print(f"{'point':26s} " + " ".join(f"{s[:8]:>8s}" for s in SCENES) + "     mean")
    for point in points:
        row = " ".join(f"{scores[(s, *point)]:8.3f}" for s in SCENES)
        print(f"{str(point):26s} {row} {mean(point, SCENES):8.4f}")
    print()
    print(f"defaults ({', '.join(names)}): {defaults}")
    print(f"mean F at the defaults: {mean(defaults, SCENES):.4f}")
    print(f"best on all seven: {best_all}, mean F {mean(best_all, SCENES):.4f}")
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
