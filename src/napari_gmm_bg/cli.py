"""The ``napari-gmm-bg`` command: the same fit as the napari widget, headless.

Bad input prints one line on stderr and exits with code 2, having written nothing.
"""

import argparse
import atexit
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

import dask
import dask.array as da
import numpy as np
import tifffile

from .core import SAMPLE_NAMES, FitParameters, MaskCleanup, fit_background, make_sample
from .core._numba_cache import FIRST_RUN_MESSAGE, announce_compilation
from .core.cluster import as_client, without_cluster
from .core.frames import as_frames
from .core.gmm import BackgroundModel
from .core.interface import settings_with
from .core.labels import SHADOW_MODES
from .core.metrics import (
    METRIC_NAMES,
    check_frame_range,
    evaluate_mask,
    frame_statistics,
    statistics_table,
)
from .core.online import ONLINE_DISTANCE, OnlineModel, OnlineSettings, label_scores, online_blocks
from .core.registry import get_method, method_names
from .core.warmup import start_warm_up, usable_cores
from .io.cdnet import CDnetSequence, read_cdnet
from .io.lazy_video import open_video, video_index_file
from .io.video import VIDEO_SUFFIXES, open_frame_folder, read_video
from .io.writers import (
    AtomicFiles,
    check_writable_folder,
    tiff_stack_writer,
    write_csv,
    write_png,
    write_tiff_stack,
)

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


class _Given(argparse.Action):
    """Store an option's value and remember that it was given (a default is not)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.option_strings[0]}


def _frame_range(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP, got {text!r}") from None
    return start, stop


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="napari-gmm-bg",
        description="Isolate movement in video with a per-pixel Gaussian mixture model.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    fit = commands.add_parser(
        "fit",
        help="fit the background model and write its score (distance), mask and background",
        description=(
            "Fit a Gaussian mixture to every pixel of INPUT (a video file or a folder of "
            "frames) and write <name>_gmm_distance.tif, <name>_gmm_mask.tif, "
            "<name>_gmm_background.png and <name>_gmm_model.npz into --out."
        ),
    )
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="video file or folder of frames")
    source.add_argument("--sample", choices=SAMPLE_NAMES, help="use a built-in synthetic clip")
    fit.add_argument("--out", required=True, help="output folder (created if missing)")
    fit.add_argument(
        "--mode",
        choices=("offline", "online"),
        default="offline",
        help="offline: fit on learning frames, then score; online: update frame by frame",
    )
    fit.add_argument(
        "--history",
        action=_Given,
        type=int,
        default=OnlineSettings.history,
        help="online mode: frames of memory (something that stops becomes background "
        "after about 0.105 x history frames)",
    )
    fit.add_argument(
        "--scheduler",
        action=_Given,
        default=None,
        metavar="ADDRESS",
        help="a dask.distributed scheduler (e.g. tcp://10.0.0.5:8786): fit, score and "
        "save on its cluster",
    )
    fit.add_argument(
        "--frames",
        action=_Given,
        type=_frame_range,
        default=None,
        metavar="START:STOP",
        help="learn from this frame range only (stop exclusive)",
    )
    _add_fit_options(fit)

    evaluate = commands.add_parser(
        "evaluate",
        help="score the GMM and other methods on CDnet folders, side by side",
        description=(
            "Run each method on each CDnet folder (input/, groundtruth/, temporalROI.txt, "
            "ROI.bmp) and print recall, specificity, FPR, FNR, PWC, precision and F-measure "
            "side by side with the time each took; with several folders, also each "
            "folder's F-measure and the mean.  Scored on the temporal ROI unless --frames "
            "is given, and inside ROI.bmp when present.  The fit options below apply to "
            "every method that has a setting of that name; others run at their defaults."
        ),
    )
    evaluate.add_argument("cdnet", nargs="+", help="CDnet sequence folder(s)")
    evaluate.add_argument(
        "--methods",
        default="gmm,mog2",
        type=_methods,
        help="comma-separated, from gmm,online,mog2,knn,baseline or a registered method "
        "(default: gmm,mog2)",
    )
    evaluate.add_argument(
        "--frames",
        type=_frame_range,
        default=None,
        metavar="START:STOP",
        help="score these frames (0-based, stop exclusive; CDnet's 470-1000 is 469:1000)",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_fit_options(evaluate, only_given=True)

    stats = commands.add_parser(
        "stats",
        help="per-frame foreground area and number of blobs of a mask stack",
        description="Print (or write) per-frame statistics of a mask TIFF stack as CSV.",
    )
    stats.add_argument("mask", help="a mask stack (.tif), label 1 = foreground")
    stats.add_argument("--csv", default=None, help="write to this file instead of stdout")

    demo = commands.add_parser(
        "demo",
        help="open napari with the plugin and a fitted sample (no display: run the CLI fit)",
    )
    demo.add_argument(
        "--out",
        default=None,
        help="output folder when there is no display (default: napari-gmm-bg/demo in the "
        "user's cache folder, else a new temporary folder)",
    )
    return parser


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    known = method_names()
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return methods


def _add_fit_options(parser: argparse.ArgumentParser, only_given: bool = False) -> None:
    # The defaults are FitParameters' (the one place they are written); with
    # ``only_given`` an option the user did not give is left out of the namespace, so
    # each method keeps its own default.
    defaults = FitParameters()

    def default(value: object) -> object:
        return argparse.SUPPRESS if only_given else value

    parser.add_argument(
        "--components",
        type=int,
        default=default(defaults.n_components),
        help="Gaussians per pixel",
    )
    parser.add_argument(
        "--learning-frames",
        action=_Given,
        type=int,
        default=default(defaults.learning_frames),
        help="frames the fit learns from",
    )
    parser.add_argument(
        "--iterations",
        action=_Given,
        type=int,
        default=default(defaults.max_iter),
        help="EM iterations at most",
    )
    parser.add_argument(
        "--absorb-after",
        action=_Given,
        type=int,
        default=default(defaults.absorb_after),
        metavar="N",
        help="offline: a change that lasts more than N frames (a bag left, a person who "
        "sits down) is background (default 0: it stays foreground as long as it stays)",
    )
    parser.add_argument(
        "--consensus-radius",
        action=_Given,
        type=int,
        default=default(defaults.consensus_radius),
        metavar="R",
        help="a pixel that a neighbour's background within R pixels explains is "
        "background, where the frames show it helps (0 off; default 1, 2 for a shaking "
        "camera)",
    )
    parser.add_argument(
        "--background-ratio",
        type=float,
        default=default(defaults.background_ratio),
        help="cumulative weight of the components that are background",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=default(defaults.threshold),
        help="distance from the background (standard deviations) above which a pixel is "
        "foreground (default: 1.0)",
    )
    parser.add_argument(
        "--no-brightness-compensation",
        dest="compensate_brightness",
        action="store_false",
        default=default(defaults.compensate_brightness),
        help="do not remove each frame's global brightness change (gain and lift) before scoring",
    )
    parser.add_argument(
        "--shadows",
        choices=SHADOW_MODES,
        default=default(defaults.shadows),
        help="shadows: show them as label 2, count them as background, or off (foreground)",
    )
    clean = defaults.cleanup
    cleanup = parser.add_argument_group("mask clean-up")
    cleanup.add_argument(
        "--median",
        type=int,
        default=default(clean.median),
        help="median filter size (odd; 0 for none; default: 5%% of the frame's size, "
        "13 at 320x240)",
    )
    cleanup.add_argument(
        "--opening", type=int, default=default(clean.opening), help="opening size (0 for none)"
    )
    cleanup.add_argument(
        "--closing", type=int, default=default(clean.closing), help="closing size (0 for none)"
    )
    cleanup.add_argument(
        "--min-area",
        type=int,
        default=default(clean.min_area),
        help="remove blobs smaller than this many pixels (0 for none)",
    )


def write_fit_outputs(
    model: BackgroundModel,
    video: object,
    out: Path,
    stem: str,
    before_commit: Callable[[], None] | None = None,
) -> list[Path]:
    """Score a clip with a model and write every output, all or nothing.

    Parameters
    ----------
    model : BackgroundModel
        The fitted model.
    video : array-like
        The frames to score.
    out : pathlib.Path
        Output folder, created if missing.
    stem : str
        Prefix of the file names.
    before_commit : callable, optional
        Called once every file is written, before any replaces an existing one: an
        exception it raises writes nothing.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    distance = model.distance(video)
    mask = model.foreground(video)
    metadata = {
        "source": stem,
        **dataclasses.asdict(model.params),
        "threshold": model.threshold,  # the value used, not the parameter (None: default)
    }
    names = {
        "distance": f"{stem}_gmm_distance.tif",
        "mask": f"{stem}_gmm_mask.tif",
        "background": f"{stem}_gmm_background.png",
        "model": f"{stem}_gmm_model.npz",
    }
    files = AtomicFiles(out)
    with files.transaction():
        write_tiff_stack(files.path(names["distance"]), distance, metadata)
        write_tiff_stack(files.path(names["mask"]), mask, metadata)
        write_png(files.path(names["background"]), model.background_image())
        model.save(files.path(names["model"]))
        if before_commit is not None:
            before_commit()
    return [out / name for name in names.values()]


def read_input(path: str) -> Any:
    """Open a video file or a folder of frames lazily (read as the fit and writers need it).

    Parameters
    ----------
    path : str
        A video file, a folder of frames or a TIFF stack.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The clip.
    """
    if Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return open_video(path)[0]
    if Path(path).is_dir():
        return open_frame_folder(path)[0]
    return read_video(path)


def _run_fit(args: argparse.Namespace) -> int:
    # Opening a video keeps a hidden index of its frames beside it, for the next open; a
    # command that fails leaves nothing behind, that index included.
    index = None if args.sample else video_index_file(args.input)
    had_index = index is not None and index.exists()
    try:
        return _fit_command(args)
    except BaseException:
        if index is not None and not had_index:
            index.unlink(missing_ok=True)
        raise


def _fit_command(args: argparse.Namespace) -> int:
    # A damaged video is an error where its frames are decoded (here, in dask's
    # threads or on a cluster's workers): the decoders fail on damaged data, and a
    # frame they conceal errors in raises (io.video.DECODER_OPTIONS).  The outputs are
    # written all or nothing, so nothing is written from a damaged clip.
    _check_mode_options(args)
    return _fit_source(args)


_OFFLINE_ONLY = (
    "--learning-frames",
    "--iterations",
    "--frames",
    "--scheduler",
    "--absorb-after",
)
_ONLINE_ONLY = ("--history",)


def _check_mode_options(args: argparse.Namespace) -> None:
    """Refuse options the chosen mode would ignore (before any work)."""
    given: set[str] = getattr(args, "given", set())
    mode, other = ("online", "offline") if args.mode == "online" else ("offline", "online")
    ignored = [o for o in (_OFFLINE_ONLY if mode == "online" else _ONLINE_ONLY) if o in given]
    if ignored:
        names = ", ".join(ignored)
        raise ValueError(
            f"{names} {'applies' if len(ignored) == 1 else 'apply'} to --mode {other} "
            f"only (the {mode} mode would ignore {'it' if len(ignored) == 1 else 'them'}); "
            f"drop {names}"
        )


def _fit_source(args: argparse.Namespace) -> int:
    out = check_writable_folder(args.out)
    # The input first (opened lazily: quick): a bad one is an error before anything
    # starts or is said about compiling.
    if args.sample:
        video = make_sample(args.sample).video
        stem = args.sample
    else:
        video = read_input(args.input)
        stem = Path(args.input).stem or Path(args.input).resolve().name
    # The settings too: a bad one is one line, before anything is said about compiling.
    if args.mode == "online":
        _online_settings(args).validate()
    else:
        FitParameters(**_fit_settings(args), frame_range=args.frames).validate()
    warm_up = None
    if args.mode == "offline" and not args.scheduler and usable_cores() > 1:
        # A cold cache: the background choice and the scoring kernels compile in a
        # second process, on another core, while this one reads the video and compiles
        # the EM (the choice comes after the EM: by then the child has usually compiled
        # it; if not, this process compiles it too).
        warm_up = start_warm_up(("score",), workers=1)
        if warm_up is not None:
            getattr(args, "announce", _tell)(FIRST_RUN_MESSAGE)
    elif args.mode == "online" and usable_cores() > 1:
        # The same for an on-line run: the child compiles the consensus, the brightness
        # reference and the labels' clean-up while this process compiles the update,
        # which the first frames need first.
        warm_up = start_warm_up(("online-rest",), workers=1)
        if warm_up is not None:
            getattr(args, "announce", _tell)(FIRST_RUN_MESSAGE)
    start = time.perf_counter()
    if args.mode == "online":
        written = _run_online(args, video, out, stem)
        if warm_up is not None:
            # Let the child finish (it is loading what this run compiled by now), so its
            # marker lands and the next run neither starts one nor says "first run".
            warm_up.wait(("online-rest",), timeout=ONLINE_WARM_UP_WAIT)
    elif args.scheduler:
        # A client of its own, not the process default: closed when the command ends.
        client = as_client(args.scheduler)
        try:
            model = fit_background(
                video, frame_range=args.frames, client=client, **_fit_settings(args)
            )
            # Scoring and saving as dask graphs on the same cluster, a few frames a task.
            lazy = (
                video
                if isinstance(video, da.Array)
                else da.from_array(video, chunks=(8,) + video.shape[1:])
            )
            with dask.config.set(scheduler=client.get):
                written = write_fit_outputs(model, lazy, out, stem)
        finally:
            client.close()
    else:
        model = fit_background(video, frame_range=args.frames, **_fit_settings(args))
        if warm_up is not None:
            warm_up.wait(("score",), timeout=WARM_UP_WAIT)  # then loaded, not compiled
        written = write_fit_outputs(model, video, out, stem)
    elapsed = time.perf_counter() - start
    print(f"fitted {len(video)} frames of {stem} in {elapsed:.2f} s; wrote:")
    for path in written:
        print(f"  {Path(path).absolute()}")
    return 0


def _run_online(
    args: argparse.Namespace,
    video: object,
    out: Path,
    stem: str,
    before_commit: Callable[[], None] | None = None,
) -> list[Path]:
    """Run the on-line model and stream its scores and labels to disk, block by block.

    Only a block of frames (16) and its scores are in memory at a time: the memory
    needed does not grow with the clip.
    """
    settings = _online_settings(args)
    model = OnlineModel(settings)  # checks the settings
    frames = as_frames(video)
    shape = (frames.n_frames, *frames.frame_shape)
    threshold = ONLINE_DISTANCE if settings.threshold is None else settings.threshold
    metadata = {
        "source": stem,
        "mode": "online",
        **dataclasses.asdict(settings),
        "threshold": threshold,  # the value used, not the setting (None: default)
    }
    names = [f"{stem}_gmm_distance.tif", f"{stem}_gmm_mask.tif", f"{stem}_gmm_background.png"]
    files = AtomicFiles(out)
    with files.transaction():
        with (
            tiff_stack_writer(files.path(names[0]), shape, np.float32, metadata) as score,
            tiff_stack_writer(files.path(names[1]), shape, np.uint8, metadata) as mask,
        ):
            for _, scores, shadow in online_blocks(model, frames):
                score(scores)
                labels = label_scores(
                    scores, shadow, model.threshold, settings.shadows, settings.cleanup
                )
                mask(labels)
        write_png(files.path(names[2]), model.background_image())
        if before_commit is not None:
            before_commit()
    return [out / name for name in names]


def _online_settings(args: argparse.Namespace) -> OnlineSettings:
    # The on-line mode's settings from the command line (not yet checked).
    return OnlineSettings(
        history=args.history,
        n_components=args.components,
        background_ratio=args.background_ratio,
        threshold=args.threshold,
        compensate_brightness=args.compensate_brightness,
        shadows=args.shadows,
        cleanup=_fit_settings(args)["cleanup"],
        consensus_radius=(
            args.consensus_radius
            if "--consensus-radius" in getattr(args, "given", set())
            else OnlineSettings.consensus_radius
        ),
    )


_SETTING_OF_OPTION = {
    "components": "n_components",
    "learning_frames": "learning_frames",
    "iterations": "max_iter",
    "absorb_after": "absorb_after",
    "consensus_radius": "consensus_radius",
    "background_ratio": "background_ratio",
    "threshold": "threshold",
    "compensate_brightness": "compensate_brightness",
    "shadows": "shadows",
}
_CLEANUP_OPTIONS = ("median", "opening", "closing", "min_area")


def _fit_settings(args: argparse.Namespace) -> dict:
    # The fit options that are in ``args``, by settings field name.
    values = {
        field: getattr(args, option)
        for option, field in _SETTING_OF_OPTION.items()
        if hasattr(args, option)
    }
    given = {name: getattr(args, name) for name in _CLEANUP_OPTIONS if hasattr(args, name)}
    if given:
        values["cleanup"] = dataclasses.replace(MaskCleanup(), **given)
    return values


def _evaluate_settings(args: argparse.Namespace) -> dict:
    # The given options by settings field name, the clean-up ones also on their own (the
    # median baseline has a ``median`` setting of its own).
    values = _fit_settings(args)
    values.update({name: getattr(args, name) for name in _CLEANUP_OPTIONS if hasattr(args, name)})
    return values


def evaluate_methods(
    seq: CDnetSequence, methods: Sequence[str], frames: range, settings: dict
) -> dict[str, dict]:
    """Run methods on a CDnet sequence and score them (the CLI's ``evaluate``).

    Parameters
    ----------
    seq : CDnetSequence
        Video, ground truth and regions of interest.
    methods : sequence of str
        Registered method names (``gmm``, ``online``, ``mog2``, ``knn``, ``baseline``).
    frames : range
        Frames to score.
    settings : dict
        Setting values by field name, applied to every method that has that setting
        (see :func:`napari_gmm_bg.core.interface.settings_with`).

    Returns
    -------
    dict
        Per method: the metrics, the counts and ``seconds``.
    """
    check_frame_range(frames, len(seq.video))
    results = {}
    for name in methods:
        method = get_method(name)
        start = time.perf_counter()
        labels = method.run(seq.video, settings_with(method.settings_type, settings)).labels()
        seconds = time.perf_counter() - start
        results[name] = {
            **evaluate_mask(labels, seq.ground_truth, seq.roi, frames),
            "seconds": seconds,
        }
    return results


def _print_table(rows: Sequence[str], columns: dict[str, dict], width: int = 12) -> None:
    print(f"{'':{width}s}" + "".join(f"{c:>12s}" for c in columns))
    for key in rows:
        print(f"{key:{width}s}" + "".join(f"{r[key]:12.4f}" for r in columns.values()))


def _run_evaluate(args: argparse.Namespace) -> int:
    sequences = [read_cdnet(folder) for folder in args.cdnet]  # every folder checked first
    reports: list[dict[str, Any]] = []
    for seq in sequences:
        frames = seq.temporal_roi if args.frames is None else range(*args.frames)
        results = evaluate_methods(seq, args.methods, frames, _evaluate_settings(args))
        reports.append(
            {"sequence": seq.name, "frames": [frames.start, frames.stop], "methods": results}
        )
        if not args.json:
            print(f"{seq.name}: frames {frames.start}:{frames.stop} of {len(seq.video)}")
            _print_table((*METRIC_NAMES, "seconds"), results)
    mean = {
        m: {k: float(np.mean([r["methods"][m][k] for r in reports])) for k in METRIC_NAMES}
        for m in args.methods
    }
    if args.json:
        one = len(reports) == 1
        print(json.dumps(reports[0] if one else {"sequences": reports, "mean": mean}, indent=2))
        return 0
    if len(reports) > 1:
        width = max(12, *(len(r["sequence"]) + 1 for r in reports))
        f_measure = {
            m: {r["sequence"]: r["methods"][m]["f_measure"] for r in reports} for m in mean
        }
        for m in mean:
            f_measure[m]["mean"] = mean[m]["f_measure"]
        print("F-measure")
        _print_table([r["sequence"] for r in reports] + ["mean"], f_measure, width)
    return 0


def _run_stats(args: argparse.Namespace) -> int:
    path = Path(args.mask)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        mask = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several kinds for a file that is not TIFF
        raise ValueError(f"cannot read mask {path}: {exc}") from None
    if mask.ndim != 3:
        raise ValueError(f"{path.name} holds shape {mask.shape}; expected a (T, Y, X) mask stack")
    header, rows = statistics_table(frame_statistics(mask))
    if args.csv:
        check_writable_folder(Path(args.csv).resolve().parent)
        write_csv(args.csv, header, rows)
        print(f"wrote {args.csv}")
    else:
        print(",".join(header))
        for row in rows:
            print(",".join(f"{v:g}" for v in row))
    return 0


def demo_folder() -> Path:
    """Where ``napari-gmm-bg demo`` writes without a display: never the current folder.

    Returns
    -------
    pathlib.Path
        ``napari-gmm-bg/demo`` in the user's cache folder (``~/.cache`` on Linux), or a new
        temporary folder when that cannot be written.
    """
    from platformdirs import user_cache_dir

    folder = Path(user_cache_dir("napari-gmm-bg", appauthor=False)) / "demo"
    try:
        return check_writable_folder(folder).absolute()
    except (ValueError, OSError):
        return Path(tempfile.mkdtemp(prefix="napari-gmm-bg-demo-"))


# Opening a Qt window in a child process: where it cannot (no X server behind DISPLAY, a
# missing xcb library), Qt aborts the whole process (exit 134), which must not be ours.
_WINDOW_PROBE = "from qtpy.QtWidgets import QApplication; QApplication([])"


def display_problem() -> str | None:
    """Why napari cannot open a window here, or None when it can.

    Returns
    -------
    str or None
        None on macOS and Windows, and on Linux when a Qt application starts on
        ``DISPLAY`` / ``WAYLAND_DISPLAY``; else a one-line reason.
    """
    if sys.platform in ("darwin", "win32"):
        return None
    names = [f"{k}={os.environ[k]}" for k in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(k)]
    if not names:
        return "no display found (DISPLAY is not set)"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _WINDOW_PROBE],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return f"no window could be opened on {', '.join(names)} within 60 s"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    reason = next((line for line in lines if "could not connect" in line), None)
    reason = reason or (lines[-1] if lines else f"exit code {probe.returncode}")
    return f"cannot open a window on {', '.join(names)} ({reason})"


def _run_demo(args: argparse.Namespace) -> int:
    problem = display_problem()
    if problem is not None:
        print(f"{problem}: running the headless fit on the built-in sample instead")
        out = Path(args.out).absolute() if args.out else demo_folder()
        fit = _build_parser().parse_args(["fit", "--sample", SAMPLE_NAMES[0], "--out", str(out)])
        fit.announce = args.announce  # the command's: its first-run message is said once
        return _run_fit(fit)
    from ._napari.demo import run_demo

    run_demo()
    return 0


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def _quiet_broken_pipe() -> int:
    # The reader of our output left (``napari-gmm-bg stats m.tif | head -1``): stop
    # quietly, as a SIGPIPE would, and point stdout at devnull so that Python's final flush
    # does not complain either.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) turned into the exception Ctrl+C raises.

    Raised in the main thread, it unwinds through the writers' clean-up exactly as a
    KeyboardInterrupt does: temporary files are deleted and previous outputs kept.

    Parameters
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: The stop signals received during the command.  Recorded because code that catches
#: every exception may turn the one a handler raised into another (numpy's ``tofile``,
#: interrupted inside tifffile, re-raised it as a TypeError): whatever ends the command
#: after a stop signal, the command reports the stop.
_RECEIVED: list[int] = []


def _raise_stopped(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise Stopped(signum)


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` (main thread)."""
    previous = {}
    _RECEIVED.clear()
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is None or signal.getsignal(sig) in (signal.SIG_IGN, None):
                continue  # nohup, say: keep ignoring it
            previous[sig] = signal.signal(sig, _raise_stopped)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit code: 0 on success, 2 on bad input, 141 when the output pipe was closed,
        128 + the signal's number when stopped by SIGINT (Ctrl+C), SIGTERM or SIGHUP
        (nothing written, previous outputs kept).
    """
    try:
        return _main(argv)
    except BrokenPipeError:
        return _quiet_broken_pipe()


def run() -> NoReturn:
    """Run the ``napari-gmm-bg`` command and end the process with its exit code.

    :func:`main`, then the exit handlers (warm-up children stopped, temporary files
    removed) and a flush of the output, as at any exit; then the process ends without the
    interpreter's teardown, which frees numba's compiled code and every module one by one
    and took 0.5-1 s of each command (a CLI ends with its command: nothing is left to
    free).  Where the exit handlers cannot be run first (not CPython), a plain exit.
    """
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


#: Seconds the command waits for its warm-up child at most before compiling itself.
WARM_UP_WAIT = 300.0
#: Seconds an on-line run waits at its end for its warm-up child to finish.
ONLINE_WARM_UP_WAIT = 15.0


class _Once:
    """Say a message once per command, whoever asks first (compile listener, warm-up)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.said = False

    def __call__(self, message: str) -> None:
        if not self.said:
            self.said = True
            self._say(message)


def _tell(message: str) -> None:
    # On stderr: stdout stays the command's output (CSV, JSON, the files written).
    print(f"napari-gmm-bg: {message}", file=sys.stderr, flush=True)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit:
        sys.stdout.flush()  # --help: a closed pipe shows here, not at Python's exit
        raise
    runner = {
        "fit": _run_fit,
        "evaluate": _run_evaluate,
        "stats": _run_stats,
        "demo": _run_demo,
    }[args.command]
    args.announce = _Once(_tell)
    # No cluster asked for: dask as it is without one, said outright (see without_cluster).
    scheduler = nullcontext() if getattr(args, "scheduler", None) else without_cluster()
    try:
        with _stop_signals_raise(), announce_compilation(args.announce), scheduler:
            code = runner(args)
    except BrokenPipeError:
        if _RECEIVED:
            return _stopped(_RECEIVED[0])
        raise
    except (ValueError, OSError) as exc:
        if _RECEIVED:
            return _stopped(_RECEIVED[0])
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"napari-gmm-bg: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        return _stopped(exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
    except Exception:
        if _RECEIVED:  # the stop's exception, turned into another on its way up
            return _stopped(_RECEIVED[0])
        raise
    sys.stdout.flush()
    return code


def _stopped(signum: int) -> int:
    name = signal.Signals(signum).name
    print(f"napari-gmm-bg: stopped by {name}; previous outputs kept", file=sys.stderr)
    return 128 + int(signum)


if __name__ == "__main__":
    run()
