"""Params validation: every error names the dotted key; invalid files write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params, validate
from pipeline.config.reference import reference_markdown, replace_reference
from tests.conftest import ROOT, venv_env


def defaults() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ParamsError) as info:
        validate(data)
    return info.value.lines


def test_shipped_params_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    params = load_params(ROOT / "params.yaml")
    assert params.train.model in {"lenet", "shallownet"}


def test_negative_lr_names_key_and_value() -> None:
    data = defaults()
    data["train"]["lr"] = -1
    assert errors_of(data) == ["train.lr: Input should be greater than 0, got -1"]


def test_unknown_nested_key_is_named() -> None:
    data = defaults()
    data["ingest"]["source"]["colour"] = "red"
    assert errors_of(data) == ["ingest.source.colour: unknown key"]


def test_enum_and_range_errors_are_all_reported() -> None:
    data = defaults()
    data["hdf5"]["resize"] = "squash"
    data["split"]["test"] = 1.5
    lines = errors_of(data)
    assert any(line.startswith("hdf5.resize: Input should be 'simple' or 'aspect'") for line in lines)
    assert any(line.startswith("split.test: Input should be less than 1") for line in lines)


def test_fractions_must_leave_training_data() -> None:
    data = defaults()
    data["split"].update(val=0.5, test=0.5)
    assert errors_of(data) == ["split: val + test must be < 1, got 1"]


def test_pattern_needs_label_group() -> None:
    data = defaults()
    data["ingest"]["source"]["pattern"] = r"^(\w+)\."
    assert errors_of(data) == ["ingest.source: pattern needs a named group (?P<label>...)"]


def test_missing_source_path(tmp_path: Path) -> None:
    """The schema checks values; the path is checked by the stage that reads it."""
    from pipeline.config import missing_inputs, require_inputs

    data = defaults()
    data["ingest"]["source"]["path"] = str(tmp_path / "nowhere")
    data["srcnn_data"]["images"] = str(tmp_path)  # present whether or not embed has run
    params = validate(data)
    expected = f"ingest.source.path: does not exist: {tmp_path / 'nowhere'}"
    assert missing_inputs(params, produced=(params.embed.out,)) == [expected]
    with pytest.raises(ParamsError) as info:
        require_inputs(params, "ingest.source.path")
    assert info.value.lines == [expected]
    require_inputs(params, "backbone.weights", "srcnn_data.images")  # not the stages' business


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        load_params(tmp_path / "list.yaml")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "broken.yaml")


def cvpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=cwd, env={
        **venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)


def test_check_command_exits_2_naming_unknown_key(tmp_path: Path) -> None:
    data = defaults()
    data["train"]["epochz"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = cvpipe("params", "check", str(bad), cwd=ROOT)
    assert done.returncode == 2
    assert "train.epochz: unknown key" in done.stderr


def test_check_command_accepts_shipped_file() -> None:
    done = cvpipe("params", "check", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def test_invalid_params_stop_a_stage_before_it_writes(tmp_path: Path) -> None:
    data = defaults()
    data["ingest"]["max_reject_fraction"] = 2
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "stages.embed", "--params", str(bad)], cwd=tmp_path,
        env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "ingest.max_reject_fraction: Input should be less than or equal to 1, got 2" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_schema_is_json_schema_with_every_section() -> None:
    done = cvpipe("params", "schema", cwd=ROOT)
    schema = json.loads(done.stdout)
    assert set(schema["properties"]) == set(defaults())
    assert schema["additionalProperties"] is False


def test_reference_lists_every_leaf_key() -> None:
    table = reference_markdown()
    for key in ("train.lr", "ingest.source.kind", "hdf5.resize", "train.loader.block_size"):
        assert f"| `{key}` |" in table


def test_readme_reference_is_up_to_date() -> None:
    readme = (ROOT / "docs" / "params.md").read_text()
    assert replace_reference(readme) == readme, "run: make docs"


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value; free-form mappings (members, grid) count as one value."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("members", "grid"):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_params_yaml_lists_every_key_with_the_schema_default() -> None:
    """One source of defaults: the file a user edits says exactly what the schema would fill in,
    and names every key, so `dvc exp run -S key=value` can set any of them."""
    from pipeline.config import Params

    schema = _leaves(Params().model_dump(mode="json"))
    shipped = _leaves(defaults())
    assert sorted(set(schema) - set(shipped)) == [], "keys missing from params.yaml"
    assert sorted(set(shipped) - set(schema)) == [], "keys params.yaml has that the schema lacks"
    differ = {k: (shipped[k], schema[k]) for k in schema if shipped[k] != schema[k]}
    assert differ == {}, "params.yaml value vs schema default"


#: Keys DVC leaves out of its run-cache key (treeverse/dvc#10296): a change to one of them can
#: restore stale outputs, so no params key may be named like this.
RUN_CACHE_BLIND = {"size", "nfiles"}


def test_no_params_key_is_one_the_dvc_run_cache_ignores() -> None:
    from pipeline.config import Params

    def names(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(f"{prefix}{name}")
            kind = field.annotation
            if isinstance(kind, type) and hasattr(kind, "model_fields"):
                out.extend(names(kind, f"{prefix}{name}."))
        return out

    keys = names(Params) + list(_leaves(defaults()))
    assert [k for k in keys if k.rsplit(".", 1)[-1] in RUN_CACHE_BLIND] == []


@pytest.mark.parametrize(("section", "old", "new"), [
    ("hdf5", "size", "image_size"), ("backbone", "size", "image_size"),
    ("dcgan", "size", "image_size"), ("srcnn_data", "size", "patch_size"),
])
def test_renamed_keys_name_their_new_name(section: str, old: str, new: str) -> None:
    data = defaults()
    data[section][old] = data[section].pop(new)
    assert errors_of(data) == [f"{section}.{old}: renamed to {section}.{new}"]
