"""Read and check the results folder that ``ds-pipelines run --output-dir DIR`` writes.

The format is documented in ``ds_pipelines/results.py`` (``ds-pipelines-results/1``). Publishing reads it
in another CI job, possibly from downloaded artifacts, so everything is checked: a wrong or incomplete
folder is an error naming the file, the key and what was expected, never a half-published comment.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.results import FORMAT, RESULTS_FILE

RUN_STATUSES = ("success", "failed")
NOTEBOOK_STATUSES = ("success", "failed", "not-run")
PLOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")


class ResultsError(DsPipelinesError):
    """A results folder that is missing, incomplete or not in the expected format."""


@dataclass(frozen=True)
class NotebookResult:
    """One notebook of a run; paths are absolute (inside the results folder)."""

    notebook: str
    name: str
    status: str
    duration_s: float
    dagster_run_id: str | None
    mlflow_run_id: str | None
    metrics: dict[str, float]
    executed_notebook: Path | None
    metrics_file: Path | None
    artifacts: dict[str, Path]
    error: str | None
    failed_cell: int | None

    @property
    def plots(self) -> dict[str, Path]:
        """The artifacts that are images (a training notebook's ROC curve, feature importance...)."""
        return {name: path for name, path in self.artifacts.items() if path.suffix.lower() in PLOT_SUFFIXES}


@dataclass(frozen=True)
class RunResults:
    directory: Path
    status: str
    started_at: str
    finished_at: str
    commit_sha: str | None
    branch: str | None
    notebooks: list[NotebookResult] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookResult]:
        return [nb for nb in self.notebooks if nb.status == "failed"]


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
            executed_notebook=self.path(entry.get("executed_notebook"), f"{key}.executed_notebook"),
            metrics_file=self.path(entry.get("metrics_file"), f"{key}.metrics_file"),
            artifacts={artifact: self.path(path, f"{key}.artifacts.{artifact}", required=True) for artifact, path in artifacts.items()},
            error=self.optional_str(entry, "error", key),
            failed_cell=failed_cell,
        )

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
