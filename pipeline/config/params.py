"""The whole ``params.yaml``: every section, checks across sections, ensemble members' params."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, model_validator

from pipeline.config.base import KeyedError, Section
from pipeline.config.data import (
    BaseParams,
    EmbedParams,
    Hdf5Params,
    IngestParams,
    SplitParams,
)
from pipeline.config.detect import (
    DetectDataParams,
    DetectEvaluateParams,
    DetectParams,
    DetectWindowsParams,
    HogSvmParams,
)
from pipeline.config.evaluate import EnsembleParams, EvaluateParams
from pipeline.config.explain import ExplainParams
from pipeline.config.export import ExportParams
from pipeline.config.generative import (
    DcganParams,
    GanScoreParams,
    SrcnnDataParams,
    SrcnnEvaluateParams,
    SrcnnParams,
)
from pipeline.config.reverse import DreamParams, StylizeParams
from pipeline.config.training import AugmentParams, TrainParams
from pipeline.config.transfer import (
    BackboneParams,
    ExtractFeaturesParams,
    FinetuneParams,
    TrainLogregParams,
)


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
    explain: ExplainParams = ExplainParams()
    ensemble: EnsembleParams = EnsembleParams()
    export: ExportParams = ExportParams()
    dcgan: DcganParams = DcganParams()
    gan_score: GanScoreParams = GanScoreParams()
    srcnn_data: SrcnnDataParams = SrcnnDataParams()
    srcnn: SrcnnParams = SrcnnParams()
    srcnn_evaluate: SrcnnEvaluateParams = SrcnnEvaluateParams()
    detect_data: DetectDataParams = DetectDataParams()
    detect_windows: DetectWindowsParams = DetectWindowsParams()
    detect_train: TrainParams = TrainParams(epochs=8, augment=AugmentParams())
    hog_svm: HogSvmParams = HogSvmParams()
    detect: DetectParams = DetectParams()
    detect_evaluate: DetectEvaluateParams = DetectEvaluateParams()
    dream: DreamParams = DreamParams()
    stylize: StylizeParams = StylizeParams()

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        """Keys that another section's keys constrain: SRCNN's label must fit in its patch; a
        group column needs a CSV source."""
        lost = sum(k - 1 for k in self.srcnn.kernels)
        if self.srcnn_data.patch_size <= lost:
            raise KeyedError(
                f"srcnn_data.patch_size: must exceed {lost}, the pixels srcnn.kernels "
                f"{list(self.srcnn.kernels)} lose, got {self.srcnn_data.patch_size}")
        if self.split.group.column and self.ingest.source.kind != "csv":
            raise KeyedError(
                f"split.group.column: a column of the source CSV, so ingest.source.kind must be "
                f"csv, got {self.ingest.source.kind} (group by the path with split.group.pattern)")
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


