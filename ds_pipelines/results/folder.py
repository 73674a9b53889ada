"""The results folder that ``ds-pipelines run --output-dir DIR`` leaves: a documented interface, typed.

CI jobs and the publishing commands read it, so its layout only changes with ``FORMAT``::

    DIR/results.json                      the run: status, commit, and one entry per notebook
    DIR/<name>/<name>.ipynb               the executed notebook (also when it failed)
    DIR/<name>/metrics.json               the metrics the notebook reported (successful notebooks)
    DIR/<name>/artifacts/<file>           copies of the files the notebook reported (model, plots, scores)
    DIR/metrics.txt                       every metric and check outcome in OpenMetrics text, GitLab's
                                          ``artifacts:reports:metrics`` (``results.metrics_report``)

A successful notebook's entry also holds its ``reproducibility`` record (``results.reproducibility``) and the
resolved ``config`` it ran with; both are null in folders written before they were recorded. Its
``uncertainty`` maps metrics to ``{"low", "high", "kind"}`` (``results.uncertainty``), empty when none was reported.
Its ``checks`` list each quality check's outcome (``results.checks.CheckOutcome``: name, metric, passed, blocking,
value, min, max, baseline, baseline_run_id, message), empty when it has none or did not get that far.

``<name>`` is the notebook's asset name (its file stem). Paths inside ``results.json`` are relative to DIR.

One typed model (``RunResults``, ``NotebookResult``) for both directions: ``write_results`` copies a run's
files in and writes ``results.json`` last (so a folder that has one is complete); ``load_results`` reads a
folder back and checks everything, since publishing reads it in another CI job, possibly from downloaded
artifacts: a wrong or incomplete folder is an error naming the file, the key and what was expected, never a
half-published comment.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.files import write_atomically, write_json
from ds_pipelines.results.checks import CheckOutcome, CheckOutcomeError
from ds_pipelines.results.metrics_report import METRICS_REPORT_FILE, metrics_report
from ds_pipelines.results.reproducibility import Reproducibility, ReproducibilityError
from ds_pipelines.results.uncertainty import Interval, UncertaintyError, checked

FORMAT = "ds-pipelines-results/1"
RESULTS_FILE = "results.json"
RUN_STATUSES = ("success", "failed")
NOTEBOOK_STATUSES = ("success", "failed", "not-run")
_SHA256_PREFIX = "sha256:"
PLOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
EXECUTED_NOTEBOOK_URL_TAG = "ds-pipelines/executed-notebook-url"
"""Dagster run tag: where the run's executed notebook is kept for good, in a results folder that a CI job
keeps as artifacts. The instance's own copy stays on the machine that ran it, out of a shared UI's reach."""


def executed_notebook_url_tag(name: str) -> str:
    """The run tag of notebook ``name``'s kept copy, for a run of several notebooks (a GitLab job executing a
    Dagster run of the UI); ``EXECUTED_NOTEBOOK_URL_TAG`` serves runs of one notebook."""
    return f"{EXECUTED_NOTEBOOK_URL_TAG}/{name}"


class ResultsError(DsPipelinesError):
    """A results folder that is missing, incomplete or not in the expected format."""


@dataclass(frozen=True)
class NotebookResult:
    """One notebook of a run. Paths are absolute: inside the results folder once written or loaded, in the
    Dagster instance's storage and wherever the notebook wrote its files before that."""

    notebook: str
    name: str
    status: str = "not-run"
    """``success``, ``failed``, or ``not-run`` (an earlier notebook failed)."""
    duration_s: float = 0.0
    dagster_run_id: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    uncertainty: dict[str, Interval] = field(default_factory=dict)
    """Metric name to its interval, for the metrics the notebook reported one for."""
    executed_notebook: Path | None = None
    metrics_file: Path | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    failed_cell: int | None = None
    reproducibility: dict[str, Any] | None = None
    """What the run used (``results.reproducibility``); None for a notebook that did not succeed."""
    config: dict[str, Any] | None = None
    """The resolved config the notebook ran with (what ``ds-pipelines reproduce`` runs it with again)."""
    checks: list[CheckOutcome] = field(default_factory=list)
    """Its quality checks' outcomes, in the order ``configs/notebooks.yaml`` lists them."""

    @property
    def plots(self) -> dict[str, Path]:
        """The artifacts that are images (a training notebook's ROC curve, feature importance...)."""
        return {name: path for name, path in self.artifacts.items() if path.suffix.lower() in PLOT_SUFFIXES}

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The notebook's entry of ``results.json``; paths relative to ``relative_to`` when given."""

        def shown(path: Path | None) -> str | None:
            if path is None:
                return None
            return path.relative_to(relative_to).as_posix() if relative_to is not None else str(path)

        return {
            "notebook": self.notebook,
            "name": self.name,
            "status": self.status,
            "duration_s": self.duration_s,
            "dagster_run_id": self.dagster_run_id,
            "mlflow_run_id": self.mlflow_run_id,
            "metrics": dict(self.metrics),
            "uncertainty": {name: interval.to_dict() for name, interval in self.uncertainty.items()},
            "executed_notebook": shown(self.executed_notebook),
            "metrics_file": shown(self.metrics_file),
            "artifacts": {name: shown(path) for name, path in self.artifacts.items()},
            "error": self.error,
            "failed_cell": self.failed_cell,
            "reproducibility": self.reproducibility,
            "config": self.config,
            "checks": [outcome.to_dict() for outcome in self.checks],
        }


@dataclass(frozen=True)
class RunResults:
    status: str
    started_at: str
    finished_at: str
    commit_sha: str | None
    branch: str | None
    notebooks: list[NotebookResult] = field(default_factory=list)
    directory: Path | None = None
    """The results folder the run was written to or loaded from; None before it is written."""

    @property
    def failed(self) -> list[NotebookResult]:
        return [nb for nb in self.notebooks if nb.status == "failed"]

    def notebook(self, name: str) -> NotebookResult:
        return next(nb for nb in self.notebooks if nb.name == name)

    def own_identifiers(self) -> set[str]:
        """The ids and hashes ds-pipelines itself wrote into this run: its commit, each notebook's Dagster
        and MLflow run ids, its checks' baseline runs, and its reproducibility record's commit, sha256 hashes
        and image tag and digest. A secret detector takes them for secrets; the masker is told to leave them
        (``Masker.trusting``)."""
        ids = {self.commit_sha}
        for nb in self.notebooks:
            ids |= {nb.dagster_run_id, nb.mlflow_run_id, *(check.baseline_run_id for check in nb.checks)}
            record = nb.reproducibility or {}
            ids |= {(record.get("commit") or {}).get("sha"), record.get("notebook_sha256"), record.get("config_sha256")}
            ids |= {entry.get("sha256") for entry in record.get("data") or []}
            # The image's tag (often a content hash, ds-pipelines' own) and digest.
            image, _, digest = (record.get("image") or "").partition("@")
            ids |= {digest, image.rpartition("/")[2].partition(":")[2]}
        hashes = {value for value in ids if isinstance(value, str) and value}
        # A hash is also written without its "sha256:" prefix (links, the reproduce command's messages).
        return hashes | {value.removeprefix(_SHA256_PREFIX) for value in hashes}

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        """``results.json``'s content; paths relative to ``relative_to`` when given."""
        return {
            "format": FORMAT,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "commit": {"sha": self.commit_sha, "branch": self.branch or ""} if self.commit_sha else None,
            "notebooks": [nb.to_dict(relative_to) for nb in self.notebooks],
        }


def run_status(notebooks: list[NotebookResult]) -> str:
    return "success" if all(nb.status == "success" for nb in notebooks) else "failed"


def merge_runs(runs: list[RunResults]) -> RunResults:
    """One run of several results folders of one commit, as a child pipeline's notebook jobs leave them (one
    folder each): notebooks in the given order, failed when any run failed, from the first start to the last
    finish. Folders of different commits, or two with the same notebook, are a ResultsError."""
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise ResultsError("no results folder given")
    commits = {run.commit_sha for run in runs}
    if len(commits) > 1:
        raise ResultsError(f"the results folders are of different commits ({', '.join(sorted(map(str, commits)))}): "
                           "expected the folders of one pipeline")
    notebooks = [nb for run in runs for nb in run.notebooks]
    names = [nb.name for nb in notebooks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        folders = ", ".join(str(run.directory) for run in runs if any(nb.name in twice for nb in run.notebooks))
        raise ResultsError(f"notebook {', '.join(twice)} is in more than one results folder ({folders}): "
                           "expected each notebook once")
    failed = any(run.status == "failed" for run in runs)
    return RunResults(
        status="failed" if failed else run_status(notebooks),
        started_at=min(run.started_at for run in runs),
        finished_at=max(run.finished_at for run in runs),
        commit_sha=runs[0].commit_sha,
        branch=runs[0].branch,
        notebooks=notebooks,
    )


def executed_notebook_file(output_dir: Path, name: str) -> Path:
    """Where ``write_results`` keeps the executed notebook of the notebook asset ``name``."""
    return output_dir / name / f"{name}.ipynb"


def write_results(output_dir: Path, run: RunResults) -> RunResults:
    """Copy each notebook's files under ``output_dir`` and write ``results.json`` last (atomically), so a
    folder with a results file is always complete. Returns the run as it now is in ``output_dir``."""
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nb in run.notebooks:
        folder = output_dir / nb.name
        executed = _copy(nb.executed_notebook, executed_notebook_file(output_dir, nb.name)) if nb.executed_notebook else None
        metrics_file = None
        if nb.status == "success":
            metrics_file = folder / "metrics.json"
            write_json(metrics_file, nb.metrics)
        artifacts = {
            name: _copy(source, folder / "artifacts" / source.name)
            for name, source in nb.artifacts.items()
            if source.is_file()
        }
        written.append(replace(nb, executed_notebook=executed, metrics_file=metrics_file, artifacts=artifacts))
    result = replace(run, notebooks=written, directory=output_dir)
    report = metrics_report((nb.name, nb.metrics, nb.checks) for nb in result.notebooks)
    write_atomically(output_dir / METRICS_REPORT_FILE, lambda tmp: tmp.write_text(report, encoding="utf-8"))
    write_json(output_dir / RESULTS_FILE, result.to_dict(relative_to=output_dir))
    return result


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def load_results(directory: Path | str) -> RunResults:
    """The run described by ``directory/results.json``, checked against the format."""
    directory = Path(directory)
    file = directory / RESULTS_FILE
    if not directory.is_dir():
        raise ResultsError(f"results folder {directory} does not exist (expected what `ds-pipelines run --output-dir` writes)")
    if not file.is_file():
        raise ResultsError(
            f"{file} does not exist: expected the results folder that `ds-pipelines run --output-dir {directory}` "
            "writes (results.json is written last, so the run may not have finished)"
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{file} cannot be read: {exc}") from None
    return _Reader(directory, file).run(data)


class _Reader:
    """Checks one results.json; each problem names the file and the key."""

    def __init__(self, directory: Path, file: Path):
        self.directory = directory.resolve()
        self.file = file

    def fail(self, key: str, problem: str) -> ResultsError:
        return ResultsError(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")

    def run(self, data: Any) -> RunResults:
        if not isinstance(data, dict):
            raise self.fail("", f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise self.fail("format", f"expected {FORMAT!r}, got {data.get('format')!r}")
        commit = data.get("commit")
        if commit is not None and not (isinstance(commit, dict) and isinstance(commit.get("sha"), str)):
            raise self.fail("commit", f"expected null or an object with 'sha' and 'branch', got {commit!r}")
        notebooks = self.require(data, "notebooks", list, "a list of notebooks")
        return RunResults(
            directory=self.directory,
            status=self.choice(data, "status", RUN_STATUSES),
            started_at=self.require(data, "started_at", str, "a timestamp"),
            finished_at=self.require(data, "finished_at", str, "a timestamp"),
            commit_sha=commit["sha"] if commit else None,
            branch=commit.get("branch") if commit and isinstance(commit.get("branch"), str) else None,
            notebooks=[self.notebook(entry, f"notebooks[{i}]") for i, entry in enumerate(notebooks)],
        )

    def notebook(self, entry: Any, key: str) -> NotebookResult:
        if not isinstance(entry, dict):
            raise self.fail(key, f"expected an object, got {type(entry).__name__}")
        name = self.require(entry, "name", str, "the notebook's asset name", key)
        if not name:
            raise self.fail(f"{key}.name", "expected the notebook's asset name, got ''")
        metrics = self.require(entry, "metrics", dict, "an object of metric name to number", key)
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"{key}.metrics.{metric}", f"expected a number, got {value!r}")
        artifacts = self.require(entry, "artifacts", dict, "an object of artifact name to path", key)
        failed_cell = entry.get("failed_cell")
        if failed_cell is not None and (isinstance(failed_cell, bool) or not isinstance(failed_cell, int)):
            raise self.fail(f"{key}.failed_cell", f"expected null or a cell number, got {failed_cell!r}")
        duration = entry.get("duration_s", 0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration < 0:
            raise self.fail(f"{key}.duration_s", f"expected seconds (a number >= 0), got {duration!r}")
        return NotebookResult(
            notebook=self.require(entry, "notebook", str, "the notebook's path", key),
            name=name,
            status=self.choice(entry, "status", NOTEBOOK_STATUSES, key),
            duration_s=float(duration),
            dagster_run_id=self.optional_str(entry, "dagster_run_id", key),
            mlflow_run_id=self.optional_str(entry, "mlflow_run_id", key),
            metrics={metric: float(value) for metric, value in metrics.items()},
            uncertainty=self.uncertainty(entry, metrics, key),
            executed_notebook=self.path(entry.get("executed_notebook"), f"{key}.executed_notebook"),
            metrics_file=self.path(entry.get("metrics_file"), f"{key}.metrics_file"),
            artifacts={artifact: self.path(path, f"{key}.artifacts.{artifact}", required=True) for artifact, path in artifacts.items()},
            error=self.optional_str(entry, "error", key),
            failed_cell=failed_cell,
            reproducibility=self.reproducibility(entry, key),
            config=self.optional_object(entry, "config", key),
            checks=self.checks(entry, key),
        )

    def checks(self, entry: dict, key: str) -> list[CheckOutcome]:
        value = entry.get("checks") or []  # absent in folders written before checks were recorded
        if not isinstance(value, list):
            raise self.fail(f"{key}.checks", f"expected a list of check outcomes, got {value!r}")
        try:
            return [CheckOutcome.from_dict(item, f"{self.file}: {key}.checks[{i}]") for i, item in enumerate(value)]
        except CheckOutcomeError as exc:
            raise ResultsError(str(exc)) from None

    def uncertainty(self, entry: dict, metrics: dict, key: str) -> dict[str, Interval]:
        value = entry.get("uncertainty") or {}
        if not isinstance(value, dict):
            raise self.fail(f"{key}.uncertainty", f"expected an object of metric name to interval, got {value!r}")
        try:
            return checked(value, metrics, f"{self.file}: {key}")
        except UncertaintyError as exc:
            raise ResultsError(str(exc)) from None

    def reproducibility(self, entry: dict, key: str) -> dict[str, Any] | None:
        record = entry.get("reproducibility")
        if record is None:
            return None
        try:
            return Reproducibility.from_dict(record, f"{self.file}: {key}").to_dict()
        except ReproducibilityError as exc:
            raise ResultsError(str(exc)) from None

    def optional_object(self, data: dict, name: str, parent: str) -> dict[str, Any] | None:
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"{parent}.{name}", f"expected null or an object, got {value!r}")
        return value

    def require(self, data: dict, name: str, kind: type, expected: str, parent: str = "") -> Any:
        key = f"{parent}.{name}" if parent else name
        if name not in data:
            raise self.fail(key, f"required key is missing (expected {expected})")
        if not isinstance(data[name], kind):
            raise self.fail(key, f"expected {expected}, got {data[name]!r}")
        return data[name]

    def choice(self, data: dict, name: str, allowed: tuple[str, ...], parent: str = "") -> str:
        key = f"{parent}.{name}" if parent else name
        value = data.get(name)
        if value not in allowed:
            raise self.fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def optional_str(self, data: dict, name: str, parent: str) -> str | None:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{parent}.{name}", f"expected null or text, got {value!r}")
        return value

    def path(self, value: Any, key: str, *, required: bool = False) -> Path | None:
        """A path relative to the results folder that stays inside it and exists."""
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a path relative to {self.directory}, got {value!r}")
        relative = PurePosixPath(value)
        if relative.is_absolute() or ".." in relative.parts:
            raise self.fail(key, f"path {value!r} points outside the results folder (expected a path relative to it)")
        resolved = (self.directory / relative).resolve()
        if not resolved.is_relative_to(self.directory):
            raise self.fail(key, f"path {value!r} points outside the results folder (through a link)")
        if not resolved.is_file():
            raise self.fail(key, f"file {self.directory / relative} does not exist (the results folder is incomplete)")
        return resolved
