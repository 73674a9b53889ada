"""A branch whose only change is the Optuna sampler seed: its merge-request comment says "≈ within noise" for
ROC AUC, not "worse". The training notebook runs twice through the real CLI (Dagster, dagstermill, MLflow
store), once as the default branch's baseline and once as the branch, and the branch's results are published
to the loopback GitLab."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from published import Rendered, assert_clean_exit, cli_env, run_cli
from sandbox import SMALL_OPTUNA, Sandbox

from ds_pipelines.defs.notebooks.assets import UNCERTAINTY_METADATA_KEY
from ds_pipelines.publishing.render.comment import MR_MARKER
from ds_pipelines.results.uncertainty import WITHIN_NOISE

MR = 5
MAIN_SHA = "3" * 40
BRANCH_SHA = "4" * 40


def train(box: Sandbox, sampler_seed: int, output: str, **ci: str) -> dict:
    config = box.training_config(optuna={**SMALL_OPTUNA, "n_trials": 3, "sampler_seed": sampler_seed})
    ran = Sandbox(root=box.root, env={**box.env, **ci}).cli(
        "run", "notebooks/training_example.ipynb", "--config", f"training_example={config}", "--output-dir", str(box.root / output),
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = json.loads((box.root / output / "results.json").read_text())
    [training] = results["notebooks"]
    return training


@pytest.mark.slow
def test_a_branch_that_only_changes_the_sampler_seed_is_within_noise(sandbox, tmp_path, fake_gitlab):
    main = train(sandbox, 1, "main-results", CI_COMMIT_SHA=MAIN_SHA, CI_COMMIT_BRANCH="main")
    branch = train(sandbox, 2, "branch-results", CI_COMMIT_SHA=BRANCH_SHA, CI_COMMIT_BRANCH="seed-only")
    # The seed changed what the tuning found, so the held-out AUC moved: a plain delta would look like a change.
    assert main["config"]["optuna"]["sampler_seed"] == 1 and branch["config"]["optuna"]["sampler_seed"] == 2
    assert main["metrics"]["roc_auc"] != branch["metrics"]["roc_auc"]
    assert set(branch["uncertainty"]) >= {"roc_auc", "cv_roc_auc", "log_loss"}
    assert branch["uncertainty"]["roc_auc"]["kind"] == "bootstrap 95%"
    assert branch["uncertainty"]["cv_roc_auc"]["kind"] == "CV fold ±1 sd"
    # The Dagster materialization carries the same intervals as results.json.
    with dg.DagsterInstance.from_config(sandbox.env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("training_example"))
        assert event.asset_materialization.metadata[UNCERTAINTY_METADATA_KEY].value == branch["uncertainty"]

    env = cli_env(sandbox, fake_gitlab, CI_MERGE_REQUEST_IID=str(MR), CI_PROJECT_DIR=str(tmp_path), CI_DEFAULT_BRANCH="main")
    published = run_cli(env, "publish", "mr", "--results", str(sandbox.root / "branch-results"), cwd=tmp_path)
    assert_clean_exit(published)
    [note] = fake_gitlab.marked_notes(MR, MR_MARKER)
    body = note["body"]
    rows = {row[0]: row for row in Rendered(body).tables[0][1:]}
    auc = rows["roc_auc"]
    assert auc[1].startswith(f"{branch['metrics']['roc_auc']:.4g} ± ")
    assert auc[2].startswith(f"{main['metrics']['roc_auc']:.4g} ± ")  # the baseline's interval, from its MLflow tags
    assert auc[3].endswith(WITHIN_NOISE), auc
    assert "worse" not in auc[3]
    assert rows["cv_roc_auc"][3].endswith(WITHIN_NOISE), rows["cv_roc_auc"]
    assert "better or worse only when the two intervals do not overlap" in body
    print("seed-only AUC:", main["metrics"]["roc_auc"], "->", branch["metrics"]["roc_auc"], auc)
