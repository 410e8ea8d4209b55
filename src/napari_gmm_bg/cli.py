"""The ``napari-gmm-bg`` command: the same fit as the napari widget, headless.

Bad input prints one line on stderr and exits with code 2, having written nothing.
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import tifffile

from .core import SAMPLE_NAMES, FitParameters, MaskCleanup, fit_background, make_sample
from .core.baseline import median_baseline
from .core.cluster import as_client
from .core.frames import as_frames
from .core.gmm import BackgroundModel
from .core.labels import SHADOW_MODES
from .core.metrics import (
    METRIC_NAMES,
    check_frame_range,
    evaluate_mask,
    frame_statistics,
    statistics_table,
)
from .core.mog2 import run_mog2
from .core.online import OnlineModel, OnlineSettings, label_scores, online_blocks
from .io.cdnet import CDnetSequence, read_cdnet
from .io.lazy_video import decoder_errors, open_video, video_index_file
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
    def error(self, message: str) -> None:  # one line, exit code 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


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
        help="fit the background model and write log-likelihood, mask and background",
        description=(
            "Fit a Gaussian mixture to every pixel of INPUT (a video file or a folder of "
            "frames) and write <name>_gmm_loglik.tif, <name>_gmm_mask.tif, "
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
        type=int,
        default=OnlineSettings.history,
        help="online mode: frames of memory (something that stops becomes background "
        "after about 0.105 x history frames)",
    )
    fit.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a dask.distributed scheduler (e.g. tcp://10.0.0.5:8786): fit, score and "
        "save on its cluster",
    )
    fit.add_argument(
        "--frames",
        type=_frame_range,
        default=None,
        metavar="START:STOP",
        help="learn from this frame range only (stop exclusive)",
    )
    _add_fit_options(fit)

    evaluate = commands.add_parser(
        "evaluate",
        help="score the GMM, MOG2 and the median baseline on a CDnet folder",
        description=(
            "Run each method on a CDnet folder (input/, groundtruth/, temporalROI.txt, "
            "ROI.bmp) and print recall, specificity, FPR, FNR, PWC, precision and F-measure "
            "side by side with the time each took.  Scored on the temporal ROI unless "
            "--frames is given, and inside ROI.bmp when present."
        ),
    )
    evaluate.add_argument("cdnet", help="CDnet sequence folder")
    evaluate.add_argument(
        "--methods",
        default="gmm,mog2",
        type=_methods,
        help=f"comma-separated, from {','.join(METHODS)} (default: gmm,mog2)",
    )
    evaluate.add_argument(
        "--frames",
        type=_frame_range,
        default=None,
        metavar="START:STOP",
        help="score these frames (0-based, stop exclusive; CDnet's 470-1000 is 469:1000)",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_fit_options(evaluate)

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
        "--out", default="napari-gmm-bg-demo", help="output folder when there is no display"
    )
    return parser


METHODS = ("gmm", "mog2", "baseline")


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}"
        )
    return methods


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--components", type=int, default=3, help="Gaussians per pixel")
    parser.add_argument(
        "--learning-frames",
        type=int,
        default=FitParameters.learning_frames,
        help="frames the fit learns from",
    )
    parser.add_argument("--iterations", type=int, default=10, help="EM iterations at most")
    parser.add_argument(
        "--background-ratio",
        type=float,
        default=0.9,
        help="cumulative weight of the components that are background",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="log-likelihood below which a pixel is foreground (default: per channel count)",
    )
    parser.add_argument(
        "--no-brightness-compensation",
        dest="compensate_brightness",
        action="store_false",
        help="do not remove each frame's global brightness change (gain and lift) before scoring",
    )
    parser.add_argument(
        "--shadows",
        choices=SHADOW_MODES,
        default=FitParameters.shadows,
        help="shadows: show them as label 2, count them as background, or off (foreground)",
    )
    defaults = MaskCleanup()
    cleanup = parser.add_argument_group("mask clean-up")
    cleanup.add_argument(
        "--median",
        type=int,
        default=defaults.median,
        help="median filter size (odd; 0 for none)",
    )
    cleanup.add_argument(
        "--opening", type=int, default=defaults.opening, help="opening size (0 for none)"
    )
    cleanup.add_argument(
        "--closing", type=int, default=defaults.closing, help="closing size (0 for none)"
    )
    cleanup.add_argument(
        "--min-area",
        type=int,
        default=defaults.min_area,
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
        exception it raises (say, the decoder reported damaged data) writes nothing.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    log_likelihood = model.log_likelihood(video)
    mask = model.foreground(video)
    metadata = {
        "source": stem,
        "threshold": model.threshold,
        **dataclasses.asdict(model.params),
    }
    names = {
        "loglik": f"{stem}_gmm_loglik.tif",
        "mask": f"{stem}_gmm_mask.tif",
        "background": f"{stem}_gmm_background.png",
        "model": f"{stem}_gmm_model.npz",
    }
    files = AtomicFiles(out)
    with files.transaction():
        write_tiff_stack(files.path(names["loglik"]), log_likelihood, metadata)
        write_tiff_stack(files.path(names["mask"]), mask, metadata)
        write_png(files.path(names["background"]), model.background_image())
        model.save(files.path(names["model"]))
        if before_commit is not None:
            before_commit()
    return [out / name for name in names.values()]


def read_input(path: str) -> object:
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
    if args.sample or not Path(args.input).is_file():
        return _fit_source(args, None)
    with decoder_errors(args.input) as check:
        return _fit_source(args, check)


def _fit_source(args: argparse.Namespace, check: Callable[[], None] | None) -> int:
    out = check_writable_folder(args.out)
    if args.sample:
        video = make_sample(args.sample).video
        stem = args.sample
    else:
        video = read_input(args.input)
        stem = Path(args.input).stem or Path(args.input).resolve().name
    start = time.perf_counter()
    if args.mode == "online":
        if args.scheduler:
            raise ValueError("the online mode runs frame by frame here; drop --scheduler")
        written = _run_online(args, video, out, stem, check)
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
                written = write_fit_outputs(model, lazy, out, stem, check)
        finally:
            client.close()
    else:
        model = fit_background(video, frame_range=args.frames, **_fit_settings(args))
        written = write_fit_outputs(model, video, out, stem, check)
    elapsed = time.perf_counter() - start
    print(f"fitted {len(video)} frames of {stem} in {elapsed:.2f} s; wrote:")
    for path in written:
        print(f"  {path}")
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
    settings = OnlineSettings(
        history=args.history,
        n_components=args.components,
        background_ratio=args.background_ratio,
        threshold=args.threshold,
        compensate_brightness=args.compensate_brightness,
        shadows=args.shadows,
    )
    model = OnlineModel(settings)  # checks the settings
    cleanup = _fit_settings(args)["cleanup"]
    cleanup.validate()
    frames = as_frames(video)
    shape = (frames.n_frames, *frames.frame_shape)
    metadata = {"source": stem, "mode": "online", **dataclasses.asdict(settings)}
    names = [f"{stem}_gmm_loglik.tif", f"{stem}_gmm_mask.tif", f"{stem}_gmm_background.png"]
    files = AtomicFiles(out)
    with files.transaction():
        with (
            tiff_stack_writer(files.path(names[0]), shape, np.float32, metadata) as loglik,
            tiff_stack_writer(files.path(names[1]), shape, np.uint8, metadata) as mask,
        ):
            for _, scores, shadow in online_blocks(model, frames):
                loglik(scores)
                mask(label_scores(scores, shadow, model.threshold, settings.shadows, cleanup))
        write_png(files.path(names[2]), model.background_image())
        if before_commit is not None:
            before_commit()
    return [out / name for name in names]


def _fit_settings(args: argparse.Namespace) -> dict:
    return {
        "n_components": args.components,
        "learning_frames": args.learning_frames,
        "max_iter": args.iterations,
        "background_ratio": args.background_ratio,
        "threshold": args.threshold,
        "compensate_brightness": args.compensate_brightness,
        "shadows": args.shadows,
        "cleanup": MaskCleanup(
            median=args.median, opening=args.opening, closing=args.closing, min_area=args.min_area
        ),
    }


def evaluate_methods(
    seq: CDnetSequence, methods: Sequence[str], frames: range, fit_settings: dict
) -> dict[str, dict]:
    """Run methods on a CDnet sequence and score them (the CLI's ``evaluate``).

    Parameters
    ----------
    seq : CDnetSequence
        Video, ground truth and regions of interest.
    methods : sequence of str
        From ``gmm``, ``mog2``, ``baseline``.
    frames : range
        Frames to score.
    fit_settings : dict
        Keyword arguments of :func:`napari_gmm_bg.fit_background` for ``gmm``.

    Returns
    -------
    dict
        Per method: the metrics, the counts and ``seconds``.
    """
    check_frame_range(frames, len(seq.video))
    results = {}
    for method in methods:
        start = time.perf_counter()
        if method == "gmm":
            model = fit_background(seq.video, **fit_settings)
            mask = model.foreground(seq.video, region=seq.roi)
        elif method == "mog2":
            mask = run_mog2(seq.video).mask
        else:
            mask = median_baseline(seq.video)
        seconds = time.perf_counter() - start
        results[method] = {
            **evaluate_mask(mask, seq.ground_truth, seq.roi, frames),
            "seconds": seconds,
        }
    return results


def _run_evaluate(args: argparse.Namespace) -> int:
    seq = read_cdnet(args.cdnet)
    frames = seq.temporal_roi if args.frames is None else range(*args.frames)
    results = evaluate_methods(seq, args.methods, frames, _fit_settings(args))
    if args.json:
        print(
            json.dumps(
                {"sequence": seq.name, "frames": [frames.start, frames.stop], "methods": results},
                indent=2,
            )
        )
        return 0
    print(f"{seq.name}: frames {frames.start}:{frames.stop} of {len(seq.video)}")
    print(f"{'':12s}" + "".join(f"{m:>12s}" for m in results))
    for key in (*METRIC_NAMES, "seconds"):
        print(f"{key:12s}" + "".join(f"{r[key]:12.4f}" for r in results.values()))
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


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        sys.platform in ("darwin", "win32")
    )


def _run_demo(args: argparse.Namespace) -> int:
    if not _has_display():
        print("no display found: running the headless fit on the built-in sample instead")
        return _run_fit(
            _build_parser().parse_args(["fit", "--sample", SAMPLE_NAMES[0], "--out", args.out])
        )
    from ._napari.demo import run_demo

    run_demo()
    return 0


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


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` (main thread only)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
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
        Exit code: 0 on success, 2 on bad input, 128 + the signal's number when stopped
        by SIGINT (Ctrl+C), SIGTERM or SIGHUP (nothing written, previous outputs kept).
    """
    args = _build_parser().parse_args(argv)
    try:
        with _stop_signals_raise():
            runner = {
                "fit": _run_fit,
                "evaluate": _run_evaluate,
                "stats": _run_stats,
                "demo": _run_demo,
            }[args.command]
            return runner(args)
    except (ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"napari-gmm-bg: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"napari-gmm-bg: stopped by {name}; previous outputs kept", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
