"""The results folder that ``ds-pipelines run --output-dir DIR`` leaves: a documented interface.

CI jobs and the publishing commands read it, so its layout only changes with ``FORMAT``::

    DIR/results.json                      the run: status, commit, and one entry per notebook
    DIR/<name>/<name>.ipynb               the executed notebook (also when it failed)
    DIR/<name>/metrics.json               the metrics the notebook reported (successful notebooks)
    DIR/<name>/artifacts/<file>           copies of the files the notebook reported (model, plots, scores)

``<name>`` is the notebook's asset name (its file stem). Paths inside ``results.json`` are relative to DIR.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ds_pipelines.files import write_json
from ds_pipelines.provenance import Provenance
from ds_pipelines.runner import NotebookOutcome

FORMAT = "ds-pipelines-results/1"
RESULTS_FILE = "results.json"


def run_commit(root: Path, origin: Provenance) -> dict[str, str] | None:
    """The commit the project's files are from: the one the run was started for (GitLab CI's variables, or a
    sensor's tags), else the checked-out commit of ``root``; None when neither is known."""
    if origin.commit:
        return {"sha": origin.commit, "branch": origin.branch or ""}
    return _checked_out_commit(root)


def _checked_out_commit(root: Path) -> dict[str, str] | None:
    """HEAD of the git work tree holding ``root``, unless that tree ignores ``root``: a commit's checkout
    under a deployment's git-ignored ``.ds-pipelines/`` is not the deployment's HEAD."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0 or git("check-ignore", "-q", ".").returncode == 0:
            return None
    except FileNotFoundError:  # no git on this machine
        return None
    return {"sha": head.stdout.strip(), "branch": git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()}


def describe_run(outcomes: list[NotebookOutcome], *, started_at: datetime, commit: dict[str, str] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "status": "success" if all(o.status == "success" for o in outcomes) else "failed",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "notebooks": [_describe(outcome) for outcome in outcomes],
    }


def _describe(outcome: NotebookOutcome) -> dict[str, Any]:
    return {
        "notebook": outcome.spec.path,
        "name": outcome.spec.name,
        "status": outcome.status,
        "duration_s": outcome.duration_s,
        "dagster_run_id": outcome.dagster_run_id,
        "mlflow_run_id": outcome.mlflow_run_id,
        "metrics": outcome.metrics,
        "executed_notebook": str(outcome.executed_notebook) if outcome.executed_notebook else None,
        "metrics_file": None,
        "artifacts": dict(outcome.artifacts),
        "error": outcome.error,
        "failed_cell": outcome.failed_cell,
    }


def write_results(output_dir: Path, run: dict[str, Any]) -> Path:
    """Copy each notebook's files under ``output_dir`` and write ``results.json`` last (atomically), so a
    folder with a results file is always complete."""
    output_dir.mkdir(parents=True, exist_ok=True)
    relative_run = json.loads(json.dumps(run))
    for entry in relative_run["notebooks"]:
        folder = output_dir / entry["name"]
        if entry["executed_notebook"]:
            entry["executed_notebook"] = _copy(Path(entry["executed_notebook"]), folder / f"{entry['name']}.ipynb", output_dir)
        if entry["status"] == "success":
            write_json(folder / "metrics.json", entry["metrics"])
            entry["metrics_file"] = f"{entry['name']}/metrics.json"
        entry["artifacts"] = {
            name: _copy(Path(source), folder / "artifacts" / Path(source).name, output_dir)
            for name, source in entry["artifacts"].items()
            if Path(source).is_file()
        }
    target = output_dir / RESULTS_FILE
    write_json(target, relative_run)
    return target


def _copy(source: Path, target: Path, output_dir: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target.relative_to(output_dir).as_posix()
