"""A search file: the space (as Optuna distributions), the sampler, the pruner and the budget.

The old spellings stay valid (``log_uniform``, ``uniform``, ``randint``, ``choice``) beside
Optuna's own (``float`` / ``int`` with ``log`` and ``step``, ``categorical``); each becomes an
``optuna.distributions`` object, and Optuna's samplers draw from it. Every key is checked against
the params schema (a value from the space must make valid params) before anything runs.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import ParamsError, validate
from pipeline.search.experiments import metric_parts

SAMPLERS = ("random", "tpe", "cmaes", "grid")


class Distribution(BaseModel):
    """Exactly one of ``float: [lo, hi]``, ``int: [lo, hi]`` (both with optional ``log`` and
    ``step``), ``categorical: [a, b, ...]``, or the older ``log_uniform``, ``uniform``,
    ``randint`` (inclusive) and ``choice``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    float_: tuple[float, float] | None = Field(None, alias="float")
    int_: tuple[int, int] | None = Field(None, alias="int")
    categorical: list[Any] | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    log_uniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        kinds = ("float_", "int_", "categorical", "log_uniform", "uniform", "randint", "choice")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of float, int, categorical (or log_uniform, "
                             "uniform, randint, choice)")
        values = self.categorical if self.categorical is not None else self.choice
        if values is not None and not values:
            raise ValueError("empty range: no choices")
        low_high = self.float_ or self.int_ or self.log_uniform or self.uniform or self.randint
        if low_high is not None:
            low, high = low_high
            if low > high or (low == high and (self.float_ or self.uniform or self.log_uniform)):
                raise ValueError(f"empty range: [{low}, {high}]")
            if (self.log or self.log_uniform is not None) and low <= 0:
                raise ValueError("a log scale needs a positive lower bound")
            if self.log and self.step is not None:
                raise ValueError("give log or step, not both")
        return self

    def to_optuna(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution this entry means."""
        if self.log_uniform is not None:
            return FloatDistribution(*self.log_uniform, log=True)
        if self.uniform is not None:
            return FloatDistribution(*self.uniform)
        if self.randint is not None:
            return IntDistribution(*self.randint)
        if self.float_ is not None:
            return FloatDistribution(*self.float_, log=self.log, step=self.step)
        if self.int_ is not None:
            return IntDistribution(*self.int_, log=self.log, step=int(self.step or 1))
        return CategoricalDistribution([encode(v) for v in self.values()])

    def values(self) -> list[Any]:
        """The choices as the file gives them."""
        return list(self.categorical if self.categorical is not None else self.choice or [])

    def grid(self) -> list[Any]:
        """Every value, for the grid sampler: choices, integers, or a float range with a step."""
        dist = self.to_optuna()
        if isinstance(dist, CategoricalDistribution):
            return list(dist.choices)  # encoded: decoded with the trial's other values
        if isinstance(dist, IntDistribution) and not dist.log:
            return list(range(dist.low, dist.high + 1, dist.step))
        if self.float_ is not None and self.step is not None:
            count = math.floor((self.float_[1] - self.float_[0]) / self.step + 1e-9) + 1
            return [round(self.float_[0] + i * self.step, 12) for i in range(count)]
        raise ValueError("the grid sampler needs categorical values, integers, or a step")


def encode(value: Any) -> Any:
    """A choice as Optuna stores it: lists and mappings (``[64, 64]``) as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def decode(dist: Distribution, value: Any) -> Any:
    """The params value for what Optuna drew (JSON text back to a list), readable floats."""
    if isinstance(value, str) and (dist.categorical is not None or dist.choice is not None):
        for choice in dist.values():
            if encode(choice) == value:
                return choice
    return readable(value)


class PrunerSpec(BaseModel):
    """Stop bad trials early from the validation metric reported each epoch."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "median", "hyperband", "threshold"] = "median"
    startup_trials: int = Field(3, ge=0, description="median: trials finished before pruning.")
    warmup_epochs: int = Field(1, ge=0, description="median: epochs before a trial can be pruned.")
    min_resource: int = Field(1, ge=1, description="hyperband: fewest epochs of a trial.")
    reduction_factor: int = Field(3, ge=2, description="hyperband: halving rate.")
    lower: float | None = Field(None, description="threshold: prune below this value.")
    upper: float | None = Field(None, description="threshold: prune above this value.")

    @model_validator(mode="after")
    def _threshold_needs_a_bound(self) -> PrunerSpec:
        if self.kind == "threshold" and self.lower is None and self.upper is None:
            raise ValueError("the threshold pruner needs lower or upper")
        return self

    def optuna_args(self) -> tuple[str, dict[str, Any]]:
        """The Optuna pruner's class name and keyword arguments (what a trial's training run is
        told, so that it builds the same pruner)."""
        if self.kind == "median":
            return "MedianPruner", {"n_startup_trials": self.startup_trials,
                                    "n_warmup_steps": self.warmup_epochs}
        if self.kind == "hyperband":
            return "HyperbandPruner", {"min_resource": self.min_resource,
                                       "reduction_factor": self.reduction_factor}
        if self.kind == "threshold":
            return "ThresholdPruner", {"lower": self.lower, "upper": self.upper}
        return "NopPruner", {}

    def build(self) -> optuna.pruners.BasePruner:
        """The Optuna pruner (Hyperband's largest resource: the epochs reported, "auto")."""
        name, args = self.optuna_args()
        return getattr(optuna.pruners, name)(**args)


class SearchSpec(BaseModel):
    """A search: what to vary, how to sample it, how many trials, which validation metric ranks
    them, where the study is stored."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Study and experiment name prefix.")
    target: str = Field("train", description="Stage the experiments run up to (not evaluate).")
    metric: str = Field("results/train/metrics.json:val.accuracy",
                        description="FILE:KEY of the validation metric that ranks trials.")
    mode: Literal["max", "min"] = "max"
    trials: int = Field(8, gt=0, description="Trials in the study, over all workers.")
    seed: int = Field(0, ge=0)
    sampler: Literal[SAMPLERS] = "random"  # type: ignore[valid-type]
    sampler_options: dict[str, Any] = Field(default_factory=dict,
                                            description="Keyword arguments of the Optuna sampler.")
    pruner: PrunerSpec | None = None
    monitor: str | None = Field(None, description="Keras log key reported each epoch for "
                                "pruning (default: from metric, val.accuracy -> val_accuracy).")
    storage: str | None = Field(None, description="Optuna storage URL (default: a journal file "
                                ".cvpipe/search/NAME.journal).")
    workers: int = Field(1, ge=1, description="Trials at a time on this machine.")
    push: str | None = Field(None, description="Git remote each finished trial is pushed to "
                             "(dvc exp push), so other machines see it.")
    space: dict[str, Distribution] = Field(min_length=1)

    @model_validator(mode="after")
    def _checks(self) -> SearchSpec:
        if self.target.startswith(("evaluate", "ensemble")):
            raise ValueError(f"target {self.target!r} scores the test split: search up to a "
                             "training stage and evaluate the chosen experiment once")
        if ":" not in self.metric:
            raise ValueError(f"metric must be FILE:KEY, got {self.metric!r}")
        if self.sampler == "grid":
            for key, dist in self.space.items():
                try:
                    dist.grid()
                except ValueError as exc:
                    raise ValueError(f"space.{key}: {exc}") from None
        return self

    @property
    def direction(self) -> str:
        return "maximize" if self.mode == "max" else "minimize"

    @property
    def metric_file(self) -> str:
        return metric_parts(self.metric)[0]

    @property
    def metric_key(self) -> str:
        return metric_parts(self.metric)[1]

    @property
    def monitor_key(self) -> str:
        return self.monitor or self.metric_key.replace(".", "_")

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {key: dist.to_optuna() for key, dist in self.space.items()}

    def overrides(self, drawn: dict[str, Any]) -> dict[str, Any]:
        """Params values for the values Optuna drew (``trial.params``)."""
        return {key: decode(self.space[key], value) for key, value in drawn.items()}

    def grid_size(self) -> int:
        return math.prod(len(dist.grid()) for dist in self.space.values())

    def budget(self) -> int:
        """Trials to run: ``trials``, or fewer when a grid has fewer points."""
        return min(self.trials, self.grid_size()) if self.sampler == "grid" else self.trials


def _errors(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p).removesuffix("_") for p in e["loc"])
        out.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    return out


def load_spec(path: Path) -> SearchSpec:
    """Read and validate a search file; errors name the dotted key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError([f"not YAML: {exc}"]) from None
    try:
        return SearchSpec.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_errors(exc)) from None


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating levels as needed."""
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def check_overrides(base: dict[str, Any], overrides: dict[str, Any], what: str) -> None:
    """Raise :class:`ParamsError` (lines start with ``what``) unless ``base`` with ``overrides``
    set is valid params: an unknown key or a value outside the schema's range is named."""
    data = copy.deepcopy(base)
    for key, value in overrides.items():
        set_dotted(data, key, value)
    try:
        validate(data)
    except ParamsError as exc:
        raise ParamsError([f"{what}: {line}" for line in exc.lines]) from None


def check_space(spec: SearchSpec, params_file: Path) -> None:
    """Every key of the space is a params key, and both ends of every range are valid values."""
    base = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    for key, dist in spec.space.items():
        dist_o = dist.to_optuna()
        ends = dist.values() if hasattr(dist_o, "choices") else [dist_o.low, dist_o.high]
        for value in ends:
            check_overrides(base, {key: value}, f"space.{key}")


def readable(value: Any) -> Any:
    """Four significant digits for floats: readable ``-S`` values, no false precision."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def make_sampler(spec: SearchSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the file names, seeded with ``seed``; ``sampler_options`` are passed
    on (a wrong option raises :class:`ParamsError` naming it)."""
    options = dict(spec.sampler_options)
    try:
        if spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed, **options)
        if spec.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **options)
        if spec.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, **options)
        return optuna.samplers.GridSampler({k: d.grid() for k, d in spec.space.items()},
                                           seed=seed, **options)
    except TypeError as exc:
        raise ParamsError([f"sampler_options: {exc}"]) from None


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates to the file's sampler, rebuilt before each trial with a seed drawn from
    (``seed``, trial number). Workers on one or many machines then draw different values for
    different trials, and a study run again draws the same values for the same history."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec
        self._inner = make_sampler(spec, spec.seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.spec.sampler != "grid":  # the grid's order comes from the seed: keep it
            self._inner = make_sampler(self.spec, (self.spec.seed * 1_000_003 + trial.number)
                                       % 2**32)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        # The grid sampler would call study.stop() when its grid is done, which only works
        # inside study.optimize; the budget (at most the grid's size) stops the runner instead.
        if not isinstance(self._inner, optuna.samplers.GridSampler):
            self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
