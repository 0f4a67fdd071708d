"""Params of training from scratch: the train section and the pieces finetune reuses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.config.base import Optimizer, PosInt, Section
from pipeline.config.optimizer_knobs import AccumulateSteps, ClipNorm, ClipValue, Ema, EmaMomentum
from pipeline.models import ARCHITECTURES


class PreprocessParams(Section):
    """Batch preprocessing applied by the loader, stored beside the model for prediction."""

    scale: bool = Field(True, description="Divide pixels by 255.")
    mean_subtract: bool = Field(
        False, description="Subtract the train split's mean R, G, B (from the hdf5 stage)."
    )
    standardize: bool = Field(
        False, description="After mean_subtract (required), divide by the train split's "
        "per-channel std (mean.json): unit-free, so scale has no effect."
    )
    gcn: bool = Field(
        False, description="Global contrast normalisation per image: subtract the image's own "
        "mean, divide by its std over all pixels and channels (at least gcn_eps). Unit-free, so "
        "scale has no effect; not with mean_subtract."
    )
    gcn_eps: float = Field(
        1e-8, gt=0.0, le=255.0, description="gcn: floor of the divisor, in pixel values (0-255): "
        "images flatter than this are not stretched."
    )
    crop: tuple[PosInt, PosInt] | None = Field(
        None,
        description="[height, width] patch: random in training, centred in evaluation. "
        "null: no crop.",
    )

    @field_validator("standardize")
    @classmethod
    def _standardize_after_the_mean(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("mean_subtract"):
            raise ValueError("standardizing divides (x - mean) by the std: "
                             "set mean_subtract: true too")
        return value

    @field_validator("gcn")
    @classmethod
    def _gcn_alone(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("mean_subtract"):
            raise ValueError("gcn subtracts each image's own mean; set mean_subtract (and "
                             "standardize) false, or gcn false")
        return value


class AugmentParams(Section):
    """Keras preprocessing layers applied to training batches only."""

    flip: bool = Field(False, description="Random horizontal flip.")
    rotation: float = Field(0.0, ge=0.0, le=1.0, description="Max rotation, fraction of 2*pi.")
    shift: float = Field(0.0, ge=0.0, lt=1.0, description="Max translation, fraction of size.")
    zoom: float = Field(0.0, ge=0.0, lt=1.0, description="Max zoom in or out, fraction.")
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="Max contrast change, fraction.")
    vertical_flip: bool = Field(
        False, description="Random vertical flip (wrong where up and down differ: digits, scenes)."
    )
    shear: float = Field(0.0, ge=0.0, lt=1.0, description="Max shear along x and y, fraction.")
    brightness: float = Field(
        0.0, ge=0.0, le=1.0, description="Max brightness change, fraction of the 0-255 range."
    )
    saturation: float = Field(
        0.0, ge=0.0, le=1.0, description="Max saturation change: 0 none, 1 anywhere from grey to full."
    )
    hue: float = Field(0.0, ge=0.0, le=1.0, description="Max hue shift, fraction of the hue circle.")
    noise: float = Field(
        0.0, ge=0.0, le=255.0, description="Std of added Gaussian noise, in pixel values (0-255)."
    )
    rand_augment: int = Field(
        0, ge=0, le=14, description="RandAugment: ops drawn per image (0: off)."
    )
    rand_augment_magnitude: float = Field(
        0.5, gt=0.0, le=1.0, description="RandAugment: strength of each op, 0-1."
    )
    mixup_alpha: float = Field(
        0.0, ge=0.0, le=1.0, description="MixUp: blend each image with another of its batch, "
        "labels alike, by a Beta(alpha, alpha) weight (0: off; labels become one-hot)."
    )
    cutmix_alpha: float = Field(
        0.0, ge=0.0, le=1.0, description="CutMix: paste a box of another image of the batch, "
        "labels by area, Beta(alpha, alpha) (0: off). With mixup_alpha: one of the two per "
        "batch, at random."
    )

    @property
    def mixes(self) -> bool:
        """MixUp or CutMix is on: batches need one-hot labels."""
        return bool(self.mixup_alpha or self.cutmix_alpha)

    @property
    def enabled(self) -> bool:
        return self.flip or self.vertical_flip or self.mixes or any((
            self.rotation, self.shift, self.zoom, self.contrast, self.shear, self.brightness,
            self.saturation, self.hue, self.noise, self.rand_augment))


#: Smoothing of one-hot labels, shared by train and finetune.
LabelSmoothing = Annotated[float, Field(
    0.0, ge=0.0, lt=1.0, description="Cross-entropy against one-hot labels smoothed by this "
    "(0: off). When on, or with mixup/cutmix, labels are one-hot and the loss categorical.")]


#: How training is spread over devices and workers, shared by train and finetune.
Distribution = Annotated[Literal["none", "mirrored", "multi_worker", "data_parallel"], Field(
    "none", description="none: one device, as without it. TensorFlow: mirrored "
    "(MirroredStrategy over the local GPUs, or the CPUs TensorFlow lists), multi_worker "
    "(MultiWorkerMirroredStrategy, the cluster from TF_CONFIG; only the chief writes outputs). "
    "JAX: data_parallel (keras.distribution.DataParallel over the local devices; several hosts "
    "through keras.distribution.initialize). batch_size is the global batch, split evenly.")]
#: How the learning rate follows the number of replicas.
LrScaling = Annotated[Literal["none", "linear"], Field(
    "none", description="linear: lr (and end_lr) times the replicas (Goyal et al., 2017), "
    "for a global batch that grew with them; none: as written.")]


def mixing_needs_pairs(augment: AugmentParams, info: ValidationInfo) -> AugmentParams:
    """MixUp and CutMix pair images within a batch: a batch of one has none to mix with."""
    if augment.mixes and info.data.get("batch_size") == 1:
        raise ValueError("mixup_alpha and cutmix_alpha mix images within a batch; "
                         "batch_size 1 has none to mix with")
    return augment


class LoaderParams(Section):
    """How batches are read from HDF5."""

    memory_limit_mb: int = Field(
        1024, ge=0, description="Splits smaller than this are read into memory once; larger "
        "ones are streamed in shuffled contiguous blocks."
    )
    block_size: PosInt = Field(
        256, description="Streaming: images per contiguous read; a batch mixes several blocks."
    )
    workers: int = Field(1, ge=1, description="Threads preparing batches ahead of the model.")


class ArchParams(Section):
    """Architecture knobs; ``null`` keeps each architecture's published default."""

    width: float = Field(1.0, gt=0.0, le=8.0, description="Multiplier on every layer's filters/units.")
    activation: Literal["relu", "elu", "gelu", "swish", "leaky_relu", "tanh", "sigmoid",
                        "maxout"] = Field(
        "relu", description="Hidden activation. maxout: the layer before it computes "
        "maxout_pieces linear pieces per unit, the unit is their maximum (not resnet)."
    )
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0, description="leaky_relu: negative slope.")
    elu_alpha: float = Field(1.0, gt=0.0, le=10.0, description="elu: alpha (value for x -> -inf).")
    maxout_pieces: int = Field(2, ge=2, le=8, description="maxout: linear pieces per unit.")
    initializer: Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal",
                         "lecun_normal", "lecun_uniform"] = Field(
        "he_normal", description="Kernel initializer.")
    l2: float | None = Field(None, ge=0.0, lt=1.0, description="L2 weight decay on kernels.")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Dropout rate of the head.")
    batch_norm: bool | None = Field(None, description="Batch norm after convolutions.")
    stages: list[PosInt] = Field(
        [3, 3, 3], min_length=1, description="resnet: residual modules per stage."
    )
    filters: list[PosInt] = Field(
        [64, 64, 128, 256], min_length=2,
        description="resnet: stem filters, then each stage's filters (len = stages + 1).",
    )
    stem: Literal["cifar", "tiny"] = Field(
        "cifar", description="resnet: 3x3 stem (CIFAR) or 5x5 + pool stem (Tiny ImageNet)."
    )

    @model_validator(mode="after")
    def _filters_match_stages(self) -> ArchParams:
        if len(self.filters) != len(self.stages) + 1:
            raise ValueError(
                f"filters needs len(stages) + 1 = {len(self.stages) + 1} values, "
                f"got {len(self.filters)}"
            )
        return self


class ScheduleParams(Section):
    """Learning-rate schedule over the whole run (stepped per batch, positioned by epoch)."""

    kind: Literal["constant", "step", "polynomial", "cosine"] = Field(
        "constant", description="constant; step: x factor every `every` epochs; polynomial "
        "decay to end_lr; cosine decay to end_lr."
    )
    factor: float = Field(0.5, gt=0.0, lt=1.0, description="step: multiply the rate by this.")
    every: PosInt = Field(10, description="step: epochs between drops.")
    power: float = Field(1.0, gt=0.0, description="polynomial: 1 = linear decay.")
    end_lr: float = Field(0.0, ge=0.0, description="polynomial and cosine: final rate.")
    warmup_epochs: int = Field(0, ge=0, description="Linear warm-up from 0 over these epochs.")


class EarlyStoppingParams(Section):
    """Stop when the monitored metric stops improving."""

    enabled: bool = False
    monitor: str = Field("val_loss", description="A logged metric, e.g. val_loss, val_accuracy.")
    patience: PosInt = Field(5, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts.")
    restore_best: bool = Field(True, description="End with the best epoch's weights.")


class TrainParams(Section):
    """Trains a model from the registry with ``model.fit`` on the HDF5 loader."""

    model: Literal[tuple(ARCHITECTURES)] = Field("lenet", description="Architecture by name.")  # type: ignore[valid-type]
    arch: ArchParams = ArchParams(width=0.5)
    epochs: PosInt = Field(12, description="Passes over the training split.")
    batch_size: PosInt = Field(64, description="Images per gradient step.")
    optimizer: Optimizer = Field(
        "sgd", description="Optimizer by name."
    )
    lr: float = Field(0.05, gt=0.0, le=10.0, description="(Peak) learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(False, description="SGD: Nesterov momentum.")
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0, description="AdamW decoupled weight decay.")
    clipnorm: ClipNorm = None
    clipvalue: ClipValue = None
    ema: Ema = False
    ema_momentum: EmaMomentum = 0.99
    accumulate_steps: AccumulateSteps = 1
    schedule: ScheduleParams = ScheduleParams(kind="cosine")
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    checkpoint_monitor: str = Field(
        "val_loss", description="Metric that picks the best epoch's model (best.keras)."
    )
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by inverse frequency (with one-hot "
        "labels, by each image's largest label)."
    )
    label_smoothing: LabelSmoothing = 0.0
    mixed_precision: Literal["none", "float16", "bfloat16"] = Field(
        "none", description="Compute in this type, variables and the softmax in float32 (Keras "
        "mixed_float16 / mixed_bfloat16 policy); float16 is for GPUs, bfloat16 for GPUs and "
        "CPUs with bf16 units. Old files' true/false read as float16/none."
    )
    jit_compile: Literal["auto", "true", "false"] = Field("auto", description="XLA compilation.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops (CPU repeats).")
    distribution: Distribution = "none"
    lr_scaling: LrScaling = "none"
    preprocess: PreprocessParams = PreprocessParams()
    augment: AugmentParams = AugmentParams(rotation=0.03, shift=0.1)
    loader: LoaderParams = LoaderParams()
    trial: str = Field(
        "", pattern=r"^([A-Za-z0-9_-]+-[0-9]+)?$",
        description="Search trial this run reports each epoch's validation metric to (set by "
        "`cvpipe search run`; empty: none).",
    )

    @field_validator("arch")
    @classmethod
    def _maxout_needs_a_layer(cls, arch: ArchParams, info: ValidationInfo) -> ArchParams:
        if arch.activation == "maxout" and info.data.get("model") == "resnet":
            raise ValueError("activation maxout needs the layer before each activation to widen; "
                             "resnet's pre-activation blocks have none")
        return arch

    @field_validator("early_stopping")
    @classmethod
    def _ema_keeps_its_average(cls, es: EarlyStoppingParams,
                               info: ValidationInfo) -> EarlyStoppingParams:
        if es.enabled and es.restore_best and info.data.get("ema"):
            raise ValueError("restore_best would put an epoch's raw weights back over the ema "
                             "average; set restore_best: false or ema: false")
        return es

    _mixing_needs_pairs = field_validator("augment")(mixing_needs_pairs)

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _old_bool(cls, value: object) -> object:
        return {True: "float16", False: "none"}.get(value, value) if isinstance(value, bool) else value


