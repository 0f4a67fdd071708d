"""Params of the explain stage: Grad-CAM heatmaps of a trained model's decisions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import PosInt, Section

#: Matplotlib colormaps ``explain.colormap`` accepts (checked here without importing matplotlib).
COLORMAPS = ("jet", "turbo", "inferno", "magma", "plasma", "viridis", "hot")


class ExplainParams(Section):
    """Grad-CAM (Selvaraju et al.) over the most confident mistakes and one correct image per
    class of a split, drawn over the images."""

    model: str = Field(
        "models/train", description="Folder written by a Keras training stage (model.keras and "
        "preprocess.json): a zoo model or a fine-tuned backbone; list it as a dep of the "
        "explain stage in dvc.yaml too."
    )
    split: Literal["test", "val", "train_dev", "train"] = Field(
        "test", description="Split whose images are predicted and explained."
    )
    mistakes: int = Field(
        8, ge=0, description="Most confident mistakes explained (for the class predicted)."
    )
    per_class: int = Field(
        1, ge=0, description="Correct images explained per class, the most confident first."
    )
    layer: str | None = Field(
        None, description="Layer whose activations Grad-CAM weighs. null: the last layer with a "
        "4-D output larger than 1x1 (before the global pooling or flatten), looked for inside "
        "nested models too. A layer of a nested model is named `model/layer` (e.g. "
        "`mobilenet_0.25_32/conv_pw_11_relu`); a wrong name exits 2 listing the valid ones.",
    )
    colormap: Literal[COLORMAPS] = Field(  # type: ignore[valid-type]
        "jet", description="Matplotlib colormap of the heatmap."
    )
    alpha: float = Field(0.45, gt=0.0, le=1.0, description="Opacity of the heatmap over the image.")
    display: PosInt = Field(
        112, description="Pixels of the shorter side of each overlay PNG (images are enlarged to it)."
    )
    batch_size: PosInt = Field(256, description="Images per prediction batch.")
