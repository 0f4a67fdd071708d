"""The schema of ``params.yaml``: one pydantic model per stage section, validated as a whole.

Every stage loads the whole file through :func:`load_params` before it does anything, so a typo in
any section stops every stage with a message that names the dotted key. The sections live in one
module per family (``data``, ``training``, ``transfer``, ``evaluate``, ``generative``); ``loading``
reads a file and words the errors; ``paths`` checks the input paths a stage reads (the schema
checks values only, so a path another stage reads never stops this one); ``reference`` writes the
params reference from the schema.
"""

from pipeline.config.base import (
    Fraction,
    KeyedError,
    Optimizer,
    ParamsPathError,
    PosInt,
    RenamedKeyError,
    Section,
)
from pipeline.config.data import (
    BaseParams,
    EmbedParams,
    GroupParams,
    Hdf5Params,
    IngestParams,
    SourceParams,
    SplitParams,
)
from pipeline.config.evaluate import EnsembleParams, EvaluateParams, OversampleParams
from pipeline.config.generative import (
    DcganParams,
    GanScoreParams,
    SrcnnDataParams,
    SrcnnEvaluateParams,
    SrcnnParams,
)
from pipeline.config.loading import ParamsError, load_params, validate
from pipeline.config.params import Params, member_params
from pipeline.config.paths import missing_inputs, require_inputs
from pipeline.config.training import (
    ArchParams,
    AugmentParams,
    EarlyStoppingParams,
    LoaderParams,
    PreprocessParams,
    ScheduleParams,
    TrainParams,
)
from pipeline.config.transfer import (
    BackboneParams,
    ExtractFeaturesParams,
    FinetuneParams,
    HeadParams,
    PhaseParams,
    TrainLogregParams,
)

__all__ = [
    "ArchParams", "AugmentParams", "BackboneParams", "BaseParams", "DcganParams",
    "EarlyStoppingParams", "EmbedParams", "EnsembleParams", "EvaluateParams",
    "ExtractFeaturesParams", "FinetuneParams", "Fraction", "GanScoreParams", "GroupParams", "Hdf5Params",
    "HeadParams", "IngestParams", "KeyedError", "LoaderParams", "Optimizer", "OversampleParams",
    "Params", "ParamsError", "ParamsPathError", "PhaseParams", "PosInt", "PreprocessParams",
    "RenamedKeyError", "ScheduleParams", "Section", "SourceParams", "SplitParams",
    "SrcnnDataParams", "SrcnnEvaluateParams", "SrcnnParams", "TrainLogregParams", "TrainParams",
    "load_params", "member_params", "missing_inputs", "require_inputs", "validate",
]
