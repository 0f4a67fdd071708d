"""Building blocks of every params section: strict sections, shared value types, keyed errors."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

PosInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Optimizer = Literal["sgd", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamw"]


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


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are checked on assignment.

    ``renamed`` maps keys a section used to have to their new names: a params file that still
    uses an old key is told the new one instead of "unknown key".
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in cls.renamed.items():
                if old in data:
                    raise RenamedKeyError(old, new)
        return data


Kernel = Annotated[int, Field(ge=1, le=15)]


class KeyedError(ValueError):
    """A check across keys whose message already starts with the dotted key it is about."""


class ParamsPathError(KeyedError):
    """A path in params that must exist does not."""




class RenamedKeyError(ValueError):
    """A params file uses a key under its old name."""

    def __init__(self, old: str, new: str):
        super().__init__(f"{old}: renamed to {new}")
        self.old, self.new = old, new
