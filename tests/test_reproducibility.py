"""The reproducibility record, piece by piece: hashes that change when, and only when, the notebook, config or
data change; seeds, image, commit state; its trip through the notebook's handover, results.json, MLflow tags
and the rendered pages; and how ``reproduce`` compares metrics. Real runs are in test_reproduce_cli.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import GitRepo

from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render.reproducibility import (
    details_block,
    details_inline,
    masked_record,
)
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.publishing.render.wiki import render_wiki_pages
from ds_pipelines.results.folder import (
    NotebookResult,
    ResultsError,
    RunResults,
    load_results,
    write_results,
)
from ds_pipelines.results.origin import Provenance
from ds_pipelines.results.reproducibility import (
    commit_state,
    config_seeds,
    config_sha256,
    current_image,
    file_input,
    for_handover,
    from_handover,
    gather,
)
from ds_pipelines.tracking.reproducibility import (
    RECORD_ARTIFACT,
    record_tags_and_params,
)
from ds_pipelines.triggers.reproduce import compare_metrics

CLI = Path(sys.executable).parent / "ds-pipelines"
REPO = Path(__file__).resolve().parent.parent
NO_SECRETS = Masker()


def record_of(root: Path, config: dict, data: list[Path]) -> dict:
    return gather(root=root, notebook=root / "nb.ipynb", config=config, commit=None,
                  data=for_handover([file_input(path) for path in data]), device="cpu").to_dict()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "nb.ipynb").write_text('{"cells": []}')
    (tmp_path / "data.csv").write_text("a\n1\n")
    return tmp_path


def test_hashes_change_with_the_notebook_only_when_it_changes(project):
    config, data = {"seed": 1}, [project / "data.csv"]
    first = record_of(project, config, data)
    assert record_of(project, config, data) == first  # same files, same config: same record
    (project / "nb.ipynb").write_text('{"cells": [1]}')
    changed = record_of(project, config, data)
    assert changed["notebook_sha256"] != first["notebook_sha256"]
    assert (changed["config_sha256"], changed["data"]) == (first["config_sha256"], first["data"])


def test_hashes_change_with_the_config_only_when_it_changes(project):
    data = [project / "data.csv"]
    first = record_of(project, {"a": 1, "b": {"c": 2}}, data)
    assert record_of(project, {"b": {"c": 2}, "a": 1}, data)["config_sha256"] == first["config_sha256"]  # key order
    changed = record_of(project, {"a": 1, "b": {"c": 3}}, data)
    assert changed["config_sha256"] != first["config_sha256"]
    assert (changed["notebook_sha256"], changed["data"]) == (first["notebook_sha256"], first["data"])


def test_hashes_change_with_the_data_only_when_it_changes(project):
    config, data = {"seed": 1}, [project / "data.csv"]
    first = record_of(project, config, data)
    (project / "data.csv").write_text("a\n1\n")  # rewritten, same bytes
    assert record_of(project, config, data) == first
    (project / "data.csv").write_text("a\n2\n")
    changed = record_of(project, config, data)
    assert changed["data"][0]["sha256"] != first["data"][0]["sha256"]
    assert (changed["notebook_sha256"], changed["config_sha256"]) == (first["notebook_sha256"], first["config_sha256"])


def test_data_paths_are_project_relative_inside_it_and_each_input_is_listed_once(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "big.parquet"
    outside.write_bytes(b"x" * (3 << 20))  # more than one chunk of the streaming hash
    record = record_of(project, {}, [project / "data.csv", outside, project / "data.csv"])
    assert [entry["path"] for entry in record["data"]] == ["data.csv", str(outside)]
    import hashlib

    assert record["data"][1]["sha256"] == hashlib.sha256(outside.read_bytes()).hexdigest()


def test_digests_survive_the_masking_of_the_executed_notebook(project):
    entries = [file_input(project / "data.csv"), {"source": "sklearn.datasets.load_iris", "version": "1.6.1"}]
    handed = json.loads(NO_SECRETS.mask(json.dumps(for_handover(entries))))
    assert from_handover(handed) == entries
    assert "[MASKED]" in NO_SECRETS.mask(json.dumps(entries))  # why the handover form exists


def test_seeds_are_every_seed_or_random_state_key():
    config = {"data": {"random_state": 42, "path": None}, "optuna": {"sampler_seed": 7, "n_trials": 3},
              "folds": [{"seed": 1}], "speed": 5, "model": {"Seed_Value": 3}}
    assert config_seeds(config) == {"data.random_state": 42, "optuna.sampler_seed": 7, "folds.0.seed": 1,
                                    "model.Seed_Value": 3}


def test_config_hash_is_canonical_json():
    assert config_sha256({"a": [1, 2], "b": None}) == config_sha256({"b": None, "a": [1, 2]})
    assert config_sha256({"a": [1, 2]}) != config_sha256({"a": [2, 1]})


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"DS_PIPELINES_IMAGE_TAG": "unknown"}, None),
    ({"DS_PIPELINES_IMAGE_TAG": "3f2a9c1d0b7e"}, "ds-pipelines:3f2a9c1d0b7e"),
    ({"CI_JOB_IMAGE": "registry.example.com/g/ds:1.4", "DS_PIPELINES_IMAGE_TAG": "x"}, "registry.example.com/g/ds:1.4"),
    ({"DSP_IMAGE": "ds@sha256:abc", "CI_JOB_IMAGE": "other"}, "ds@sha256:abc"),
])
def test_image_from_the_environment(env, expected):
    assert current_image(env) == expected


def test_commit_state_tells_clean_from_dirty(tmp_path):
    repo = GitRepo(tmp_path)
    repo.git("init", "-q", "-b", "main")
    repo.write("a.txt", "1\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "one")
    sha = repo.git("rev-parse", "HEAD")
    assert commit_state(tmp_path, sha, "main") == {"sha": sha, "branch": "main", "dirty": False}
    repo.write("outputs/model.json", "{}\n")  # what a notebook wrote: not a change to the code it ran
    assert commit_state(tmp_path, sha, "main")["dirty"] is False
    repo.write("a.txt", "2\n")
    assert commit_state(tmp_path, sha, "main")["dirty"] is True
    assert commit_state(tmp_path, "f" * 40, "main")["dirty"] is None  # not the checked-out commit: unknown
    assert commit_state(tmp_path, None, None) is None


def _record(**changes) -> dict:
    record = {
        "commit": {"sha": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": False},
        "notebook_sha256": "a" * 64, "config_sha256": "b" * 64,
        "data": [{"path": "data/train.csv", "sha256": "c" * 64}, {"source": "sklearn.datasets.load_iris", "version": "1.6.1"}],
        "image": None, "python": "3.11.7", "packages": {"xgboost": "3.2.0", "numpy": None},
        "seeds": {"data.random_state": 42}, "device": "cpu",
    }
    record.update(changes)
    return record


def test_results_json_round_trip_keeps_record_and_config(tmp_path):
    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success", reproducibility=_record(),
                        config={"data": {"random_state": 42}})
    written = write_results(tmp_path, RunResults("success", "t0", "t1", None, None, [nb]))
    loaded = load_results(written.directory).notebook("a")
    assert loaded.reproducibility == _record() and loaded.config == {"data": {"random_state": 42}}


@pytest.mark.parametrize(("change", "message"), [
    ({"device": "tpu"}, "notebooks[0]: reproducibility.device: expected cpu or cuda, got 'tpu'"),
    ({"notebook_sha256": None}, "notebooks[0]: reproducibility.notebook_sha256: expected a sha256 in hex, got None"),
    ({"data": [{"path": "x.csv"}]}, "notebooks[0]: reproducibility.data: expected a list of {path, sha256} or {source, version}"),
])
def test_a_malformed_record_is_an_error_naming_file_and_key(tmp_path, change, message):
    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success", reproducibility=_record(**change))
    write_results(tmp_path, RunResults("success", "t0", "t1", None, None, [nb]))
    with pytest.raises(ResultsError) as raised:
        load_results(tmp_path)
    assert str(raised.value).startswith(str(tmp_path.resolve() / "results.json"))
    assert message in str(raised.value)


def test_mlflow_tags_and_params_of_a_record():
    tags, params = record_tags_and_params(_record(image="registry/ds:1.4"))
    assert tags == {
        "ds-pipelines.commit": "0123456789abcdef0123456789abcdef01234567", "ds-pipelines.commit_dirty": "false",
        "ds-pipelines.notebook_sha256": "a" * 64, "ds-pipelines.config_sha256": "b" * 64,
        "ds-pipelines.image": "registry/ds:1.4", "ds-pipelines.device": "cpu", "ds-pipelines.python": "3.11.7",
        "ds-pipelines.data": json.dumps(_record()["data"], sort_keys=True),
    }
    assert params == {"ds-pipelines.seed.data.random_state": "42", "ds-pipelines.package.xgboost": "3.2.0",
                      "ds-pipelines.package.numpy": "None"}
    many = _record(data=[{"path": f"part-{i:05}.parquet", "sha256": "d" * 64} for i in range(200)])
    assert record_tags_and_params(many)[0]["ds-pipelines.data"] == f"200 inputs: see {RECORD_ARTIFACT}"


def test_the_collapsed_block_shows_every_field_masked_and_escaped():
    secret = "glpat-" + "A1b2C3d4E5f6G7h8I9j0"
    record = _record(data=[{"path": f"data/{secret}.csv", "sha256": "c" * 64}], image="reg/ds:1.4")
    block = details_block(record, SafeText(Masker((secret,))), results_url="https://gitlab.example.com/r.json")
    assert block.startswith("<details><summary>Reproducibility</summary>") and block.endswith("</details>")
    for shown in ("01234567", "main", "clean", "a" * 12, "b" * 12, "c" * 12, "reg/ds:1.4", "3.11.7", "xgboost 3.2.0",
                  "`data.random_state` = 42", "cpu", "[results.json](https://gitlab.example.com/r.json)"):
        assert shown in block, shown
    assert secret not in block and "[MASKED]" in block
    assert "\n" not in details_inline(record, SafeText(NO_SECRETS))
    assert details_block(None, SafeText(NO_SECRETS)) == "" and details_block({"device": "cpu"}, SafeText(NO_SECRETS)) == ""


def test_the_wiki_row_keeps_the_record_and_shows_it_collapsed():
    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success", metrics={"auc": 0.9},
                        reproducibility=_record())
    run = RunResults("success", "t0", "2024-05-01T10:00:00+00:00", "0123456789abcdef0123456789abcdef01234567", "main", [nb])
    page = render_wiki_pages(run, origin=Provenance(), masker=NO_SECRETS)[0].content
    row = next(line for line in page.splitlines() if line.startswith("| ") and "01234567" in line)
    assert "<details><summary>Reproducibility</summary>" in row and "a" * 12 in row
    assert masked_record(_record(), SafeText(NO_SECRETS)) == _record()


def test_metrics_match_exactly_on_cpu_and_within_the_tolerance_on_gpu():
    recorded = {"auc": 0.91, "loss": 0.2, "tuning_seconds": 10.0, "duration_s": 3.0}
    same = compare_metrics(recorded, {"auc": 0.91, "loss": 0.2, "tuning_seconds": 12.0, "duration_s": 4.0}, "cpu")
    assert all(m.match for m in same)
    assert [m.name for m in same if not m.compared] == ["tuning_seconds", "duration_s"]
    nudged = {"auc": 0.91 * (1 + 1e-6), "loss": 0.2}
    assert [m.match for m in compare_metrics(recorded, nudged, "cpu")][:2] == [False, True]
    assert [m.match for m in compare_metrics(recorded, nudged, "cuda")][:2] == [True, True]
    assert not compare_metrics({"auc": 0.9}, {"auc": 0.91}, "cuda")[0].match
    missing = compare_metrics({"auc": 0.9}, {"f1": 0.5}, "cpu")
    assert [(m.name, m.match) for m in missing] == [("auc", False), ("f1", False)]


def test_a_results_folder_without_a_record_is_bad_input(tmp_path):
    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success", metrics={"auc": 0.9})
    write_results(tmp_path / "results", RunResults("success", "t0", "t1", "0" * 40, "main", [nb]))
    done = subprocess.run([str(CLI), "reproduce", str(tmp_path / "results"), "--project-dir", str(REPO)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{tmp_path / 'results' / 'results.json'}: notebook(s) a have no reproducibility record" in done.stderr
    assert "Traceback" not in done.stderr


def test_reproduce_needs_exactly_one_source():
    done = subprocess.run([str(CLI), "reproduce", "--project-dir", str(REPO)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give either RESULTS_DIR or --mlflow-run ID" in done.stderr


def test_the_table_readers_record_what_they_read(tmp_path):
    from ds_pipelines.notebook import recorded
    from ds_pipelines.notebook.tables import read_batches, read_table

    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    whole.write_text("a\n1\n")
    chunked.write_text("a\n1\n2\n3\n")
    read_table(whole, what="input.path")
    batches = read_batches(chunked, columns={"fields.features.a": "a"}, numeric=["fields.features.a"], batch_size=2,
                           what="input.path")
    assert sum(batch.num_rows for batch in batches) == 3
    inputs = recorded.recorded_inputs()
    assert file_input(whole) in inputs and file_input(chunked) in inputs


def test_record_data_and_device_say_what_they_expect():
    from ds_pipelines.errors import DsPipelinesError
    from ds_pipelines.notebook import recorded

    with pytest.raises(DsPipelinesError, match="give either path= .* or source= and version="):
        recorded.record_data()
    with pytest.raises(DsPipelinesError, match="source='sklearn.datasets.load_iris' needs version="):
        recorded.record_data(source="sklearn.datasets.load_iris")
    with pytest.raises(DsPipelinesError, match="expected one of cpu, cuda, got 'gpu'"):
        recorded.record_device("gpu")
    recorded.record_data(source="sklearn.datasets.load_iris", version="1.6.1")
    recorded.record_device("cuda")
    assert {"source": "sklearn.datasets.load_iris", "version": "1.6.1"} in recorded.recorded_inputs()
    assert recorded.recorded_device() == "cuda"


def test_the_merge_request_comment_shows_each_record_collapsed():
    from ds_pipelines.publishing.render.comment import render_mr_comment
    from ds_pipelines.publishing.render.links import Links

    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success", metrics={"auc": 0.9},
                        reproducibility=_record())
    run = RunResults("success", "t0", "2024-05-01T10:00:00+00:00", "0123456789abcdef0123456789abcdef01234567", "main", [nb])
    body = render_mr_comment(run, default_branch="main", masker=NO_SECRETS,
                             links=Links(results_file="https://gitlab.example.com/-/jobs/1/artifacts/file/results/results.json"))
    block = body[body.index("<details><summary>Reproducibility</summary>"):]
    assert "**config** sha256 `" + "b" * 12 in block
    assert "[results.json](https://gitlab.example.com/-/jobs/1/artifacts/file/results/results.json)" in block


def test_results_json_is_linked_in_the_ci_jobs_artifacts(tmp_path):
    from ds_pipelines.publishing.links import JobArtifacts, run_links

    nb = NotebookResult(notebook="notebooks/a.ipynb", name="a", status="success")
    written = write_results(tmp_path / "results", RunResults("success", "t0", "t1", None, None, [nb]))
    job = "https://gitlab.example.com/g/p/-/jobs/7"
    links = run_links(written, Provenance(), tracking_uri=None, artifacts=JobArtifacts(job, tmp_path), warn=print)
    assert links.results_file == f"{job}/artifacts/file/results/results.json"
    assert run_links(written, Provenance(), tracking_uri=None, artifacts=None, warn=print).results_file is None
