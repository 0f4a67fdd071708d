"""Params of transfer learning: the backbone, feature extraction, logistic regression, fine-tuning."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Optimizer, PosInt, Section
from pipeline.config.optimizer_knobs import AccumulateSteps, ClipNorm, ClipValue, Ema, EmaMomentum
from pipeline.config.training import (
    AugmentParams,
    Distribution,
    LabelSmoothing,
    LoaderParams,
    LrScaling,
    ScheduleParams,
    mixing_needs_pairs,
)
from pipeline.models import BACKBONES


class NetParams(Section):
    """A pretrained ``keras.applications`` network without its top."""

    name: Literal[tuple(BACKBONES)] = Field(  # type: ignore[valid-type]
        "mobilenet", description="Network by name (keras.applications, lower case, no top)."
    )
    weights: str = Field(
        "none",
        description="imagenet (from the local Keras cache only; nothing is downloaded), a path "
        "to a weights file (e.g. ../shared/weights/mobilenet_2_5_224_tf_no_top.h5, or an "
        "InceptionV3 / VGG19 no-top file), or none (random init: shows that a stage runs, not "
        "what a trained network does).",
    )
    alpha: float = Field(
        0.25, gt=0.0, le=2.0, description="Width multiplier (mobilenet, mobilenetv2, v3 only)."
    )


class BackboneParams(NetParams):
    """The pretrained network both transfer-learning paths start from."""

    renamed: ClassVar[dict[str, str]] = {"size": "image_size"}

    image_size: tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]] = Field(
        (32, 32),
        description="[height, width] the backbone sees; stored images are resized to it and "
        "grey is repeated to RGB. Make hdf5.image_size match to skip the resize.",
    )


class ExtractFeaturesParams(Section):
    """Runs every split through the backbone and stores the pooled activations as HDF5."""

    pooling: Literal["avg", "max", "flatten"] = Field(
        "avg", description="How the feature map (the last, or layer's) becomes a vector."
    )
    layer: str | None = Field(
        None, description="A backbone layer by name (any with a 4-D output, e.g. conv_pw_6_relu) "
        "whose activations are pooled instead of the last one's. null: the backbone's output."
    )
    dtype: Literal["float16", "float32"] = Field("float32", description="Stored feature type.")
    batch_size: PosInt = Field(32, description="Images per forward pass.")
    flip: bool = Field(
        False, description="Average each image's features with its mirror image's (2x the work)."
    )


#: LogisticRegression arguments that a grid may search over.
LOGREG_GRID_KEYS = ("C", "l1_ratio", "solver", "class_weight", "fit_intercept", "tol", "max_iter")


class TrainLogregParams(Section):
    """scikit-learn logistic regression on the extracted features, grid-searched."""

    grid: dict[Literal[LOGREG_GRID_KEYS], list[float | str | bool | None]] = Field(  # type: ignore[valid-type]
        {"C": [0.1, 1.0]},
        description="GridSearchCV grid: LogisticRegression argument -> values to try.",
    )
    cv: int = Field(2, ge=2, description="Cross-validation folds over the train split.")
    n_jobs: int = Field(1, ge=-1, description="Parallel fits (-1: one per core).")
    max_iter: PosInt = Field(2000, description="Solver iterations.")
    scale: Literal["none", "standard", "l2"] = Field(
        "standard", description="Feature scaling fitted on train: z-score, unit L2 norm or none."
    )
    power: float = Field(
        1.0, gt=0.0, le=1.0,
        description="Power normalisation before scaling, sign(x)|x|^power: 0.5 takes the square "
        "root of pooled features, which damps a few dominant channels; 1 leaves them as they are.",
    )

    @model_validator(mode="after")
    def _grid_not_empty(self) -> TrainLogregParams:
        empty = [key for key, values in self.grid.items() if not values]
        if empty:
            raise ValueError(f"grid.{empty[0]}: needs at least one value")
        return self


class PhaseParams(Section):
    """One fine-tuning phase: its length and optimizer."""

    epochs: int = Field(5, ge=0, description="Epochs of this phase (0 skips it).")
    optimizer: Optimizer = "sgd"
    lr: float = Field(0.001, gt=0.0, le=10.0, description="(Peak) learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0, description="AdamW weight decay.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = False
    clipnorm: ClipNorm = None
    clipvalue: ClipValue = None
    ema: Ema = False
    ema_momentum: EmaMomentum = 0.99
    accumulate_steps: AccumulateSteps = 1
    schedule: ScheduleParams = ScheduleParams()


class HeadParams(Section):
    """The new classifier put on the backbone."""

    pooling: Literal["avg", "max", "flatten"] = "avg"
    units: list[PosInt] = Field([256], description="Hidden dense layers (ReLU); [] for none.")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout before each dense layer.")


class FinetuneParams(Section):
    """A new head on the backbone: trained with the body frozen, then with its top unfrozen."""

    head: HeadParams = HeadParams()
    warmup: PhaseParams = PhaseParams(epochs=1, optimizer="rmsprop", lr=0.001)
    unfreeze: PhaseParams = PhaseParams(epochs=1, optimizer="sgd", lr=0.01)
    unfreeze_from: str | None = Field(
        None, description="Phase 2 trains the backbone from this layer (by name) upwards; "
        "checked against the backbone before training starts."
    )
    unfreeze_last: int = Field(
        6, ge=0, description="Without unfreeze_from: phase 2 trains the last N backbone layers."
    )
    batch_size: PosInt = 32
    checkpoint_monitor: str = Field("val_loss", description="Metric that picks best.keras.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops.")
    distribution: Distribution = "none"
    lr_scaling: LrScaling = "none"
    label_smoothing: LabelSmoothing = 0.0
    augment: AugmentParams = AugmentParams()
    loader: LoaderParams = LoaderParams()

    _mixing_needs_pairs = field_validator("augment")(mixing_needs_pairs)


