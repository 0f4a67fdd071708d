"""The ``cvpipe`` command: every stage as a subcommand, plus ``params`` and ``data`` tools.

Each command only parses its options, calls one library function and prints; failures end the
one way :mod:`stages.common` describes (exit 2 for bad params or input, 1 with one line for a
failed run, the traceback with ``CVPIPE_DEBUG=1``). Subcommands are imported only when they run,
so ``cvpipe --help`` and the stages that need no model never import Keras.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import click

from stages.common import StageGroup, file_option, folder_option

#: subcommand -> module whose ``cli`` it is. Stages first, in pipeline order.
COMMANDS = {
    "embed": "stages.embed",
    "ingest": "stages.ingest",
    "split": "stages.split",
    "hdf5": "stages.hdf5",
    "train": "stages.train",
    "extract_features": "stages.extract_features",
    "train_logreg": "stages.train_logreg",
    "finetune": "stages.finetune",
    "evaluate": "stages.evaluate",
    "ensemble": "stages.ensemble",
    "dcgan": "stages.dcgan",
    "gan_score": "stages.gan_score",
    "srcnn_data": "stages.srcnn_data",
    "srcnn": "stages.srcnn",
    "srcnn_evaluate": "stages.srcnn_evaluate",
    "detect_data": "stages.detect_data",
    "detect_windows": "stages.detect_windows",
    "detect_train": "stages.detect_train",
    "hog_svm": "stages.hog_svm",
    "detect": "stages.detect",
    "detect_evaluate": "stages.detect_evaluate",
    "dream": "stages.dream",
    "stylize": "stages.stylize",
}


class LazyGroup(StageGroup):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *sorted(super().list_commands(ctx))]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            return importlib.import_module(COMMANDS[name]).cli
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands with their first docstring line, without importing the stages."""
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                doc = importlib.util.find_spec(COMMANDS[name])
                rows.append((name, _module_summary(doc.origin) if doc and doc.origin else ""))
            else:
                command = super().get_command(ctx, name)
                rows.append((name, command.get_short_help_str(60) if command else ""))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _module_summary(path: str) -> str:
    """The first docstring line of a stage module, read as text (no import)."""
    text = Path(path).read_text(encoding="utf-8")
    line = text.split('"""', 2)[1].strip().splitlines()[0] if '"""' in text else ""
    summary = line.split(": ", 1)[-1]
    return summary[:1].upper() + summary[1:]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cvpipe: a declarative, versioned DVC + Keras pipeline for computer vision.

    Edit params.yaml and run `dvc repro`; each stage below is also a command of its own
    (`cvpipe ingest --params params.yaml`).
    """


@main.group()
def params() -> None:
    """Check params files and print their schema."""


@params.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), default="params.yaml")
def params_check(file: Path) -> None:
    """Validate FILE (default params.yaml); exit 2 naming each bad key.

    Also checks that every input path it names is there (the source, the SRCNN images, a
    weights file), except folders under ``embed.out``, which the embed stage writes first.
    """
    from pipeline.config import missing_inputs
    from stages.common import exit_listing, load_or_exit

    params = load_or_exit(file)
    missing = missing_inputs(params, produced=(params.embed.out,))
    if missing:
        exit_listing(f"invalid params in {file}:", missing)
    click.echo(f"{file}: valid")


@params.command("schema")
def params_schema() -> None:
    """Print the JSON Schema of params.yaml."""
    from pipeline.config.reference import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@params.command("docs")
@click.option("--update", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Rewrite the table between the params-reference markers of this file.")
def params_docs(update: Path | None) -> None:
    """Print a Markdown reference of every params key (as in the README)."""
    from pipeline.config.reference import reference_markdown, replace_reference

    if update is None:
        click.echo(reference_markdown())
        return
    from pipeline.io.atomic import write_text

    write_text(update, replace_reference(update.read_text(encoding="utf-8")))
    click.echo(f"updated the params reference in {update}")


@main.group()
def data() -> None:
    """Bring datasets under DVC's version control."""


@data.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="Folder name under data/raw/ (default: PATH's name).")
def data_add(path: Path, name: str | None) -> None:
    """Copy PATH (a folder or a CSV with its images) into data/raw/NAME and `dvc add` it.

    Then point the pipeline at it with `ingest.source.path: data/raw/NAME`; git tracks only the
    small .dvc file, and `dvc push` sends the images to the remote.
    """
    from pipeline.tools.versioning import add_dataset
    from stages.common import fail

    try:
        target = add_dataset(path, Path("data/raw") / (name or path.name))
    except (FileExistsError, RuntimeError) as exc:
        fail(str(exc))
    click.echo(f"added {target} (tracked by {target}.dvc); set ingest.source.path: {target}")


@data.command("mnist")
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def data_mnist(source: Path, out: Path) -> None:
    """Write MNIST's four IDX .gz files in SOURCE as PNGs in OUT, with OUT/manifest.csv.

    The manifest keeps MNIST's official split (60,000 train, 10,000 test): point the pipeline at
    it with `ingest.source: {kind: csv, path: OUT/manifest.csv}`. The test images stay in test;
    `split.val` of the training images become the validation split.

    Example: cvpipe data mnist ../shared/data/mnist data/raw/mnist
    """
    from pipeline.data.idx import export_mnist

    count = export_mnist(source, out)
    click.echo(f"wrote {count} images and {out / 'manifest.csv'}")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-k", "--top-k", default=5, show_default=True, type=click.IntRange(min=1),
              help="How many labels to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Skip images with more pixels than this, undecoded [default: "
              "ingest.max_pixels's default, 40000000].")
def predict(model_dir: Path, images: tuple[Path, ...], top_k: int, as_json: bool,
            max_pixels: int | None) -> None:
    """Top-k labels with probabilities for IMAGES (files or folders).

    MODEL_DIR is a folder written by the train stage (models/train): model.keras plus
    preprocess.json, so images are decoded, resized and normalised exactly as in training.
    Or an export (models/export/onnx, or its model.onnx; also litert and saved_model): a
    folder with export.json, run on its own runtime; an ONNX export runs on onnxruntime
    without importing TensorFlow or Keras. Unreadable images, and those over --max-pixels, are
    listed on stderr and skipped (exit 2 if none is readable).

    Example: cvpipe predict models/train data/embedded/digits/3 --top-k 3
    """
    from stages.common import quiet_backend

    quiet_backend()
    from pipeline.tools.predict import predict as run_predict

    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    results, skipped = run_predict(model_dir, list(images), top_k, **limit)
    for path, reason in skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if as_json:
        click.echo(json.dumps([{"path": r.path, "top": [{"label": label, "probability": p}
                                                         for label, p in r.top]}
                               for r in results], indent=2))
        return
    for result in results:
        shown = "  ".join(f"{label} {p:.3f}" for label, p in result.top)
        click.echo(f"{result.path}\t{shown}")


#: ``cvpipe export --format`` choices: ``pipeline.config.export.EXPORT_FORMATS`` (not imported
#: here, so that ``cvpipe --help`` loads no pydantic). The export stage itself runs as
#: ``python -m stages.export``.
EXPORT_FORMATS = ("onnx", "saved_model", "litert")


@main.command(name="export")
@click.argument("model_dir", metavar="MODEL",
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS),
              help="onnx (onnxruntime), saved_model (TensorFlow Serving) or litert (.tflite).")
@folder_option("--out", None, "Folder to write, replaced as a whole [default: exports/FORMAT].")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=1e-4,
              show_default=True, help="Largest |p - p_keras| allowed on the check images.")
def export(model_dir: Path, fmt: str, out: Path | None, tolerance: float) -> None:
    """Export MODEL (a folder with model.keras and preprocess.json) as one format.

    The preprocessing is baked into the graph: the export takes uint8 images decoded as in
    training, any batch size, and returns class probabilities; export.json beside it gives the
    input, the classes and how to decode an image. The export is run by its own runtime on 64
    seeded random images against the Keras model: a different top class or a probability
    further than --tolerance fails (exit 1) and leaves the --out folder as it was.

    Example: cvpipe export models/train --format onnx && cvpipe predict exports/onnx digit.png
    """
    from stages.common import quiet_backend

    quiet_backend()
    from pipeline.export.parity import export_checked

    out = out or Path("exports") / fmt
    manifest, parity = export_checked(model_dir, fmt, out, tolerance)
    click.echo(f"export: {out}: {', '.join(manifest['files'])}, export.json")
    click.echo(f"export: top class as Keras's on {parity.rank1:.0%} of 64 random images, "
               f"max |p - p_keras| {parity.max_abs_diff:.2e}")


@main.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("n", type=click.IntRange(min=1))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the noise vectors.")
@click.option("--grid/--no-grid", default=True, show_default=True,
              help="Also write grid.png with all N images tiled.")
def generate(model: Path, n: int, out: Path, seed: int, grid: bool) -> None:
    """Sample N images from a trained DCGAN generator into the folder OUT.

    MODEL is the folder the dcgan stage wrote (models/dcgan) or its generator.keras. Writes
    OUT/sample_0000.png ... at the generator's size; the same --seed gives the same images.

    Example: cvpipe generate models/dcgan 64 samples/
    """
    from pipeline.generative.generator_file import generator_path
    from stages.common import quiet_backend

    path = generator_path(model)  # a missing generator exits 2 before Keras loads
    quiet_backend()
    from pipeline.generative.dcgan import write_samples

    write_samples(path, n, out, seed, grid)
    click.echo(f"wrote {n} images to {out}")


@main.command()
@click.argument("source", metavar="IN", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--scale", type=click.IntRange(2, 8), default=None,
              help="Enlargement factor [default: the factor the model was trained for].")
@folder_option("--model", "models/srcnn", dest="model_dir", exists=True,
               help="Folder written by the srcnn stage.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Skip images with more pixels than this, undecoded [default: "
              "ingest.max_pixels's default, 40000000].")
def upscale(source: Path, out: Path, scale: int | None, model_dir: Path,
            max_pixels: int | None) -> None:
    """Enlarge an image (or every image of a folder) with SRCNN.

    The image is enlarged bicubically by --scale, then SRCNN sharpens its luminance (colour stays
    bicubic, as in the paper). Any size works; the output is exactly scale times the input in
    each direction. IN a file: OUT is the output file (its extension picks the format). IN a
    folder: OUT is a folder, one PNG per image. Unreadable images, and those over
    --max-pixels, are listed and skipped.

    Example: cvpipe upscale photo.jpg photo_x3.png --scale 3
    """
    from stages.common import quiet_backend

    quiet_backend()
    from pipeline.generative.srcnn import upscale_files

    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    run = upscale_files(source, out, model_dir, scale, **limit)
    if run.scale != run.trained_scale:
        click.echo(f"note: the model was trained for x{run.trained_scale}, used at x{run.scale}",
                   err=True)
    for path, reason in run.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    for done in run.written:
        click.echo(f"{done.source} {done.before[0]}x{done.before[1]} -> {done.target} "
                   f"{done.after[0]}x{done.after[1]}")


@main.command()
@click.argument("a_rev")
@click.argument("b_rev", required=False)
@click.option("--fail-on", "fail_on", multiple=True, metavar="METRIC:DROP",
              help="Exit 1 when METRIC (a key such as rank1, or FILE:KEY) falls by more than "
              "DROP from A_REV to B_REV. Repeatable.")
@click.option("--metric", "patterns", multiple=True, metavar="GLOB",
              help="Show only metrics whose key matches GLOB (e.g. 'rank*'). Repeatable.")
@click.option("--all", "show_all", is_flag=True, help="Show unchanged metrics and params too.")
def compare(a_rev: str, b_rev: str | None, fail_on: tuple[str, ...], patterns: tuple[str, ...],
            show_all: bool) -> None:
    """Markdown tables of metric and param differences from A_REV to B_REV.

    Uses `dvc metrics diff` and `dvc params diff`; B_REV omitted means the workspace. Metrics
    files are git-tracked, so any two commits compare without pulling data.

    Example: cvpipe compare HEAD~1 HEAD --fail-on rank1:0.01
    """
    from pipeline.tools.compare import Threshold
    from pipeline.tools.compare import compare as compare_revisions
    from stages.common import fail

    try:
        thresholds = [Threshold.parse(text) for text in fail_on]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    try:
        text, problems = compare_revisions(a_rev, b_rev, Path.cwd(), patterns, show_all, thresholds)
    except RuntimeError as exc:  # dvc could not diff: most often a revision that does not exist
        fail(str(exc), 2)
    click.echo(text)
    for line in problems:
        click.echo(f"regression: {line}", err=True)
    if problems:
        sys.exit(1)


@main.command(name="metrics")
@click.argument("targets", nargs=-1)
@click.option("--width", type=click.IntRange(min=40), default=None,
              help="Line width (default: the terminal's).")
def metrics(targets: tuple[str, ...], width: int | None) -> None:
    """The workspace's metrics one file at a time, wrapped to the terminal.

    The same numbers as `dvc metrics show [TARGETS]`, whose single table has a column for every
    distinct key of every file; here each file is a heading and its keys follow as `key value`.
    """
    import shutil

    from pipeline.tools.metrics_view import read_metrics, render

    width = width or shutil.get_terminal_size((120, 24)).columns
    click.echo(render(read_metrics(Path.cwd(), targets), width))


@main.command(name="exp-grid")
@click.argument("path")
@click.option("--param", "keys", multiple=True, required=True, metavar="KEY",
              help="Params key to sort and caption by (repeat for several).")
@click.option("--exp", "names", multiple=True, metavar="NAME",
              help="Only these experiments (repeat); default: every one dvc exp show lists.")
@file_option("--out", "exp_grid.png", "The PNG to write.")
@click.option("--cols", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--tile", default=192, show_default=True, type=click.IntRange(min=16),
              help="Side of each picture's square, in pixels.")
def exp_grid(path: str, keys: tuple[str, ...], names: tuple[str, ...], out: Path, cols: int,
             tile: int) -> None:
    """Tile the image PATH of each experiment into one grid, captioned with --param values.

    PATH must be a cached output (read from DVC's cache at each experiment's commit), for
    example results/stylize/stylized.png after a queued sweep:

    \b
    dvc exp run --queue -S 'stylize.style_weight=1,10,100,1000' && dvc queue start
    cvpipe exp-grid results/stylize/stylized.png --param stylize.style_weight
    """
    from pipeline.tools.exp_grid import exp_grid as draw

    drawn = draw(Path.cwd(), path, keys, out, names, cols, (tile, tile))
    click.echo(f"exp-grid: {len(drawn)} experiments ({', '.join(drawn)}) -> {out}")


@main.group()
def search() -> None:
    """Hyperparameter search with Optuna, each trial a DVC experiment ranked on the val split.

    `run` runs the study (adaptive samplers, pruning, many workers); `show` ranks its trials;
    `report` writes the table and Optuna's plots; `queue` hands every trial to `dvc queue` at
    once. Example file: experiments/search.yaml.
    """


_SPEC = click.argument("spec_path", metavar="SPEC",
                       type=click.Path(dir_okay=False, exists=True, path_type=Path))
_STORAGE = click.option("--storage", help="Optuna storage URL (overrides the file's): "
                        "journal:PATH, sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB.")


def _load_search(spec_path: Path):
    from pipeline.config import ParamsError
    from pipeline.search.space import load_spec
    from stages.common import exit_listing

    try:
        return load_spec(spec_path)
    except ParamsError as exc:
        exit_listing(f"invalid search file {spec_path}:", exc.lines)


def _quiet_optuna() -> None:
    """Optuna's INFO lines and its warnings about experimental options (multivariate TPE)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@search.command("run")
@_SPEC
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Trials at a time on this machine (default: the file's workers).")
@_STORAGE
@file_option("--params", "params.yaml", dest="params_path", help="Params the trials override.")
def search_run(spec_path: Path, workers: int | None, storage: str | None,
               params_path: Path) -> None:
    """Run SPEC's study: each trial is `dvc exp run --temp TARGET -n NAME-NNN -S ...`.

    The space, the pruner and the storage are checked before anything runs (exit 2 naming the
    key or URL). Trials stop at TARGET (a training stage), so the test split is scored only
    after `dvc exp apply BEST && dvc repro`. Run the same command on another machine with the
    same storage (a database URL) and git/DVC remotes to add workers; set `push: REMOTE` in the
    file so each machine pushes its experiments (exit 1 after the study, listing any that
    could not be pushed).
    """
    from pipeline.config import ParamsError
    from pipeline.search import table
    from pipeline.search.runner import Runner, check
    from pipeline.search.study import shown, storage_url
    from stages.common import exit_listing

    spec = _load_search(spec_path)
    _quiet_optuna()
    url = storage_url(spec, Path.cwd(), storage)
    try:
        check(spec, params_path, url)
    except ParamsError as exc:
        exit_listing(f"invalid search file {spec_path}:", exc.lines)
    count = workers or spec.workers
    click.echo(f"search {spec.name}: {spec.sampler} sampler, {spec.budget()} trials, "
               f"{count} worker(s), storage {shown(url)}")
    runner = Runner(spec, Path.cwd(), url, announce=lambda line: click.echo(line))
    runner.run(count)
    ranked = table.rows(spec, runner.study())
    click.echo(table.markdown(spec, ranked))
    _say_best(ranked)
    if runner.push_failures:
        click.echo(f"error: {len(runner.push_failures)} experiment(s) not pushed to "
                   f"{spec.push}; run the same dvc exp push once the remote answers:", err=True)
        for line in runner.push_failures:
            click.echo(f"  {line}", err=True)
        sys.exit(1)


def _say_best(ranked) -> None:
    from pipeline.search.table import best

    top = best(ranked)
    if top is not None:
        click.echo(f"Best on val: {top['name']}. Evaluate it on test once: "
                   f"dvc exp apply {top['name']} && dvc repro")


@search.command("show")
@_SPEC
@_STORAGE
def search_show(spec_path: Path, storage: str | None) -> None:
    """Rank SPEC's trials by its validation metric, best first (Markdown table).

    Reads the study's storage; for a search that was only queued (`search queue`), reads
    `dvc exp show` instead.
    """
    from pipeline.io.errors import InputError
    from pipeline.search import table
    from pipeline.search.study import open_storage, open_study, storage_url

    spec = _load_search(spec_path)
    _quiet_optuna()
    url = storage_url(spec, Path.cwd(), storage)
    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).exists():
        _show_queued(spec)
        return
    ranked = table.rows(spec, open_study(spec, open_storage(url)))
    if not ranked:
        raise InputError(f"study {spec.name} has no trials yet: `cvpipe search run {spec_path}`")
    click.echo(table.markdown(spec, ranked))
    _say_best(ranked)


def _show_queued(spec) -> None:
    from pipeline.search.experiments import experiments
    from stages.common import fail

    try:
        found = [r for r in experiments(Path.cwd()) if str(r["name"]).startswith(f"{spec.name}-")]
    except RuntimeError as exc:  # dvc exp show failed: not a DVC repository, most often
        fail(str(exc), 2)
    if not found:
        click.echo(f"no experiments named {spec.name}-* yet", err=True)
        sys.exit(1)
    from pipeline.search import table

    ranked = table.experiment_rows(spec, found)
    click.echo(table.markdown(spec, ranked))
    _say_best(ranked)


@search.command("report")
@_SPEC
@folder_option("--out", None, "Folder to write (default: experiments/NAME/).")
@_STORAGE
def search_report(spec_path: Path, out: Path | None, storage: str | None) -> None:
    """Write SPEC's results to a folder (default experiments/NAME/): the ranked table
    (ranked.md), Optuna's parameter importances (importances.json/.png, fANOVA seeded with the
    file's seed), the optimisation history (history.json/.png) and a parallel-coordinate plot
    (parallel.png), with a dvc.yaml that declares them as plots, so `dvc plots show` draws them.

    Importances need two completed trials that differ; otherwise importances.json says why.
    The table names the best trial's experiment: evaluate it on the test split once with
    `dvc exp apply NAME && dvc repro`.
    """
    from pipeline.search.report import write_report
    from pipeline.search.study import open_storage, open_study, storage_url

    spec = _load_search(spec_path)
    _quiet_optuna()
    study = open_study(spec, open_storage(storage_url(spec, Path.cwd(), storage)))
    written = write_report(spec, study, out or Path("experiments") / spec.name)
    for name, path in written.items():
        click.echo(f"{name}: {path}")


@search.command("queue")
@_SPEC
@file_option("--params", "params.yaml", dest="params_path", help="Params the trials override.")
@click.option("--dry-run", is_flag=True, help="Print the dvc commands without queueing them.")
def search_queue(spec_path: Path, params_path: Path, dry_run: bool) -> None:
    """Draw all of SPEC's trials now and queue each as `dvc exp run --queue TARGET -S ...`.

    The sampler has no results to learn from here, so this suits random and grid search;
    `cvpipe search run` is the adaptive path. Every trial is checked against the params schema
    first. Then `dvc queue start` runs them and `cvpipe search show SPEC` ranks them.
    """
    import shlex
    import subprocess

    from pipeline.config import ParamsError
    from pipeline.search.experiments import DVC, set_args
    from pipeline.search.runner import experiment_name, sample_up_front
    from pipeline.search.space import check_space
    from stages.common import exit_listing, fail

    spec = _load_search(spec_path)
    _quiet_optuna()
    try:
        check_space(spec, params_path)
    except ParamsError as exc:
        exit_listing(f"invalid search file {spec_path}:", exc.lines)
    sets = sample_up_front(spec)
    for number, overrides in enumerate(sets):
        command = [*DVC, "exp", "run", "--queue", spec.target, "-n",
                   experiment_name(spec, number), *set_args(overrides)]
        click.echo(shlex.join(["dvc", *command[3:]]))
        if not dry_run and subprocess.run(command).returncode != 0:
            fail(f"queueing trial {number + 1} failed")
    if not dry_run:
        click.echo(f"queued {len(sets)} experiments: run them with `dvc queue start`, then "
                   f"`cvpipe search show {spec_path}`")


@main.command("ablate")
@click.argument("knobs", nargs=-1, metavar="[KNOB]...")
@click.option("--target", default="train", show_default=True,
              help="Training stage the experiments run up to (never evaluate).")
@click.option("--metric", default=None, metavar="FILE:KEY",
              help="Validation metric (default: the target's, e.g. "
                   "results/train/metrics.json:val.accuracy).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs of the baseline and of each knob; repeat R sets base.seed to the "
                   "current seed + R.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Experiments at a time on this machine.")
@click.option("--prefix", default="ablate", show_default=True,
              help="Experiments are named PREFIX-KNOB-R; none of them may exist yet.")
@file_option("--params", "params.yaml", dest="params_path", help="The params the knobs turn off.")
@folder_option("--out", "results/ablate", "Folder for PREFIX.md (the table) and PREFIX.json.")
def ablate(knobs: tuple[str, ...], target: str, metric: str | None, repeats: int, workers: int,
           prefix: str, params_path: Path, out: Path) -> None:
    """Turn off one knob at a time, each run a DVC experiment, to see what is working.

    KNOB is a preset or NAME=KEY=VALUE[,KEY=VALUE...] (values as YAML); none given: every
    preset of TARGET. Presets: train and detect_train: augmentation, dropout, batch_norm, l2,
    mean_subtraction; finetune: pretrained_weights, augmentation, dropout; extract_features
    and train_logreg: pretrained_weights. A knob already off in the params is listed, not run.
    Every override is checked against the params schema before anything runs (exit 2 naming
    the key). The baseline and each knob run as `dvc exp run --temp TARGET -n PREFIX-KNOB-R`;
    the table gives each knob's mean change of the validation metric against the baseline run
    with the same seed, and its standard error over the repeats.

    \b
    cvpipe ablate --repeats 3 --workers 2
    cvpipe ablate dropout l2 lr=train.lr=0.01 --prefix abl2
    """
    from pipeline.search import ablation

    summary = ablation.ablate(Path.cwd(), knobs, target=target, metric=metric,
                              repeats=repeats, workers=workers, prefix=prefix,
                              params_file=params_path, out=out,
                              announce=lambda line: click.echo(line))
    click.echo(ablation.markdown(summary))
    click.echo(f"ablate: {out / f'{prefix}.md'} and {out / f'{prefix}.json'}")
    failed = [k["name"] for k in summary["knobs"] if k["state"] == "failed"]
    if failed or summary["baseline"]["mean"] is None:
        click.echo(f"error: runs failed ({', '.join(failed) or 'baseline'}); logs in "
                   f".cvpipe/ablate/{prefix}/", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
