import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_gmm_bg import fit_background, load_model
from napari_gmm_bg.cli import main
from napari_gmm_bg.io.video import read_video
from tests.conftest import iou

OUTPUTS = ("_gmm_distance.tif", "_gmm_mask.tif", "_gmm_background.png", "_gmm_model.npz")


def test_fit_sample_writes_every_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", "--sample", "moving-shapes", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"moving-shapes{s}" for s in OUTPUTS)  # no temporary files left
    mask = tifffile.imread(out / "moving-shapes_gmm_mask.tif")
    ll = tifffile.imread(out / "moving-shapes_gmm_distance.tif")
    assert mask.shape == ll.shape == (80, 120, 160)
    assert mask.dtype == np.uint8 and ll.dtype == np.float32
    from napari_gmm_bg import make_sample

    assert iou(mask, make_sample("moving-shapes").ground_truth) >= 0.8
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["n_components"] == 3 and meta["compensate_brightness"] is True
    background = cv2.imread(str(out / "moving-shapes_gmm_background.png"))
    assert background.shape == (120, 160, 3)
    model = load_model(out / "moving-shapes_gmm_model.npz")
    # The PNG is RGB turned BGR on disk: it equals the model's background image.
    np.testing.assert_array_equal(background[..., ::-1], model.background_image())
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("source", ["sample_mp4", "sample_avi", "sample_folder"])
def test_fit_real_files(tmp_path, request, source, rgb_sample):
    path = request.getfixturevalue(source)
    out = tmp_path / "result"
    assert main(["fit", str(path), "--out", str(out), "--learning-frames", "30"]) == 0
    stem = path.stem
    for suffix in OUTPUTS:
        assert (out / f"{stem}{suffix}").is_file()
    mask = tifffile.imread(out / f"{stem}_gmm_mask.tif")
    # The CLI runs the public API: same file, same settings, same mask.
    video = read_video(path)
    np.testing.assert_array_equal(
        mask, fit_background(video, learning_frames=30).foreground(video)
    )
    # Lossy codecs (4:2:0 chroma, MJPEG blocks) blur object borders: a looser bar than the
    # lossless clip's 0.8.
    assert iou(mask, rgb_sample.ground_truth) >= 0.6


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_gmm_bg.cli", *args],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=600,  # a hang fails the test, however loaded the machine
    )


def _bad_cases(tmp_path, rgb_sample):
    np.save(tmp_path / "x.npy", np.zeros(3))
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "only.png"), rgb_sample.video[0])
    a_file = tmp_path / "a_file"
    a_file.write_text("I am a file")
    return {
        "missing": ([str(tmp_path / "missing.mp4")], "no such file"),
        "unknown-type": ([str(tmp_path / "x.npy")], "unknown video type"),
        "single-frame": ([str(flat)], "at least 2 frames"),
        "out-is-file": (["--sample", "moving-shapes", "--out", str(a_file)], "not a folder"),
        "out-under-file": (
            ["--sample", "moving-shapes", "--out", str(a_file / "sub")],
            "not a folder",
        ),
        "too-many-components": (["--sample", "moving-shapes", "--components", "500"], "500"),
        "bad-range": (["--sample", "moving-shapes", "--frames", "70:90"], "not inside"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "unknown-type",
        "single-frame",
        "out-is-file",
        "out-under-file",
        "too-many-components",
        "bad-range",
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, rgb_sample, case):
    args, message = _bad_cases(tmp_path, rgb_sample)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    before = sorted(os.listdir(tmp_path))
    result = _run_cli("fit", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(os.listdir(tmp_path)) == before
    assert not out.exists()


def test_failed_write_leaves_existing_files_untouched(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "moving-shapes_gmm_mask.tif"
    keep.write_bytes(b"previous result")

    import napari_gmm_bg.cli as cli

    def broken_png(path, image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "write_png", broken_png)
    assert main(["fit", "--sample", "moving-shapes", "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == [keep.name]
    assert keep.read_bytes() == b"previous result"


def test_argument_errors_exit_2():
    result = _run_cli("fit", "--out", "x")
    assert result.returncode == 2
    assert "error" in result.stderr


def test_evaluate_prints_metrics_side_by_side(cdnet_folder, capsys):
    assert main(["evaluate", str(cdnet_folder), "--methods", "gmm,mog2,baseline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == [5, 60]
    methods = report["methods"]
    assert list(methods) == ["gmm", "mog2", "baseline"]
    for scores in methods.values():
        assert {"recall", "precision", "f_measure", "pwc", "seconds"} <= set(scores)
    assert methods["gmm"]["f_measure"] > methods["mog2"]["f_measure"]
    # Scored on the temporal ROI inside ROI.bmp: columns 0-3 and frames 0-4 not counted.
    from napari_gmm_bg.core.metrics import evaluate_mask
    from napari_gmm_bg.core.mog2 import run_mog2
    from napari_gmm_bg.io.cdnet import read_cdnet

    seq = read_cdnet(cdnet_folder)
    expected = evaluate_mask(run_mog2(seq.video).mask, seq.ground_truth, seq.roi, range(5, 60))
    assert methods["mog2"]["tp"] == expected["tp"] and methods["mog2"]["fp"] == expected["fp"]

    assert main(["evaluate", str(cdnet_folder), "--methods", "mog2", "--frames", "10:20"]) == 0
    table = capsys.readouterr().out
    assert "f_measure" in table and "10:20" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "50:90"], "not inside"),
        (["--methods", "gmm,vibe"], "unknown method vibe"),
    ],
)
def test_evaluate_bad_input(cdnet_folder, args, message):
    result = _run_cli("evaluate", str(cdnet_folder), *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_evaluate_runs_every_method_on_several_folders(cdnet_folder, tmp_path, capsys):
    import shutil

    second = tmp_path / "second"
    shutil.copytree(cdnet_folder, second)
    methods = "gmm,online,mog2,knn,baseline"
    args = ["evaluate", str(cdnet_folder), str(second), "--methods", methods]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["sequence"] for r in report["sequences"]] == [cdnet_folder.name, "second"]
    first, again = (r["methods"] for r in report["sequences"])
    assert list(first) == methods.split(",")
    for name in first:  # the same clip twice: the same scores, and their mean
        assert first[name]["f_measure"] == pytest.approx(again[name]["f_measure"])
        assert report["mean"][name]["f_measure"] == pytest.approx(first[name]["f_measure"])
    assert all(scores["f_measure"] > 0.5 for scores in first.values())

    assert main([*args, "--threshold", "2.0"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-5].split() == ["F-measure"] and table[-4].split() == methods.split(",")
    assert table[-1].split()[0] == "mean" and len(table[-1].split()) == 6


def test_evaluate_options_apply_to_the_methods_that_have_them(cdnet_folder, capsys):
    args = ["evaluate", str(cdnet_folder), "--methods", "gmm,online,mog2", "--json"]
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)["methods"]
    assert main([*args, "--threshold", "4.0"]) == 0  # GMMs only: MOG2 has no threshold
    strict = json.loads(capsys.readouterr().out)["methods"]
    for name in ("gmm", "online"):
        assert strict[name]["recall"] < default[name]["recall"]
    assert strict["mog2"]["tp"] == default["mog2"]["tp"]


def test_evaluate_on_a_folder_that_is_not_cdnet(tmp_path):
    result = _run_cli("evaluate", str(tmp_path))
    assert result.returncode == 2 and "not a CDnet folder" in result.stderr


def test_stats_of_a_mask_stack(tmp_path, capsys):
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[1, 1:3, 1:3] = 1
    mask[1, 6:9, 6:9] = 1
    tifffile.imwrite(tmp_path / "mask.tif", mask, photometric="minisblack")
    assert main(["stats", str(tmp_path / "mask.tif")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "frame,foreground_pixels,foreground_fraction,blobs"
    assert lines[2] == "1,13,0.13,2"
    assert main(["stats", str(tmp_path / "mask.tif"), "--csv", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[2] == "1,13,0.13,2"
    tifffile.imwrite(tmp_path / "flat.tif", mask[0])
    assert main(["stats", str(tmp_path / "flat.tif")]) == 2


def test_fit_online_mode(tmp_path, default_sample):
    out = tmp_path / "online"
    assert (
        main(
            [
                "fit",
                "--sample",
                "moving-shapes",
                "--out",
                str(out),
                "--mode",
                "online",
                "--history",
                "200",
            ]
        )
        == 0
    )
    mask = tifffile.imread(out / "moving-shapes_gmm_mask.tif")
    from napari_gmm_bg.core.online import OnlineSettings, run_online

    expected = run_online(default_sample.video, OnlineSettings(history=200)).foreground()
    np.testing.assert_array_equal(mask, expected)
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        assert json.loads(tif.pages[0].description)["history"] == 200
    assert not (out / "moving-shapes_gmm_model.npz").exists()


def _cli_env():
    """The environment of a CLI subprocess: it imports this checkout's package."""
    import napari_gmm_bg

    src = str(Path(napari_gmm_bg.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _default_stop_signals():
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_mid_save_keeps_every_previous_output(tmp_path, signum):
    # A clip whose scoring (streamed into the outputs) takes a while: long enough that
    # the signal lands before the save ends, even with every kernel cached (300 frames
    # were once done before the signal arrived).
    rng = np.random.default_rng(0)
    clip = tmp_path / "clip.tif"
    tifffile.imwrite(clip, rng.integers(0, 255, (1500, 120, 160), dtype=np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    old = {f"clip{s}": f"previous clip{s}".encode() for s in OUTPUTS}
    for name, data in old.items():
        (out / name).write_bytes(data)
    args = ["fit", str(clip), "--out", str(out), "--learning-frames", "4", "--iterations", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_gmm_bg.cli", *args],
        env=_cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a test run started in the background (CI, ``&``) ignores
        # SIGINT, one started under ``nohup`` SIGHUP, and a child would inherit that and
        # never see the Ctrl+C or the closed terminal.
        preexec_fn=_default_stop_signals,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".part") for p in out.iterdir()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert len(stderr.strip().splitlines()) == 1 and "stopped" in stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # nothing hidden left


@pytest.mark.parametrize("shadows", ["off", "show"])
def test_online_mode_streams_the_same_files_the_in_memory_run_wrote(
    tmp_path, default_sample, shadows
):
    import dataclasses

    from napari_gmm_bg.core.cleanup import MaskCleanup
    from napari_gmm_bg.core.online import OnlineSettings, run_online
    from napari_gmm_bg.io.writers import write_png, write_tiff_stack

    out = tmp_path / "online"
    args = ["--history", "50", "--shadows", shadows, "--median", "5", "--min-area", "4"]
    args += ["--consensus-radius", "2"]
    assert (
        main(["fit", "--sample", "moving-shapes", "--out", str(out), "--mode", "online", *args])
        == 0
    )
    # What the command wrote before it streamed: the whole run in memory, then written.
    settings = OnlineSettings(
        history=50,
        shadows=shadows,
        cleanup=MaskCleanup(median=5, min_area=4),
        consensus_radius=2,
    )
    result = run_online(default_sample.video, settings)
    metadata = {
        "source": "moving-shapes",
        "mode": "online",
        **dataclasses.asdict(settings),
        "threshold": result.threshold,  # the value used
    }
    ref = tmp_path / "ref"
    ref.mkdir()
    write_tiff_stack(ref / "l.tif", result.distance, metadata)
    mask = result.foreground()  # the settings' clean-up
    write_tiff_stack(ref / "m.tif", mask, metadata)
    write_png(ref / "b.png", result.background)
    for name, reference in (
        ("distance.tif", "l.tif"),
        ("mask.tif", "m.tif"),
        ("background.png", "b.png"),
    ):
        assert (out / f"moving-shapes_gmm_{name}").read_bytes() == (ref / reference).read_bytes()


def test_online_mode_holds_one_block_not_the_clip(tmp_path, monkeypatch):
    # A lazy clip of 400 frames: its scores (31 MB) and labels are never held whole.
    import tracemalloc

    import dask.array as da

    import napari_gmm_bg.cli as cli

    def frames(block_info=None):
        t0, t1 = block_info[None]["array-location"][0]
        rng = np.random.default_rng(t0)
        return rng.integers(100, 120, (t1 - t0, 120, 160), dtype=np.uint8)

    clip = da.map_blocks(frames, chunks=((16,) * 25, (120,), (160,)), dtype=np.uint8)
    monkeypatch.setattr(cli, "read_input", lambda path: clip[: int(path)])
    # A first run imports and compiles what the command needs: not counted.
    assert main(["fit", "32", "--out", str(tmp_path / "warm"), "--mode", "online"]) == 0
    monkeypatch.setattr(cli, "read_input", lambda path: clip)
    whole = 400 * 120 * 160 * 4
    tracemalloc.start()
    try:
        assert main(["fit", "clip", "--out", str(tmp_path / "o"), "--mode", "online"]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole / 4, f"peak {peak / 2**20:.1f} MB"
    assert tifffile.imread(tmp_path / "o" / "clip_gmm_distance.tif").shape == (400, 120, 160)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_a_nan_threshold_is_refused_in_every_mode(tmp_path, mode):
    out = tmp_path / "o"
    args = ["fit", "--sample", "moving-shapes", "--out", str(out), "--mode", mode]
    result = _run_cli(*args, "--threshold", "nan")
    assert result.returncode == 2 and "threshold" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_evaluate_with_an_all_black_roi_is_an_error(cdnet_folder):
    import cv2 as _cv2

    roi = _cv2.imread(str(cdnet_folder / "ROI.bmp"), _cv2.IMREAD_GRAYSCALE)
    _cv2.imwrite(str(cdnet_folder / "ROI.bmp"), np.zeros_like(roi))
    result = _run_cli("evaluate", str(cdnet_folder), "--methods", "mog2")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing to score" in lines[0], result.stderr


def test_a_refused_video_leaves_no_hidden_index_beside_it(tmp_path, rgb_sample):
    from PIL import Image

    gif = tmp_path / "one.gif"
    Image.fromarray(rgb_sample.video[0]).save(gif)
    result = _run_cli("fit", str(gif), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert os.listdir(tmp_path) == ["one.gif"]


def test_online_mode_refuses_a_learning_range(tmp_path):
    result = _run_cli(
        "fit",
        "--sample",
        "moving-shapes",
        "--out",
        str(tmp_path),
        "--mode",
        "online",
        "--frames",
        "0:10",
    )
    assert result.returncode == 2 and "drop --frames" in result.stderr


@pytest.mark.parametrize(
    ("mode", "options", "named"),
    [
        ("online", ["--iterations", "5"], "--iterations"),
        ("online", ["--learning-frames", "20"], "--learning-frames"),
        ("online", ["--learning-frames", "20", "--iterations", "5"], "--learning-frames"),
        ("offline", ["--history", "50"], "--history"),
        ("online", ["--absorb-after", "50"], "--absorb-after"),
    ],
)
def test_an_option_the_mode_would_ignore_is_refused(tmp_path, mode, options, named):
    # They were silently ignored: the on-line model learns from every frame as it
    # comes (no learning frames, no EM iterations), the offline fit has no history.
    out = tmp_path / "out"
    result = _run_cli(
        "fit", "--sample", "moving-shapes", "--out", str(out), "--mode", mode, *options
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and f"drop {named}" in lines[0], lines
    assert not out.exists()


def test_evaluate_clean_up_options_reach_the_baseline(cdnet_folder, capsys):
    args = ["evaluate", str(cdnet_folder), "--methods", "baseline", "--json"]
    assert main(args) == 0
    filtered = json.loads(capsys.readouterr().out)["methods"]["baseline"]
    assert main([*args, "--median", "0"]) == 0
    raw = json.loads(capsys.readouterr().out)["methods"]["baseline"]
    assert (raw["tp"], raw["fp"]) != (filtered["tp"], filtered["fp"])  # no median filter


def test_scene_options_reach_the_fit_and_its_record(tmp_path):
    out = tmp_path / "out"
    args = ["fit", "--sample", "moving-shapes", "--out", str(out)]
    assert main([*args, "--absorb-after", "30", "--consensus-radius", "2"]) == 0
    model = load_model(out / "moving-shapes_gmm_model.npz")
    assert model.params.absorb_after == 30 and model.params.consensus_radius == 2
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["absorb_after"] == 30 and meta["consensus_radius"] == 2
    assert meta["cleanup"]["median"] == 7  # sized to the 160x120 frame, recorded
