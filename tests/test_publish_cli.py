"""``ds-pipelines publish mr`` and ``publish wiki`` through the real CLI, against a GitLab API served on
127.0.0.1 (FakeGitLab, real python-gitlab) and the session's real results folder and MLflow store."""

from __future__ import annotations

import json
import subprocess

import pytest
from fake_gitlab import FakeGitLab
from made_up import random_text
from published import (
    Rendered,
    assert_clean_exit,
    cli_env,
    copy_results,
    edit_results,
    everything_in,
    fail_with_cell,
    hidden_data,
    notebook_entry,
    run_cli,
)
from sandbox import CLI

from ds_pipelines.publishing.render.comment import MR_MARKER
from ds_pipelines.publishing.render.numbers import short_sha
from ds_pipelines.tracking.links import mlflow_ui_url

MR = 3
FIRST_SHA = "1111111111111111111111111111111111111111"
SECOND_SHA = "2222222222222222222222222222222222222222"
INJECTED_METRIC = '<img src=x onerror="alert(1)">|**bold**'
INJECTED_ERROR = 'ValueError: <script>alert("x")</script> [click](javascript:alert(1)) @all'


@pytest.fixture
def results(trained, tmp_path):
    box, _ = trained
    return copy_results(box, tmp_path / "results")


def ci_env(trained, fake, tmp_path, **extra):
    """What a merge-request pipeline's publishing job sees."""
    box, _ = trained
    return cli_env(box, fake, CI_MERGE_REQUEST_IID=str(MR), CI_PROJECT_DIR=str(tmp_path),
                   CI_JOB_URL=f"{fake.web_url}/-/jobs/42", CI_PROJECT_URL=fake.web_url, **extra)


def set_commit(results_dir, sha):
    def change(data):
        data["commit"]["sha"] = sha
    edit_results(results_dir, change)


@pytest.mark.slow
def test_comment_is_created_then_updated_in_place_with_the_first_commit_in_its_history(
    trained, results, tmp_path, fake_gitlab,
):
    env = ci_env(trained, fake_gitlab, tmp_path)
    set_commit(results, FIRST_SHA)
    first = run_cli(env, "publish", "mr", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(first)
    assert f"Merge-request comment created on !{MR}" in first.stdout
    set_commit(results, SECOND_SHA)
    second = run_cli(env, "publish", "mr", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(second)
    assert f"Merge-request comment updated on !{MR}" in second.stdout

    [note] = fake_gitlab.marked_notes(MR, MR_MARKER)
    assert len(fake_gitlab.notes[MR]) == 1
    body = note["body"]
    assert f"Notebook results for `{short_sha(SECOND_SHA)}`" in body  # no commit URL here: a code span
    [data] = hidden_data(body)
    assert data["current"]["commit"] == SECOND_SHA
    assert [entry["commit"] for entry in data["history"]] == [FIRST_SHA]
    assert "Earlier commits in this merge request (1)" in body

    page = Rendered(body)
    metrics = page.tables[0]
    assert metrics[0][:2] == ["metric", "this commit"]
    training = notebook_entry(json.loads((results / "results.json").read_text()), "training_example")
    interval = training["uncertainty"]["roc_auc"]
    assert ["roc_auc", f"{training['metrics']['roc_auc']:.4g} ± {(interval['high'] - interval['low']) / 2:.2g}"] == metrics[1][:2]
    # The executed notebook is linked in the job's artifacts, never uploaded; plots are uploaded untouched.
    assert f"{fake_gitlab.web_url}/-/jobs/42/artifacts/file/results/training_example/training_example.ipynb" in page.targets
    plots = {path.name: path.read_bytes() for path in (results / "training_example" / "artifacts").glob("*.png")}
    assert len(plots) == 3 and len(fake_gitlab.uploads) == 6  # each run uploads its plots
    for url, data in fake_gitlab.uploads.items():
        assert data == plots[url.rsplit("/", 1)[-1]], url
    assert [t for t in page.targets if t.startswith("/uploads/")] == list(fake_gitlab.uploads)[3:]


@pytest.mark.slow
def test_the_comment_uses_the_note_only_token_when_there_is_one(trained, results, tmp_path, fake_gitlab):
    # GITLAB_TOKEN (wiki, releases) is a protected variable: a branch's pipeline has only the note token.
    env = ci_env(trained, fake_gitlab, tmp_path, GITLAB_TOKEN="", GITLAB_NOTE_TOKEN=fake_gitlab.token)
    result = run_cli(env, "publish", "mr", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(result)
    assert len(fake_gitlab.marked_notes(MR, MR_MARKER)) == 1
    wrong = "glpat-" + random_text(20)  # made up: FakeGitLab refuses it
    refused = run_cli({**env, "GITLAB_NOTE_TOKEN": wrong}, "publish", "mr", "--results", str(results), "--strict",
                      cwd=tmp_path)
    assert refused.returncode == 1 and wrong not in refused.stdout + refused.stderr


@pytest.mark.slow
def test_faults_on_the_note_post_still_leave_exactly_one_comment(trained, results, tmp_path, fake_gitlab):
    # Every fault on the same request, in a row: rate limit, server error, dropped connection, then a
    # POST that GitLab applied but whose reply was lost (python-gitlab retries it: a twin note appears).
    for kind in ("429", "500", "drop", "lose-reply"):
        fake_gitlab.fail_next("POST", r"/merge_requests/3/notes$", kind)
    result = run_cli(ci_env(trained, fake_gitlab, tmp_path), "publish", "mr", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(result)
    posts = [path for method, path in fake_gitlab.requests if method == "POST" and path.endswith("/notes")]
    assert len(posts) == 5  # four faults, then the retry that got through
    assert len(fake_gitlab.marked_notes(MR, MR_MARKER)) == 1 and len(fake_gitlab.notes[MR]) == 1
    assert "warning" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True], ids=["best-effort", "strict"])
def test_a_wrong_token_is_a_warning_naming_gitlab_token_or_exit_1_with_strict(trained, results, tmp_path, strict):
    wrong = "glpat-" + random_text(20)
    with FakeGitLab() as fake:
        env = ci_env(trained, fake, tmp_path, GITLAB_TOKEN=wrong)
        result = run_cli(env, "publish", "mr", "--results", str(results), *(["--strict"] if strict else []), cwd=tmp_path)
        assert fake.notes == {} and fake.uploads == {}
    assert_clean_exit(result, 1 if strict else 0)
    prefix = "error" if strict else "warning"
    assert f"{prefix}: merge-request comment not published: GitLab refused the token (401" in result.stderr
    assert "GITLAB_TOKEN" in result.stderr
    assert wrong not in result.stdout + result.stderr and "glpat" not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True], ids=["best-effort", "strict"])
def test_nowhere_to_publish_is_a_warning_or_exit_2_with_strict(trained, results, tmp_path, strict):
    box, _ = trained
    flag = ["--strict"] if strict else []
    with FakeGitLab() as fake:
        no_mr = run_cli(cli_env(box, fake), "publish", "mr", "--results", str(results), *flag, cwd=tmp_path)
        no_gitlab = run_cli(cli_env(box, CI_MERGE_REQUEST_IID="3"), "publish", "mr", "--results", str(results), *flag,
                            cwd=tmp_path)
        wiki_no_gitlab = run_cli(cli_env(box), "publish", "wiki", "--results", str(results), *flag, cwd=tmp_path)
        assert fake.requests == []
    for result in (no_mr, no_gitlab, wiki_no_gitlab):
        assert_clean_exit(result, 2 if strict else 0)
    assert "no merge request to comment on: CI_MERGE_REQUEST_IID is not set" in no_mr.stderr
    assert "--mr IID" in no_mr.stderr
    for result in (no_gitlab, wiki_no_gitlab):
        assert "GitLab is not configured: set CI_SERVER_URL (or GITLAB_URL)" in result.stderr
        assert ("error: " if strict else "warning: ") in result.stderr


@pytest.mark.slow
def test_a_missing_or_invalid_results_folder_exits_2_even_best_effort(trained, tmp_path, fake_gitlab):
    box, _ = trained
    env = cli_env(box, fake_gitlab, CI_MERGE_REQUEST_IID="3")
    missing = run_cli(env, "publish", "mr", "--results", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert_clean_exit(missing, 2)
    assert f"results folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"format": "something-else"}')
    wiki = run_cli(env, "publish", "wiki", "--results", str(broken), cwd=tmp_path)
    assert_clean_exit(wiki, 2)
    assert f"{broken / 'results.json'}: format: expected 'ds-pipelines-results/1'" in wiki.stderr
    assert fake_gitlab.requests == []


@pytest.mark.slow
def test_markdown_and_html_from_notebooks_is_escaped_in_the_comment_and_the_wiki(
    trained, results, tmp_path, fake_gitlab,
):
    def inject(data):
        # The failed notebook's only metric, so that the wiki shows it too (it keeps a few key metrics).
        inference = notebook_entry(data, "inference_example")
        inference.update(status="failed", error=INJECTED_ERROR, failed_cell=None, metrics_file=None,
                         metrics={INJECTED_METRIC: 0.5})
        data["status"] = "failed"
    edit_results(results, inject)
    env = ci_env(trained, fake_gitlab, tmp_path)
    assert_clean_exit(run_cli(env, "publish", "mr", "--results", str(results), cwd=tmp_path))
    assert_clean_exit(run_cli(env, "publish", "wiki", "--results", str(results), cwd=tmp_path))

    comment = Rendered(fake_gitlab.notes[MR][0]["body"])
    wiki = Rendered(fake_gitlab.wiki["model-runs/inference_example"]["content"])
    for page in (comment, wiki):
        assert "script" not in page.tags and "onerror" not in page.attributes
        assert all(target.startswith(("/uploads/", fake_gitlab.url)) for target in page.targets), page.targets
    # The metric is a cell of its own (the | did not split the table) and reads as written.
    inference_table = comment.tables[-1]
    assert inference_table[1] == [INJECTED_METRIC, "0.5", "no baseline yet", "—"]
    header, row = wiki.tables[0]
    assert INJECTED_METRIC in header and len(row) == len(header)
    assert 'ValueError: <script>alert("x")</script> [click](javascript:alert(1)) @' in comment.text
    assert "javascript:" not in " ".join(comment.targets)
    assert "1 of 2 notebooks failed" in comment.text


@pytest.mark.slow
def test_a_token_printed_by_a_notebook_reaches_no_comment_wiki_or_upload(trained, results, tmp_path, fake_gitlab):
    token = "glpat-" + random_text(20)
    password = "horse-" + random_text(14)  # no secret by its shape: masked as the value of a secret variable
    fail_with_cell(
        results, "inference_example",
        source=f'token = "{token}"\nprint("connecting with", token, "{password}")',
        outputs=[
            {"output_type": "stream", "name": "stdout", "text": f"connecting with {token} {password}\n"},
            {"output_type": "error", "ename": "ValueError", "evalue": f"login refused for {token}",
             "traceback": [f"ValueError: login refused for {token} ({password})"]},
        ],
        error=f"notebooks/inference_example.ipynb failed in code cell 6: ValueError: login refused for {token}",
    )
    edit_results(results, lambda data: notebook_entry(data, "inference_example").update(metrics={f"auc_{token}": 0.5}))
    assert token in (results / "inference_example" / "inference_example.ipynb").read_text()
    env = ci_env(trained, fake_gitlab, tmp_path, DEMO_SECRET=password)
    assert_clean_exit(run_cli(env, "publish", "mr", "--results", str(results), cwd=tmp_path))
    assert_clean_exit(run_cli(env, "publish", "wiki", "--results", str(results), cwd=tmp_path))

    published = {
        "comment": everything_in(fake_gitlab.notes[MR][0]["body"]),
        **{f"wiki {slug}": everything_in(page["content"]) for slug, page in fake_gitlab.wiki.items()},
        **{f"upload {url}": data.decode("latin-1") for url, data in fake_gitlab.uploads.items()},
    }
    assert len(published) == 1 + 3 + 3
    for where, text in published.items():
        for secret in (token, password, fake_gitlab.token):
            assert secret not in text, where
    # What failed is still said, the secrets masked.
    assert "ValueError: login refused for \\[MASKED\\]" in published["comment"]
    assert "`auc_[MASKED]`" in published["comment"] and "`auc_[MASKED]`" in published["wiki model-runs/inference_example"]


@pytest.mark.slow
def test_two_publishes_make_two_wiki_rows_newest_first_and_an_index(trained, results, tmp_path, fake_gitlab):
    # From a folder outside any project: with MLFLOW_TRACKING_URI set, publishing needs no project.
    env = {k: v for k, v in ci_env(trained, fake_gitlab, tmp_path).items() if k != "DS_PIPELINES_PROJECT_DIR"}
    assert "MLFLOW_TRACKING_URI" in env and not (tmp_path / "configs" / "notebooks.yaml").exists()
    set_commit(results, FIRST_SHA)
    first = run_cli(env, "publish", "wiki", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(first)
    assert "Wiki page model-runs/training_example created." in first.stdout

    def next_run(data):
        data["commit"]["sha"] = SECOND_SHA
        data["finished_at"] = "2099-01-01T00:00:00+00:00"
        for nb in data["notebooks"]:
            nb["dagster_run_id"] = f"second-{nb['name']}"
    edit_results(results, next_run)
    second = run_cli(env, "publish", "wiki", "--results", str(results), cwd=tmp_path)
    assert_clean_exit(second)
    assert "Wiki page model-runs/training_example updated." in second.stdout

    page = Rendered(fake_gitlab.wiki["model-runs/training_example"]["content"])
    header, *rows = page.tables[0]
    assert header[:2] == ["date", "commit"]
    assert [row[1] for row in rows] == [short_sha(SECOND_SHA), short_sha(FIRST_SHA)]
    index = Rendered(fake_gitlab.wiki["model-runs"]["content"])
    assert sorted(row[0] for row in index.tables[0][1:]) == ["inference_example", "training_example"]
    assert "/model-runs/training_example" in index.targets
    assert set(fake_gitlab.wiki) == {"model-runs", "model-runs/training_example", "model-runs/inference_example"}


@pytest.mark.parametrize(("tracking_uri", "ui_url"), [
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://user:secret-value@mlflow.example.com/base/", "https://mlflow.example.com/base"),
    ("https://gitlab.example.com/api/v4/projects/7/ml/mlflow", None),  # GitLab's API: no MLflow UI to link
    ("sqlite:///tmp/mlflow.db", None),
    (None, None),
])
def test_mlflow_run_links_only_for_an_mlflow_server_and_without_credentials(tracking_uri, ui_url):
    assert mlflow_ui_url(tracking_uri) == ui_url


@pytest.mark.slow
def test_two_runs_publishing_at_once_lose_no_wiki_row(trained, tmp_path, fake_gitlab, postgres):
    """Two CI jobs (or a CI job and the deployment) write the same pages at the same moment, on a GitLab slow
    to land writes: both rows reach every page, serialized on the shared Postgres database."""
    box, _ = trained
    env = ci_env(trained, fake_gitlab, tmp_path, DAGSTER_POSTGRES_URL=postgres.url(postgres.new_database()))
    runs = []
    for number, sha in enumerate((FIRST_SHA, SECOND_SHA)):
        folder = copy_results(box, tmp_path / f"results-{number}")

        def this_run(data, number=number, sha=sha):
            data["commit"]["sha"] = sha
            for nb in data["notebooks"]:
                nb["dagster_run_id"] = f"run-{number}-{nb['name']}"
        edit_results(folder, this_run)
        runs.append(folder)
    fake_gitlab.wiki_write_delay_s = 0.5  # both read every page before either write lands

    started = [subprocess.Popen([str(CLI), "publish", "wiki", "--results", str(folder), "--strict"], env=env,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for folder in runs]
    for process in started:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]

    for slug in ("model-runs/training_example", "model-runs/inference_example"):
        header, *rows = Rendered(fake_gitlab.wiki[slug]["content"]).tables[0]
        assert sorted(row[1] for row in rows) == sorted([short_sha(FIRST_SHA), short_sha(SECOND_SHA)]), slug
