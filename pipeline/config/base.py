"""Building blocks of every params section: strict sections, shared value types, keyed errors."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PosInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Optimizer = Literal["sgd", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamw"]


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
