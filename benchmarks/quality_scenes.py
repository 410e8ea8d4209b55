"""F-measure over the seven development scenes, for our defaults and OpenCV's, and jitter.

    python benchmarks/quality_scenes.py                      # every method, every scene
    python benchmarks/quality_scenes.py --methods gmm mog2   # some methods
    python benchmarks/quality_scenes.py --scenes sbi_board cdnet_highway_dev
    python benchmarks/quality_scenes.py --no-jitter          # skip the camera-shake case
    python benchmarks/quality_scenes.py --list               # method and scene names

The scenes: the six folders of ``../shared/data/scenes_dev`` (every frame scored; an
on-line method starts cold) and ``../shared/data/cdnet_highway_dev`` scored on the frames
its ``temporalROI.txt`` names (470-1000).  CDnet's rules: ground truth 0 and 50 are
background, 255 foreground, 85 and 170 not scored; a shadow label (ours 2, OpenCV's 127)
counts as background.

The jitter case: every frame of ``cdnet_highway_dev`` (learning frames included) is
shifted by integer dx, dy drawn from -2..2 (seed 14), its ground truth with it; a 2-pixel
border is not scored, on the shifted and the unshifted clip alike.  Reported for the
offline GMM (and any other method asked with ``--jitter-methods``).

Measured at commit c4d8d36 (defaults of that day), about 4 minutes on 2 shared cores:

    scene                    GMM offline GMM on-line  MOG2  MOG2 no shadows   KNN  median baseline
    cdnet_fall_1460_1560           0.551       0.448 0.530            0.424 0.347            0.469
    sbi_board                      0.714       0.535 0.484            0.580 0.714            0.771
    sbi_candela                    0.501       0.597 0.479            0.487 0.512            0.400
    sbi_hall_and_monitor           0.747       0.820 0.520            0.539 0.533            0.789
    sbi_highway_i                  0.728       0.694 0.468            0.572 0.579            0.723
    sbi_people_and_foliage         0.677       0.696 0.447            0.494 0.674            0.633
    cdnet_highway_dev              0.969       0.962 0.616            0.670 0.808            0.942
    mean (7 scenes)                0.698       0.679 0.506            0.538 0.595            0.675
    jitter, GMM offline: F 0.969 still, 0.840 shaken (drop 0.129)
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import SHARED_DATA, shared  # noqa: E402

from napari_gmm_bg import get_method  # noqa: E402
from napari_gmm_bg.core.metrics import evaluate_mask  # noqa: E402
from napari_gmm_bg.core.mog2 import Mog2Settings  # noqa: E402
from napari_gmm_bg.core.online import OnlineSettings  # noqa: E402
from napari_gmm_bg.io.cdnet import read_cdnet  # noqa: E402

SCENES_DEV = (
    "cdnet_fall_1460_1560",
    "sbi_board",
    "sbi_candela",
    "sbi_hall_and_monitor",
    "sbi_highway_i",
    "sbi_people_and_foliage",
)
HIGHWAY = "cdnet_highway_dev"
SCENES = SCENES_DEV + (HIGHWAY,)

WHERE = """\
{missing} not found under {root}.
  scenes_dev: CDnet 2014 dynamicBackground/fall (http://changedetection.net, frames
  1460-1560) and five SBI2015 sequences (Maddalena & Petrosino, ICIAP workshops 2015,
  https://sbmi2015.na.icar.cnr.it/SBIdataset.html) with the foreground masks of Wang, Luo
  & Jodoin (Pattern Recognition Letters 2017), laid out as CDnet folders; see
  ../shared/data/scenes_dev/README.md.
  cdnet_highway_dev: CDnet 2014 baseline/highway (http://changedetection.net)."""


def _run(name, settings=None):
    # Every row through the one method interface; shadows (label 2) count as background.
    def labels(video):
        return get_method(name).run(video, settings).labels()

    return labels


#: key: (row label, labels of a clip)
METHODS = {
    "gmm": ("GMM offline", _run("gmm")),
    "online": ("GMM on-line", _run("online")),
    "online_alone": (
        "on-line, no consensus",
        _run("online", OnlineSettings(consensus_radius=0)),
    ),
    "mog2": ("MOG2", _run("mog2")),
    "mog2_noshadow": ("MOG2 no shadows", _run("mog2", Mog2Settings(detect_shadows=False))),
    "knn": ("KNN", _run("knn")),
    "median": ("median baseline", _run("baseline")),
}


def scene_folder(name):
    return shared(HIGHWAY) if name == HIGHWAY else shared("scenes_dev", name)


def scored_frames(seq):
    # scenes_dev: every frame; highway: its temporalROI (470-1000).
    return seq.temporal_roi if seq.name == HIGHWAY else range(len(seq.video))


def f_measure(mask, seq, frames=None, roi=None):
    frames = scored_frames(seq) if frames is None else frames
    roi = seq.roi if roi is None else roi
    return evaluate_mask(mask, seq.ground_truth, roi, frames)["f_measure"]


# --- jitter ------------------------------------------------------------------------------
def jitter_offsets(n, seed=14, amplitude=2):
    """``(n, 2)`` integer (dy, dx) in ``-amplitude..amplitude``, from a fixed seed."""
    return np.random.default_rng(seed).integers(-amplitude, amplitude + 1, size=(n, 2))


def shifted(stack, offsets):
    """Shift frame t of ``stack`` by ``offsets[t]`` (rolls; the border is not scored)."""
    out = np.empty_like(stack)
    for t, (dy, dx) in enumerate(offsets):
        out[t] = np.roll(stack[t], (int(dy), int(dx)), axis=(0, 1))
    return out


def jitter_case(seq, methods, border=2):
    """F on the clip and on its jittered copy, with a ``border``-pixel margin not scored."""
    truth = seq.ground_truth.copy()
    if seq.roi is not None:
        truth[:, ~seq.roi] = 85  # outside the region: not scored, wherever it moves
    inner = np.zeros(truth.shape[1:], bool)
    inner[border:-border, border:-border] = True
    offsets = jitter_offsets(len(seq.video))
    video_j, truth_j = shifted(seq.video, offsets), shifted(truth, offsets)
    frames = scored_frames(seq)
    rows = []
    for key in methods:
        label, fn = METHODS[key]
        still = evaluate_mask(fn(seq.video), truth, inner, frames)["f_measure"]
        shaken = evaluate_mask(fn(video_j), truth_j, inner, frames)["f_measure"]
        rows.append((label, still, shaken))
    return rows


# --- the table ---------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--no-jitter", action="store_true", help="skip the camera-shake case")
    parser.add_argument(
        "--jitter-methods",
        nargs="+",
        default=["gmm"],
        choices=list(METHODS),
        help="methods run on the jittered highway (default: gmm)",
    )
    parser.add_argument("--list", action="store_true", help="list methods and scenes")
    args = parser.parse_args(argv)
    if args.list:
        print("methods:", " ".join(METHODS))
        print("scenes: ", " ".join(SCENES))
        return 0
    missing = [s for s in args.scenes if scene_folder(s) is None]
    if missing:
        print(WHERE.format(missing=", ".join(missing), root=SHARED_DATA))
    scenes = [s for s in args.scenes if s not in missing]
    if not scenes:
        return 0
    table = {}
    seconds = {key: 0.0 for key in args.methods}
    widths = {key: max(8, len(METHODS[key][0])) for key in args.methods}
    head = " ".join(f"{METHODS[k][0]:>{widths[k]}s}" for k in args.methods)
    print(f"{'scene':24s} {head}", flush=True)
    highway = None
    for name in scenes:
        seq = read_cdnet(scene_folder(name))
        if name == HIGHWAY:
            highway = seq
        for key in args.methods:
            start = time.perf_counter()
            mask = METHODS[key][1](seq.video)
            seconds[key] += time.perf_counter() - start
            table[name, key] = f_measure(mask, seq)
        row = " ".join(f"{table[name, k]:>{widths[k]}.3f}" for k in args.methods)
        print(f"{name:24s} {row}", flush=True)
    mean = " ".join(
        f"{np.mean([table[s, k] for s in scenes]):>{widths[k]}.3f}" for k in args.methods
    )
    print(f"{'mean (' + str(len(scenes)) + ' scenes)':24s} {mean}")
    secs = " ".join(f"{seconds[k]:>{widths[k]}.1f}" for k in args.methods)
    print(f"{'seconds, all scenes':24s} {secs}")
    if not args.no_jitter:
        if highway is None and scene_folder(HIGHWAY) is not None:
            highway = read_cdnet(scene_folder(HIGHWAY))
        if highway is None:
            print(WHERE.format(missing=HIGHWAY, root=SHARED_DATA))
            return 0
        print(
            "\njitter: cdnet_highway_dev, frames shifted by integer (dx, dy) in -2..2 "
            "(seed 14), 2-pixel border not scored, frames 470-1000"
        )
        print(f"{'method':24s} {'F still':>8s} {'F shaken':>9s} {'drop':>6s}")
        for label, still, shaken in jitter_case(highway, args.jitter_methods):
            print(f"{label:24s} {still:8.3f} {shaken:9.3f} {still - shaken:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
