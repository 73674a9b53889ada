"""``ds-pipelines init``: an existing git repository with notebooks becomes a project that ``check`` accepts and
``run --all`` runs; nothing is overwritten, bad input writes nothing."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from gitrepo import PROJECT, GitRepo, notebook_json
from sandbox import make_sandbox


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in (env or os.environ).items() if not key.startswith("DS_PIPELINES_")}
    return subprocess.run([sys.executable, "-m", "ds_pipelines", *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=timeout)


def git_repo(root: Path) -> GitRepo:
    root.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    return repo


def write_notebook(root: Path, path: str, *cells: nbformat.NotebookNode) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = list(cells)
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, root / path)


def parameters_cell(source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def listing(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def registry(root: Path) -> dict:
    return yaml.safe_load((root / "configs/notebooks.yaml").read_text())["notebooks"]


def check(root: Path) -> subprocess.CompletedProcess:
    return cli("check", "--project-dir", str(root), timeout=300)


def gitlab_example(root: Path) -> Path:
    """GitLab's data-science example layout: training_config.yaml at the root, read by the notebook itself."""
    git_repo(root)
    (root / "training_config.yaml").write_text("learning_rate: 0.1\nname: gitlab-example\n")
    write_notebook(root, "notebooks/train.ipynb", nbformat.v4.new_code_cell(
        'import json, yaml\nfrom pathlib import Path\ncfg = yaml.safe_load(open("training_config.yaml"))\n'
        'Path("outputs").mkdir(exist_ok=True)\nPath("outputs/train.json").write_text(json.dumps(cfg))\nprint(cfg)'))
    return root


def papermill_example(root: Path) -> Path:
    git_repo(root)
    write_notebook(root, "notebooks/tune-model.ipynb",
                   parameters_cell('from datetime import datetime\nalpha = 0.5\nname = "x"\nwhen = datetime.now()'),
                   nbformat.v4.new_code_cell(
                       'import json\nfrom pathlib import Path\nPath("outputs").mkdir(exist_ok=True)\n'
                       'Path("outputs/tune.json").write_text(json.dumps({"alpha": alpha, "name": name}))'))
    return root


def test_this_repositorys_notebooks_become_a_project_that_check_accepts(tmp_path):
    root = tmp_path / "repo"
    git_repo(root)
    shutil.copytree(PROJECT / "notebooks", root / "notebooks")
    done = cli("init", str(root))
    assert done.returncode == 0, done.stderr
    assert registry(root) == {"notebooks/inference_example.ipynb": {"device": "cpu"},
                              "notebooks/training_example.ipynb": {"device": "cpu"}}
    assert "ds-pipelines check" in done.stdout and "ds-pipelines run --all" in done.stdout
    assert (root / ".gitignore").read_text() == ".ds-pipelines/\nresults/\n"
    ci = (root / ".gitlab-ci.yml").read_text()
    assert "component: $CI_SERVER_FQDN/<group>/ds-pipelines/notebooks@" in ci and "Replace <group>" in ci
    checked = check(root)
    assert checked.returncode == 0, checked.stderr


def test_the_ci_file_has_what_the_components_jobs_need_as_this_repository_sets_it(tmp_path):
    """The jobs read the runner variables, run in stages build/execute/deploy and rely on the workflow rules
    (one pipeline per change) that this repository's .gitlab-ci.yml sets: the written file sets the same, and
    names the ds-pipelines image (no Dockerfile to build) for the notebook jobs and for detect."""
    root = tmp_path / "repo"
    git_repo(root)
    shutil.copytree(PROJECT / "notebooks", root / "notebooks")
    assert cli("init", str(root)).returncode == 0
    written = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    ours = yaml.safe_load((PROJECT / ".gitlab-ci.yml").read_text())
    assert written["workflow"] == ours["workflow"]
    assert set(written["stages"]) >= set(ours["stages"])
    for name in ("GPU_RUNNER", "CPU_RUNNER", "LIGHT_RUNNER", "COMMIT_RUNNER", "SCHEDULED_RUNNER"):
        assert written["variables"][name] == ours["variables"][name]["value"], name
    assert written["variables"]["BUILD_CONTAINER"] == "false"
    (include,) = written["include"]
    version = importlib.metadata.version("ds-pipelines")
    assert include["component"] == f"$CI_SERVER_FQDN/<group>/ds-pipelines/notebooks@{version}"
    image = f"$CI_REGISTRY/<group>/ds-pipelines:v{version}"
    assert include["inputs"] == {"image": image, "light-image": image}
    spec, _ = (PROJECT / "templates/notebooks.yml").read_text().split("\n---\n", 1)
    assert set(include["inputs"]) <= set(yaml.safe_load(spec)["spec"]["inputs"])
    schema = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
                             "--data-transform", "gitlab-ci", str(root / ".gitlab-ci.yml")],
                            capture_output=True, text=True, timeout=120)
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_a_config_file_the_notebook_reads_becomes_its_config(tmp_path):
    root = gitlab_example(tmp_path / "repo")
    done = cli("init", cwd=root)  # DIR defaults to the current folder
    assert done.returncode == 0, done.stderr
    assert registry(root) == {"notebooks/train.ipynb": {"device": "cpu", "config": "training_config.yaml"}}
    checked = check(root)
    assert checked.returncode == 0, checked.stderr


def test_the_folders_the_configs_write_to_are_ignored_unless_they_hold_tracked_files(tmp_path):
    root = gitlab_example(tmp_path / "repo")
    (root / "data").mkdir()
    (root / "data/input.csv").write_text("a\n1\n")
    GitRepo(root).commit("data")
    (root / "training_config.yaml").write_text(yaml.safe_dump({
        "learning_rate": 0.1,
        "outputs": {"model_path": "outputs/training/model.json", "plots": ["plots/roc/a.png"]},
        "output_dir": "reports/out", "scored_output": "data/scored.csv",  # data/ holds a tracked file: kept
        "input": {"path": "inputs/rows.csv"}, "output_uri": "s3://bucket/x/y", "outputs_abs": "/tmp/x/y"}))
    assert cli("init", str(root)).returncode == 0
    assert (root / ".gitignore").read_text() == ".ds-pipelines/\nresults/\noutputs/\nplots/\nreports/\n"


def test_a_config_file_next_to_the_notebook_counts_too(tmp_path):
    root = git_repo(tmp_path / "repo").root
    (root / "notebooks").mkdir()
    (root / "notebooks/settings.yml").write_text("a: 1\n")
    write_notebook(root, "notebooks/nb.ipynb", nbformat.v4.new_code_cell('import yaml\nyaml.safe_load(open("settings.yml"))'))
    done = cli("init", "--dry-run", str(root))
    assert "ds-pipelines runs notebooks in the project root" in done.stdout
    assert cli("init", str(root)).returncode == 0
    assert registry(root)["notebooks/nb.ipynb"]["config"] == "notebooks/settings.yml"


def test_a_parameters_cell_gets_a_config_of_its_literal_defaults(tmp_path):
    root = papermill_example(tmp_path / "repo")
    done = cli("init", str(root))
    assert done.returncode == 0, done.stderr
    assert registry(root) == {"notebooks/tune-model.ipynb": {"device": "cpu", "config": "configs/tune_model.yaml"}}
    text = (root / "configs/tune_model.yaml").read_text()
    assert yaml.safe_load(text) == {"alpha": 0.5, "name": "x"}
    assert "# when = datetime.now(): not a literal, the notebook keeps its default" in text
    checked = check(root)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
@pytest.mark.parametrize("example, output, expected", [
    (gitlab_example, "train.json", {"learning_rate": 0.1, "name": "gitlab-example"}),
    (papermill_example, "tune.json", {"alpha": 0.5, "name": "x"}),
], ids=["gitlab-example", "parameters-cell"])
def test_run_all_runs_what_init_set_up(tmp_path, example, output, expected):
    import json

    root = example(tmp_path / "repo")
    assert cli("init", str(root)).returncode == 0
    box = make_sandbox(tmp_path / "sandbox")
    ran = subprocess.run([sys.executable, "-m", "ds_pipelines", "run", "--all", "--project-dir", str(root),
                          "--output-dir", str(tmp_path / "results")],
                         env={k: v for k, v in box.env.items() if k != "DS_PIPELINES_PROJECT_DIR"},
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads((root / "outputs" / output).read_text()) == expected


def test_an_existing_gitlab_ci_file_is_left_alone_and_the_include_is_shown(tmp_path):
    root = gitlab_example(tmp_path / "repo")
    before = b"stages: [test]\ntest:\n  script: [echo hi]\n"
    (root / ".gitlab-ci.yml").write_bytes(before)
    (root / ".gitignore").write_text("/.ds-pipelines\n*.pyc")  # no final newline; one of the two lines there
    done = cli("init", str(root))
    assert done.returncode == 0, done.stderr
    assert (root / ".gitlab-ci.yml").read_bytes() == before
    assert ".gitlab-ci.yml: exists, left alone" in done.stdout
    assert "include:\n  - component: $CI_SERVER_FQDN/<group>/ds-pipelines/notebooks@" in done.stdout
    assert (root / ".gitignore").read_text() == "/.ds-pipelines\n*.pyc\nresults/\n"


def test_dry_run_writes_nothing_and_shows_the_plan(tmp_path):
    root = papermill_example(tmp_path / "repo")
    before = listing(root)
    done = cli("init", "--dry-run", str(root))
    assert done.returncode == 0, done.stderr
    assert listing(root) == before
    assert "configs/notebooks.yaml: would write" in done.stdout
    assert "configs/tune_model.yaml: would write" in done.stdout
    assert "    alpha: 0.5" in done.stdout
    assert "nothing was written" in done.stdout


def broken_json(root: Path) -> str:
    git_repo(root)
    (root / "notebooks").mkdir()
    (root / "notebooks/good.ipynb").write_text(notebook_json())
    (root / "notebooks/broken.ipynb").write_text(notebook_json()[:-20])
    return "notebooks/broken.ipynb: not valid JSON at line"


def config_list(root: Path) -> str:
    git_repo(root)
    (root / "training_config.yaml").write_text("- a\n- b\n")
    write_notebook(root, "notebooks/train.ipynb", nbformat.v4.new_code_cell('cfg = open("training_config.yaml")'))
    return "training_config.yaml: expected a mapping of keys to values, got list"


def no_notebooks(root: Path) -> str:
    git_repo(root)
    (root / "README.md").write_text("# nothing\n")
    return "no notebook (*.ipynb) under notebooks/"


def not_a_git_repo(root: Path) -> str:
    root.mkdir()
    (root / "notebooks").mkdir()
    (root / "notebooks/a.ipynb").write_text(notebook_json())
    return "is not in a git work tree"


@pytest.mark.parametrize("make", [not_a_git_repo, no_notebooks, broken_json, config_list], ids=lambda f: f.__name__)
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(tmp_path, make):
    root = tmp_path / "repo"
    message = make(root)
    before = listing(root)
    done = cli("init", str(root))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert listing(root) == before


def test_a_second_init_changes_nothing(tmp_path):
    root = papermill_example(tmp_path / "repo")
    assert cli("init", str(root)).returncode == 0
    before = listing(root)
    again = cli("init", str(root))
    assert again.returncode == 0, again.stderr
    assert listing(root) == before
    for path in ("configs/notebooks.yaml", "configs/tune_model.yaml", ".gitlab-ci.yml", ".gitignore"):
        assert f"{path}: exists, left alone" in again.stdout


def test_notebooks_outside_notebooks_and_in_hidden_folders(tmp_path):
    root = git_repo(tmp_path / "repo").root
    for path in ("notebooks/a.ipynb", "notebooks/.ipynb_checkpoints/a-checkpoint.ipynb", ".venv/lib/x.ipynb",
                 "node_modules/y/z.ipynb", "scratch/explore.ipynb"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(notebook_json())
    done = cli("init", str(root))
    assert done.returncode == 0, done.stderr
    assert list(registry(root)) == ["notebooks/a.ipynb"]
    assert "scratch/explore.ipynb" in done.stdout  # reported as not run, where ds-pipelines looks
