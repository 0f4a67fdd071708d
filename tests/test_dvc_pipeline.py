"""End to end: `dvc repro` in a temporary git repo on a shrunk config, then data versioning.

One repository is reproduced once for the module; each test leaves it as it found it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.data.embedded import write_digits
from tests.conftest import MAX_METRICS, copy_project, numbers_in, run

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
CACHED_OUTPUTS = ("data/ingest", "data/split", "data/hdf5", "models/train", "data/features",
                  "models/logreg", "models/finetune", "models/members", "data/srcnn",
                  "models/dcgan", "models/srcnn", "data/detect", "data/detect_windows",
                  "models/detect_train", "models/hog_svm", "results/detect", "models/export")


def shrink(params: dict, source: Path) -> dict:
    """Small and fast: an outside source, 12x12 grey, ShallowNet, 2 epochs, no augmentation;
    the transfer branches at the backbone's smallest input, one epoch per fine-tuning phase; one
    ensemble member beside models/train; a narrow one-epoch DCGAN and SRCNN; 24 detection
    scenes, a two-epoch ShallowNet window classifier and one C for the SVM; two octaves of two
    DeepDream steps at 96 px, three style-transfer steps at 40 px."""
    params["ingest"]["source"].update(kind="folder", path=str(source))
    params["ingest"]["channels"] = 1
    params["hdf5"]["image_size"] = [12, 12]
    params["train"].update(model="shallownet", epochs=2, batch_size=64, lr=0.05)
    params["train"]["augment"] = {"flip": False, "rotation": 0.0, "shift": 0.0, "zoom": 0.0,
                                  "contrast": 0.0}
    params["train_logreg"]["grid"] = {"C": [0.1, 1.0]}
    params["finetune"]["warmup"]["epochs"] = 1
    params["finetune"]["unfreeze"]["epochs"] = 1
    params["ensemble"]["members"] = {"seed-1": {"base": {"seed": 1}}}
    params["dcgan"].update(image_size=[12, 12], generator_filters=[8, 4], discriminator_filters=[4, 8],
                           epochs=1, batch_size=64)
    params["gan_score"]["samples"] = 50
    params["srcnn_data"]["stride"] = 40
    params["srcnn"].update(epochs=1, filters=[8, 4])
    params["embed"]["scenes"]["images"] = 24
    params["detect_train"].update(model="shallownet", epochs=2)
    params["hog_svm"].update(c_values=[0.1], folds=2, mining_max=200)
    params["detect"]["step"] = 8
    params["detect_evaluate"]["draw"] = 2
    params["dream"].update(max_side=96, octaves=2, iterations=2, log_every=1)
    params["stylize"].update(image_size=[40, 40], iterations=3, log_every=2)
    return params


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under the cached outputs."""
    out = {}
    for name in CACHED_OUTPUTS:
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("e2e")
    source = base / "source"
    write_digits(source)
    (source / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    root = copy_project(base / "repo")
    params = shrink(yaml.safe_load((root / "params.yaml").read_text()), source)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    run([*DVC, "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first run"], root)
    return root


def test_repro_writes_metrics_and_lists_the_corrupt_image(repo: Path) -> None:
    metrics = json.loads((repo / "results/evaluate/train/metrics.json").read_text())
    assert metrics["split"] == "test" and 0.5 < metrics["rank1"] <= 1.0
    assert "rank5" in metrics and "per_class" not in metrics
    report = json.loads((repo / "results/evaluate/train/report.json").read_text())
    assert len(report["classes"]) == 10 and all(c in report["report"] for c in report["classes"])
    for branch in ("logreg", "finetune"):
        scored = json.loads((repo / f"results/evaluate/{branch}/metrics.json").read_text())
        assert scored["images"] == metrics["images"] and 0.0 <= scored["rank1"] <= 1.0
    logreg = json.loads((repo / "results/train_logreg/metrics.json").read_text())
    assert logreg["best_params"]["C"] in (0.1, 1.0)
    finetune = json.loads((repo / "results/finetune/metrics.json").read_text())
    assert finetune["step"] == 1
    train = json.loads((repo / "results/train/metrics.json").read_text())
    assert train["step"] == 1 and "loss" in train["train"]
    rejects = (repo / "results/ingest/rejects.csv").read_text()
    assert "broken.png,not-an-image" in rejects
    shown = json.loads(run([*DVC, "metrics", "show", "--json"], repo).stdout)
    assert "results/evaluate/logreg/metrics.json" in json.dumps(shown)
    # Every metrics file the pipeline declares holds headline numbers only.
    files = {path: entry.get("data", {}) for rev in shown.values()
             for path, entry in rev["data"].items()}
    assert set(yaml.safe_load((repo / "dvc.yaml").read_text())["metrics"]) <= set(files)
    for path, data in files.items():
        assert 0 < numbers_in(data) <= MAX_METRICS, (path, numbers_in(data), data)
    ingest = json.loads((repo / "results/ingest/report.json").read_text())
    assert ingest["rejects_by_reason"] == {"not-an-image": 1}
    assert len(ingest["images_per_class"]) == 10
    counts = json.loads((repo / "results/split/report.json").read_text())
    assert sum(part["total"] for part in counts.values()) == sum(ingest["images_per_class"].values())
    assert (repo / "results/train/plots/metrics/train/loss.tsv").exists()
    assert (repo / "results/evaluate/finetune/confusion.png").stat().st_size > 0
    # 5-crop oversampling and Ng's gaps (a train-dev split exists) are in the metrics, each
    # split's error in the report.
    assert metrics["oversampled"]["views"] == 5 and 0.0 <= metrics["oversampled"]["rank1"] <= 1
    assert {"variance", "data_mismatch"} <= set(metrics["diagnosis"])
    assert report["diagnosis"]["errors"]["test"] == pytest.approx(1 - metrics["rank1"])
    assert set(report["diagnosis"]["errors"]) == {"train", "train_dev", "val", "test"}
    assert "| train_dev |" in (repo / "results/evaluate/train/diagnosis.md").read_text()
    assert (repo / "results/evaluate/logreg/misclassified.png").stat().st_size > 0
    ensemble = json.loads((repo / "results/ensemble/metrics.json").read_text())
    members = json.loads((repo / "results/ensemble/report.json").read_text())["members"]
    assert set(members) == {"seed-1", "models/train"} and "members" not in ensemble
    assert members["models/train"]["rank1"] == pytest.approx(metrics["rank1"])
    assert ensemble["best_member_rank1"] == max(m["rank1"] for m in members.values())
    assert "results/ensemble/metrics.json" in json.dumps(shown)
    # Shipping: models/train as ONNX, SavedModel and LiteRT, each scored by its own runtime.
    shipped = json.loads((repo / "results/export/metrics.json").read_text())
    assert shipped["images"] == metrics["images"]
    assert shipped["rank1_keras"] == pytest.approx(metrics["rank1"])
    for fmt in ("onnx", "saved_model", "litert"):
        assert shipped[fmt]["rank1"] == shipped["rank1_keras"]
        assert shipped[fmt]["max_abs_diff"] <= 1e-4
        assert (repo / "models/export" / fmt / "export.json").is_file()
    # Grad-CAM over models/train's test mistakes and one correct image per class, as image plots.
    explained = json.loads((repo / "results/explain/metrics.json").read_text())
    overlays = sorted((repo / "results/explain/images").glob("*.png"))
    assert explained["images"] == len(overlays) >= explained["correct_explained"] > 0
    assert explained["mistakes_explained"] == min(8, explained["mistakes_found"])
    assert explained["rank1"] == pytest.approx(metrics["rank1"], abs=1e-6)
    assert (repo / "results/explain/grid.png").stat().st_size > 0
    assert {"results/explain/images", "results/explain/grid.png"} <= {
        p if isinstance(p, str) else next(iter(p))
        for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]}
    # A model card beside every model (the training lifecycle's and the two scikit-learn ones),
    # naming its data's hash.
    for folder, data in (("models/train", "data/hdf5/train.h5"),
                         ("models/logreg", "data/features/train.h5"),
                         ("models/hog_svm", "data/detect_windows/train.h5"),
                         ("models/finetune", "data/hdf5/train.h5"),
                         ("models/members/seed-1", "data/hdf5/train.h5"),
                         ("models/dcgan", "data/hdf5/train.h5"),
                         ("models/srcnn", "data/srcnn/train.h5"),
                         ("models/detect_train", "data/detect_windows/train.h5")):
        card = json.loads((repo / folder / "card.json").read_text())
        assert card["data"]["path"] == data, folder
        assert card["data"]["sha256"] == hashlib.sha256((repo / data).read_bytes()).hexdigest()
        assert (repo / folder / "MODEL_CARD.md").read_text().startswith("# Model card: ")
    assert json.loads((repo / "models/logreg/card.json").read_text())["metrics"] == logreg
    # Both generative branches: the GAN scored by models/train, SRCNN against bicubic.
    gan = json.loads((repo / "results/gan_score/metrics.json").read_text())
    assert gan["generated"]["images"] == 50 and gan["classes"] == 10
    assert (repo / "results/dcgan/plots/images/samples/epoch_001.png").exists()
    sr = json.loads((repo / "results/srcnn_evaluate/metrics.json").read_text())
    assert sr["images"] == 1 and sr["scale"] == 3 and sr["bicubic_psnr"] > 20
    assert sr["skipped"] == 0
    assert json.loads((repo / "results/srcnn_evaluate/report.json").read_text()) == {"skipped": []}
    assert (repo / "results/srcnn_evaluate/crops.png").stat().st_size > 0
    # Detection: scenes -> windows -> CNN and HOG + SVM -> boxes scored by pycocotools.
    scenes = json.loads((repo / "results/detect_data/summary.json").read_text())
    assert scenes["train"]["images"] + scenes["test"]["images"] == 24 and scenes["rejected"] == 0
    detected = json.loads((repo / "results/detect_evaluate/metrics.json").read_text())
    assert set(detected) == {"cnn", "hog"}
    for numbers in detected.values():
        assert 0.0 <= numbers["ap50"] <= 1.0 and 0.0 <= numbers["map"] <= numbers["ap50"]
    hog = json.loads((repo / "results/hog_svm/metrics.json").read_text())
    assert hog["c"] == 0.1 and hog["false_positives_after"] <= hog["false_positives_before"]
    assert (repo / "results/detect_evaluate/pr/cnn.csv").read_text().startswith("recall,precision")
    assert (repo / "results/detect_evaluate/images/hog_01.png").stat().st_size > 0
    # The networks run in reverse: per-step losses as plots, images, before/after.
    dream = json.loads((repo / "results/dream/metrics.json").read_text())
    assert dream["octaves"] == 2 and dream["steps"] == 4
    assert len((repo / "results/dream/plots/metrics/loss.tsv").read_text().splitlines()) == 5
    assert list((repo / "results/dream/plots/images").rglob("*.png"))
    style = json.loads((repo / "results/stylize/metrics.json").read_text())
    assert style["steps"] == 3 and style["style_fraction"] > 0
    for name in ("content", "style", "tv", "total"):
        assert (repo / f"results/stylize/plots/metrics/{name}.tsv").exists()
    assert Image.open(repo / "results/stylize/stylized.png").size == (40, 40)


def test_second_repro_is_a_no_op(repo: Path) -> None:
    out = run([*DVC, "repro"], repo).stdout
    assert "Data and pipelines are up to date." in out
    assert "Running stage" not in out


def test_artifacts_get_returns_the_committed_model(repo: Path, tmp_path: Path) -> None:
    """dvc.yaml's `artifacts:` make models/train the registry's `cnn`: registered with GTO (a git
    tag), `dvc artifacts get` gives back the committed folder byte for byte, from the DVC cache
    (offline: no Studio token, so DVC's own remote path)."""
    run(["gto", "register", "cnn", "--version", "v1.0.0"], repo)  # the venv's gto, first on PATH
    try:
        run([*DVC, "artifacts", "get", ".", "cnn", "-o", str(tmp_path / "cnn")], repo)
    finally:
        run(["git", "tag", "-d", "cnn@v1.0.0"], repo)
    got = {p.relative_to(tmp_path / "cnn"): p.read_bytes()
           for p in (tmp_path / "cnn").rglob("*") if p.is_file()}
    committed = {p.relative_to(repo / "models/train"): p.read_bytes()
                 for p in (repo / "models/train").rglob("*") if p.is_file()}
    assert got == committed and Path("MODEL_CARD.md") in got


def test_changing_one_image_reruns_from_ingest(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    image = Path(params["ingest"]["source"]["path"]) / "7" / sorted(
        p.name for p in (Path(params["ingest"]["source"]["path"]) / "7").iterdir())[0]
    original = image.read_bytes()
    try:
        shutil.copyfile(image.parent.parent / "1" / sorted(
            (image.parent.parent / "1").iterdir())[0].name, image)
        status = json.loads(run([*DVC, "status", "--json"], repo).stdout)
        assert set(status) == {"ingest"}
        dry = run([*DVC, "repro", "--dry"], repo).stdout
        assert "Running stage 'ingest'" in dry and "Running stage 'embed'" not in dry
    finally:
        image.write_bytes(original)
    assert json.loads(run([*DVC, "status", "--json"], repo).stdout) == {}


def test_push_delete_pull_restores_identical_outputs(repo: Path, tmp_path: Path) -> None:
    run([*DVC, "remote", "add", "--local", "-f", "-d", "scratch", str(tmp_path / "remote")], repo)
    before = digests(repo)
    run([*DVC, "push"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    for name in CACHED_OUTPUTS:
        shutil.rmtree(repo / name)
    run([*DVC, "pull"], repo)
    assert digests(repo) == before
    assert json.loads(run([*DVC, "status", "--json"], repo).stdout) == {}


def test_checkout_of_older_commit_restores_its_model(repo: Path) -> None:
    """A params change retrains a model (logistic regression: DVC's checkout is the same for
    every output, and this one needs no Keras start-up); checking out either commit brings
    back every output as it was at that commit."""
    first = digests(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_logreg"]["grid"] = {"C": [0.001]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([*DVC, "repro", "train_logreg"], repo).stdout
    assert "Running stage 'train_logreg'" in out and "Running stage 'extract_features'" not in out
    run(["git", "commit", "-qam", "a smaller C"], repo)
    second = digests(repo)
    assert second["models/logreg/model.joblib"] != first["models/logreg/model.joblib"]
    run(["git", "checkout", "-q", "HEAD~1"], repo)
    run([*DVC, "checkout"], repo)
    assert digests(repo) == first
    run(["git", "checkout", "-q", "main"], repo)
    run([*DVC, "checkout"], repo)
    assert digests(repo) == second


def test_data_add_tracks_a_folder_with_dvc(repo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    write_digits(folder)
    done = run([sys.executable, "-m", "stages.cli", "data", "add", str(folder), "--name", "mine"],
               repo)
    assert "ingest.source.path: data/raw/mine" in done.stdout
    assert (repo / "data/raw/mine.dvc").is_file()
    assert run(["git", "check-ignore", "-q", "data/raw/mine"], repo, check=False).returncode == 0
    assert run(["git", "check-ignore", "-q", "data/raw/mine.dvc"], repo,
               check=False).returncode == 1
    again = run([sys.executable, "-m", "stages.cli", "data", "add", str(folder), "--name", "mine"],
                repo, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


