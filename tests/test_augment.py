"""Each augmentation knob changes a batch, reproducibly from (seed, epoch, batch)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import AugmentParams
from pipeline.train.augment import build, write_preview

#: A tiny colour batch (0-255, float32) with structure, so every transform shows.
IMAGES = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype(np.float32)

KNOBS = {
    "vertical_flip": True, "shear": 0.3, "brightness": 0.3, "saturation": 0.8, "hue": 0.3,
    "noise": 10.0, "rand_augment": 2,
}


@pytest.mark.parametrize("knob", list(KNOBS))
def test_knob_changes_a_batch_reproducibly(knob: str) -> None:
    augment = build(AugmentParams(**{knob: KNOBS[knob]}), seed=0)
    assert augment is not None
    first = augment(IMAGES, epoch=1, batch=2)
    assert first.shape == IMAGES.shape and not np.allclose(first, IMAGES)
    np.testing.assert_array_equal(build(AugmentParams(**{knob: KNOBS[knob]}), 0)(IMAGES, 1, 2),
                                  first)
    others = [augment(IMAGES, 1, 3), augment(IMAGES, 2, 2),
              build(AugmentParams(**{knob: KNOBS[knob]}), 1)(IMAGES, 1, 2)]
    assert any(not np.array_equal(other, first) for other in others)


def test_vertical_flip_only_with_its_switch() -> None:
    """``flip`` mirrors left-right only; ``vertical_flip`` up-down only."""
    image = IMAGES[:1].repeat(32, axis=0)
    horizontal = build(AugmentParams(flip=True), seed=0)(image, 0, 0)
    vertical = build(AugmentParams(vertical_flip=True), seed=0)(image, 0, 0)
    for out, mirrored in ((horizontal, image[:, :, ::-1]), (vertical, image[:, ::-1])):
        flipped = [np.array_equal(o, m) for o, m in zip(out, mirrored, strict=True)]
        kept = [np.array_equal(o, i) for o, i in zip(out, image, strict=True)]
        assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped)


def test_preview_png(tmp_path) -> None:
    target = tmp_path / "plots" / "augment.png"
    write_preview(build(AugmentParams(flip=True, hue=0.2), 0), IMAGES.astype(np.uint8), target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grey = IMAGES[..., :1].astype(np.uint8)
    write_preview(build(AugmentParams(noise=5.0), 0), grey, target)
    assert target.stat().st_size > 0
