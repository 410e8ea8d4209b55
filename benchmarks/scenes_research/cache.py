"""Decode the seven scenes once into .npy files (mmap-able) for quick experiments."""
import sys
import tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_scenes import SCENES, scene_folder, scored_frames, HIGHWAY
from napari_gmm_bg.io.cdnet import read_cdnet

CACHE = Path(tempfile.gettempdir()) / "napari-gmm-bg-scenes-cache"

def build():
    for name in SCENES:
        if (CACHE / f"{name}_video.npy").exists():
            continue
        seq = read_cdnet(scene_folder(name))
        np.save(CACHE / f"{name}_video.npy", np.asarray(seq.video))
        np.save(CACHE / f"{name}_truth.npy", np.asarray(seq.ground_truth))
        roi = seq.roi if seq.roi is not None else np.ones(seq.video.shape[1:3], bool)
        np.save(CACHE / f"{name}_roi.npy", roi)
        fr = scored_frames(seq)
        np.save(CACHE / f"{name}_frames.npy", np.array([fr.start, fr.stop]))
        print(name, seq.video.shape, fr, flush=True)

def load(name, mmap=True):
    m = "r" if mmap else None
    v = np.load(CACHE / f"{name}_video.npy", mmap_mode=m)
    g = np.load(CACHE / f"{name}_truth.npy", mmap_mode=m)
    roi = np.load(CACHE / f"{name}_roi.npy")
    a, b = np.load(CACHE / f"{name}_frames.npy")
    return v, g, roi, range(int(a), int(b))

if __name__ == "__main__":
    build()
