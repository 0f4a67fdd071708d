"""DCGAN (Radford et al., 2015) trained with ``model.fit`` and a custom ``train_step``.

Following the paper's guidelines: no pooling (stride-2 convolutions in the discriminator,
stride-2 transposed convolutions in the generator), batch norm in both networks except the
discriminator's input layer and the generator's output, ReLU in the generator with a tanh output,
LeakyReLU(0.2) in the discriminator, Adam at 2e-4 with beta_1 = 0.5.

Each step takes a batch of real images (scaled to -1..1) and as many noise vectors, both supplied
by the loader, so a run repeats exactly and resumes mid-way. Both networks step together from that
batch: the discriminator on its loss, the generator on the non-saturating loss ``-log D(G(z))``,
with one Adam over both networks' weights (each weight keeps its own moments, so this is two
Adams with the paper's settings). The gradients come from :mod:`pipeline.generative.gradients`
(TensorFlow, torch) or a stateless ``jax.vjp`` step (JAX). With DiffAugment
(:mod:`pipeline.generative.diff_augment`) the loader adds a third array, the uniforms of the
batch's transformations, and the discriminator sees both batches transformed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.config import DcganParams
from pipeline.generative.diff_augment import DRAWS, DiffAugment, draws
from pipeline.generative.generator_file import generator_path
from pipeline.generative.gradients import loss_gradients, no_grad
from pipeline.io.hdf5 import Split
from pipeline.io.progress import predict_bar
from pipeline.train.loader import HDF5Loader
from pipeline.train.preprocess import Preprocessor

META = "dcgan.json"


def build_generator(p: DcganParams) -> keras.Model:
    """z -> projected ``size / 2^n`` base -> stride-2 transposed convolutions -> tanh image."""
    steps = len(p.generator_filters)
    h, w = (side // 2**steps for side in p.image_size)
    z = keras.Input((p.latent_dim,), name="z")
    x = keras.layers.Dense(h * w * p.generator_filters[0], use_bias=False)(z)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Reshape((h, w, p.generator_filters[0]))(x)
    for filters in p.generator_filters[1:]:
        x = keras.layers.Conv2DTranspose(filters, p.kernel, strides=2, padding="same",
                                         use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    image = keras.layers.Conv2DTranspose(p.channels, p.kernel, strides=2, padding="same",
                                         activation="tanh", name="image")(x)
    return keras.Model(z, image, name="generator")


def build_discriminator(p: DcganParams) -> keras.Model:
    """Image -> stride-2 convolutions with LeakyReLU (batch norm after the first) -> one logit."""
    image = keras.Input((*p.image_size, p.channels), name="image")
    x = image
    for i, filters in enumerate(p.discriminator_filters):
        x = keras.layers.Conv2D(filters, p.kernel, strides=2, padding="same", use_bias=i == 0)(x)
        if i:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU(negative_slope=p.leaky_slope)(x)
    x = keras.layers.Flatten()(x)
    logit = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(image, logit, name="discriminator")


def augmenter(p: DcganParams) -> DiffAugment | None:
    """The DiffAugment of ``p.diff_augment`` with its strengths; ``None`` if the list is empty."""
    if not p.diff_augment:
        return None
    return DiffAugment(tuple(p.diff_augment), p.translation_ratio, p.cutout_ratio)


class DCGAN(keras.Model):
    """The pair of networks, trained by ``fit`` on ``(real images, z)`` batches, or on
    ``(real images, z, uniforms)`` with ``diff_augment`` (uniforms ``(N, 2, DRAWS)``: the real
    batch's, then the generated one's).

    Logs ``d_loss``, ``g_loss`` and the discriminator's mean probability on real (``d_real``) and
    generated (``d_fake``) images (as the discriminator sees them, augmented or not).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model,
                 diff_augment: DiffAugment | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.diff_augment = diff_augment
        self.trackers = [keras.metrics.Mean(name=n) for n in ("d_loss", "g_loss", "d_real", "d_fake")]
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return self.trackers

    def call(self, inputs: Any, training: bool = False) -> tuple[Any, Any]:
        real, z, *uniforms = inputs
        fake = self.generator(z, training=training)
        if uniforms:
            if self.diff_augment is None:
                raise ValueError("a batch with DiffAugment uniforms for a DCGAN without it")
            real = self.diff_augment(real, uniforms[0][:, 0])
            fake = self.diff_augment(fake, uniforms[0][:, 1])
        return self.discriminator(real, training=training), self.discriminator(fake, training=training)

    @staticmethod
    def losses_and_stats(real_logits: Any, fake_logits: Any) -> list[Any]:
        """``[d_loss, g_loss, d_real, d_fake]`` from the discriminator's logits."""
        ops = keras.ops
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        ones, zeros = ops.ones_like(real_logits), ops.zeros_like(fake_logits)
        d_loss = bce(ones, real_logits) + bce(zeros, fake_logits)
        g_loss = bce(ops.ones_like(fake_logits), fake_logits)
        return [d_loss, g_loss, ops.mean(ops.sigmoid(real_logits)), ops.mean(ops.sigmoid(fake_logits))]

    def _is_discriminator(self) -> list[bool]:
        ids = {id(v) for v in self.discriminator.trainable_variables}
        return [id(v) in ids for v in self.trainable_variables]

    def train_step(self, *args: Any) -> Any:
        backend = keras.backend.backend()
        if backend == "jax":
            return self._jax_step(*args)
        (data,) = args
        mask = self._is_discriminator()
        d_vars = [v for v, d in zip(self.trainable_variables, mask, strict=True) if d]
        g_vars = [v for v, d in zip(self.trainable_variables, mask, strict=True) if not d]
        values, (d_grads, g_grads) = loss_gradients(
            lambda: self.losses_and_stats(*self(tuple(data), training=True)), [d_vars, g_vars])
        with no_grad():
            self.optimizer.apply(_merge(mask, d_grads, g_grads), self.trainable_variables)
        for tracker, value in zip(self.trackers, values, strict=True):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}

    def _jax_step(self, state: Any, data: Any) -> Any:
        """The stateless JAX step: values in, new values out."""
        import jax

        trainable, non_trainable, optimizer_vars, metric_vars = state

        def forward(weights: list) -> tuple[tuple, tuple]:
            logits, new_non_trainable = self.stateless_call(weights, non_trainable, tuple(data),
                                                            training=True)
            d_loss, g_loss, d_real, d_fake = self.losses_and_stats(*logits)
            return (d_loss, g_loss), (new_non_trainable, d_real, d_fake)

        (d_loss, g_loss), pullback, (non_trainable, d_real, d_fake) = jax.vjp(
            forward, trainable, has_aux=True)
        one, zero = jax.numpy.ones_like(d_loss), jax.numpy.zeros_like(d_loss)
        (d_grads,) = pullback((one, zero))
        (g_grads,) = pullback((zero, one))
        mask = self._is_discriminator()
        grads = _merge(mask, [g for g, d in zip(d_grads, mask, strict=True) if d],
                       [g for g, d in zip(g_grads, mask, strict=True) if not d])
        trainable, optimizer_vars = self.optimizer.stateless_apply(optimizer_vars, grads, trainable)
        logs, new_metric_vars, start = {}, [], 0
        for tracker, value in zip(self.trackers, (d_loss, g_loss, d_real, d_fake), strict=True):
            own = metric_vars[start:start + len(tracker.variables)]
            start += len(own)
            own = tracker.stateless_update_state(own, value)
            logs[tracker.name] = tracker.stateless_result(own)
            new_metric_vars += own
        return logs, (trainable, non_trainable, optimizer_vars, new_metric_vars)


def _merge(mask: list[bool], d_grads: Any, g_grads: Any) -> list:
    """One gradient list in variable order from the discriminator's and the generator's."""
    d_iter, g_iter = iter(d_grads), iter(g_grads)
    return [next(d_iter) if is_d else next(g_iter) for is_d in mask]


class GANLoader(HDF5Loader):
    """Batches of ``(real images in -1..1, noise vectors)`` from a split, shuffled per epoch;
    with ``p.diff_augment`` also the DiffAugment uniforms ``(N, 2, DRAWS)``.

    The noise of batch ``i`` of epoch ``e`` is drawn from ``(seed, e, i)`` (and the uniforms from
    the same with another stream), so a resumed run sees the same as an uninterrupted one.
    """

    def __init__(self, path: Path, p: DcganParams, seed: int, **kwargs: Any):
        split = Split(path)
        stored = split.shape[1:]
        size = None if tuple(stored[:2]) == tuple(p.image_size) else tuple(p.image_size)
        super().__init__(path, p.batch_size, Preprocessor(scale=True, size=size,
                                                          rgb=p.channels == 3 and stored[2] == 1),
                         training=True, seed=seed, **kwargs)
        self.latent_dim = p.latent_dim
        self.grey = p.channels == 1 and stored[2] == 3
        self.augmented = bool(p.diff_augment)

    def signature(self) -> list[tuple[str, tuple[int | None, ...]]]:
        (_, (batch, h, w, c)), _ = super().signature()
        arrays = [("float32", (batch, h, w, 1 if self.grey else c)),
                  ("float32", (batch, self.latent_dim))]
        return [*arrays, ("float32", (batch, 2, DRAWS))] if self.augmented else arrays

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        images, _ = super().__getitem__(index)
        if self.grey:
            images = images @ np.array([[0.299], [0.587], [0.114]], np.float32)
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        z = rng.standard_normal((len(images), self.latent_dim), dtype=np.float32)
        if self.augmented:
            return images * 2.0 - 1.0, z, draws([self.seed, self.epoch, index, 2], len(images))
        return images * 2.0 - 1.0, z


def to_uint8(images: Any) -> np.ndarray:
    """Generator output (-1..1) as uint8 images."""
    images = keras.ops.convert_to_numpy(images)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample(generator: keras.Model, n: int, seed: int, batch_size: int = 256) -> np.ndarray:
    """``n`` uint8 images from ``generator`` for noise drawn from ``seed``."""
    latent = generator.input_shape[-1]
    z = np.random.default_rng(seed).standard_normal((n, latent), dtype=np.float32)
    bar = predict_bar("generate", n, batch_size)
    return to_uint8(generator.predict(z, batch_size=batch_size, verbose=0, callbacks=[bar]))


def grid_image(images: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 images ``(N, H, W, C)`` tiled into one ``(rows*H, cols*W, C)`` picture."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[top:top + h, left:left + w] = image
    return out


def save_png(array: np.ndarray, target: Path, scale: int = 1) -> None:
    """A uint8 ``(H, W, 1|3)`` array to a PNG, written atomically, optionally enlarged."""
    from PIL import Image

    from pipeline.io.atomic import atomic_path

    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    with atomic_path(target, suffix=".png") as tmp:
        image.save(tmp, format="PNG")


def write_samples(model: Path, n: int, out: Path, seed: int = 0, grid: bool = True) -> list[Path]:
    """Sample ``n`` images from a trained generator into ``out``; return the files written.

    ``model`` is the folder the dcgan stage wrote or its ``generator.keras``. Writes
    ``out/sample_0000.png`` ... at the generator's size, and ``out/grid.png`` (all ``n`` tiled)
    if ``grid``; the same ``seed`` gives the same images. :class:`InputError` if there is no
    generator.
    """
    path = generator_path(model)
    images = sample(keras.models.load_model(path, compile=False), n, seed)
    written = []
    for i, image in enumerate(images):
        written.append(out / f"sample_{i:04d}.png")
        save_png(image, written[-1])
    if grid:
        written.append(out / "grid.png")
        save_png(grid_image(images, math.ceil(math.sqrt(n))), written[-1])
    return written
