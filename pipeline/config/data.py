"""Params of the data stages: base, embed, ingest, split, hdf5."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Fraction, PosInt, Section
from pipeline.config.detect import ScenesParams


class BaseParams(Section):
    """Settings shared by every stage."""

    seed: int = Field(42, ge=0, description="Seed for the split, weight init and shuffling.")


class EmbedParams(Section):
    """The embedded default data, written out of scikit-learn as ordinary image folders."""

    out: str = Field(
        "data/embedded",
        description="Folder the embedded datasets are written to: digits/<label>/*.png (the "
        "1,797 8x8 scikit-learn digits), samples/*.jpg (scikit-learn's sample photos) and "
        "scenes/ (digits pasted on scikit-image's photos, with annotations.csv).",
    )
    scenes: ScenesParams = ScenesParams()


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
    roots: list[str] = Field(
        [],
        description="kind=csv: further folders the CSV's paths may name (absolute, `..` or "
        "through a symlink) besides the CSV's own folder; anything resolving elsewhere is "
        "rejected as escapes-root. Images under them are not DVC dependencies of ingest.",
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
    channels: Literal[1, 3] = Field(1, description="1: greyscale, 3: RGB. Every image is converted.")
    extensions: list[str] = Field(
        [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"],
        min_length=1,
        description="File endings taken as images (case-insensitive); other files are listed "
        "as skipped.",
    )
    max_pixels: PosInt = Field(
        40_000_000,
        description="Images with more pixels than this are rejected undecoded (decompression "
        "bombs): by ingest, srcnn_data and srcnn_evaluate; `cvpipe predict` and `cvpipe upscale` "
        "use this default unless given --max-pixels.",
    )
    duplicate_labels: Literal["reject", "keep_first"] = Field(
        "reject",
        description="Identical images (same SHA-256) with different labels: reject lists them "
        "all in rejects.csv as conflicting-labels; keep_first keeps the first by path (and its "
        "copies with the same label) and rejects the copies labelled otherwise.",
    )
    max_reject_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="The stage fails when more images than this are rejected."
    )
    workers: int = Field(0, ge=0, description="Processes that check images; 0 = one per core.")


class GroupParams(Section):
    """Images that must share a split (a patient's scans): a CSV column or a regex on the path.

    Neither set: every image is its own group (identical copies share one), today's split."""

    column: str = Field(
        "",
        description="A column of the source CSV (needs ingest.source.kind csv) naming each "
        "image's group; ingest carries it into the manifest as `group`. An empty cell: the "
        "image is its own group.",
    )
    pattern: str = Field(
        "",
        description="A regex searched in each image's path relative to the source folder "
        "(ingest.source.path, or the CSV's folder; a path outside it as the manifest has it), "
        "with `/` separators; its first capture group "
        "(the whole match if it has none) is the group, e.g. `^(patient\\d+)_`. A path it does "
        "not match: the image is its own group, listed in results/split/leakage.json.",
    )
    method: Literal["stable", "balanced"] = Field(
        "stable",
        description="stable: each class's groups in hash order, cut at the fractions (adding "
        "images moves few groups; each class's fractions are met to about one group); balanced: "
        "scikit-learn's StratifiedGroupKFold (every class's fractions closest, but adding "
        "images may move any group).",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_way(self) -> GroupParams:
        if self.column and self.pattern:
            raise ValueError("set column or pattern, not both")
        return self

    @property
    def by(self) -> Literal["none", "column", "pattern"]:
        """How images are grouped."""
        return "column" if self.column else "pattern" if self.pattern else "none"


class SplitParams(Section):
    """Hash-stable, stratified-in-expectation train/val/test (and train-dev) split."""

    val: Fraction = Field(0.15, description="Fraction of all images in the validation split.")
    test: Fraction = Field(0.15, description="Fraction of all images in the test split.")
    train_dev: Fraction = Field(
        0.1, description="Fraction of the training images carved out as a train-dev split (0: none)."
    )
    group: GroupParams = GroupParams()

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitParams:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1, got {self.val + self.test:g}")
        return self


class Hdf5Params(Section):
    """Decodes, resizes and packs each split into one uint8 HDF5 file."""

    renamed: ClassVar[dict[str, str]] = {"size": "image_size"}

    image_size: tuple[PosInt, PosInt] = Field((28, 28), description="[height, width] of stored images.")
    resize: Literal["simple", "aspect"] = Field(
        "simple",
        description="simple: stretch to image_size; aspect: scale the shorter side, then centre-crop.",
    )
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] = Field(
        "bilinear", description="Pillow resampling filter (antialiased when shrinking)."
    )
    compression: Literal["none", "lzf", "gzip"] = Field(
        "none", description="HDF5 filter for images; chunks hold one image each."
    )
    workers: int = Field(0, ge=0, description="Decoding processes; 0 = one per core.")


