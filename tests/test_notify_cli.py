"""``ds-pipelines notify slack`` on a real failed run's results folder, posting to the fake Slack.

The failed run is ``ds-pipelines run`` itself on a tiny notebook that fails with a GitLab token and a secret
environment value in its error, and a ``<!channel>`` ping: the posted text must carry the cell and error,
with both secrets masked and the ping escaped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from fake_slack import CHANNEL
from made_up import random_text
from sandbox import CLI, Sandbox, make_sandbox

PROJECT_URL = "https://gitlab.example.com/group/ds"
SHA = "0123456789abcdef0123456789abcdef01234567"
NOT_CONFIGURED = "Slack is not configured: set SLACK_WEBHOOK_URL (or SLACK_BOT_TOKEN and SLACK_CHANNEL)"


# Made up at run time, so this file holds no token-shaped string for secret scanners to report.
GITLAB_TOKEN = "glpat-" + random_text(20)
"""Recognised by its shape (detect-secrets), not set in the environment of ``notify``."""
PASSWORD = "horse-" + random_text(14)
"""Not recognisable by its shape: masked because it is a secret variable's value where ``notify`` runs."""


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> tuple[Sandbox, Path]:
    """``ds-pipelines run`` on a notebook whose second code cell raises with both secrets and a ping."""
    box = make_sandbox(tmp_path_factory.mktemp("failed-run"))
    project = box.root / "project"
    (project / "notebooks").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [
        nbformat.v4.new_code_cell("import os\ntoken, password = os.environ['DEMO_GITLAB_TOKEN'], os.environ['DEMO_SERVICE_PASSWORD']"),
        nbformat.v4.new_code_cell("raise ValueError(f'<!channel> login refused for {token} with {password}')"),
    ]
    nbformat.write(notebook, project / "notebooks" / "leaky.ipynb")
    box.env.update(DEMO_GITLAB_TOKEN=GITLAB_TOKEN, DEMO_SERVICE_PASSWORD=PASSWORD)
    results = box.root / "results"
    run = box.cli("run", "notebooks/leaky.ipynb", "--project-dir", str(project), "--output-dir", str(results), timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]
    raw = (results / "results.json").read_text()
    # The run masks its error at the source (the secrets are environment values)...
    assert GITLAB_TOKEN not in raw and PASSWORD not in raw and "<!channel>" in raw
    # ...so put them back, as a results folder written by an older ds-pipelines holds them: notify must mask
    # them itself, or the masking assertions below would pass for the wrong reason.
    data = json.loads(raw)
    data["notebooks"][0]["error"] = f"ValueError: <!channel> login refused for {GITLAB_TOKEN} with {PASSWORD}"
    (results / "results.json").write_text(json.dumps(data, indent=2))
    return box, results


def successful_results(root: Path) -> Path:
    """A results folder of a successful run, in the documented format."""
    root.mkdir(parents=True)
    (root / "results.json").write_text(json.dumps({
        "format": "ds-pipelines-results/1", "status": "success",
        "started_at": "2024-05-01T09:58:00+00:00", "finished_at": "2024-05-01T10:00:00+00:00",
        "commit": {"sha": SHA, "branch": "main"},
        "notebooks": [{
            "notebook": "notebooks/training.ipynb", "name": "training", "status": "success", "duration_s": 12.5,
            "dagster_run_id": "run-1", "mlflow_run_id": None, "metrics": {"roc_auc": 0.97}, "executed_notebook": None,
            "metrics_file": None, "artifacts": {}, "error": None, "failed_cell": None,
        }],
    }))
    return root


def notify(results: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real CLI, in an environment without this machine's Slack, CI or MLflow settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CI_", "MLFLOW_", "DS_PIPELINES_", "DAGSTER_"))}
    return subprocess.run([str(CLI), "notify", "slack", "--results", str(results), *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120, check=False)


def ci_env() -> dict[str, str]:
    return {
        "CI_PROJECT_URL": PROJECT_URL, "CI_PROJECT_PATH": "group/ds", "CI_COMMIT_SHA": SHA,
        "CI_MERGE_REQUEST_IID": "12", "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_PIPELINE_URL": f"{PROJECT_URL}/-/pipelines/77", "CI_JOB_URL": f"{PROJECT_URL}/-/jobs/901",
        "DEMO_SERVICE_PASSWORD": PASSWORD,
    }


@pytest.mark.slow
def test_failed_run_is_posted_with_its_cell_error_and_ci_links(failed_run, fake_slack):
    _, results = failed_run
    result = notify(results, env={**ci_env(), **fake_slack.webhook_environ()})
    assert result.returncode == 0, result.stderr
    host = fake_slack.url.removeprefix("http://")
    assert result.stdout.strip() == f"Posted the failure of 1 notebook to Slack (incoming webhook at {host})."
    [text] = fake_slack.texts
    lines = text.splitlines()
    assert lines[0] == (f":x: *ds-pipelines run failed* (group/ds · commit <{PROJECT_URL}/-/commit/{SHA}|01234567> · "
                        f"<{PROJECT_URL}/-/merge_requests/12|MR !12>)")
    assert lines[1] == f"<{PROJECT_URL}/-/pipelines/77|Pipeline> · <{PROJECT_URL}/-/jobs/901|Job>"
    assert lines[2].startswith("*leaky* (notebooks/leaky.ipynb) failed in code cell 2 after ")
    assert "ValueError: &lt;!channel&gt; login refused for [MASKED] with [MASKED]" in text
    assert "Failing cell:" in text and "raise ValueError(f'&lt;!channel&gt; login refused for {token} with {password}')" in text
    assert fake_slack.webhook_path not in result.stdout + result.stderr


@pytest.mark.slow
def test_planted_secrets_are_masked_and_the_channel_ping_is_escaped(failed_run, fake_slack):
    _, results = failed_run
    result = notify(results, "--strict", env={**ci_env(), **fake_slack.bot_environ()})
    assert result.returncode == 0, result.stderr
    [post] = fake_slack.posts
    assert (post.kind, post.payload["channel"]) == ("bot", CHANNEL)
    assert GITLAB_TOKEN not in post.text and "glpat-" not in post.text and PASSWORD not in post.text
    assert post.text.count("[MASKED]") >= 2
    assert "<!channel>" not in post.text and "&lt;!channel&gt;" in post.text
    assert fake_slack.token not in result.stdout + result.stderr


def test_successful_run_posts_nothing_unless_always(tmp_path, fake_slack):
    results = successful_results(tmp_path / "results")
    quiet = notify(results, "--strict", env=fake_slack.webhook_environ())
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "The run succeeded: nothing posted to Slack (--always posts successes too)."
    assert fake_slack.requests == []
    posted = notify(results, "--always", env=fake_slack.webhook_environ())
    assert posted.returncode == 0, posted.stderr
    assert "Posted the successful run to Slack" in posted.stdout
    [text] = fake_slack.texts
    assert text.startswith(":white_check_mark: *ds-pipelines run succeeded*")


def test_not_configured_is_a_message_and_exit_0_or_exit_2_with_strict(tmp_path):
    results = successful_results(tmp_path / "results")
    best_effort = notify(results, env={})
    assert (best_effort.returncode, best_effort.stdout.strip()) == (0, f"{NOT_CONFIGURED}: nothing posted.")
    strict = notify(results, "--strict", env={})
    assert (strict.returncode, strict.stderr.strip()) == (2, f"error: {NOT_CONFIGURED}")
    # Without Slack, a missing results folder is not read at all: a notification step never fails a pipeline.
    assert notify(tmp_path / "no-such-folder", env={}).returncode == 0
    partial = notify(results, "--strict", env={"SLACK_BOT_TOKEN": "xoxb-" + random_text(20)})
    assert partial.returncode == 2
    assert partial.stderr.strip() == "error: Slack is not configured: SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not (or set SLACK_WEBHOOK_URL instead)"


@pytest.mark.slow
def test_delivery_failure_warns_and_exits_0_or_exit_1_with_strict(failed_run, fake_slack):
    _, results = failed_run
    removed = {"SLACK_WEBHOOK_URL": fake_slack.webhook_url.rsplit("/", 1)[0] + "/removed-" + random_text(16)}
    best_effort = notify(results, env=removed)
    assert best_effort.returncode == 0
    assert best_effort.stderr.startswith("warning: could not post to Slack: incoming webhook at ")
    assert "HTTP 404 no_service" in best_effort.stderr and "(not failing: pass --strict for that)" in best_effort.stderr
    strict = notify(results, "--strict", env=removed)
    assert strict.returncode == 1
    assert strict.stderr.startswith("error: could not post to Slack: incoming webhook at ")
    for output in (best_effort.stdout + best_effort.stderr, strict.stdout + strict.stderr):
        assert removed["SLACK_WEBHOOK_URL"].rsplit("/", 1)[1] not in output and "/services/" not in output
    assert fake_slack.posts == []


@pytest.mark.slow
def test_rate_limited_post_is_retried_and_posted_once(failed_run, fake_slack):
    _, results = failed_run
    fake_slack.fail_next(429)
    result = notify(results, "--strict", env=fake_slack.webhook_environ())
    assert result.returncode == 0, result.stderr
    assert [status for _, status in fake_slack.requests] == [429, 200] and len(fake_slack.posts) == 1


def test_bad_results_folder_is_bad_input(tmp_path, fake_slack):
    result = notify(tmp_path / "missing", env=fake_slack.webhook_environ())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: results folder {tmp_path / 'missing'} does not exist (expected what `ds-pipelines run --output-dir` writes)"
    )
    assert fake_slack.requests == []


@pytest.mark.slow
def test_malformed_webhook_url_is_bad_input_with_strict(failed_run):
    _, results = failed_run
    secret = "hooks.example.com/services/T0/B0/" + random_text(24)
    result = notify(results, "--strict", env={"SLACK_WEBHOOK_URL": secret})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Slack settings are wrong: SLACK_WEBHOOK_URL is not an http(s) URL: expected https://host/..."
    )
    assert secret not in result.stderr
