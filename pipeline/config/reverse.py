"""Params of the stages that run a pretrained network in reverse: DeepDream and style transfer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import PosInt, Section
from pipeline.config.transfer import NetParams


class DreamParams(Section):
    """DeepDream: gradient ascent on an image to excite chosen layers, octave by octave."""

    image: str = Field(
        "data/embedded/photos/chelsea.png", description="The image to dream on (a DVC dep)."
    )
    net: NetParams = NetParams()
    layers: dict[str, float] = Field(
        {"conv_pw_9_relu": 1.0, "conv_pw_11_relu": 1.0},
        min_length=1,
        description="Layer name -> weight of its mean squared activation in the loss. Names "
        "are checked against the network; a wrong one lists the valid ones. InceptionV3: "
        "mixed4 ... mixed7 are the usual choice.",
    )
    max_side: PosInt = Field(
        160, description="The image is first resized so its longer side is this many pixels."
    )
    octaves: PosInt = Field(3, description="Scales the ascent runs at, smallest first.")
    octave_scale: float = Field(1.4, gt=1.0, le=4.0, description="Size ratio between octaves.")
    iterations: PosInt = Field(10, description="Gradient-ascent steps per octave.")
    step: float = Field(0.01, gt=0.0, le=1.0, description="Step size (on the normalised gradient).")
    max_loss: float | None = Field(
        None, gt=0.0, description="Stop an octave early when the loss exceeds this (null: never)."
    )
    jitter: int = Field(
        8, ge=0, description="Largest random shift (pixels, wrapped) before each step, undone "
        "after it; 0: none."
    )
    log_every: PosInt = Field(5, description="Log the image every this many steps.")
    seed: int = Field(0, ge=0, description="Seed of the jitter.")


class StylizeParams(Section):
    """Neural style transfer (Gatys et al.): content, Gram-matrix style and total-variation
    losses, minimised over the pixels."""

    content: str = Field(
        "data/embedded/photos/astronaut.png", description="The content image (a DVC dep)."
    )
    style: str = Field("data/embedded/photos/brick.png", description="The style image (a DVC dep).")
    net: NetParams = NetParams()
    content_layer: str = Field("conv_pw_9_relu", description="Layer whose activations the "
                               "result shares with the content image (VGG19: block5_conv2).")
    style_layers: dict[str, float] = Field(
        {"conv_pw_1_relu": 1.0, "conv_pw_3_relu": 1.0, "conv_pw_5_relu": 1.0,
         "conv_pw_7_relu": 1.0},
        min_length=1,
        description="Layer -> weight of its Gram-matrix loss (VGG19: block1_conv1 ... "
        "block5_conv1).",
    )
    content_weight: float = Field(1.0, ge=0.0, description="Weight of the content loss.")
    style_weight: float = Field(
        1e5, ge=0.0, description="Weight of the style loss. Each layer's activations are "
        "divided by their mean size on the content image, so this ratio means the same on any "
        "network; with MobileNet 0.25 at 128 px, 1e4-1e6 go from a hint of the style to the "
        "style over the content."
    )
    tv_weight: float = Field(
        1e-5, ge=0.0, description="Weight of the total-variation loss (MobileNet 0.25: 1e-6 "
        "is noisy, 1e-4 blurred)."
    )
    image_size: tuple[PosInt, PosInt] = Field(
        (96, 96), description="[height, width] of the result; both images are resized to it."
    )
    iterations: PosInt = Field(30, description="Optimizer steps (L-BFGS: iterations).")
    optimizer: Literal["adam", "lbfgs"] = Field(
        "adam", description="adam (Adam over the pixels, Keras's defaults) or lbfgs (SciPy's "
        "L-BFGS-B, the paper's choice)."
    )
    lr: float = Field(5.0, gt=0.0, description="Adam learning rate, in 0-255 pixel units.")
    init: Literal["content", "noise"] = Field("content", description="Where the pixels start.")
    preserve_colors: bool = Field(
        False, description="Keep the content's colours: transfer on the luminance only."
    )
    log_every: PosInt = Field(10, description="Log the image every this many steps.")
    seed: int = Field(0, ge=0, description="Seed of the noise start.")

    @model_validator(mode="after")
    def _some_loss(self) -> StylizeParams:
        if not (self.content_weight or self.style_weight or self.tv_weight):
            raise ValueError("content_weight, style_weight and tv_weight are all 0: nothing to "
                             "minimise")
        return self
