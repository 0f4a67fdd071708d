"""The embedded default data: real images that ship inside scikit-learn, written out as files.

The digits become an ordinary class-folder dataset, so the default run goes through exactly the
same ingest path as a user's own folder.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.config.detect import ScenesParams


def write_digits(out: Path) -> int:
    """Write scikit-learn's 1,797 8x8 digits as ``out/<label>/digit_NNNN.png`` (8-bit grey).

    The 17 grey levels (0-16) are stretched to 0-255. Returns the number of images written.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        folder = out / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"digit_{index:04d}.png", optimize=False)
    return len(pixels)


def write_samples(out: Path) -> list[str]:
    """Copy scikit-learn's sample photographs (``china.jpg``, ``flower.jpg``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for entry in resources.files("sklearn.datasets.images").iterdir():
        if entry.name.endswith(".jpg"):
            with resources.as_file(entry) as source:
                shutil.copyfile(source, out / entry.name)
            names.append(entry.name)
    return sorted(names)


#: scikit-image's photos written for DeepDream and style transfer (content and texture styles).
PHOTOS = ("astronaut", "chelsea", "coffee", "brick", "grass", "gravel")


def write_photos(out: Path) -> list[str]:
    """Write scikit-image's photos :data:`PHOTOS` (shipped in its wheel) as ``out/<name>.png``."""
    import skimage.data

    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(skimage.data, name)()).save(out / f"{name}.png")
    return [f"{name}.png" for name in PHOTOS]


def write_all(out: Path, scenes: ScenesParams | None = None) -> dict[str, int]:
    """Write every embedded dataset under ``out`` (replacing it) and count what was written:
    the digits, the sample photos and the detection scenes (:mod:`pipeline.detect.scenes`)."""
    from pipeline.detect.scenes import write_scenes

    scenes = scenes or ScenesParams()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"digits": write_digits(tmp / "digits"), "samples": len(write_samples(tmp / "samples"))}
    write_scenes(tmp / "scenes", scenes)
    counts["scenes"] = scenes.images
    counts["photos"] = len(write_photos(tmp / "photos"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return counts
