"""Data augmentation from params: Keras preprocessing layers whose random draws for a batch come
from ``(seed, epoch, batch)``, so a run resumed after a kill sees the same augmented images.

Keras does the work (``RandomFlip``, ``RandomRotation``, ``RandomTranslation``, ``RandomZoom``,
``RandomContrast``, ``RandomShear``, ``RandomBrightness``, ``RandomSaturation``, ``RandomHue``,
``RandAugment``; Gaussian noise is :class:`GaussianNoise` here, since ``keras.layers.GaussianNoise``
is a regulariser with no ``get_random_transformation``). Random crops are not here: they are
``preprocess.crop``, drawn by the loader from its own ``(seed, epoch, batch)`` stream.

Called as layers they draw from a ``SeedGenerator`` that lives in the layer
and advances with every call; that state is not in the training backup, so a resumed run would
draw other transforms than an uninterrupted one. :class:`Augmenter` instead calls each layer's
``get_random_transformation`` with a fresh ``keras.random.SeedGenerator`` seeded for the batch
(as Keras's own ``RandAugment`` passes its seed to the layers it wraps), then
``transform_images``. Nothing is carried from one batch to the next, so the result does not
depend on what ran before, on the order batches are made in, or on the loader's worker threads.

MixUp and CutMix (``keras.layers.MixUp``, ``keras.layers.CutMix``) mix images of a batch and
their one-hot labels alike (``transform_labels``), after the other layers, from a stream of their
own: turning them on leaves every other draw as it was. With both on, each batch gets one of the
two, drawn from that stream with even odds (as timm's ``Mixup`` switches between them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import AugmentParams
from pipeline.io.atomic import atomic_path

if TYPE_CHECKING:
    import keras

#: Tags the augmentation's random stream of a batch apart from the crop's ``(seed, epoch, batch)``
#: and the DCGAN noise's ``(seed, epoch, batch, 1)``.
STREAM = 2
#: Tags MixUp's and CutMix's stream of a batch.
MIX_STREAM = 3


class GaussianNoise:
    """Adds Gaussian noise of standard deviation ``stddev`` (pixel values), clipped to 0-255; the
    noise is drawn from the batch's seed generator with ``keras.random.normal``."""

    def __init__(self, stddev: float):
        self.stddev = stddev

    def get_random_transformation(self, x, training: bool = True, seed=None):
        import keras

        return keras.random.normal(keras.ops.shape(x), stddev=self.stddev, seed=seed)

    def transform_images(self, x, transformation, training: bool = True):
        import keras

        return keras.ops.clip(x + transformation, 0.0, 255.0)


class Augmenter:
    """The enabled augmentation layers, applied in order with per-batch randomness, and the
    batch mixers (MixUp, CutMix: one of them per batch)."""

    def __init__(self, layers: Sequence[keras.layers.Layer | GaussianNoise], seed: int,
                 mixers: Sequence[keras.layers.Layer] = ()):
        self.layers = list(layers)
        self.mixers = list(mixers)
        self.seed = seed

    def batch_seed(self, epoch: int, batch: int, stream: int = STREAM) -> int:
        """The seed of batch ``batch`` of epoch ``epoch`` (a function of those and the seed)."""
        rng = np.random.default_rng([self.seed, epoch, batch, stream])
        return int(rng.integers(2**31 - 1))

    def mix(self, images: np.ndarray, labels: np.ndarray, epoch: int,
            batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``images`` (0-255) and their one-hot ``labels`` (float) mixed as batch ``batch`` of
        ``epoch``; unchanged without mixers."""
        if not self.mixers:
            return images, labels
        import keras

        generator = keras.random.SeedGenerator(self.batch_seed(epoch, batch, MIX_STREAM))
        pick = 0
        if len(self.mixers) > 1:
            draw = keras.random.randint((), 0, len(self.mixers), seed=generator)
            pick = int(keras.ops.convert_to_numpy(draw))
        mixer = self.mixers[pick]
        x = keras.ops.convert_to_tensor(images, dtype="float32")
        y = keras.ops.convert_to_tensor(labels, dtype="float32")
        transformation = mixer.get_random_transformation(x, training=True, seed=generator)
        x = mixer.transform_images(x, transformation, training=True)
        y = mixer.transform_labels(y, transformation, training=True)
        return keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)

    def __call__(self, images: np.ndarray, epoch: int, batch: int) -> np.ndarray:
        """``images`` (a batch, pixel values 0-255) transformed as batch ``batch`` of ``epoch``."""
        import keras

        generator = keras.random.SeedGenerator(self.batch_seed(epoch, batch))
        x = keras.ops.convert_to_tensor(images, dtype="float32")
        for layer in self.layers:
            transformation = layer.get_random_transformation(x, training=True, seed=generator)
            x = layer.transform_images(x, transformation, training=True)
        return keras.ops.convert_to_numpy(x)


def build(params: AugmentParams, seed: int) -> Augmenter | None:
    """An :class:`Augmenter` of the enabled augmentations, or ``None`` when none is enabled.

    The layers expect pixel values in 0-255 (``RandomContrast`` clips to that range), so the
    loader applies them before mean subtraction and scaling.
    """
    if not params.enabled:
        return None
    import keras

    layers: list[keras.layers.Layer | GaussianNoise] = []
    flip = {(True, False): "horizontal", (False, True): "vertical",
            (True, True): "horizontal_and_vertical"}.get((params.flip, params.vertical_flip))
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if params.rotation:
        layers.append(keras.layers.RandomRotation(params.rotation, fill_mode="reflect", seed=seed))
    if params.shift:
        layers.append(keras.layers.RandomTranslation(params.shift, params.shift,
                                                     fill_mode="reflect", seed=seed))
    if params.zoom:
        layers.append(keras.layers.RandomZoom(params.zoom, fill_mode="reflect", seed=seed))
    if params.contrast:
        layers.append(keras.layers.RandomContrast(params.contrast, value_range=(0, 255), seed=seed))
    if params.shear:
        layers.append(keras.layers.RandomShear(params.shear, params.shear, fill_mode="reflect",
                                               seed=seed))
    if params.brightness:
        layers.append(keras.layers.RandomBrightness(params.brightness, value_range=(0, 255),
                                                    seed=seed))
    if params.saturation:
        # Keras's factor 0.5 keeps the saturation, 0 is grey and 1 fully saturated
        half = params.saturation / 2
        layers.append(keras.layers.RandomSaturation((0.5 - half, 0.5 + half), value_range=(0, 255),
                                                    seed=seed))
    if params.hue:
        layers.append(keras.layers.RandomHue(params.hue, value_range=(0, 255), seed=seed))
    if params.rand_augment:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=params.rand_augment,
                                               factor=params.rand_augment_magnitude, seed=seed))
    if params.noise:
        layers.append(GaussianNoise(params.noise))
    mixers: list[keras.layers.Layer] = []
    if params.mixup_alpha:
        mixers.append(keras.layers.MixUp(params.mixup_alpha, seed=seed, dtype="float32"))
    if params.cutmix_alpha:
        # Keras draws CutMix's alpha from the range `factor`; a range of one value is Beta(a, a)
        mixers.append(keras.layers.CutMix((params.cutmix_alpha, params.cutmix_alpha), seed=seed,
                                          dtype="float32"))
    return Augmenter(layers, seed, mixers)


def write_preview(augmenter: Augmenter, images: np.ndarray, target: Path) -> None:
    """A PNG (matplotlib) of ``images`` (a few, uint8) above the same images augmented (and
    mixed with each other) as batch 0 of epoch 0: what the augmentation does, before crop and
    normalisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    after = augmenter(images.astype(np.float32), 0, 0)
    after, _ = augmenter.mix(after, np.eye(len(images), dtype=np.float32), 0, 0)
    after = np.clip(after, 0, 255).astype(np.uint8)
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
    for row, (name, batch) in enumerate((("before", images), ("after", after))):
        for ax, image in zip(axes[row], batch, strict=True):
            ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray",
                      vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(name)
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
