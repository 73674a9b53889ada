"""``ds-pipelines reproduce``: run a recorded notebook result again, exactly as it was made, and compare.

From a results folder's ``results.json`` or an MLflow run's record (``tracking.reproducibility``): check out
the recorded commit (``triggers.checkout``, from the project's own git repository), verify the notebook and
every recorded input against their sha256, run the notebooks with ``ds-pipelines run`` in the checkout with
the recorded config, and compare the metrics side by side.

- Inputs: a path recorded relative to the project is taken from the checkout when the commit has it, else
  from the project folder (git-ignored data, a model an earlier run wrote), copied into the checkout; an
  absolute path is read where it is. A relative path that leads out of the project (``..``) is refused: a
  record is data anyone with MLflow access could have written. A bundled dataset's version is the installed scikit-learn's.
- Metrics: equal on CPU (fixed seeds give the same numbers); on a GPU within ``GPU_RELATIVE_TOLERANCE``
  (XGBoost's GPU reductions may order floating-point sums differently). Timing metrics (``TIMING_METRIC``:
  ``tuning_seconds``, ``duration_s``...) are shown, never compared.
- The rerun is tracked in MLflow like any run, tagged ``ds-pipelines.reproduces`` and without a branch, so
  it never becomes a merge request's baseline. The rerun executes the recorded commit's code, so it gets the
  allow-listed environment only (``project.run_environment``: no GitLab or Slack token, no CI variable, no
  Postgres URL; its Dagster instance is a scratch one) and never imports a ``ds_pipelines/`` of the checkout.

No Dagster imports: the rerun is a ``ds-pipelines run`` process.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds_pipelines.errors import DsPipelinesError, shown
from ds_pipelines.project.run_environment import DAGSTER_HOME_ENV, hide_environment, notebook_run_environment
from ds_pipelines.project.work_tree import GIT_TIMEOUT_S, ask_git
from ds_pipelines.results.folder import ResultsError, load_results
from ds_pipelines.results.origin import RUN_TAGS_ENV
from ds_pipelines.results.reproducibility import (
    Reproducibility,
    ReproducibilityError,
    file_sha256,
)
from ds_pipelines.tracking.baselines import REPRODUCES_TAG, RUN_CONTEXT_ENV
from ds_pipelines.triggers.checkout import checkout

GPU_RELATIVE_TOLERANCE = 1e-4
"""On ``cuda``, metrics match when ``|a - b| <= GPU_RELATIVE_TOLERANCE * max(|a|, |b|, 1e-12)``."""
TIMING_METRIC = re.compile(r"(^|_)(seconds|secs|duration|elapsed|time)(_|$)|_s$")
_SKLEARN_SOURCE = "sklearn.datasets."


class ReproduceInputError(DsPipelinesError):
    """What to reproduce cannot be read: no record, no commit, not a git repository."""


@dataclass(frozen=True)
class RecordedNotebook:
    notebook: str
    name: str
    metrics: dict[str, float]
    config: dict[str, Any]
    record: Reproducibility


@dataclass(frozen=True)
class Recorded:
    """What is reproduced: ``source`` names where it was read (a results.json, an MLflow run)."""

    source: str
    notebooks: list[RecordedNotebook]

    @property
    def commit(self) -> str:
        return self.notebooks[0].record.commit["sha"]


@dataclass(frozen=True)
class MetricComparison:
    name: str
    recorded: float | None
    reproduced: float | None
    compared: bool
    match: bool


@dataclass
class NotebookOutcome:
    notebook: str
    name: str
    device: str
    problems: list[str] = field(default_factory=list)
    """Why it could not be rerun faithfully: changed data, a changed notebook, a failed rerun."""
    metrics: list[MetricComparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.metrics) and all(m.match for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook, "name": self.name, "device": self.device, "match": self.ok,
            "tolerance": tolerance_text(self.device), "problems": list(self.problems),
            "metrics": [m.__dict__ for m in self.metrics],
        }


@dataclass
class Outcome:
    source: str
    commit: str
    notebooks: list[NotebookOutcome]

    @property
    def ok(self) -> bool:
        return all(nb.ok for nb in self.notebooks)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "commit": self.commit, "match": self.ok,
                "notebooks": [nb.to_dict() for nb in self.notebooks]}


def from_results_folder(directory: Path, notebooks: tuple[str, ...] = ()) -> Recorded:
    """The successful notebooks of a results folder (or those named), each with its record."""
    try:
        results = load_results(directory)
    except ResultsError as exc:
        raise ReproduceInputError(str(exc)) from None
    file = Path(directory) / "results.json"
    chosen = [nb for nb in results.notebooks if nb.status == "success" and (not notebooks or nb.name in notebooks or nb.notebook in notebooks)]
    unknown = [name for name in notebooks if not any(name in (nb.name, nb.notebook) for nb in results.notebooks)]
    if unknown:
        raise ReproduceInputError(f"{file}: no notebook {', '.join(map(repr, unknown))} (it has: "
                                  f"{', '.join(nb.name for nb in results.notebooks) or 'none'})")
    if not chosen:
        raise ReproduceInputError(f"{file}: no successful notebook to reproduce")
    missing = [nb.name for nb in chosen if nb.reproducibility is None or nb.config is None]
    if missing:
        raise ReproduceInputError(
            f"{file}: notebook(s) {', '.join(missing)} have no reproducibility record (the run was made by a "
            "ds-pipelines version that did not record one)"
        )
    return _recorded(str(file), [(nb.notebook, nb.name, nb.metrics, nb.config, nb.reproducibility) for nb in chosen])


def from_mlflow_run(run_id: str, *, tracking_uri: str) -> Recorded:
    """The notebook run whose record ``log_record`` put on MLflow run ``run_id``."""
    from ds_pipelines.tracking.reproducibility import read_record

    payload = read_record(run_id, tracking_uri=tracking_uri)
    where = payload["where"]
    for key, kind in (("notebook", str), ("name", str), ("metrics", dict), ("config", dict), ("reproducibility", dict)):
        if not isinstance(payload.get(key), kind):
            raise ReproduceInputError(f"{where}: reproducibility record: {key}: expected {kind.__name__}, got {shown(payload.get(key))}")
    return _recorded(where, [(payload["notebook"], payload["name"], payload["metrics"], payload["config"], payload["reproducibility"])])


def _recorded(source: str, entries: list[tuple]) -> Recorded:
    notebooks = []
    for notebook, name, metrics, config, record in entries:
        try:
            checked = Reproducibility.from_dict(record, f"{source}: {name}")
        except ReproducibilityError as exc:
            raise ReproduceInputError(str(exc)) from None
        if not checked.commit:
            raise ReproduceInputError(f"{source}: {name}: the record has no commit (the run was not in a git repository)")
        notebooks.append(RecordedNotebook(notebook, name, dict(metrics), dict(config), checked))
    commits = {nb.record.commit["sha"] for nb in notebooks}
    if len(commits) > 1:
        raise ReproduceInputError(f"{source}: its notebooks ran at different commits ({', '.join(sorted(commits))})")
    return Recorded(source=source, notebooks=notebooks)


def reproduce(recorded: Recorded, *, project_root: Path, workdir: Path, output_dir: Path | None,
              on_line: Callable[[str], None]) -> Outcome:
    """Check out, verify, rerun and compare; ``workdir`` is an empty scratch folder the caller removes."""
    sha = recorded.commit
    repository = _git_toplevel(project_root)
    on_line(f"checking out {sha[:12]} from {repository}")
    checkout_dir = checkout(repository_url=str(repository), sha=sha, cache_dir=workdir / "checkouts")
    project_dir = checkout_dir / project_root.resolve().relative_to(repository)
    outcomes = [NotebookOutcome(nb.notebook, nb.name, nb.record.device) for nb in recorded.notebooks]
    for nb, outcome in zip(recorded.notebooks, outcomes):
        outcome.problems += _verify_notebook(nb, project_dir) + _verify_data(nb, project_dir, project_root)
    if any(outcome.problems for outcome in outcomes):
        return Outcome(recorded.source, sha, outcomes)
    rerun_dir = output_dir or workdir / "results"
    rerun = _rerun(recorded, project_dir, workdir, rerun_dir, on_line)
    for nb, outcome in zip(recorded.notebooks, outcomes):
        again = rerun.get(nb.name)
        if again is None or again.status != "success":
            kept = f"its results are in {rerun_dir}" if output_dir else "--output-dir DIR keeps its results"
            outcome.problems.append(f"the rerun of {nb.notebook} failed: {again.error if again else 'it did not run'} ({kept})")
            continue
        outcome.metrics = compare_metrics(nb.metrics, again.metrics, nb.record.device)
    return Outcome(recorded.source, sha, outcomes)


def compare_metrics(recorded: dict[str, float], reproduced: dict[str, float], device: str) -> list[MetricComparison]:
    """Every metric of either side; timing metrics are listed but not compared."""
    rows = []
    for name in dict.fromkeys([*recorded, *reproduced]):
        before, after = recorded.get(name), reproduced.get(name)
        if TIMING_METRIC.search(name):
            rows.append(MetricComparison(name, before, after, compared=False, match=True))
            continue
        rows.append(MetricComparison(name, before, after, compared=True, match=_same(before, after, device)))
    return rows


def tolerance_text(device: str) -> str:
    return f"relative {GPU_RELATIVE_TOLERANCE:g}" if device == "cuda" else "exact"


def _same(before: float | None, after: float | None, device: str) -> bool:
    if before is None or after is None:
        return False
    if math.isnan(before) or math.isnan(after):
        return math.isnan(before) and math.isnan(after)
    if device == "cuda":
        return abs(before - after) <= GPU_RELATIVE_TOLERANCE * max(abs(before), abs(after), 1e-12)
    return before == after


def _git_toplevel(root: Path) -> Path:
    done = ask_git(root, "rev-parse", "--show-toplevel")
    if done is None:
        raise ReproduceInputError(f"git did not answer in {root} within {GIT_TIMEOUT_S} s (or is not installed): the "
                                  "recorded commit cannot be checked out")
    if done.returncode != 0:
        raise ReproduceInputError(f"project folder {root} is not in a git repository: the recorded commit cannot be checked out")
    return Path(done.stdout.strip()).resolve()


def _verify_notebook(nb: RecordedNotebook, project_dir: Path) -> list[str]:
    file = project_dir / nb.notebook
    if not file.is_file():
        return [f"notebook {nb.notebook} is not in commit {nb.record.commit['sha'][:12]}"]
    actual = file_sha256(file)
    if actual != nb.record.notebook_sha256:
        dirty = " (the run had uncommitted changes)" if nb.record.commit.get("dirty") else ""
        return [f"notebook {nb.notebook} in commit {nb.record.commit['sha'][:12]} differs from the one that ran{dirty}: "
                f"sha256 {actual[:12]}, recorded {nb.record.notebook_sha256[:12]}"]
    return []


def _verify_data(nb: RecordedNotebook, project_dir: Path, project_root: Path) -> list[str]:
    """Each input as recorded; project-relative files missing from the checkout are copied in from the project."""
    problems = []
    for entry in nb.record.data:
        if "source" in entry:
            problems += _verify_source(entry)
            continue
        recorded_path = Path(entry["path"])
        if not recorded_path.is_absolute() and not _stays_inside(recorded_path, project_dir, project_root):
            problems.append(f"data path {entry['path']!r} recorded in the results leads out of the project: not read")
            continue
        in_checkout = project_dir / recorded_path
        found = recorded_path if recorded_path.is_absolute() else in_checkout if in_checkout.is_file() else project_root / recorded_path
        if not found.is_file():
            problems.append(f"data file {found} does not exist (recorded sha256 {entry['sha256'][:12]})")
            continue
        actual = file_sha256(found)
        if actual != entry["sha256"]:
            problems.append(f"data file {found} changed since the run: sha256 {actual[:12]}, recorded {entry['sha256'][:12]}")
            continue
        if not recorded_path.is_absolute() and found != in_checkout:
            in_checkout.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, in_checkout)
    return problems


def _stays_inside(relative: Path, *folders: Path) -> bool:
    """Whether ``relative``, resolved (``..``, links) under each of ``folders``, stays inside it."""
    return all((folder / relative).resolve().is_relative_to(folder.resolve()) for folder in folders)


def _verify_source(entry: dict[str, str]) -> list[str]:
    """A bundled dataset is as its package's version; other sources (a registry model) cannot be checked here."""
    if not entry["source"].startswith(_SKLEARN_SOURCE):
        return []
    from importlib import metadata

    installed = metadata.version("scikit-learn")
    if installed != entry["version"]:
        return [f"data {entry['source']} comes with scikit-learn {installed} here, recorded {entry['version']}"]
    return []


@dataclass(frozen=True)
class _Rerun:
    status: str
    metrics: dict[str, float]
    error: str | None


def _rerun(recorded: Recorded, project_dir: Path, workdir: Path, output_dir: Path,
           on_line: Callable[[str], None]) -> dict[str, _Rerun]:
    """``ds-pipelines run`` of the recorded notebooks in the checkout, each with its recorded config."""
    # -I and a working folder of its own: the deployment's ds_pipelines, never one in the checkout.
    command = [sys.executable, "-I", "-m", "ds_pipelines", "run", *(nb.notebook for nb in recorded.notebooks),
               "--project-dir", str(project_dir), "--output-dir", str(output_dir)]
    for nb in recorded.notebooks:
        config_file = workdir / "configs" / f"{nb.name}.yaml"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(nb.config, indent=2), encoding="utf-8")  # JSON is YAML
        command += ["--config", f"{nb.notebook}={config_file}"]
    env = notebook_run_environment(os.environ, postgres=False)
    hide_environment()  # the rest of this process's environment is not to be read through /proc either
    env.pop(DAGSTER_HOME_ENV, None)  # a scratch instance in the checkout, not the user's (maybe shared) one
    env[RUN_TAGS_ENV] = json.dumps({"ds-pipelines/commit": recorded.commit})
    env[RUN_CONTEXT_ENV] = json.dumps({REPRODUCES_TAG: recorded.source})
    on_line(f"running {', '.join(nb.notebook for nb in recorded.notebooks)} in the checkout")
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        on_line(line.rstrip("\n"))
    process.wait()
    try:
        results = load_results(output_dir)
    except ResultsError:
        return {}
    return {nb.name: _Rerun(nb.status, nb.metrics, nb.error) for nb in results.notebooks}


def render_table(outcome: Outcome) -> str:
    """The metrics side by side, a block per notebook, then the verdict."""
    lines = [f"reproducing {outcome.source} at commit {outcome.commit[:12]}"]
    for nb in outcome.notebooks:
        lines.append(f"\n{nb.notebook} (device {nb.device}, {tolerance_text(nb.device)} match)")
        lines += [f"  ✘ {problem}" for problem in nb.problems]
        if nb.metrics:
            width = max(len(m.name) for m in nb.metrics)
            lines.append(f"  {'metric':<{width}}  {'recorded':>20}  {'reproduced':>20}")
            for m in nb.metrics:
                verdict = "not compared (timing)" if not m.compared else "ok" if m.match else "DIFFERS"
                lines.append(f"  {m.name:<{width}}  {_number(m.recorded):>20}  {_number(m.reproduced):>20}  {verdict}")
    lines.append("\n" + ("reproduced: every metric matches" if outcome.ok else "NOT reproduced"))
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "—" if value is None else repr(value)

