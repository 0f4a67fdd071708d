"""Hash-stable splits: fractions, stability under additions, duplicates together."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import GroupParams, ParamsError, SourceParams, SplitParams, validate
from pipeline.data.groups import group_keys, leakage, source_folder, split_manifest
from pipeline.data.split import assign, counts, split_rows
from pipeline.io.tables import read_csv


def rows(n: int, start: int = 0, classes: int = 4) -> list[dict[str, str]]:
    return [
        {"path": f"img{i}.png", "label": f"c{i % classes}",
         "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
        for i in range(start, start + n)
    ]


def where(groups: dict) -> dict[str, str]:
    return {row["path"]: name for name, members in groups.items() for row in members}


def test_fractions_are_met_in_every_class() -> None:
    params = SplitParams(val=0.2, test=0.1, train_dev=0.25)
    groups = split_rows(rows(8000), seed=1, params=params)
    total = Counter({name: len(members) for name, members in groups.items()})
    assert abs(total["test"] / 8000 - 0.1) < 0.015
    assert abs(total["val"] / 8000 - 0.2) < 0.02
    assert abs(total["train_dev"] / (total["train"] + total["train_dev"]) - 0.25) < 0.025
    per_class = counts(groups, ["c0", "c1", "c2", "c3"])
    for label in ("c0", "c1", "c2", "c3"):
        assert abs(per_class["test"]["per_class"][label] / 2000 - 0.1) < 0.025


def test_adding_images_never_moves_existing_ones() -> None:
    params = SplitParams(val=0.15, test=0.15, train_dev=0.1)
    before = where(split_rows(rows(500), seed=7, params=params))
    after = where(split_rows(rows(500) + rows(300, start=500), seed=7, params=params))
    assert {path: after[path] for path in before} == before
    assert len(after) == 800


def test_seed_changes_assignment_and_duplicates_stay_together() -> None:
    params = SplitParams()
    digest = hashlib.sha256(b"x").hexdigest()
    assert {assign(digest, 3, params) for _ in range(5)} == {assign(digest, 3, params)}
    moved = sum(assign(r["sha256"], 1, params) != assign(r["sha256"], 2, params) for r in rows(200))
    assert moved > 50
    twins = [{"path": "a.png", "label": "x", "sha256": digest},
             {"path": "b.png", "label": "x", "sha256": digest}]
    placed = where(split_rows(twins, seed=0, params=params))
    assert placed["a.png"] == placed["b.png"]


def test_no_train_dev_unless_asked() -> None:
    groups = split_rows(rows(300), seed=0, params=SplitParams(train_dev=0.0))
    assert groups["train_dev"] == []


# Groups: leakage-safe splits (split.group).

GROUPED = SplitParams(group=GroupParams(pattern=r"^(p\d+)_"))
SOURCE = Path("data/src")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def patients(n: int, classes: int = 4, seed: int = 0) -> list[dict[str, str]]:
    """Manifest rows of ``n`` patients with 1-12 images each, one class per patient."""
    rng = random.Random(seed)
    return [{"path": f"data/src/p{p}_{j}.png", "label": f"c{p % classes}",
             "sha256": sha(f"{p}-{j}"), "source_split": ""}
            for p in range(n) for j in range(rng.randint(1, 12))]


def patient_splits(parts: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, members in parts.items():
        for row in members:
            found.setdefault(Path(row["path"]).name.split("_")[0], set()).add(name)
    return found


def test_without_groups_the_split_is_exactly_the_old_one() -> None:
    manifest = [{"path": f"img{i}.png", "label": f"c{i % 4}", "sha256": sha(str(i)),
                 "source_split": ["", "", "train", "test", "val"][i % 5] if i >= 300 else ""}
                for i in range(400)]
    parts, report = split_manifest(manifest, 42, SplitParams(), SOURCE)
    assert parts == split_rows(manifest, 42, SplitParams())
    placed = where(parts)
    listing = "\n".join(f"{row['path']}:{placed[row['path']]}" for row in manifest)
    # The assignment of the split stage before groups existed (commit 9b9ccee).
    assert hashlib.sha256(listing.encode()).hexdigest() == (
        "763a9437cf2a4039184a8f2e5dc730c09cb05cddf7343fc655c978296c8c5dc7")
    assert report["group_by"] == "none" and report["groups"] == 400
    assert report["leaked_groups"] == 0 and report["ungrouped"] == []


@pytest.mark.parametrize(("method", "tolerance"), [("stable", 0.03), ("balanced", 0.01)])
def test_groups_never_straddle_and_every_class_is_split_alike(method: str, tolerance: float) -> None:
    params = SplitParams(group=GroupParams(pattern=r"^(p\d+)_", method=method))
    manifest = patients(300)
    parts, report = split_manifest(manifest, 42, params, SOURCE)
    assert all(len(found) == 1 for found in patient_splits(parts).values())
    assert report["leaked_groups"] == 0 and report["straddling_groups"] == []
    assert report["groups"] == 300 and sum(report["groups_per_split"].values()) == 300
    classes = ["c0", "c1", "c2", "c3"]
    achieved = counts(parts, classes)
    targets = {"test": 0.15, "val": 0.15, "train_dev": 0.07, "train": 0.63}
    for name, target in targets.items():
        for label in classes:
            assert abs(achieved[name]["per_class_fraction"][label] - target) < tolerance, (
                name, label, achieved[name]["per_class_fraction"])
    shuffled = manifest[::-1]
    assert where(split_manifest(shuffled, 42, params, SOURCE)[0]) == where(parts)


def test_stable_groups_barely_move_when_patients_are_added() -> None:
    before = patient_splits(split_manifest(patients(300), 42, GROUPED, SOURCE)[0])
    after = patient_splits(split_manifest(patients(330), 42, GROUPED, SOURCE)[0])
    moved = sum(before[p] != after[p] for p in before)
    assert moved < 30  # 22 of 300 when measured (balanced: 159)
    other_seed = patient_splits(split_manifest(patients(300), 43, GROUPED, SOURCE)[0])
    assert sum(before[p] != other_seed[p] for p in before) > 60


def test_groups_sharing_an_identical_image_are_joined() -> None:
    manifest = patients(40)
    copy = next(row for row in manifest if row["path"].startswith("data/src/p7_"))
    manifest.append({**copy, "path": "data/src/p8_copy.png", "label": "c0"})
    parts, report = split_manifest(manifest, 0, GROUPED, SOURCE)
    found = patient_splits(parts)
    assert found["p7"] == found["p8"] and len(found["p7"]) == 1
    assert report["joined_by_identical_images"] == [["p7", "p8"]]


def test_pattern_takes_its_first_group_or_the_whole_match() -> None:
    manifest = [{"path": p, "label": "x", "sha256": sha(p)} for p in
                ("data/src/a/p1_0.png", "data/src/b/p1_1.png", "data/src/p2/x.png", "/else/p3_0.png")]
    first = SplitParams(group=GroupParams(pattern=r"(p\d+)_"))
    assert group_keys(manifest, first, SOURCE)[0][:2] == ["p1", "p1"]
    whole = SplitParams(group=GroupParams(pattern=r"^[ab]/"))
    keys, ungrouped = group_keys(manifest, whole, SOURCE)
    assert keys[:2] == ["a/", "b/"]
    assert ungrouped == ["data/src/p2/x.png", "/else/p3_0.png"]
    assert keys[2] == f"sha256:{sha('data/src/p2/x.png')}"
    anchored = SplitParams(group=GroupParams(pattern=r"^(p\d+)/"))
    assert group_keys(manifest, anchored, SOURCE)[0][2] == "p2"  # relative to the source folder


def test_pattern_paths_are_relative_to_the_source_folder_or_the_csvs(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "labels.csv").write_text("path,label\n")
    for path, root in [(tmp_path / "set", tmp_path / "set"),
                       (tmp_path / "set" / "labels.csv", tmp_path / "set"),
                       (tmp_path / "gone" / "labels.csv", tmp_path / "gone")]:
        assert source_folder(SourceParams(kind="csv", path=str(path))) == root
    assert source_folder(SourceParams(kind="filename", path="data/x")) == Path("data/x")


def test_a_pattern_that_matches_no_path_names_its_key() -> None:
    params = SplitParams(group=GroupParams(pattern=r"^patient(\d+)"))
    manifest = patients(3)
    with pytest.raises(ParamsError, match=rf"split.group.pattern: .* none of the {len(manifest)} "):
        split_manifest(manifest, 0, params, SOURCE)


@pytest.mark.parametrize(("group", "key"), [
    ({"pattern": "(p\\d+"}, "split.group.pattern: not a valid regex"),
    ({"pattern": "p", "column": "patient"}, "split.group: set column or pattern, not both"),
    ({"column": "patient"}, "split.group.column: a column of the source CSV"),
    ({"method": "random"}, "split.group.method"),
])
def test_bad_group_params_name_their_key(group: dict, key: str) -> None:
    with pytest.raises(ParamsError) as caught:
        validate({"split": {"group": group}})
    assert caught.value.lines[0].startswith(key)


def test_splits_a_source_fixes_are_kept_and_their_leaks_listed() -> None:
    def fixed(name: str, split: str, digest: str = "") -> dict[str, str]:
        return {"path": f"data/src/{name}.png", "label": "c0", "sha256": digest or sha(name),
                "source_split": split}

    cut = [fixed("p900_0", "test"), fixed("p900_1", "val")]  # one patient, two fixed splits
    twins = [fixed("p901_0", "test", sha("twin")), fixed("p902_0", "val", sha("twin"))]
    parts, report = split_manifest([*patients(60), *cut, *twins], 5, GROUPED, SOURCE)
    placed = where(parts)
    assert [placed[row["path"]] for row in [*cut, *twins]] == ["test", "val", "test", "val"]
    assert report["straddling_groups"] == [{"group": "p900", "splits": {"val": 1, "test": 1}}]
    assert report["duplicates_across_splits"] == [{"sha256": sha("twin"), "splits": {
        "val": ["data/src/p902_0.png"], "test": ["data/src/p901_0.png"]}}]
    assert report["leaked_groups"] == 2  # p900, and p901 + p902 joined by their copy


def test_leakage_lists_groups_and_copies_across_splits() -> None:
    a, b, c = ({"path": f"{n}.png", "label": "x", "sha256": sha(n)} for n in "abc")
    copy = {"path": "d.png", "label": "x", "sha256": sha("c")}
    splits = {"train": [a, c], "val": [b], "test": [copy]}
    report = leakage(splits, {"a.png": "g1", "b.png": "g1", "c.png": "g2", "d.png": "g3"})
    assert report["straddling_groups"] == [{"group": "g1", "splits": {"train": 1, "val": 1}}]
    assert report["duplicates_across_splits"] == [{"sha256": sha("c"), "splits": {
        "train": ["c.png"], "test": ["d.png"]}}]
    assert report["leaked_groups"] == 2


def run_stage(command, args: list[str]):
    from click.testing import CliRunner

    return CliRunner().invoke(command, args)


def test_csv_column_groups_through_ingest_and_the_split_stage(in_tmp: Path) -> None:
    from stages.ingest import cli as ingest_cli
    from stages.split import cli as split_cli
    from tests.conftest import shipped_params_with, write_image

    lines = ["path,label,patient"]
    for p in range(12):
        for j in range(3):
            write_image(in_tmp / "set" / f"s{p}_{j}.png", 10 * p + j)
            lines.append(f"s{p}_{j}.png,{'ab'[p % 2]},{'' if p == 11 else f'pt{p}'}")
    (in_tmp / "set" / "manifest.csv").write_text("\n".join(lines) + "\n")
    source = {"kind": "csv", "path": "set"}

    def stages(group: dict) -> tuple:
        params = shipped_params_with(in_tmp, ingest={"source": source, "workers": 1},
                                     split={"group": group})
        ingested = run_stage(ingest_cli, ["--params", str(params), "--out", "ing",
                                          "--reports", "rep"])
        split = run_stage(split_cli, ["--params", str(params), "--manifest", "ing/manifest.csv",
                                      "--out", "parts", "--metrics", "res/counts.json"])
        return ingested, split

    ingested, split = stages({"column": "patient"})
    assert ingested.exit_code == 0 and split.exit_code == 0, (ingested.output, split.output)
    found: dict[str, set[str]] = {}
    for name in ("train", "train_dev", "val", "test"):
        for row in read_csv(in_tmp / "parts" / f"{name}.csv"):
            found.setdefault(row["group"] or row["path"], set()).add(name)
    assert all(len(splits) == 1 for splits in found.values()) and len(found) == 11 + 3
    report = json.loads((in_tmp / "res" / "leakage.json").read_text())
    assert report["group_by"] == "column" and report["groups"] == 14
    assert sorted(Path(p).name for p in report["ungrouped"]) == ["s11_0.png", "s11_1.png",
                                                                 "s11_2.png"]
    assert json.loads((in_tmp / "res" / "counts.json").read_text())["leaked_groups"] == 0

    ingested, _ = stages({"column": "visit"})  # no such column in the CSV
    assert ingested.exit_code == 2 and "set/manifest.csv has no column 'visit'" in ingested.output

    params = shipped_params_with(in_tmp, ingest={"source": source, "workers": 1})
    assert run_stage(ingest_cli, ["--params", str(params), "--out", "ing", "--reports",
                                  "rep"]).exit_code == 0  # a manifest without groups
    params = shipped_params_with(in_tmp, ingest={"source": source},
                                 split={"group": {"column": "patient"}})
    stale = run_stage(split_cli, ["--params", str(params), "--manifest", "ing/manifest.csv",
                                  "--out", "parts", "--metrics", "res/counts.json"])
    assert stale.exit_code == 2 and "ing/manifest.csv has no group column" in stale.output
    params = shipped_params_with(in_tmp, ingest={"source": source},
                                 split={"group": {"pattern": "^visit"}})
    nothing = run_stage(split_cli, ["--params", str(params), "--manifest", "ing/manifest.csv",
                                    "--out", "parts", "--metrics", "res/counts.json"])
    assert nothing.exit_code == 2 and "split.group.pattern: '^visit' matches none" in nothing.output
