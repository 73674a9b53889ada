"""What ds-pipelines publishes, rendered from results folders: the real one ``ds-pipelines run`` leaves
(the session's ``trained`` run) and hand-made ones for failures, read through the same reader.

Markdown is checked the way readers get it: rendered to HTML by a CommonMark parser with GFM tables
(markdown-it-py), so a table that a notebook's text breaks, or HTML it injects, shows up as such.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html import escape, unescape
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from mlflow.tracking import MlflowClient
from published import MARKDOWN, Rendered

from ds_pipelines.masking import Masker, mask_notebook
from ds_pipelines.publishing.failures import describe_failures
from ds_pipelines.publishing.merge_request import find_baselines_or_warn
from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.comment import (
    MR_MARKER,
    previous_history,
    render_mr_comment,
)
from ds_pipelines.publishing.render.escape import (
    md_code,
    md_code_block,
    md_link,
    md_text,
    safe_url,
)
from ds_pipelines.publishing.render.links import Links, job_artifact_url
from ds_pipelines.publishing.render.release import render_release_notes
from ds_pipelines.publishing.render.slack import (
    alert_from_results,
    render_failure_alert,
)
from ds_pipelines.publishing.render.wiki import (
    INDEX_SLUG,
    WikiError,
    render_wiki_pages,
    wiki_slug,
)
from ds_pipelines.results.folder import ResultsError, load_results
from ds_pipelines.results.origin import Provenance
from ds_pipelines.tracking.baselines import (
    BRANCH_TAG,
    COMMIT_TAG,
    NOTEBOOK_TAG,
    BaselineError,
    find_baseline,
    mlflow_run_context_env,
    run_tags,
)
from ds_pipelines.tracking.links import mlflow_run_url
from ds_pipelines.tracking.registry import versions_registered_by

NO_SECRETS = Masker()  # renders in these tests do not depend on the environment of whoever runs them
SHA = "0123456789abcdef0123456789abcdef01234567"


# --- helpers -------------------------------------------------------------------------------------------


def table_with(markdown: str, header: str) -> list[list[str]]:
    tables = [t for t in Rendered(markdown).tables if t and t[0] and t[0][0] == header]
    assert tables, f"no table starting with {header!r}"
    return tables[0]


def executed_notebook(cells: list) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    # dagstermill's injected cell comes first: failed_cell numbers must not count it.
    notebook.cells = [nbformat.v4.new_code_cell("context = ...", metadata={"tags": ["injected-parameters"]}), *cells]
    return notebook


def entry(name: str, status: str = "success", **fields) -> dict:
    return {
        "notebook": f"notebooks/{name}.ipynb", "name": name, "status": status, "duration_s": 12.5,
        "dagster_run_id": f"dagster-{name}", "mlflow_run_id": None, "metrics": {}, "executed_notebook": None,
        "metrics_file": None, "artifacts": {}, "error": None, "failed_cell": None, **fields,
    }


def write_results(root: Path, entries: list[dict], *, commit: str | None = SHA, finished_at: str = "2024-05-01T10:00:00+00:00",
                  files: dict[str, object] | None = None) -> Path:
    """A results folder in the documented layout; ``files`` maps relative paths to bytes or notebooks."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in (files or {}).items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            nbformat.write(content, target)
    data = {
        "format": "ds-pipelines-results/1",
        "status": "success" if all(e["status"] == "success" for e in entries) else "failed",
        "started_at": "2024-05-01T09:58:00+00:00", "finished_at": finished_at,
        "commit": {"sha": commit, "branch": "feature"} if commit else None,
        "notebooks": entries,
    }
    (root / "results.json").write_text(json.dumps(data))
    return root


def failed_run(root: Path, *, error_value: str = "'target' column is missing", source: str = 'df["target"]') -> Path:
    notebook = executed_notebook([
        nbformat.v4.new_code_cell("import pandas as pd"),
        nbformat.v4.new_code_cell(source, outputs=[nbformat.v4.new_output(
            "error", ename="KeyError", evalue=error_value, traceback=["\x1b[0;31mKeyError\x1b[0m: boom"])]),
    ])
    return write_results(root, [
        entry("training", "failed", executed_notebook="training/training.ipynb", failed_cell=2,
              error=f"notebooks/training.ipynb failed in code cell 2 ('{source}'): KeyError: {error_value}"),
        entry("scoring", "not-run", dagster_run_id=None, duration_s=0),
    ], files={"training/training.ipynb": notebook})


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> str:
    """One SQLite MLflow store for this module's baseline tests (creating its schema takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def make_run(client: MlflowClient, experiment_id: str, *, minute: int, metrics: dict, tags: dict, status: str = "FINISHED") -> str:
    run = client.create_run(experiment_id, start_time=1_700_000_000_000 + minute * 60_000, tags=tags)
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def copied_store(trained_box, tmp_path: Path) -> str:
    """The trained run's MLflow store, copied, so this test's extra runs do not reach other tests."""
    source = Path(trained_box.env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    shutil.copyfile(source, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


# --- the results folder --------------------------------------------------------------------------------


@pytest.mark.slow
def test_reads_the_results_folder_of_a_real_run(trained, tmp_path):
    box, _ = trained
    folder = box.root / "results"
    results = load_results(folder)
    raw = json.loads((folder / "results.json").read_text())
    assert results.status == "success" and results.commit_sha == raw["commit"]["sha"]
    assert [nb.name for nb in results.notebooks] == [e["name"] for e in raw["notebooks"]]
    training = results.notebooks[0]
    assert training.metrics == raw["notebooks"][0]["metrics"] and training.mlflow_run_id == raw["notebooks"][0]["mlflow_run_id"]
    assert set(training.plots) == {"roc_curve", "feature_importance", "score_histogram"}
    assert all(path.is_file() and path.is_relative_to(folder.resolve()) for path in training.artifacts.values())
    # Real notebook output holds run ids, hashes and numbers: none of it is taken for a secret.
    for nb in results.notebooks:
        assert mask_notebook(nb.executed_notebook, tmp_path / f"{nb.name}.ipynb", env={}) == 0


def _bad_format(root):
    write_results(root, [])
    data = json.loads((root / "results.json").read_text())
    (root / "results.json").write_text(json.dumps({**data, "format": "other/2"}))


def _edit_entry(**changes):
    def edit(root):
        base = entry("nb")
        for key, value in changes.items():
            if value is KeyError:
                base.pop(key)
            else:
                base[key] = value
        write_results(root, [base])
    return edit


@pytest.mark.parametrize("make, message", [
    (lambda root: None, r"results folder .*/results does not exist \(expected what `ds-pipelines run --output-dir` writes\)"),
    (lambda root: root.mkdir(), r"results\.json does not exist: expected the results folder that `ds-pipelines run --output-dir"),
    (lambda root: (root.mkdir(), (root / "results.json").write_text("{oops")), r"results\.json is not valid JSON \(line 1, column 2"),
    (_bad_format, r"results\.json: format: expected 'ds-pipelines-results/1', got 'other/2'"),
    (_edit_entry(metrics={"auc": "high"}), r"results\.json: notebooks\[0\]\.metrics\.auc: expected a number, got 'high'"),
    (_edit_entry(status="ok"), r"notebooks\[0\]\.status: expected one of success, failed, not-run, got 'ok'"),
    (_edit_entry(name=KeyError), r"notebooks\[0\]\.name: required key is missing \(expected the notebook's asset name\)"),
    (_edit_entry(executed_notebook="../elsewhere.ipynb"), r"notebooks\[0\]\.executed_notebook: path '\.\./elsewhere\.ipynb' points outside the results folder"),
    (_edit_entry(artifacts={"roc": "nb/artifacts/roc.png"}), r"notebooks\[0\]\.artifacts\.roc: file .*nb/artifacts/roc\.png does not exist \(the results folder is incomplete\)"),
    (_edit_entry(failed_cell="3"), r"notebooks\[0\]\.failed_cell: expected null or a cell number, got '3'"),
], ids=["no-folder", "no-results-json", "bad-json", "format", "metric", "status", "missing-key", "outside", "missing-file", "cell"])
def test_bad_results_folders_are_errors_naming_file_key_and_expectation(tmp_path, make, message):
    root = tmp_path / "results"
    make(root)
    with pytest.raises(ResultsError, match=message):
        load_results(root)


# --- baselines -----------------------------------------------------------------------------------------


def test_baseline_is_the_latest_finished_run_on_the_default_branch(mlflow_store):
    client = MlflowClient(tracking_uri=mlflow_store)
    experiment = client.create_experiment("baseline-latest")
    main = {BRANCH_TAG: "main"}
    make_run(client, experiment, minute=1, metrics={"roc_auc": 0.90}, tags={**main, COMMIT_TAG: "a" * 40})
    expected = make_run(client, experiment, minute=2, metrics={"roc_auc": 0.92}, tags={**main, COMMIT_TAG: "b" * 40})
    make_run(client, experiment, minute=3, metrics={"roc_auc": 0.99}, tags=main, status="FAILED")
    make_run(client, experiment, minute=4, metrics={"roc_auc": 0.97}, tags={BRANCH_TAG: "other-feature"})
    make_run(client, experiment, minute=5, metrics={"roc_auc": 0.96}, tags={})  # a run from before tags existed
    current = make_run(client, experiment, minute=6, metrics={"roc_auc": 0.93}, tags={BRANCH_TAG: "feature"})

    baseline = find_baseline(current, "main", tracking_uri=mlflow_store)
    assert baseline is not None and baseline.run_id == expected
    assert baseline.metrics == {"roc_auc": 0.92} and baseline.commit_sha == "b" * 40 and baseline.branch == "main"
    assert find_baseline(current, "develop", tracking_uri=mlflow_store) is None  # "no baseline yet"
    # A run on the default branch itself is compared with the one before it, never with itself.
    latest_main = make_run(client, experiment, minute=7, metrics={"roc_auc": 0.94}, tags=main)
    assert find_baseline(latest_main, "main", tracking_uri=mlflow_store).run_id == expected


def test_notebook_tag_keeps_baselines_apart_in_a_shared_experiment(mlflow_store):
    client = MlflowClient(tracking_uri=mlflow_store)
    experiment = client.create_experiment("baseline-shared")
    training = make_run(client, experiment, minute=1, metrics={"auc": 0.9}, tags={BRANCH_TAG: "main", NOTEBOOK_TAG: "notebooks/a.ipynb"})
    make_run(client, experiment, minute=2, metrics={"auc": 0.5}, tags={BRANCH_TAG: "main", NOTEBOOK_TAG: "notebooks/b.ipynb"})
    current = make_run(client, experiment, minute=3, metrics={"auc": 0.91}, tags={BRANCH_TAG: "f", NOTEBOOK_TAG: "notebooks/a.ipynb"})
    assert find_baseline(current, "main", tracking_uri=mlflow_store).run_id == training


def test_a_run_id_unknown_to_mlflow_is_an_error_naming_it(mlflow_store):
    with pytest.raises(BaselineError, match=r"MLflow run 'ffffffffffffffffffffffffffffffff' \(from results\.json\) does not exist at sqlite:"):
        find_baseline("f" * 32, "main", tracking_uri=mlflow_store)


def test_tracking_uri_in_messages_never_shows_credentials():
    from ds_pipelines.tracking.links import shown_uri

    assert shown_uri("https://ci:s3cr3t-token@mlflow.example.com:5000/api") == "https://mlflow.example.com:5000/api"
    assert shown_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


@pytest.mark.slow
def test_run_tags_reach_mlflow_runs_through_the_run_context_environment(mlflow_store):
    """What the runner must do: MLFLOW_RUN_CONTEXT in the kernel's environment tags every run it starts."""
    tags = run_tags(SHA, "main", None, "https://gitlab.example.com/g/p/-/pipelines/5", "https://gitlab.example.com/g/p/-/jobs/9")
    env = {**os.environ, **mlflow_run_context_env(tags, {"MLFLOW_RUN_CONTEXT": json.dumps({"team": "ds"})})}
    code = (
        "import mlflow\n"
        f"mlflow.set_tracking_uri({mlflow_store!r}); mlflow.set_experiment('run-context')\n"
        "with mlflow.start_run() as run:\n    mlflow.log_metric('roc_auc', 0.95)\n"
        "print(run.info.run_id)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = done.stdout.split()[-1]
    client = MlflowClient(tracking_uri=mlflow_store)
    assert {**tags, "team": "ds"}.items() <= client.get_run(logged).data.tags.items()
    experiment = client.get_experiment_by_name("run-context").experiment_id
    current = make_run(client, experiment, minute=60_000, metrics={"roc_auc": 0.97}, tags={BRANCH_TAG: "feature"})
    run = SimpleNamespace(notebooks=load_like([{"name": "training", "mlflow_run_id": current}]))
    assert find_baselines_or_warn(run, "main", mlflow_store, pytest.fail)["training"].run_id == logged


def load_like(notebooks: list[dict]):
    """Minimal stand-ins for NotebookResult: find_baselines_or_warn reads name, status and mlflow_run_id."""
    return [SimpleNamespace(status="success", **nb) for nb in notebooks]


def test_run_tags_and_links_from_gitlab_ci():
    common = {"CI_COMMIT_SHA": SHA, "CI_PIPELINE_URL": "https://gl/p/1", "CI_JOB_URL": "https://gl/j/2"}
    mr = run_tags(SHA, "feature", 12, "https://gl/p/1", "https://gl/j/2")
    assert mr == {"ds-pipelines.commit": SHA, "ds-pipelines.branch": "feature", "ds-pipelines.merge_request": "12",
                  "ds-pipelines.pipeline_url": "https://gl/p/1", "ds-pipelines.job_url": "https://gl/j/2"}
    assert run_tags(SHA, "main", None, None, None, notebook="notebooks/a.ipynb")[NOTEBOOK_TAG] == "notebooks/a.ipynb"
    assert BRANCH_TAG not in run_tags(SHA, None, None, None, None)
    links = Links.from_origin(Provenance.from_gitlab_ci({**common, "CI_PROJECT_URL": "https://gl/g/p", "CI_MERGE_REQUEST_IID": "12"}), mlflow_runs={"a": "https://ml/1"})
    assert (links.pipeline, links.job, links.commit, links.merge_request, dict(links.mlflow_runs)) == (
        "https://gl/p/1", "https://gl/j/2", f"https://gl/g/p/-/commit/{SHA}", "https://gl/g/p/-/merge_requests/12", {"a": "https://ml/1"})
    with pytest.raises(Exception, match="MLFLOW_RUN_CONTEXT is set but is not a JSON object of tags"):
        mlflow_run_context_env({}, {"MLFLOW_RUN_CONTEXT": "[1]"})


# --- the merge-request comment -------------------------------------------------------------------------


@pytest.mark.slow
def test_comment_for_a_real_run_without_then_with_a_baseline_on_main(trained, tmp_path):
    box, _ = trained
    results = load_results(box.root / "results")
    store = copied_store(box, tmp_path)
    baselines = find_baselines_or_warn(results, "main", store, pytest.fail)
    assert baselines == {"training_example": None, "inference_example": None}  # nothing on main yet
    body = render_mr_comment(results, default_branch="main", failures=describe_failures(results), baselines=baselines, masker=NO_SECRETS)
    assert body.startswith(MR_MARKER + "\n") and body.count(MR_MARKER) == 1
    rows = table_with(body, "metric")
    assert rows[0] == ["metric", "this commit", "baseline (main)", "Δ"]
    auc = f"{results.notebooks[0].metrics['roc_auc']:.4g} ± {results.notebooks[0].uncertainty['roc_auc'].half_width:.2g}"
    assert ["roc_auc", auc, "no baseline yet", "—"] in rows
    assert "No baseline yet" in body

    training = results.notebooks[0]
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_run(training.mlflow_run_id).info.experiment_id
    earlier = make_run(client, experiment, minute=-10, tags={BRANCH_TAG: "main", COMMIT_TAG: "c" * 40},
                       metrics={"roc_auc": training.metrics["roc_auc"] - 0.0125, "accuracy": training.metrics["accuracy"], "retired": 1.0})
    baselines = find_baselines_or_warn(results, "main", store, pytest.fail)
    assert baselines["training_example"].run_id == earlier
    body = render_mr_comment(results, default_branch="main", failures=describe_failures(results), baselines=baselines, masker=NO_SECRETS)
    rows = {row[0]: row[1:] for row in table_with(body, "metric")[1:]}
    assert rows["roc_auc"][2] == "+0.0125"  # the made-up baseline has no interval: a plain delta, and the legend says so
    assert "The baseline has no intervals" in body
    assert rows["accuracy"][2] == "0"
    assert rows["f1"][1:] == ["—", "new"]  # not in the baseline
    assert rows["retired"] == ["—", "1", "removed"]  # in the baseline only
    assert f"Baseline: MLflow run <code>{earlier}</code>, commit <code>cccccccc</code>" in MARKDOWN.render(body)


def test_comment_shows_given_links_and_plots_and_omits_absent_ones(tmp_path):
    folder = write_results(tmp_path / "r", [entry("training", metrics={"roc_auc": 0.9}, artifacts={"roc_curve": "training/artifacts/roc.png"})],
                           files={"training/artifacts/roc.png": b"\x89PNG"})
    results = load_results(folder)
    assert set(results.notebooks[0].plots) == {"roc_curve"}
    links = Links(pipeline="https://gitlab.example.com/g/p/-/pipelines/5", job=None, commit="https://gitlab.example.com/g/p/-/commit/" + SHA,
                  mlflow_runs={"training": "https://mlflow.example.com/#/experiments/1/runs/abc"},
                  executed_notebooks={"training": job_artifact_url("https://gitlab.example.com/g/p/-/jobs/7", "results/training/training.ipynb")})
    body = render_mr_comment(results, default_branch="main", failures=describe_failures(results), links=links, masker=NO_SECRETS,
                             plots={"training": {"roc_curve": "![roc_curve](/uploads/0a1b/roc.png)", "evil": '<img src=x onerror="alert(1)">'}})
    html = Rendered(body)
    assert html.targets == [
        links.commit, links.pipeline, links.mlflow_runs["training"],
        "https://gitlab.example.com/g/p/-/jobs/7/artifacts/file/results/training/training.ipynb", "/uploads/0a1b/roc.png",
    ]
    assert "Job" not in MARKDOWN.render(body).replace("jobs/7", "")  # absent link: no label either
    assert "onerror" not in "".join(html.tags) and "<img src=x" not in body


def test_comment_on_a_failure_names_cell_error_and_executed_notebook(tmp_path):
    results = load_results(failed_run(tmp_path / "r"))
    links = Links(executed_notebooks={"training": "https://gitlab.example.com/g/p/-/jobs/7/artifacts/file/results/training/training.ipynb"})
    body = render_mr_comment(results, default_branch="main", failures=describe_failures(results), links=links, masker=NO_SECRETS)
    text = MARKDOWN.render(body)
    assert "1 of 2 notebooks failed" in body
    assert "failing cell:</strong> code cell 2" in text  # the injected cell is not counted
    assert "KeyError: 'target' column is missing" in text.replace("&#x27;", "'")
    assert '<code class="language-python">df[&quot;target&quot;]\n</code>' in text
    assert 'href="https://gitlab.example.com/g/p/-/jobs/7/artifacts/file/results/training/training.ipynb"' in text
    assert "<code>scoring</code> did not run (an earlier notebook failed)" in text


def test_comment_history_keeps_earlier_commits_newest_first_and_bounded(tmp_path):
    body = None
    for number in range(13):
        sha = f"{number:02d}" * 20
        folder = write_results(tmp_path / f"r{number}", [entry("training", metrics={"roc_auc": 0.8 + number / 100})],
                               commit=sha, finished_at=f"2024-05-01T10:{number:02d}:00+00:00")
        body = render_mr_comment(load_results(folder), default_branch="main", previous_body=body, masker=NO_SECRETS, history_limit=10)
    history = table_with(body, "commit")[1:]
    assert [row[0] for row in history] == [f"{n:02d}" * 4 for n in range(11, 1, -1)]  # 10 earlier commits, newest first
    assert history[0][4] == "roc_auc 0.91"
    assert "Earlier commits in this merge request (10)" in body
    # The same commit again (a retried pipeline) replaces its results instead of adding a history row.
    again = render_mr_comment(load_results(tmp_path / "r12"), default_branch="main", previous_body=body, masker=NO_SECRETS)
    assert [row[0] for row in table_with(again, "commit")[1:]] == [row[0] for row in history]
    assert previous_history(again)[0]["commit"] == "12" * 20


def test_comment_history_of_a_damaged_or_foreign_comment_is_empty(tmp_path):
    results = load_results(write_results(tmp_path / "r", [entry("training", metrics={"auc": 0.9})]))
    for previous in ("a note someone wrote", MR_MARKER + "\n<!-- ds-pipelines:data:mr-comment %%%notbase64 -->",
                     datablock.embed("mr-comment", {"current": {"commit": 5}, "history": "x"})):
        body = render_mr_comment(results, default_branch="main", failures=describe_failures(results), previous_body=previous, masker=NO_SECRETS)
        assert "Earlier commits" not in body and previous_history(body)[0]["commit"] == SHA


HOSTILE = {
    "script": "<script>alert(1)</script>",
    "javascript-link": "[click](javascript:alert(1))",
    "image": "![x](https://evil.example.com/t.png)",
    "pipe": "a | b | c",
    "backticks": "``x` `` and ```",
    "newline": "first\n| injected | row |\n\nsecond",
    "marker": MR_MARKER + " <!-- ds-pipelines:data:mr-comment e30= -->",
    "mention": "@alice and @all",
    "reference": "#123 !45 ~bug %\"v1\" $7 &8",
    "quick-action": "\n/merge\n/approve",
    "html-entity": "&lt;script&gt;",
    "bare-url": "see https://evil.example.com/x, HTTP://evil.example.com or www.evil.example.com",
    "sha": "fixed in 0123456789abcdef0123456789abcdef01234567 (short: deadbee)",
}
# What GitLab auto-links in rendered text outside code (markdown-it, unlike GitLab, links none of it): a URL
# with a scheme (its autolink filter), a www. host (GLFM's extended autolinks) and 7 to 64 hex digits in a
# row (a commit reference, linked when a commit of the project has that prefix).
GITLAB_AUTOLINKS = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|(?<![\w.-])www\.|(?<![0-9a-f])[0-9a-f]{7,64}(?![0-9a-f])")


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_notebook_text_cannot_inject_markup_mentions_or_markers(tmp_path, hostile):
    source = f"raise ValueError({hostile!r})\n{hostile}"
    folder = failed_run(tmp_path / "r", error_value=hostile, source=source)
    data = json.loads((folder / "results.json").read_text())
    data["notebooks"][0]["metrics"] = {hostile: 0.5, "auc": 0.9}
    data["notebooks"][1]["name"] = hostile
    (folder / "results.json").write_text(json.dumps(data))
    results = load_results(folder)
    context = Provenance(branch=hostile, trigger="push", image=hostile, runner="CPU")
    pages = {
        "comment": render_mr_comment(results, default_branch="main", failures=describe_failures(results), masker=NO_SECRETS),
        "wiki": render_wiki_pages(results, origin=context, masker=NO_SECRETS)[0].content,
        "index": render_wiki_pages(results, origin=context, masker=NO_SECRETS)[-1].content,
        "release": render_release_notes("v1.0.0", "production", results, failures=describe_failures(results), masker=NO_SECRETS).description,
    }
    for where, page in pages.items():
        html = Rendered(page)
        assert not {"script", "img"} & set(html.tags), where
        assert not any(href.startswith("javascript") or "evil" in href for href in html.targets), where
        for table in html.tables:
            assert len({len(row) for row in table}) == 1, (where, table)  # no cell split off, no row added
        # GitLab resolves references (and pings people) in text, not in code.
        text = unescape(re.sub(r"<pre>.*?</pre>|<code[^>]*>.*?</code>", "", MARKDOWN.render(page), flags=re.DOTALL))
        assert not re.search(r"(?<!\w)[@#!~%$&](alice|all|123|45|bug|\"v1|7|8)\b", text), where
        # Nor does it auto-link inside links, or in hidden data (HTML comments are not rendered).
        unlinked = re.sub(r"<a [^>]*>.*?</a>|<!--.*?-->", "", text, flags=re.DOTALL)
        assert not GITLAB_AUTOLINKS.search(unlinked), (where, GITLAB_AUTOLINKS.search(unlinked))
        assert not re.search(r"^\s*/(merge|approve)", page, re.MULTILINE), where
        assert "<!--" not in page.replace(MR_MARKER, "").replace("<!-- ds-pipelines:wiki -->", "").split("<!-- ds-pipelines:data:")[0], where
    comment = pages["comment"]
    assert comment.count(MR_MARKER) == 1
    assert [e["commit"] for e in previous_history(comment)] == [SHA]  # the genuine data block, not a fake one
    # The text itself still reads as the notebook wrote it (on one line; zero-width spaces are invisible).
    readable = [[" ".join(cell.replace("\u200b", "").split()) for cell in row] for row in table_with(comment, "metric")]
    assert [" ".join(hostile.split()), "0.5", "no baseline yet", "—"] in readable


def test_escape_primitives():
    for text in ("a`b", "``x", "x`", "<b>&amp;</b>"):
        assert MARKDOWN.renderInline(md_code(text, in_table=False)) == f"<code>{escape(text)}</code>"
    assert md_code("a|b") == "`a\\|b`"  # GFM's escape for a pipe inside a table cell, code included
    assert MARKDOWN.render(md_code_block("```\nx")) == "<pre><code>```\nx\n</code></pre>\n"
    assert safe_url("javascript:alert(1)") is None and safe_url("//evil.example.com/x") is None
    assert safe_url("https://x.example.com/a (b)") == "https://x.example.com/a%20%28b%29"
    assert md_link("run", "data:text/html,hi") == "run"
    # A link's label is never auto-linked by GitLab: a SHA there stays whole; without a link it is split.
    assert md_link("0123456789", "https://gitlab.example.com/g/p/-/commit/0123456789") == (
        "[0123456789](https://gitlab.example.com/g/p/-/commit/0123456789)")
    assert md_link("0123456789", None) == "012345\u200b6789" == md_text("0123456789")
    assert mlflow_run_url("https://mlflow.example.com/", "3", "abc") == "https://mlflow.example.com/#/experiments/3/runs/abc"


# --- wiki ----------------------------------------------------------------------------------------------


def _wiki_run(tmp_path: Path, number: int, existing: dict, *, dagster_id: str | None = None, **context) -> dict:
    folder = write_results(tmp_path / f"w{number}", [entry("training", metrics={"roc_auc": 0.5 + number / 100, "cv_auc": 0.4},
                                                           dagster_run_id=dagster_id or f"run-{number}")],
                           commit=f"{number:040d}", finished_at=f"2024-05-{1 + number // 24:02d}T{number % 24:02d}:00:00+00:00")
    pages = render_wiki_pages(load_results(folder), origin=Provenance(**context), existing=existing, masker=NO_SECRETS, max_rows=50)
    return {page.slug: page.content for page in pages}


def test_wiki_page_rows_are_newest_first_bounded_and_not_repeated(tmp_path):
    existing: dict = {}
    for number in range(55):
        existing = _wiki_run(tmp_path, number, existing)
    rows = table_with(existing[wiki_slug("training")], "date")[1:]
    assert len(rows) == 50
    assert [row[1] for row in rows] == [f"{n:040d}"[:8] for n in range(54, 4, -1)]
    # The same Dagster run published again (a retried job) replaces its row.
    again = _wiki_run(tmp_path, 54, existing, dagster_id="run-54")
    assert len(table_with(again[wiki_slug("training")], "date")) == 51


def test_wiki_row_says_trigger_runner_image_duration_metrics_and_links(tmp_path):
    folder = write_results(tmp_path / "r", [entry("training", metrics={"roc_auc": 0.91234, "log_loss": 0.2, "zeta": 3.0}, duration_s=95)])
    links = Links(pipeline="https://gl.example.com/p/1", job="https://gl.example.com/j/2", merge_request="https://gl.example.com/mr/12",
                  commit="https://gl.example.com/c/" + SHA, mlflow_runs={"training": "https://ml.example.com/r/1"})
    context = Provenance.from_gitlab_ci({
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "12", "CI_COMMIT_SHA": SHA,
        "CI_RUNNER_TAGS": '["docker", "nvidia-gpu"]', "CI_JOB_IMAGE": "registry.example.com/ds/notebooks:2024.05",
    })
    pages = render_wiki_pages(load_results(folder), origin=context, links=links, masker=NO_SECRETS)
    assert [page.slug for page in pages] == ["model-runs/training", INDEX_SLUG] and pages[0].title == "model-runs/training"
    table = table_with(pages[0].content, "date")
    assert table[0] == ["date", "commit", "trigger", "runner", "image", "duration", "status", "roc_auc", "log_loss", "links"]
    assert table[1] == ["2024-05-01 10:00 UTC", SHA[:8], "MR !\u200b12", "GPU", "2024.05", "1 min 35 s", "✅ success",
                        "0.9123", "0.2", "pipeline · job · MLflow"]
    assert Rendered(pages[0].content).targets == [links.commit, links.merge_request, links.pipeline, links.job, links.mlflow_runs["training"]]
    scheduled = Provenance.from_gitlab_ci({"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main", "DSP_RUNNER": "cpu"})
    assert (scheduled.trigger_label, scheduled.runner, scheduled.image_tag) == ("schedule", "CPU", None)


def test_wiki_never_overwrites_a_page_it_did_not_write_or_cannot_read(tmp_path):
    folder = write_results(tmp_path / "r", [entry("training", metrics={"auc": 0.9})])
    results = load_results(folder)
    with pytest.raises(WikiError, match=r"wiki page 'model-runs/training' exists but was not written by ds-pipelines"):
        render_wiki_pages(results, origin=Provenance(), existing={"model-runs/training": "# Notes by a person"}, masker=NO_SECRETS)
    damaged = "<!-- ds-pipelines:wiki -->\n| table |\n<!-- ds-pipelines:data:wiki-runs %%% -->"
    with pytest.raises(WikiError, match=r"'model-runs/training': its hidden run data .* is missing or damaged"):
        render_wiki_pages(results, origin=Provenance(), existing={"model-runs/training": damaged}, masker=NO_SECRETS)


def test_wiki_index_lists_every_notebook_page_seen_so_far(tmp_path):
    first = write_results(tmp_path / "a", [entry("training", metrics={"auc": 0.9}), entry("scoring", metrics={"rows": 5.0})])
    pages = {p.slug: p.content for p in render_wiki_pages(load_results(first), origin=Provenance(), masker=NO_SECRETS)}
    second = write_results(tmp_path / "b", [entry("training", "failed", error="boom"), entry("scoring", "not-run")],
                           commit="f" * 40, finished_at="2024-05-02T10:00:00+00:00")
    index = render_wiki_pages(load_results(second), origin=Provenance(), existing=pages, masker=NO_SECRETS)[-1]
    rows = table_with(index.content, "notebook")[1:]
    assert rows == [["training", "2024-05-02 10:00 UTC", "❌ failed", "ffffffff"],
                    ["scoring", "2024-05-01 10:00 UTC", "✅ success", SHA[:8]]]
    assert Rendered(index.content).targets == ["/model-runs/training", "/model-runs/scoring"]


# --- release notes and Slack ---------------------------------------------------------------------------


@pytest.mark.slow
def test_release_notes_of_a_real_run_name_the_registered_model_version(trained, tmp_path):
    box, _ = trained
    results = load_results(box.root / "results")
    client = MlflowClient(tracking_uri=copied_store(box, tmp_path))
    versions = {nb.name: versions_registered_by(client, nb.mlflow_run_id, ui_url="https://mlflow.example.com")
                for nb in results.notebooks if nb.mlflow_run_id}
    assert [(v.name, v.version) for v in versions["training_example"]] == [("tests-xgb", "1")]
    links = Links(pipeline="https://gl.example.com/p/1", commit="https://gl.example.com/c/1")
    notes = render_release_notes("v1.2.3", "production", results, links=links, model_versions=versions, masker=NO_SECRETS)
    assert notes.tag == "v1.2.3" and notes.name == "v1.2.3 (production release)"
    text = MARKDOWN.render(notes.description)
    assert "Model <code>tests-xgb</code> version <strong>1</strong>" in text
    assert 'href="https://mlflow.example.com/#/models/tests-xgb/versions/1"' in text
    roc = results.notebooks[0].metrics["roc_auc"]
    assert ["roc_auc", f"{roc:.4g}"] in table_with(notes.description, "metric")
    assert render_release_notes("dev-1.2.3", "development", results, masker=NO_SECRETS).name == "dev-1.2.3 (development release)"


def test_slack_text_links_no_bare_url_a_notebook_wrote(tmp_path):
    results = load_results(failed_run(tmp_path / "r", error_value="log in at https://evil.example.com or www.evil.example.com"))
    alert = alert_from_results(results, origin=Provenance(branch="main", trigger="push"), links=Links(),
                               failures=describe_failures(results), project="group/ds")
    text = render_failure_alert(alert)
    assert "https:\u200b//evil.example.com" in text and "www\u200b.evil.example.com" in text
    assert "https://evil" not in text and "www.evil" not in text


def test_slack_failure_text_uses_slack_escaping_and_links(tmp_path):
    results = load_results(failed_run(tmp_path / "r", error_value="<!channel> & <@U123> <https://evil.example.com|click>"))
    links = Links(pipeline="https://gl.example.com/p/1", job="https://gl.example.com/j/2|x",
                  executed_notebooks={"training": "https://gl.example.com/j/2/artifacts/file/results/training/training.ipynb"})
    alert = alert_from_results(results, origin=Provenance(branch="main", trigger="push"), links=links,
                               failures=describe_failures(results), project="group/ds")
    text = render_failure_alert(alert)
    assert text.splitlines()[0] == ":x: *ds-pipelines run failed* (group/ds · commit 01234567 · branch main)"
    assert "<https://gl.example.com/p/1|Pipeline> · <https://gl.example.com/j/2%7Cx|Job>" in text
    assert "KeyError: &lt;!channel&gt; &amp; &lt;@\u200bU123&gt; &lt;https:\u200b//evil.example.com|click&gt;" in text
    assert "*training* (notebooks/training.ipynb) failed in code cell 2 after 12.5 s:" in text
    assert "<https://gl.example.com/j/2/artifacts/file/results/training/training.ipynb|Executed notebook>" in text
    assert text.endswith("Not run: scoring")
    # Outside a code block and a link, no "<" survives: nothing a notebook wrote becomes a Slack command.
    assert re.findall(r"<[^>]*>", text) == [
        "<https://gl.example.com/p/1|Pipeline>", "<https://gl.example.com/j/2%7Cx|Job>",
        "<https://gl.example.com/j/2/artifacts/file/results/training/training.ipynb|Executed notebook>",
    ]
