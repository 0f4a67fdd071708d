"""Training the DCGAN: ``model.fit`` on the GAN loader, sample grids each epoch, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.config import Params
from pipeline.generative.dcgan import (
    DCGAN,
    META,
    GANLoader,
    augmenter,
    build_discriminator,
    build_generator,
    grid_image,
    save_png,
    to_uint8,
)
from pipeline.generative.generator_file import GENERATOR
from pipeline.io.atomic import write_json
from pipeline.train.lifecycle import TrainingRun
from pipeline.train.loader import fit_data

PANELS = ("d_loss", "g_loss", "d_real", "d_fake")


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, draws the generator's images for a fixed set of noise vectors.

    Writes ``<live>/plots/images/samples/epoch_NNN.png`` (a DVC image plot: one picture per
    epoch, so progress can be watched) and ``<live>/samples.png`` (the latest).
    """

    def __init__(self, live: Any, z: np.ndarray, cols: int):
        super().__init__()
        self.live = live
        self.z = z
        self.cols = cols

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        images = to_uint8(self.model.generator.predict(self.z, verbose=0))
        grid = grid_image(images, self.cols)
        zoom = max(1, round(320 / grid.shape[1]))
        save_png(grid, Path(self.live.plots_dir) / "images" / "samples" / f"epoch_{epoch + 1:03d}.png",
                 zoom)
        save_png(grid, Path(self.live.dir) / "samples.png", zoom)


def train(params: Params, hdf5_dir: Path, model_dir: Path, live_dir: Path,
          checkpoint_dir: Path) -> DCGAN:
    """Train ``params.dcgan`` on ``hdf5_dir/<dcgan.split>.h5``; save the generator.

    ``checkpoint_dir`` persists between runs: after a kill the next run continues from the last
    finished epoch (both networks, Adam's moments, the data and noise order, the history).
    """
    p = params.dcgan
    seed = params.base.seed
    run = TrainingRun("dcgan", checkpoint_dir, live_dir, seed, p.deterministic)
    path = hdf5_dir / f"{p.split}.h5"
    loader = GANLoader(path, p, seed)
    generator, discriminator = build_generator(p), build_discriminator(p)
    gan = DCGAN(generator, discriminator, augmenter(p), name="dcgan")
    gan.compile(optimizer=keras.optimizers.Adam(p.lr, beta_1=p.beta_1))
    print(f"dcgan: generator {generator.count_params():,} and discriminator "
          f"{discriminator.count_params():,} parameters, {len(loader.split):,} images of {path}"
          + (f"; DiffAugment {', '.join(p.diff_augment)}" if p.diff_augment else ""))
    run.identify(
        {"dcgan": p.model_dump(mode="json"), "discriminator": json.loads(discriminator.to_json())},
        generator, path)
    initial_epoch = run.resume()
    fixed_z = np.random.default_rng([seed, 7]).standard_normal((p.grid**2, p.latent_dim),
                                                               dtype=np.float32)
    data, steps = fit_data(loader, initial_epoch, p.epochs)
    with run.logging(initial_epoch, generator_parameters=int(generator.count_params())) as live:
        gan.fit(data, steps_per_epoch=steps, epochs=p.epochs, initial_epoch=initial_epoch,
                shuffle=False, verbose=0, callbacks=run.callbacks(
                    None, has_val=False, panels=PANELS, images=len(loader.split),
                    extra=[SampleGrid(live, fixed_z, p.grid)]))
    for name, model in ((GENERATOR, generator), ("discriminator.keras", discriminator)):
        run.save(model, model_dir / name)
    write_json(model_dir / META, {"latent_dim": p.latent_dim, "size": list(p.image_size),
                                  "channels": p.channels, "epochs": p.epochs,
                                  "data": str(path), "classes": loader.split.classes})
    run.finish()
    return gan
