"""Notebook file names become Dagster asset names: readable, unique, the same on every machine; names that
still coincide are found before Dagster sees them."""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from sandbox import REPO

from ds_pipelines.definitions import defs
from ds_pipelines.defs.alerts.sensors import SENSOR_NAME
from ds_pipelines.defs.notebooks.definitions import NOTEBOOKS_JOB
from ds_pipelines.errors import AssetNameCollisionError
from ds_pipelines.project import PROJECT_DIR_ENV, Project, asset_name

DAGSTER_NAME = re.compile(r"[A-Za-z0-9_]+")  # what Dagster accepts in an asset key


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("notebooks/training_example.ipynb", "training_example"),
        ("notebooks/inference_example.ipynb", "inference_example"),
        ("notebooks/sub/explore-data.ipynb", "explore_data"),
        ("notebooks/a b.ipynb", "a_b"),
        ("notebooks/2024 report.ipynb", "nb_2024_report"),
    ],
)
def test_ascii_names_keep_todays_asset_names(path: str, expected: str):
    assert asset_name(path) == expected


def test_non_ascii_names_get_distinct_stable_readable_keys():
    tutorial, primer = asset_name("notebooks/SVM 튜토리얼.ipynb"), asset_name("notebooks/SVM 입문서.ipynb")
    # Pinned: the key is part of the asset's history in Dagster, so it must not change between releases.
    assert (tutorial, primer) == ("SVM_d6ea7acd", "SVM_531d9b04")
    assert asset_name("notebooks/café.ipynb") == "cafe_850f7dc4"  # accents dropped, not the letter
    assert asset_name("notebooks/café.ipynb") != asset_name("notebooks/cafe.ipynb")
    only_hangul = asset_name("notebooks/튜토리얼.ipynb")
    assert only_hangul.startswith("nb_") and DAGSTER_NAME.fullmatch(only_hangul)
    assert asset_name("notebooks/1 데이터.ipynb").startswith("nb_1_")


def test_the_key_does_not_depend_on_how_the_file_system_composes_the_name():
    composed = "notebooks/café 분석.ipynb"
    decomposed = unicodedata.normalize("NFD", composed)  # what macOS hands out
    assert decomposed != composed
    assert asset_name(decomposed) == asset_name(composed)


def project_with(root: Path, *names: str) -> Project:
    (root / "notebooks").mkdir(parents=True)
    for name in names:
        nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / name)
    return Project(root)


def test_names_that_coincide_are_collisions_naming_both_files(tmp_path: Path):
    project = project_with(tmp_path, "a b.ipynb", "a-b.ipynb", "1.ipynb", "nb_1.ipynb", "other.ipynb", "SVM 튜토리얼.ipynb")
    collisions = project.name_collisions()
    assert [(c.name, c.paths) for c in collisions] == [
        ("a_b", ("notebooks/a b.ipynb", "notebooks/a-b.ipynb")),
        ("nb_1", ("notebooks/1.ipynb", "notebooks/nb_1.ipynb")),
    ]
    assert "notebooks/a b.ipynb and notebooks/a-b.ipynb both become the Dagster asset 'a_b'" in str(collisions[0])
    with pytest.raises(AssetNameCollisionError, match="a-b.ipynb"):
        project.find("a_b")  # an ambiguous name picks neither
    assert project.find("notebooks/a-b.ipynb").path == "notebooks/a-b.ipynb"  # a path is still unambiguous
    assert project.find("other").path == "notebooks/other.ipynb"


def test_distinct_names_are_no_collision(tmp_path: Path):
    project = project_with(tmp_path, "SVM 튜토리얼.ipynb", "SVM 입문서.ipynb", "a_b.ipynb")
    assert project.name_collisions() == []
    assert sorted(spec.name for spec in project.notebooks()) == ["SVM_531d9b04", "SVM_d6ea7acd", "a_b"]


def repository_copy_with(root: Path, *extra: str) -> Path:
    """This repository's project (notebooks and configs) plus empty notebooks named ``extra``."""
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in extra:
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_markdown_cell(f"# {name}")]
        nbformat.write(notebook, root / "notebooks" / name)
    return root


def test_colliding_notebooks_are_left_out_and_everything_else_loads(tmp_path: Path, monkeypatch):
    project = repository_copy_with(tmp_path, "a b.ipynb", "a-b.ipynb", "SVM 튜토리얼.ipynb")
    monkeypatch.setenv(PROJECT_DIR_ENV, str(project))
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    specs = {spec.key.to_user_string(): spec for spec in loaded.resolve_all_asset_specs()}
    assert sorted(specs) == ["SVM_d6ea7acd", "inference_example", "training_example"]
    assert specs["SVM_d6ea7acd"].metadata["notebook"] == "notebooks/SVM 튜토리얼.ipynb"  # the file stays visible
    repository = loaded.get_repository_def()
    assert {"gitlab_commits", "gitlab_tags", SENSOR_NAME} <= {s.name for s in repository.sensor_defs}
    assert [s.name for s in repository.schedule_defs] == ["scoring"]
    job = loaded.resolve_job_def(NOTEBOOKS_JOB)
    assert "notebooks/a b.ipynb and notebooks/a-b.ipynb both become the Dagster asset 'a_b'" in job.description
    assert "a-b.ipynb" in job.metadata["left_out_notebooks"].value
