"""``ds-pipelines mask-secrets DIR`` through the real CLI, on copies of the session's results folder with
secrets planted the way a notebook leaks them (printed, in an error, in a metric name)."""

from __future__ import annotations

import json

import pytest
from made_up import random_text
from published import (
    assert_clean_exit,
    cli_env,
    copy_results,
    edit_results,
    fail_with_cell,
    notebook_entry,
    run_cli,
)

from ds_pipelines.masking import MASK
from ds_pipelines.publishing.artifacts import keep_masked_copy
from ds_pipelines.results.folder import load_results

pytestmark = pytest.mark.slow  # every test reads the session's `trained` run (notebooks through the CLI)


def test_planted_secrets_are_masked_in_place_and_only_their_count_is_printed(trained, tmp_path):
    box, _ = trained
    results = copy_results(box, tmp_path / "results")
    token = "glpat-" + random_text(20)
    password = "horse-" + random_text(14)  # masked only because it is the value of a secret variable
    fail_with_cell(
        results, "inference_example",
        source=f'token = "{token}"\nprint(token)',
        outputs=[{"output_type": "stream", "name": "stdout", "text": f"{token} {password}\n"},
                 {"output_type": "error", "ename": "ValueError", "evalue": f"refused {token}", "traceback": [password]}],
        error=f"ValueError: refused {token}",
    )
    edit_results(results, lambda data: notebook_entry(data, "training_example")["metrics"].update({f"auc_{token}": 0.5}))
    metrics_file = results / "training_example" / "metrics.json"
    metrics_file.write_text(json.dumps({**json.loads(metrics_file.read_text()), f"auc_{token}": 0.5}))
    plots = {path: path.read_bytes() for path in results.rglob("*.png")}
    files = [path for path in results.rglob("*") if path.is_file()]
    assert sum(token.encode() in path.read_bytes() for path in files) == 3  # notebook, results.json, metrics.json

    env = cli_env(box, DEMO_SECRET=password)
    result = run_cli(env, "mask-secrets", str(results), cwd=tmp_path)
    assert_clean_exit(result)
    # cell source, output (token and password), error value, traceback, error and metric in results.json, metrics.json
    count = int(result.stdout.split()[1])
    assert count >= 7 and result.stdout == f"Masked {count} secret occurrences in {results}.\n"
    for path in results.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert token.encode() not in content and password.encode() not in content and b"glpat" not in content, path
    assert all(path.read_bytes() == data for path, data in plots.items())  # plots are not touched
    training = next(nb for nb in load_results(results).notebooks if nb.name == "training_example")
    assert f"auc_{MASK}" in training.metrics  # still a results folder the publishing commands read

    again = run_cli(env, "mask-secrets", str(results), cwd=tmp_path)
    assert_clean_exit(again)
    assert again.stdout == f"Masked 0 secret occurrences in {results}.\n"


def test_a_folder_that_is_not_a_results_folder_exits_2_naming_the_file(trained, tmp_path):
    box, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(cli_env(box), "mask-secrets", str(empty), cwd=tmp_path)
    assert_clean_exit(result, 2)
    assert f"error: {empty / 'results.json'} does not exist" in result.stderr

    results = copy_results(box, tmp_path / "results")
    broken = results / "training_example" / "metrics.json"
    broken.write_text("not json {")
    result = run_cli(cli_env(box), "mask-secrets", str(results), cwd=tmp_path)
    assert_clean_exit(result, 2)
    assert f"error: {broken} cannot be read as JSON, so it cannot be masked" in result.stderr


def test_a_masked_copy_for_a_jobs_artifacts_leaves_the_folder_it_copies_as_it_was(trained, tmp_path):
    """A commit or scheduled run on GitLab's runners keeps its results folder with the job's artifacts: a
    copy, masked before it is moved there (``publishing.artifacts.keep_masked_copy``)."""
    box, _ = trained
    results = copy_results(box, tmp_path / "results")
    token = "glpat-" + random_text(20)
    fail_with_cell(results, "inference_example", source=f'print("{token}")',
                   outputs=[{"output_type": "stream", "name": "stdout", "text": f"{token}\n"}], error=f"leaked {token}")
    target = tmp_path / "job" / "results" / "dagster-run" / "inference_example"

    masked = keep_masked_copy(results, target)

    kept = [path for path in target.rglob("*") if path.is_file()]
    assert masked.occurrences >= 3 and kept and not [path for path in kept if token.encode() in path.read_bytes()]
    assert load_results(target).notebooks, "still a results folder"
    assert token in (results / "results.json").read_text(), "the run's own folder is not the artifact"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job", "results"], "no staging folder left behind"
