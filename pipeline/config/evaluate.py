"""Params of evaluation and ensembles."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Fraction, PosInt, Section


class OversampleParams(Section):
    """10-crop oversampling at evaluation (Keras models; logistic regression reads features)."""

    enabled: bool = Field(
        True, description="Also score the average over crops of each image; both plain and "
        "oversampled rank-1/rank-5 are reported."
    )
    crop: float = Field(
        0.875, gt=0.0, le=1.0,
        description="Crop side as a fraction of the stored image, for models trained without "
        "`train.preprocess.crop` (crops are resized back to the model's input); a model trained "
        "on crops is scored on crops of that size. 1 scores the whole image and its mirror.",
    )
    flip: bool = Field(
        False, description="Add the mirror of each of the 5 crops: 10 views. Turn off for data "
        "that is not mirror-symmetric (digits, text)."
    )


class EvaluateParams(Section):
    """Scores a trained model on the test split, with oversampling and the bias/variance table."""

    batch_size: PosInt = Field(256, description="Images per prediction batch.")
    split: Literal["test", "val", "train_dev", "train"] = Field(
        "test", description="Split to score; tune on val, score test once."
    )
    oversample: OversampleParams = OversampleParams()
    diagnose: bool = Field(
        True, description="Also score train, train-dev and val and write Ng's bias/variance "
        "table (diagnosis.md; the gaps under `diagnosis` in metrics.json, each split's error "
        "in report.json)."
    )
    human_error: Fraction = Field(
        0.0, description="Human-level (or Bayes) error for the diagnosis's avoidable bias."
    )
    misclassified: int = Field(
        25, ge=0, description="Most confident mistakes drawn in misclassified.png."
    )


MemberName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]


class EnsembleParams(Section):
    """Members trained by `train_member` (one per entry) plus already trained models, averaged."""

    members: dict[MemberName, dict[str, Any]] = Field(
        default_factory=lambda: {"shallownet": {"train": {
            "model": "shallownet", "epochs": 4, "augment": {"rotation": 0.0, "shift": 0.0}}}},
        description="Name -> overrides of the `base`/`train` sections for that member, e.g. "
        "{seed-1: {base: {seed: 1}}, wide: {train: {arch: {width: 2}}}}. Each member is "
        "trained to models/members/<name>.",
    )
    models: list[str] = Field(
        default_factory=lambda: ["models/train"],
        description="Trained model folders that join the ensemble as they are (list them as "
        "deps of the ensemble stage in dvc.yaml too).",
    )

    @model_validator(mode="after")
    def _members_override_train_only(self) -> EnsembleParams:
        for name, overrides in self.members.items():
            extra = sorted(set(overrides) - {"base", "train"})
            if extra:
                raise ValueError(f"members.{name}: may override base and train only, "
                                 f"got {', '.join(extra)}")
        if not self.members and not self.models:
            raise ValueError("needs at least one member or model")
        return self

