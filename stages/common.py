"""What every stage script shares: the ``--params`` option and one way to fail.

Every command is a :class:`Stage` (the ``cvpipe`` group a :class:`StageGroup`), so every failure
ends the same way:

* bad params or bad input (:class:`~pipeline.config.ParamsError`,
  :class:`~pipeline.io.errors.InputError`, a missing file): exit 2, naming the dotted key or the
  file;
* anything else that goes wrong while running: exit 1 with one line on stderr,
  ``error: <Type>: <message>``;
* Click's own usage errors keep exit 2; ``SystemExit`` and Ctrl-C behave as usual.

With ``CVPIPE_DEBUG=1`` the original traceback is printed too.
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from pipeline.io.errors import InputError

if TYPE_CHECKING:  # pipeline.config (pydantic) loads when a command runs, not for `cvpipe --help`
    from pipeline.config import Params

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variable that makes a failure print its traceback.
DEBUG_VARIABLE = "CVPIPE_DEBUG"

#: The longest message a runtime failure's one line carries (the traceback has the rest).
MESSAGE_LIMIT = 400


def debugging() -> bool:
    """Whether ``CVPIPE_DEBUG`` asks for tracebacks (set, and not ``0``/``false``/``no``)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


class Failure(click.ClickException):
    """An exception turned into what the user sees: ``error: ...`` lines and an exit status."""

    def __init__(self, lines: list[str], exit_code: int):
        super().__init__(lines[0])
        self.lines = lines
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.lines[0]}", err=file is None, file=file)
        for line in self.lines[1:]:
            click.echo(f"  {line}", err=file is None, file=file)


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` with its whitespace (newlines too) collapsed, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure(exc: Exception) -> Failure:
    """What exception ``exc`` looks like to the user; see the module docstring."""
    from pipeline.config import ParamsError

    if isinstance(exc, ParamsError):
        if len(exc.lines) == 1:
            return Failure([f"invalid params: {exc.lines[0]}"], 2)
        return Failure(["invalid params:", *exc.lines], 2)
    if isinstance(exc, InputError):
        return Failure([exc.message, *exc.lines], 2)
    if isinstance(exc, FileNotFoundError):
        name = exc.filename if exc.filename is not None else one_line(str(exc))
        return Failure([f"no such file or folder: {name}"], 2)
    message = one_line(str(exc))
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if not debugging():
        line += f" (set {DEBUG_VARIABLE}=1 for the traceback)"
    return Failure([line], 1)


def _passes_through(exc: Exception) -> bool:
    """Exceptions Click itself turns into output and an exit status (usage errors, --help...)."""
    if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE  # `cvpipe ... | head`


class OneWayToFail:
    """Mixin for Click commands: any exception while the command runs becomes a :class:`Failure`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except Exception as exc:
            if _passes_through(exc):
                raise
            if debugging():
                traceback.print_exception(exc)
            raise failure(exc) from exc


class Stage(OneWayToFail, click.Command):
    """A stage's command (``@click.command(cls=Stage)``): fails in the one way described above."""


class StageGroup(OneWayToFail, click.Group):
    """A command group whose subcommands (and their subcommands) fail in the one way."""


def folder_option(flag: str, default: str | None, help: str | None = None, *,
                  dest: str | None = None, exists: bool = False) -> Callable[[F], F]:
    """``flag`` naming a folder, read as a :class:`~pathlib.Path`, its default shown in --help;
    ``dest`` is the parameter's name where it is not the flag's."""
    return click.option(flag, *([dest] if dest else []),
                        type=click.Path(file_okay=False, exists=exists, path_type=Path),
                        default=default, show_default=default is not None, help=help)


def file_option(flag: str, default: str | None, help: str | None = None, *,
                dest: str | None = None, exists: bool = False) -> Callable[[F], F]:
    """``flag`` naming a file; otherwise as :func:`folder_option`."""
    return click.option(flag, *([dest] if dest else []),
                        type=click.Path(dir_okay=False, exists=exists, path_type=Path),
                        default=default, show_default=default is not None, help=help)


params_option = file_option("--params", "params.yaml", "The params file to read and validate.",
                            dest="params_path")

hdf5_option = folder_option("--data", "data/hdf5", "Folder written by the hdf5 stage.", exists=True)


def training_outputs(model: str, live: str, checkpoint: str, checkpoint_help: str,
                     out_help: str = "Folder for model.keras and preprocess.json.",
                     live_help: str = "dvclive folder: metrics.json, per-epoch plots, curves.png.",
                     ) -> Callable[[F], F]:
    """The ``--out``, ``--live`` and ``--checkpoint`` options of a stage that trains a model."""
    options = [
        folder_option("--out", model, out_help),
        folder_option("--live", live, live_help, dest="live_dir"),
        folder_option("--checkpoint", checkpoint, checkpoint_help, dest="checkpoint_dir"),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def training_stage(name: str, outputs: tuple[str, str, str],
                   checkpoint_help: str = "Persistent folder for resuming after a kill.", *,
                   data: Callable[[F], F] = hdf5_option, **helps: str,
                   ) -> Callable[[Callable[..., Any]], click.Command]:
    """The command of a stage that trains a model: ``--params``, ``--data`` (the hdf5 folder
    unless ``data`` says otherwise), then :func:`training_outputs` (``outputs``: the model,
    dvclive and checkpoint folders; ``helps``: its ``out_help``/``live_help``)."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        function = training_outputs(*outputs, checkpoint_help, **helps)(function)
        return click.command(name=name, cls=Stage)(params_option(data(function)))

    return decorate


def load_or_exit(path: Path, inputs: tuple[str, ...] = ()) -> Params:
    """Validate the whole params file, and that the paths the keys ``inputs`` name (the ones
    this stage reads, e.g. ``ingest.source.path``) are there; on any error print each dotted
    key and exit with 2. Paths other stages read are not checked here."""
    from pipeline.config import ParamsError, load_params, require_inputs

    try:
        return require_inputs(load_params(path), *inputs)
    except ParamsError as exc:
        exit_listing(f"invalid params in {path}:", exc.lines)


def exit_listing(title: str, lines: list[str], code: int = 2) -> NoReturn:
    """Print ``title`` and one indented line per problem to stderr, then exit with ``code``."""
    click.echo(title, err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


def note(message: str | None) -> None:
    """Print ``note: message`` on stderr, where there is a message."""
    if message:
        click.echo(f"note: {message}", err=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and exit: 2 for bad params or input, 1 for a failed run."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def quiet_backend() -> None:
    """Silence TensorFlow's chatter and lighten Keras's start-up; call it before Keras is
    imported (:func:`hide_jax_from_tensorflow`, :class:`KerasWithoutScikitLearn`).

    ``TF_CPP_MIN_LOG_LEVEL`` no longer reaches the native lines TensorFlow logs before absl is
    initialised, so fd 2 goes through :func:`pipeline.io.native_log.filter_native_log` too
    (not with ``CVPIPE_DEBUG=1``, which shows everything); TensorFlow's Python logger keeps
    errors only (its warnings are about tracing).
    """
    import logging

    from pipeline.io.native_log import filter_native_log

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if keras_backend() == "tensorflow":
        hide_jax_from_tensorflow()
    hide_scikit_learn_from_keras()
    if not debugging():
        filter_native_log()
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class KerasWithoutScikitLearn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Hides scikit-learn from Keras while ``import keras`` runs, whenever that happens.

    ``import keras`` imports scikit-learn (scipy.stats with it) for ``keras.wrappers`` when it
    is installed, and does without it otherwise: about 1.7 of its 7.9 CPU-seconds here
    (``bench/keras_import.py``), for wrappers no stage uses. Installed by :func:`quiet_backend`,
    it finds nothing itself: asked for ``keras``, it lets the other finders find it and runs
    their loader with ``sklearn`` unimportable, then takes itself out of the way. A command that
    uses scikit-learn (metrics, class weights) imports it afterwards as before; Keras still
    loads only when a command imports it (a bad input found first costs no Keras start-up).
    """

    def __init__(self) -> None:
        self.loader: importlib.abc.Loader | None = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or "sklearn" in sys.modules:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # Keras's own from here on
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` raises ImportError
        try:
            self.loader.exec_module(module)
        finally:
            if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
                del sys.modules["sklearn"]


def hide_scikit_learn_from_keras() -> None:
    """Install :class:`KerasWithoutScikitLearn` unless Keras or scikit-learn is loaded already."""
    if "keras" not in sys.modules and "sklearn" not in sys.modules and not any(
            isinstance(finder, KerasWithoutScikitLearn) for finder in sys.meta_path):
        sys.meta_path.insert(0, KerasWithoutScikitLearn())


def keras_backend() -> str:
    """The backend Keras will pick, read as Keras reads it (``KERAS_BACKEND``, then
    ``$KERAS_HOME/keras.json`` or ``~/.keras/keras.json``), without importing it."""
    import json

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def hide_jax_from_tensorflow() -> None:
    """Keep ``import tensorflow`` from importing JAX (its TFLite module tries ``from jax import
    jit`` when JAX is installed and does without it): about a CPU-second saved per stage where
    both are installed, as in the dev environment. Nothing here uses JAX under TensorFlow."""
    if "jax" not in sys.modules and "tensorflow" not in sys.modules:
        sys.modules["jax"] = None  # type: ignore[assignment]  # `import jax` raises ImportError


def images_or_exit(section: str, folder: str, pattern: str) -> list[Path]:
    """The image files ``<section>.images`` and ``<section>.glob`` name; exit 2 if there are none."""
    from pipeline.io.images import list_images

    paths = list_images(folder, pattern)
    if not paths:
        exit_listing(f"{section}: no images",
                     [f"{section}.images: {folder} has no image files matching {pattern!r}"])
    return paths
