"""The schema of ``params.yaml``: one pydantic model per stage section, validated as a whole.

Every stage loads the whole file through :func:`load_params` before it does anything, so a typo in
any section stops every stage with a message that names the dotted key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.backbones import BACKBONES

PosInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Optimizer = Literal["sgd", "adagrad", "rmsprop", "adam", "nadam", "adamw"]


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BaseParams(Section):
    """Settings shared by every stage."""

    seed: int = Field(42, ge=0, description="Seed for the split, weight init and shuffling.")


class EmbedParams(Section):
    """The embedded default data, written out of scikit-learn as ordinary image folders."""

    out: str = Field(
        "data/embedded",
        description="Folder the embedded datasets are written to: digits/<label>/*.png (the "
        "1,797 8x8 scikit-learn digits) and samples/*.jpg (scikit-learn's sample photos).",
    )


class SourceParams(Section):
    """Where the images come from."""

    kind: Literal["folder", "filename", "csv"] = Field(
        "folder",
        description="folder: one sub-folder per class; filename: label parsed from the file "
        "name by `pattern`; csv: a manifest with columns path,label[,split] (paths relative to "
        "the CSV; split train/val/test is kept).",
    )
    path: str = Field(
        "data/embedded/digits",
        description="The folder (folder, filename), or the CSV file or its folder (csv). Also a "
        "DVC dependency of the ingest stage, so editing one image re-runs what depends on it.",
    )
    pattern: str = Field(
        r"^(?P<label>[^.]+)\.",
        description="kind=filename: a regex with a named group `label`, searched in the file "
        "name. The default reads `cat` from `cat.123.jpg`.",
    )
    recursive: bool = Field(True, description="kind=filename: also look in sub-folders.")
    manifest: str = Field(
        "manifest.csv",
        description="kind=csv with a folder as path: the CSV's name inside it. Prefer this form: "
        "the whole folder is then the DVC dependency, so editing an image re-runs ingest.",
    )

    @model_validator(mode="after")
    def _pattern_has_label(self) -> SourceParams:
        import re

        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regex: {exc}") from None
        if "label" not in compiled.groupindex:
            raise ValueError("pattern needs a named group (?P<label>...)")
        return self


class IngestParams(Section):
    """Checks every image, writes a manifest of the good ones and a report of the rest."""

    source: SourceParams = SourceParams()
    channels: Literal[1, 3] = Field(3, description="1: greyscale, 3: RGB. Every image is converted.")
    extensions: list[str] = Field(
        [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"],
        min_length=1,
        description="File endings taken as images (case-insensitive); other files are listed "
        "as skipped.",
    )
    max_pixels: PosInt = Field(
        40_000_000, description="Images with more pixels than this are rejected (decompression bombs)."
    )
    max_reject_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="The stage fails when more images than this are rejected."
    )
    workers: int = Field(0, ge=0, description="Processes that check images; 0 = one per core.")


class SplitParams(Section):
    """Hash-stable, stratified-in-expectation train/val/test (and train-dev) split."""

    val: Fraction = Field(0.15, description="Fraction of all images in the validation split.")
    test: Fraction = Field(0.15, description="Fraction of all images in the test split.")
    train_dev: Fraction = Field(
        0.0, description="Fraction of the training images carved out as a train-dev split (0: none)."
    )

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitParams:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1, got {self.val + self.test:g}")
        return self


class Hdf5Params(Section):
    """Decodes, resizes and packs each split into one uint8 HDF5 file."""

    size: tuple[PosInt, PosInt] = Field((28, 28), description="[height, width] of stored images.")
    resize: Literal["simple", "aspect"] = Field(
        "simple",
        description="simple: stretch to size; aspect: scale the shorter side, then centre-crop.",
    )
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] = Field(
        "bilinear", description="Pillow resampling filter (antialiased when shrinking)."
    )
    compression: Literal["none", "lzf", "gzip"] = Field(
        "none", description="HDF5 filter for images; chunks hold one image each."
    )
    workers: int = Field(0, ge=0, description="Decoding processes; 0 = one per core.")


class PreprocessParams(Section):
    """Batch preprocessing applied by the loader, stored beside the model for prediction."""

    scale: bool = Field(True, description="Divide pixels by 255.")
    mean_subtract: bool = Field(
        False, description="Subtract the train split's mean R, G, B (from the hdf5 stage)."
    )
    crop: tuple[PosInt, PosInt] | None = Field(
        None,
        description="[height, width] patch: random in training, centred in evaluation. "
        "null: no crop.",
    )


class AugmentParams(Section):
    """Keras preprocessing layers applied to training batches only."""

    flip: bool = Field(False, description="Random horizontal flip.")
    rotation: float = Field(0.0, ge=0.0, le=1.0, description="Max rotation, fraction of 2*pi.")
    shift: float = Field(0.0, ge=0.0, lt=1.0, description="Max translation, fraction of size.")
    zoom: float = Field(0.0, ge=0.0, lt=1.0, description="Max zoom in or out, fraction.")
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="Max contrast change, fraction.")

    @property
    def enabled(self) -> bool:
        return self.flip or any((self.rotation, self.shift, self.zoom, self.contrast))


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


MODELS = ("shallownet", "lenet", "minivggnet", "mnist_convnet", "alexnet", "minigooglenet",
          "deepergooglenet", "resnet")


class ArchParams(Section):
    """Architecture knobs; ``null`` keeps each architecture's published default."""

    width: float = Field(1.0, gt=0.0, le=8.0, description="Multiplier on every layer's filters/units.")
    activation: Literal["relu", "elu", "gelu", "swish", "leaky_relu", "tanh"] = Field(
        "relu", description="Hidden activation."
    )
    initializer: Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal",
                         "lecun_normal"] = Field("he_normal", description="Kernel initializer.")
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

    model: Literal[MODELS] = Field("lenet", description="Architecture by name.")  # type: ignore[valid-type]
    arch: ArchParams = ArchParams()
    epochs: PosInt = Field(20, description="Passes over the training split.")
    batch_size: PosInt = Field(64, description="Images per gradient step.")
    optimizer: Optimizer = Field(
        "sgd", description="Optimizer by name."
    )
    lr: float = Field(0.01, gt=0.0, le=10.0, description="(Peak) learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(False, description="SGD: Nesterov momentum.")
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0, description="AdamW decoupled weight decay.")
    schedule: ScheduleParams = ScheduleParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    checkpoint_monitor: str = Field(
        "val_loss", description="Metric that picks the best epoch's model (best.keras)."
    )
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by inverse frequency."
    )
    mixed_precision: bool = Field(False, description="mixed_float16 compute (for GPUs).")
    jit_compile: Literal["auto", "true", "false"] = Field("auto", description="XLA compilation.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops (CPU repeats).")
    preprocess: PreprocessParams = PreprocessParams()
    augment: AugmentParams = AugmentParams()
    loader: LoaderParams = LoaderParams()


class BackboneParams(Section):
    """The pretrained ``keras.applications`` network both transfer-learning paths start from."""

    name: Literal[tuple(BACKBONES)] = Field(  # type: ignore[valid-type]
        "mobilenet", description="Backbone by name (keras.applications, lower case, no top)."
    )
    weights: str = Field(
        "none",
        description="imagenet (from the local Keras cache only; nothing is downloaded), a path "
        "to a weights file (e.g. ../shared/weights/mobilenet_2_5_224_tf_no_top.h5), or none "
        "(random init).",
    )
    alpha: float = Field(
        0.25, gt=0.0, le=2.0, description="Width multiplier (mobilenet, mobilenetv2, v3 only)."
    )
    size: tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]] = Field(
        (32, 32),
        description="[height, width] the backbone sees; stored images are resized to it and "
        "grey is repeated to RGB. Make hdf5.size match to skip the resize.",
    )

    @model_validator(mode="after")
    def _weights_file_exists(self) -> BackboneParams:
        if self.weights in ("imagenet", "none") or Path(self.weights).is_file():
            return self
        raise ParamsPathError(
            f"backbone.weights: no such file: {self.weights} (expected imagenet, none or the "
            "path of a weights file)"
        )


class ExtractFeaturesParams(Section):
    """Runs every split through the backbone and stores the pooled activations as HDF5."""

    pooling: Literal["avg", "max", "flatten"] = Field(
        "avg", description="How the last feature map becomes a vector."
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
        {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
        description="GridSearchCV grid: LogisticRegression argument -> values to try.",
    )
    cv: int = Field(3, ge=2, description="Cross-validation folds over the train split.")
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
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0, description="AdamW weight decay.")
    schedule: ScheduleParams = ScheduleParams()


class HeadParams(Section):
    """The new classifier put on the backbone."""

    pooling: Literal["avg", "max", "flatten"] = "avg"
    units: list[PosInt] = Field([256], description="Hidden dense layers (ReLU); [] for none.")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout before each dense layer.")


class FinetuneParams(Section):
    """A new head on the backbone: trained with the body frozen, then with its top unfrozen."""

    head: HeadParams = HeadParams()
    warmup: PhaseParams = PhaseParams(epochs=3, optimizer="rmsprop", lr=0.001)
    unfreeze: PhaseParams = PhaseParams(epochs=3, optimizer="sgd", lr=0.001)
    unfreeze_from: str | None = Field(
        None, description="Phase 2 trains the backbone from this layer (by name) upwards."
    )
    unfreeze_last: int = Field(
        20, ge=0, description="Without unfreeze_from: phase 2 trains the last N backbone layers."
    )
    batch_size: PosInt = 32
    checkpoint_monitor: str = Field("val_loss", description="Metric that picks best.keras.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops.")
    augment: AugmentParams = AugmentParams()
    loader: LoaderParams = LoaderParams()


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
        True, description="Add the mirror of each of the 5 crops: 10 views. Turn off for data "
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
        "table (diagnosis.md, and `diagnosis` in metrics.json)."
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
        default_factory=lambda: {"shallownet": {"train": {"model": "shallownet"}}},
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

Kernel = Annotated[int, Field(ge=1, le=15)]


class DcganParams(Section):
    """A DCGAN (Radford et al.): strided convolutions, batch norm, ReLU/LeakyReLU, tanh output."""

    split: Literal["train", "val", "test", "train_dev"] = Field(
        "train", description="Split of the HDF5 folder to learn from (any split file works)."
    )
    size: tuple[PosInt, PosInt] = Field(
        (28, 28), description="[height, width] generated; stored images are resized to it. Each "
        "must be divisible by 2^len(generator_filters)."
    )
    channels: Literal[1, 3] = Field(1, description="1: greyscale, 3: RGB (converted as needed).")
    latent_dim: PosInt = Field(100, description="Length of the noise vector z.")
    generator_filters: list[PosInt] = Field(
        [128, 64], min_length=1,
        description="Filters of the generator's blocks; the first is the projected base "
        "(size / 2^n), each later one a stride-2 transposed convolution, then the tanh output.",
    )
    discriminator_filters: list[PosInt] = Field(
        [64, 128], min_length=1,
        description="Filters of the discriminator's stride-2 convolutions (no batch norm on the "
        "first, as in the paper).",
    )
    kernel: Kernel = Field(5, description="Convolution kernel size.")
    leaky_slope: float = Field(0.2, gt=0.0, lt=1.0, description="LeakyReLU slope (discriminator).")
    epochs: PosInt = Field(5, description="Passes over the split.")
    batch_size: PosInt = Field(128, description="Real images per step (and as many generated).")
    lr: float = Field(0.0002, gt=0.0, le=1.0, description="Adam learning rate (paper: 2e-4).")
    beta_1: float = Field(0.5, ge=0.0, lt=1.0, description="Adam beta_1 (paper: 0.5).")
    grid: PosInt = Field(8, le=16, description="Sample grids are grid x grid images.")
    deterministic: bool = Field(True, description="TensorFlow: deterministic ops.")

    @model_validator(mode="after")
    def _size_fits_generator(self) -> DcganParams:
        step = 2 ** len(self.generator_filters)
        if any(side % step for side in self.size):
            raise ValueError(f"size {list(self.size)} must be divisible by {step} "
                             f"(2^len(generator_filters))")
        return self


class GanScoreParams(Section):
    """Scores generated samples with a classifier the pipeline trained on the same data."""

    classifier: str = Field(
        "models/train", description="Folder of a trained classifier (model.keras + "
        "preprocess.json); list it as a dep of the gan_score stage too."
    )
    samples: PosInt = Field(1000, description="Generated images to classify.")
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

    images: str = Field(
        "data/embedded/samples", description="Folder (or one file) of training images."
    )
    glob: str = Field("flower.jpg", description="Which files of the folder to use (e.g. *).")
    scale: int = Field(3, ge=2, le=8, description="Upscaling factor the network learns.")
    size: int = Field(33, ge=8, le=256, description="Input sub-image side (paper: 33).")
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
    epochs: PosInt = Field(10, description="Passes over the sub-images.")
    batch_size: PosInt = Field(128, description="Sub-images per step.")
    optimizer: Optimizer = Field("adam", description="Optimizer by name.")
    lr: float = Field(0.001, gt=0.0, le=10.0, description="Learning rate.")
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


class Params(Section):
    """The whole ``params.yaml``."""

    base: BaseParams = BaseParams()
    embed: EmbedParams = EmbedParams()
    ingest: IngestParams = IngestParams()
    split: SplitParams = SplitParams()
    hdf5: Hdf5Params = Hdf5Params()
    train: TrainParams = TrainParams()
    backbone: BackboneParams = BackboneParams()
    extract_features: ExtractFeaturesParams = ExtractFeaturesParams()
    train_logreg: TrainLogregParams = TrainLogregParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    ensemble: EnsembleParams = EnsembleParams()
    dcgan: DcganParams = DcganParams()
    gan_score: GanScoreParams = GanScoreParams()
    srcnn_data: SrcnnDataParams = SrcnnDataParams()
    srcnn: SrcnnParams = SrcnnParams()
    srcnn_evaluate: SrcnnEvaluateParams = SrcnnEvaluateParams()

    @model_validator(mode="after")
    def _source_exists(self) -> Params:
        """Input folders must exist, unless the embed stage writes them (DVC runs embed first)."""
        for key, value in (("ingest.source.path", self.ingest.source.path),
                           ("srcnn_data.images", self.srcnn_data.images),
                           ("srcnn_evaluate.images", self.srcnn_evaluate.images)):
            path = Path(value)
            if not (path.exists() or path.is_relative_to(Path(self.embed.out))):
                raise ParamsPathError(f"{key}: does not exist: {path}")
        return self

    @model_validator(mode="after")
    def _srcnn_label_fits(self) -> Params:
        lost = sum(k - 1 for k in self.srcnn.kernels)
        if self.srcnn_data.size <= lost:
            raise KeyedError(
                f"srcnn_data.size: must exceed {lost}, the pixels srcnn.kernels "
                f"{list(self.srcnn.kernels)} lose, got {self.srcnn_data.size}")
        return self

    @model_validator(mode="after")
    def _members_are_valid(self) -> Params:
        for name in self.ensemble.members:
            try:
                member_params(self, name)
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(part) for part in first["loc"])
                raise ValueError(f"ensemble.members.{name}: {key}: "
                                 f"{first['msg'].removeprefix('Value error, ')}") from None
        return self


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested mappings key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def member_params(params: Params, name: str) -> Params:
    """The params an ensemble member trains with: ``params`` plus that member's overrides."""
    if name not in params.ensemble.members:
        known = ", ".join(params.ensemble.members) or "none"
        raise KeyError(f"no ensemble member {name!r} (members: {known})")
    data = params.model_dump()
    data["ensemble"] = {"members": {}, "models": ["-"]}
    return Params.model_validate(_merge(data, params.ensemble.members[name]))


class KeyedError(ValueError):
    """A check across keys whose message already starts with the dotted key it is about."""


class ParamsPathError(KeyedError):
    """A path in params that must exist does not."""


class ParamsError(Exception):
    """``params.yaml`` is unreadable or invalid; ``lines`` name each dotted key and the reason."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _describe(error: dict[str, Any]) -> str:
    """One line per pydantic error: ``dotted.key: reason, got value``."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("ctx", {}).get("error"), KeyedError):
        return message
    if error["type"] == "missing":
        return f"{key}: required"
    got = f", got {error['input']!r}" if not isinstance(error.get("input"), dict) else ""
    return f"{key}: {message}{got}" if key else f"{message}{got}"


def validate(data: Any) -> Params:
    """Validate an already-parsed params mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError([f"the params file must be a mapping, got {type(data).__name__}"])
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError([_describe(e) for e in exc.errors()]) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise :class:`ParamsError` naming each bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError([f"cannot read {path}: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError([f"{path} is not valid YAML: {exc}"]) from None
    return validate(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``params.yaml``."""
    return Params.model_json_schema()


_LIMITS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
           "minItems": "items >=", "minLength": "items >="}


def _type_of(prop: dict[str, Any]) -> str:
    """A short human type for one JSON Schema property."""
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        items = prop.get("prefixItems") or [prop.get("items", {})]
        kind = f"[{', '.join(_type_of(i) for i in items)}]"
    limits = [f"{op} {prop[k]}" for k, op in _LIMITS.items() if k in prop]
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _rows(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[list[str]]:
    rows = []
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        ref = prop.get("$ref") or (prop.get("allOf") or [{}])[0].get("$ref")
        if ref:
            section = schema["$defs"][ref.rsplit("/", 1)[-1]]
            doc = (section.get("description") or "").strip().splitlines()
            rows.append([f"`{key}`", "section", "", doc[0] if doc else ""])
            rows.extend(_rows(schema, section, f"{key}."))
            continue
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        rows.append([f"`{key}`", _type_of(prop), default, prop.get("description", "")])
    return rows


def reference_markdown() -> str:
    """A Markdown table of every params key: type and limits, default, meaning."""
    schema = json_schema()
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for row in _rows(schema, schema, ""):
        lines.append("| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |")
    return "\n".join(lines)


REFERENCE_MARKERS = ("<!-- params-reference:start -->", "<!-- params-reference:end -->")


def replace_reference(text: str) -> str:
    """``text`` with the table between the params-reference markers regenerated."""
    start, end = REFERENCE_MARKERS
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise ValueError(f"markers {start} ... {end} not found")
    return f"{head}{start}\n{reference_markdown()}\n{end}{tail}"
