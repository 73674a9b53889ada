"""Results kept by several CI jobs (a child pipeline's notebook jobs, one folder each) publish as one run:
``--results`` given more than once, each folder's executed notebook linked in the artifacts of its own job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import notebook_json

from ds_pipelines.publishing.links import ArtifactsOfJobs, JobArtifacts
from ds_pipelines.results.folder import (
    NotebookResult,
    ResultsError,
    RunResults,
    load_results,
    merge_runs,
    write_results,
)

CLI = Path(sys.executable).parent / "ds-pipelines"
SHA = "a" * 40
JOB_URLS = {"training_example": "https://gitlab.example.com/group/project/-/jobs/11",
            "inference_example": "https://gitlab.example.com/group/project/-/jobs/12"}


def kept_by_a_job(checkout: Path, name: str, status: str = "success", *, sha: str = SHA,
                  started: str = "2026-12-01T05:00:00+00:00", finished: str = "2026-12-01T05:10:00+00:00") -> Path:
    """The folder ``results/<name>`` that one notebook job keeps: its run of one notebook."""
    source = checkout / "scratch" / f"{name}.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(notebook_json(name))
    notebook = NotebookResult(notebook=f"notebooks/{name}.ipynb", name=name, status=status, duration_s=3.0,
                              metrics={"roc_auc": 0.9} if status == "success" else {}, executed_notebook=source,
                              error="ValueError: bad" if status == "failed" else None)
    run = RunResults(status="success" if status == "success" else "failed", started_at=started, finished_at=finished,
                     commit_sha=sha, branch="main", notebooks=[notebook])
    return write_results(checkout / "results" / name, run).directory


def test_folders_of_one_pipeline_merge_into_one_run(tmp_path):
    training = load_results(kept_by_a_job(tmp_path, "training_example"))
    inference = load_results(kept_by_a_job(tmp_path, "inference_example", "failed", started="2026-12-01T05:11:00+00:00",
                                           finished="2026-12-01T05:12:00+00:00"))
    run = merge_runs([training, inference])
    assert [(nb.name, nb.status) for nb in run.notebooks] == [("training_example", "success"), ("inference_example", "failed")]
    assert run.status == "failed" and run.failed == [inference.notebooks[0]]
    assert (run.started_at, run.finished_at) == ("2026-12-01T05:00:00+00:00", "2026-12-01T05:12:00+00:00")
    assert (run.commit_sha, run.branch) == (SHA, "main")
    assert merge_runs([training]) is training
    assert merge_runs([training, load_results(kept_by_a_job(tmp_path / "b", "report"))]).status == "success"


def test_folders_of_different_commits_or_the_same_notebook_twice_are_refused(tmp_path):
    training = load_results(kept_by_a_job(tmp_path, "training_example"))
    other = load_results(kept_by_a_job(tmp_path / "other", "inference_example", sha="b" * 40))
    with pytest.raises(ResultsError, match=f"different commits \\({SHA}, {'b' * 40}\\)"):
        merge_runs([training, other])
    again = load_results(kept_by_a_job(tmp_path / "again", "training_example"))
    with pytest.raises(ResultsError, match="notebook training_example is in more than one results folder"):
        merge_runs([training, again])


def test_each_folder_links_into_its_own_jobs_artifacts(tmp_path):
    folders = {name: kept_by_a_job(tmp_path, name) for name in JOB_URLS}
    artifacts = ArtifactsOfJobs(tuple((folders[name], JobArtifacts(url, tmp_path)) for name, url in JOB_URLS.items()))
    for name, url in JOB_URLS.items():
        executed = load_results(folders[name]).notebooks[0].executed_notebook
        assert artifacts.url(executed) == f"{url}/artifacts/file/results/{name}/{name}/{name}.ipynb"
    assert artifacts.url(tmp_path / "scratch" / "training_example.ipynb") is None  # in no kept folder


def publish_wiki(fake, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CI_", "GITLAB_", "MLFLOW_"))}
    env.update(fake.environ(), CI_PROJECT_DIR=str(cwd), CI_COMMIT_SHA=SHA, DS_PIPELINES_PROJECT_DIR=str(cwd),
               MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}")
    return subprocess.run([str(CLI), "publish", "wiki", "--strict", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_publish_wiki_from_two_jobs_folders(tmp_path, fake_gitlab):
    folders = {name: kept_by_a_job(tmp_path, name) for name in JOB_URLS}
    args = []
    for name, url in JOB_URLS.items():
        args += ["--results", str(folders[name].relative_to(tmp_path)), "--job-url", url]

    result = publish_wiki(fake_gitlab, tmp_path, *args)

    assert result.returncode == 0, result.stdout + result.stderr
    for name, url in JOB_URLS.items():
        page = fake_gitlab.wiki[f"model-runs/{name}"]["content"]
        assert f"{url}/artifacts/file/results/{name}/{name}/{name}.ipynb" in page
        other = next(u for n, u in JOB_URLS.items() if n != name)
        assert other not in page
    assert "training_example" in fake_gitlab.wiki["model-runs"]["content"]
    assert "inference_example" in fake_gitlab.wiki["model-runs"]["content"]


def test_job_urls_must_be_one_or_one_per_folder(tmp_path, fake_gitlab):
    folders = [kept_by_a_job(tmp_path, name) for name in (*JOB_URLS, "report")]
    args = [arg for folder in folders for arg in ("--results", str(folder))]
    result = publish_wiki(fake_gitlab, tmp_path, *args, "--job-url", JOB_URLS["training_example"],
                          "--job-url", JOB_URLS["inference_example"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "2 --job-url for 3 --results: expected one job URL, or one per results folder in the same order" in result.stderr
    assert "Traceback" not in result.stderr and fake_gitlab.wiki == {}
    # One URL for all folders: every executed notebook linked in that job.
    one = publish_wiki(fake_gitlab, tmp_path, *args, "--job-url", JOB_URLS["training_example"])
    assert one.returncode == 0, one.stdout + one.stderr
    assert json.dumps(fake_gitlab.wiki).count(JOB_URLS["training_example"]) >= 3
