"""The ``napari-gmm-bg`` command: the same fit as the napari widget, headless.

Bad input prints one line on stderr and exits with code 2, having written nothing.
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .core import SAMPLE_NAMES, fit_background, make_sample
from .core.gmm import BackgroundModel
from .io.video import read_video
from .io.writers import AtomicFiles, check_writable_folder, write_png, write_tiff_stack

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
    _add_fit_options(fit)

    demo = commands.add_parser(
        "demo",
        help="open napari with the plugin and a fitted sample (no display: run the CLI fit)",
    )
    demo.add_argument(
        "--out", default="napari-gmm-bg-demo", help="output folder when there is no display"
    )
    return parser


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--components", type=int, default=3, help="Gaussians per pixel")
    parser.add_argument(
        "--learning-frames", type=int, default=100, help="frames the fit learns from"
    )
    parser.add_argument(
        "--frames",
        type=_frame_range,
        default=None,
        metavar="START:STOP",
        help="learn from this frame range only (stop exclusive)",
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


def write_fit_outputs(model: BackgroundModel, video: object, out: Path, stem: str) -> list[Path]:
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
        **{k: v for k, v in model.params.__dict__.items() if k != "frame_range"},
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
    return [out / name for name in names.values()]


def _run_fit(args: argparse.Namespace) -> int:
    out = check_writable_folder(args.out)
    if args.sample:
        video = make_sample(args.sample).video
        stem = args.sample
    else:
        video = read_video(args.input)
        stem = Path(args.input).stem or Path(args.input).resolve().name
    start = time.perf_counter()
    model = fit_background(
        video,
        n_components=args.components,
        learning_frames=args.learning_frames,
        frame_range=args.frames,
        max_iter=args.iterations,
        background_ratio=args.background_ratio,
        threshold=args.threshold,
    )
    written = write_fit_outputs(model, video, out, stem)
    elapsed = time.perf_counter() - start
    print(f"fitted {len(video)} frames of {stem} in {elapsed:.2f} s; wrote:")
    for path in written:
        print(f"  {path}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit code: 0 on success, 2 on bad input.
    """
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "fit":
            return _run_fit(args)
        return _run_demo(args)
    except (ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"napari-gmm-bg: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
