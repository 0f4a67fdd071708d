"""Params of the export stage: which trained model, to which formats, scored on which split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.config.base import PosInt, Section

#: The formats ``export.formats`` and ``cvpipe export --format`` accept.
EXPORT_FORMATS = ("onnx", "saved_model", "litert")


class ExportParams(Section):
    """Exports a trained Keras model (preprocessing baked in) and checks each export's parity."""

    model: str = Field(
        "models/train", description="Folder written by a training stage (model.keras and "
        "preprocess.json); list it as a dep of the export stage in dvc.yaml too."
    )
    formats: list[str] = Field(
        default_factory=lambda: list(EXPORT_FORMATS),
        description="Formats to write, each to models/export/<format>/: onnx (onnxruntime), "
        "saved_model (TensorFlow Serving, tf.saved_model.load), litert (.tflite).",
    )
    split: Literal["test", "val", "train_dev", "train"] = Field(
        "test", description="Split each export is scored on with its own runtime."
    )
    batch_size: PosInt = Field(256, description="Images per prediction batch, in every runtime.")
    tolerance: float = Field(
        1e-4, gt=0.0, description="Largest absolute difference of any class probability from "
        "the Keras model's that an export may show; more, or another rank-1, fails the stage.",
    )

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str]) -> list[str]:
        unknown = [f for f in formats if f not in EXPORT_FORMATS]
        if unknown:
            raise ValueError(f"unknown format {unknown[0]!r}; known: {', '.join(EXPORT_FORMATS)}")
        if not formats:
            raise ValueError(f"needs at least one of {', '.join(EXPORT_FORMATS)}")
        if len(set(formats)) != len(formats):
            raise ValueError(f"lists a format twice: {formats}")
        return formats
