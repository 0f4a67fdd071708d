"""Optimizer knobs that train and each finetune phase share, as Keras optimizer arguments."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo


def _one_clip(value: float | None, info: ValidationInfo) -> float | None:
    if value is not None and info.data.get("clipnorm") is not None:
        raise ValueError(f"set clipnorm or clipvalue, not both (clipnorm is {info.data['clipnorm']})")
    return value


# Optimizer knobs shared by train and each finetune phase (Keras optimizer arguments); declare
# ``clipnorm`` before ``clipvalue``, which checks that only one is set.
ClipNorm = Annotated[float | None, Field(
    None, gt=0.0, description="Clip each gradient to this L2 norm (Keras clipnorm). null: off.")]
ClipValue = Annotated[float | None, Field(
    None, gt=0.0, description="Clip gradients to [-v, v] (Keras clipvalue); not with clipnorm. "
    "null: off."), AfterValidator(_one_clip)]
Ema = Annotated[bool, Field(
    False, description="Keep an exponential moving average of the weights (Keras use_ema); the "
    "saved model carries the average, epochs' validation uses the raw weights.")]
EmaMomentum = Annotated[float, Field(
    0.99, gt=0.0, lt=1.0, description="ema: weight of the old average at each step.")]
AccumulateSteps = Annotated[int, Field(
    1, ge=1, description="Average the gradients of this many batches per update (Keras "
    "gradient_accumulation_steps; 1: off). Counts run on across epochs.")]
