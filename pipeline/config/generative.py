"""Params of the generative stages: DCGAN, its score, SRCNN."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Fraction, Kernel, Optimizer, PosInt, Section
from pipeline.config.training import ScheduleParams


class DcganParams(Section):
    """A DCGAN (Radford et al.): strided convolutions, batch norm, ReLU/LeakyReLU, tanh output."""

    renamed: ClassVar[dict[str, str]] = {"size": "image_size"}

    split: Literal["train", "val", "test", "train_dev"] = Field(
        "train", description="Split of the HDF5 folder to learn from (any split file works)."
    )
    image_size: tuple[PosInt, PosInt] = Field(
        (16, 16), description="[height, width] generated; stored images are resized to it. Each "
        "must be divisible by 2^len(generator_filters). The MNIST benchmark uses [28, 28]."
    )
    channels: Literal[1, 3] = Field(1, description="1: greyscale, 3: RGB (converted as needed).")
    latent_dim: PosInt = Field(100, description="Length of the noise vector z.")
    generator_filters: list[PosInt] = Field(
        [32, 16], min_length=1,
        description="Filters of the generator's blocks; the first is the projected base "
        "(image_size / 2^n), each later one a stride-2 transposed convolution, then the tanh "
        "output. The MNIST benchmark uses [128, 64].",
    )
    discriminator_filters: list[PosInt] = Field(
        [16, 32], min_length=1,
        description="Filters of the discriminator's stride-2 convolutions (no batch norm on the "
        "first, as in the paper). The MNIST benchmark uses [64, 128].",
    )
    kernel: Kernel = Field(5, description="Convolution kernel size.")
    leaky_slope: float = Field(0.2, gt=0.0, lt=1.0, description="LeakyReLU slope (discriminator).")
    epochs: PosInt = Field(10, description="Passes over the split.")
    batch_size: PosInt = Field(32, description="Real images per step (and as many generated).")
    lr: float = Field(0.0002, gt=0.0, le=1.0, description="Adam learning rate (paper: 2e-4).")
    beta_1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta_1 (paper: 0.5).")
    grid: PosInt = Field(8, le=16, description="Sample grids are grid x grid images.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops.")
    diff_augment: list[Literal["color", "translation", "cutout"]] = Field(
        [], description="DiffAugment (Zhao et al., 2020): these differentiable ops, in order, "
        "on the real and generated images the discriminator sees, in both updates. color: "
        "brightness, saturation (RGB only), contrast. []: off.",
    )
    translation_ratio: float = Field(
        0.125, gt=0.0, le=0.5, description="diff_augment translation: the largest shift, as a "
        "fraction of the side (paper: 1/8).",
    )
    cutout_ratio: float = Field(
        0.5, gt=0.0, le=1.0, description="diff_augment cutout: the side of the zeroed square, "
        "as a fraction of the image's (paper: 1/2).",
    )

    @model_validator(mode="after")
    def _size_fits_generator(self) -> DcganParams:
        step = 2 ** len(self.generator_filters)
        if any(side % step for side in self.image_size):
            raise ValueError(f"image_size {list(self.image_size)} must be divisible by {step} "
                             f"(2^len(generator_filters))")
        if len(set(self.diff_augment)) < len(self.diff_augment):
            raise ValueError(f"diff_augment lists an op twice: {self.diff_augment}")
        return self


class GanScoreParams(Section):
    """Scores generated samples with a classifier the pipeline trained on the same data."""

    classifier: str = Field(
        "models/train", description="Folder of a trained classifier (model.keras + "
        "preprocess.json); list it as a dep of the gan_score stage too."
    )
    samples: PosInt = Field(500, description="Generated images to classify.")
    min_share: float = Field(
        0.01, ge=0.0, le=1.0, description="A class counts as hit when at least this share of "
        "the samples is classified as it."
    )
    real_split: Literal["test", "val", "train", "train_dev", "none"] = Field(
        "test", description="Split whose real images are scored the same way, for reference."
    )
    batch_size: PosInt = Field(256, description="Images per prediction batch.")


class SrcnnDataParams(Section):
    """Cuts SRCNN training sub-images: bicubic-degraded inputs and aligned sharp centres."""

    renamed: ClassVar[dict[str, str]] = {"size": "patch_size"}

    images: str = Field(
        "data/embedded/samples", description="Folder (or one file) of training images."
    )
    glob: str = Field("flower.jpg", description="Which files of the folder to use (e.g. *).")
    scale: int = Field(3, ge=2, le=8, description="Upscaling factor the network learns.")
    patch_size: int = Field(33, ge=8, le=256, description="Input sub-image side (paper: 33).")
    stride: PosInt = Field(14, description="Step between sub-images (paper: 14).")
    val: Fraction = Field(
        0.1, description="Fraction of sub-images held out to monitor training (they overlap "
        "training ones: a learning curve, not a test)."
    )


class SrcnnParams(Section):
    """SRCNN (Dong et al.): three valid convolutions on the luminance, mean squared error."""

    filters: tuple[PosInt, PosInt] = Field((64, 32), description="Filters of layers 1 and 2.")
    kernels: tuple[Kernel, Kernel, Kernel] = Field(
        (9, 1, 5), description="Kernel sizes (9-1-5 in the paper); odd."
    )
    epochs: PosInt = Field(2, description="Passes over the sub-images.")
    batch_size: PosInt = Field(16, description="Sub-images per step.")
    optimizer: Optimizer = Field("adam", description="Optimizer by name.")
    lr: float = Field(0.002, gt=0.0, le=10.0, description="(Peak) learning rate.")
    schedule: ScheduleParams = Field(
        ScheduleParams(), description="Learning-rate schedule over the epochs, stepped per batch "
        "(the T91 benchmark: cosine)."
    )
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops.")

    @model_validator(mode="after")
    def _odd_kernels(self) -> SrcnnParams:
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd, got {list(self.kernels)}")
        return self


class SrcnnEvaluateParams(Section):
    """PSNR and SSIM of SRCNN against bicubic on held-out images (luminance, border shaved)."""

    images: str = Field("data/embedded/samples", description="Folder (or one file) of test images.")
    glob: str = Field("china.jpg", description="Which files of the folder to use.")
    scale: int = Field(3, ge=2, le=8, description="Factor to degrade and restore by.")
    crop: int = Field(80, ge=16, description="Side of the side-by-side crops in crops.png.")


