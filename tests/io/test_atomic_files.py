"""All or nothing: a save that fails or is stopped leaves every previous output as it was."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from napari_gmm_bg.core import _files
from napari_gmm_bg.io.writers import AtomicFiles, save_tiff, save_zarr

NAMES = ("a.tif", "b.tif", "c.png", "d.npz")


def _old_outputs(folder: Path) -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    old = {name: f"previous {name}".encode() * 3 for name in NAMES}
    for name, data in old.items():
        (folder / name).write_bytes(data)
    return old


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _write_all(folder: Path) -> None:
    files = AtomicFiles(folder)
    with files.transaction():
        for name in NAMES:
            files.path(name).write_bytes(f"new {name}".encode())


def test_a_successful_save_replaces_every_file_and_leaves_nothing_hidden(tmp_path):
    _old_outputs(tmp_path)
    _write_all(tmp_path)
    assert _state(tmp_path) == {name: f"new {name}".encode() for name in NAMES}


@pytest.mark.parametrize("failing", range(2 * len(NAMES)))
def test_any_failed_rename_restores_every_previous_file(tmp_path, monkeypatch, failing):
    # Whichever rename fails (moving an old file aside, or a new one into place), the
    # renames already done are undone.
    old = _old_outputs(tmp_path)
    replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == failing + 1:
            raise PermissionError(1, "Operation not permitted", str(src))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(PermissionError):
        _write_all(tmp_path)
    monkeypatch.setattr(os, "replace", replace)
    assert _state(tmp_path) == old
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES)  # nothing hidden left


def test_a_folder_holding_an_output_name_changes_nothing(tmp_path):
    old = _old_outputs(tmp_path)
    (tmp_path / NAMES[-1]).unlink()
    (tmp_path / NAMES[-1]).mkdir()
    del old[NAMES[-1]]
    with pytest.raises(OSError) as info:
        _write_all(tmp_path)
    assert info.value.filename == str(tmp_path / NAMES[-1])  # the name given, not a temp
    assert _state(tmp_path) == old
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES)


class _Stop(KeyboardInterrupt):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signum)


@pytest.mark.parametrize("during", range(2 * len(NAMES)))
def test_a_stop_signal_during_the_renames_undoes_them(tmp_path, monkeypatch, during):
    # A signal is held back while files are swapped, then the swap is undone and the
    # signal delivered: the previous outputs are all there, none of the new ones.
    old = _old_outputs(tmp_path)
    replace = os.replace
    calls = []

    def signalling(src, dst):
        calls.append(src)
        replace(src, dst)
        if len(calls) == during + 1:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        monkeypatch.setattr(os, "replace", signalling)
        with pytest.raises(_Stop):
            _write_all(tmp_path)
    finally:
        monkeypatch.setattr(os, "replace", replace)
        signal.signal(signal.SIGTERM, previous)
    assert _state(tmp_path) == old
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES)


def test_files_reach_the_disk_before_they_are_renamed(tmp_path, monkeypatch):
    _old_outputs(tmp_path)
    synced, replace, fsync = [], os.replace, os.fsync

    def recording_fsync(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def checking_replace(src, dst):
        if Path(src).name.endswith(".part"):
            assert Path(src).resolve() in synced, f"{src} renamed before fsync"
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", checking_replace)
    _write_all(tmp_path)
    assert tmp_path.resolve() in synced  # the folder's new entries too
    save_tiff(tmp_path / "e.tif", np.zeros((2, 4, 4), np.uint8))
    assert synced[-1] == tmp_path.resolve()


def test_a_held_signal_is_delivered_after_the_block(monkeypatch):
    previous = signal.signal(signal.SIGHUP, _raise_stop)
    try:
        with pytest.raises(_Stop):
            with _files.held_signals() as received:
                os.kill(os.getpid(), signal.SIGHUP)
                assert received == [signal.SIGHUP]  # not raised yet
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_concurrent_creation_of_the_same_nested_folder(tmp_path, monkeypatch):
    # Another process creates the folder between the check and the mkdir.
    out = tmp_path / "a" / "b"
    mkdir = Path.mkdir

    def racing_mkdir(self, *args, **kwargs):
        mkdir(self)  # the other process wins
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    files = AtomicFiles(out)
    with files.transaction():
        files.path("x.txt").write_bytes(b"x")
    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert (out / "x.txt").read_bytes() == b"x"


def test_a_zarr_save_over_a_regular_file_leaves_nothing_hidden(tmp_path):
    target = tmp_path / "s.zarr"
    target.write_bytes(b"a file")
    save_zarr(target, np.zeros((2, 4, 4), np.uint8))
    assert target.is_dir()
    assert os.listdir(tmp_path) == ["s.zarr"]


def test_write_errors_name_the_destination_not_the_temporary_file(tmp_path, monkeypatch):
    import napari_gmm_bg.io.writers as writers

    def full_disk(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(writers, "write_tiff_stack", full_disk)
    with pytest.raises(OSError) as info:
        save_tiff(tmp_path / "s.tif", np.zeros((2, 4, 4), np.uint8))
    assert info.value.filename == str(tmp_path / "s.tif")
    files = AtomicFiles(tmp_path / "out")
    with pytest.raises(OSError) as info:
        with files.transaction():
            full_disk(files.path("m.tif"))
    assert info.value.filename == str(tmp_path / "out" / "m.tif")
    assert os.listdir(tmp_path) == []
