"""Where a project's notebooks and configs live, and which config belongs to which notebook.

Free of Dagster imports: the CLI, the trigger rules, the notebooks and the Dagster definitions all read
the project through this module, so there is one answer to "which notebooks are there, in which order,
configured by which file".

The project is found from where you stand, the way git and ``dg`` find theirs: ``--project-dir``, else
``$DS_PIPELINES_PROJECT_DIR``, else the nearest folder at or above the current one that holds
``configs/notebooks.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds_pipelines.errors import (
    AssetNameCollisionError,
    ConfigError,
    DsPipelinesError,
    NotebookNotFoundError,
    shown,
)
from ds_pipelines.project.quality_checks import (
    QualityCheck,
    check_problems,
    parse_check,
)
from ds_pipelines.project.upgrades import REGISTRY_CHANGES, registry_key_problem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ds_pipelines.project.settings import TriggerSettings

PROJECT_DIR_ENV = "DS_PIPELINES_PROJECT_DIR"
NOTEBOOKS_DIR = "notebooks"
REGISTRY_FILE = "configs/notebooks.yaml"
STATE_DIR = ".ds-pipelines"
CHECKPOINTS_DIR = ".ipynb_checkpoints"
_TOP_LEVEL_KEYS = {"notebooks", "triggers"}
_REGISTRY_KEYS = {"config", "schema", "after", "device", "description", "kernel", "checks"}
_DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the project and how it runs."""

    path: str
    """Path relative to the project root, with forward slashes (``notebooks/training_example.ipynb``)."""
    config: str | None = None
    """Config file relative to the project root; None means the notebook gets an empty config."""
    schema: str | None = None
    """The config model that validates ``config``: a built-in name (``training``, ``inference``), a class in a
    file of the project (``configs/schemas.py:ChurnConfig``) or in a module (``package.module:Class``); None
    means ``config`` is plain YAML (any mapping)."""
    after: tuple[str, ...] = ()
    """Notebooks (paths) whose results this one reads: they run first and feed it in the lineage."""
    device: str = "cpu"
    """``gpu`` notebooks share the GPU concurrency limit; ``cpu`` ones are unlimited."""
    description: str | None = None
    kernel: str | None = None
    """An installed Jupyter kernel to run the notebook in; None: the project's Python (``project.kernel``)."""
    checks: tuple[QualityCheck, ...] = ()
    """Quality checks on the notebook's metrics, Dagster asset checks of its asset (``project.quality_checks``)."""

    @property
    def name(self) -> str:
        """The Dagster asset name: the file stem, made a valid identifier."""
        return asset_name(self.path)


def asset_name(notebook_path: str) -> str:
    """The Dagster asset name of a notebook: its file stem with every character other than ``[A-Za-z0-9_]``
    made ``_`` (``nb_`` in front of a leading digit), so ``training-example.ipynb`` is ``training_example``.

    A stem with non-ASCII characters would lose them all (``SVM 튜토리얼`` and ``SVM 입문서`` both ``SVM_____``),
    so it becomes its ASCII part (accents dropped: ``é`` is ``e``) plus a hash of the stem: readable, distinct
    and the same on every machine (``SVM_d6ea7acd``). Names that still coincide are ``name_collisions``."""
    stem = Path(notebook_path).stem
    if stem.isascii():
        name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    else:
        # NFC before hashing: macOS file systems hand out decomposed names (NFD), git and Linux usually
        # composed ones; the same notebook must get the same key on both.
        composed = unicodedata.normalize("NFC", stem)
        digest = hashlib.sha256(composed.encode("utf-8", "surrogateescape")).hexdigest()[:8]  # undecodable bytes too
        decomposed = unicodedata.normalize("NFKD", composed).encode("ascii", "ignore").decode("ascii")
        readable = re.sub(r"[^A-Za-z0-9]+", "_", decomposed).strip("_")
        name = f"{readable}_{digest}" if readable else f"nb_{digest}"
    return name if not name[:1].isdigit() else f"nb_{name}"


def entry_problems(path: str, entry: Any) -> list[ConfigError]:
    """What is wrong with the settings of one notebook in ``configs/notebooks.yaml``, every problem."""
    key = f"notebooks.{path}"
    if not isinstance(entry, dict):
        return [ConfigError(REGISTRY_FILE, key, f"expected a mapping with keys {sorted(_REGISTRY_KEYS)}, got {shown(entry)}")]
    problems = [
        ConfigError(REGISTRY_FILE, f"{key}.{unknown}", registry_key_problem(f"notebooks.*.{unknown}", unknown, sorted(_REGISTRY_KEYS)))
        for unknown in sorted(set(entry) - _REGISTRY_KEYS, key=str)
    ]
    if entry.get("device", "cpu") not in _DEVICES:
        problems.append(ConfigError(REGISTRY_FILE, f"{key}.device", f"expected one of {list(_DEVICES)}, got {shown(entry['device'])}"))
    for name in ("config", "schema", "description"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            problems.append(ConfigError(REGISTRY_FILE, f"{key}.{name}", f"expected a string, got {shown(entry[name])}"))
    after = entry.get("after")
    if after is not None and not (isinstance(after, list) and all(isinstance(item, str) for item in after)):
        problems.append(ConfigError(REGISTRY_FILE, f"{key}.after", f"expected a list of notebook paths, got {shown(after)}"))
    if "kernel" in entry and not (isinstance(entry["kernel"], str) and entry["kernel"].strip()):
        problems.append(ConfigError(REGISTRY_FILE, f"{key}.kernel", f"expected the name of an installed Jupyter kernel, got {shown(entry['kernel'])}"))
    if "checks" in entry:
        problems += check_problems(REGISTRY_FILE, f"{key}.checks", entry["checks"])
    return problems


class ProjectNotFoundError(DsPipelinesError):
    """No project folder where one was looked for."""


def find_project_root(project_dir: Path | None = None, *, cwd: Path | None = None) -> Path:
    """The project folder: ``project_dir``, else ``$DS_PIPELINES_PROJECT_DIR``, else the nearest folder at
    or above ``cwd`` (default: the current folder) holding ``configs/notebooks.yaml``."""
    if project_dir is not None:
        return _existing_folder(Path(project_dir), "--project-dir")
    configured = os.environ.get(PROJECT_DIR_ENV)
    if configured:
        return _existing_folder(Path(configured), f"{PROJECT_DIR_ENV}={configured}")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / REGISTRY_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"no ds-pipelines project at or above {start}: no folder there holds {REGISTRY_FILE}. Run this in a "
        f"project folder, pass --project-dir, or set {PROJECT_DIR_ENV}"
    )


def _existing_folder(path: Path, named_by: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ProjectNotFoundError(f"{named_by}: {path} is not a folder (expected a project holding notebooks/ and configs/)")
    return resolved


@dataclass
class Project:
    """A project folder holding ``notebooks/`` and ``configs/``."""

    root: Path = field(default_factory=find_project_root)

    @property
    def state_dir(self) -> Path:
        """Git-ignored folder for the embedded defaults: Dagster instance, MLflow store, executed notebooks."""
        return self.root / STATE_DIR

    @cached_property
    def registry_data(self) -> dict[str, Any]:
        """``configs/notebooks.yaml`` as read, its top-level keys checked; ``{}`` when the file is absent."""
        # Imported here, as every YAML and pydantic import in this module: `ds-pipelines image-tag` imports the
        # package in CI's docker client image, where ds-pipelines is installed without its dependencies.
        from ds_pipelines.project.config import read_yaml

        file = self.root / REGISTRY_FILE
        data = (read_yaml(file, display=REGISTRY_FILE) if file.exists() else None) or {}
        if isinstance(data, dict) and not set(data) <= _TOP_LEVEL_KEYS:
            unknown = sorted(set(data) - _TOP_LEVEL_KEYS, key=str)[0]
            raise ConfigError(REGISTRY_FILE, str(unknown), registry_key_problem(str(unknown), unknown, sorted(_TOP_LEVEL_KEYS)))
        if not isinstance(data, dict):
            raise ConfigError(
                REGISTRY_FILE, None,
                "expected the top-level keys 'notebooks' (notebook paths to settings) and optionally 'triggers'",
            )
        return data

    @cached_property
    def triggers(self) -> TriggerSettings:
        """The ``triggers:`` section: branches the sensors watch, the scoring schedule, the GPU limit."""
        from ds_pipelines.project.config import validate
        from ds_pipelines.project.settings import TriggerSettings

        section = self.registry_data.get("triggers") or {}
        return validate(TriggerSettings, section, display=REGISTRY_FILE, key_prefix="triggers.", changes=REGISTRY_CHANGES)

    @cached_property
    def _registry(self) -> dict[str, dict[str, Any]]:
        entries = self.registry_data.get("notebooks") or {}
        if not isinstance(entries, dict):
            raise ConfigError(REGISTRY_FILE, "notebooks", "expected a mapping of notebook paths to settings")
        for path, entry in entries.items():
            problems = entry_problems(path, entry)
            if problems:
                raise problems[0]
        return entries

    def notebook_paths(self) -> list[str]:
        """The path of every notebook under ``notebooks/`` (checkpoints excluded), sorted; the registry unread."""
        folder = self.root / NOTEBOOKS_DIR
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in folder.rglob("*.ipynb")
            if CHECKPOINTS_DIR not in p.parts
        ) if folder.is_dir() else []

    def name_collisions(self) -> list[AssetNameCollisionError]:
        """Notebooks whose asset names coincide (``a b.ipynb`` and ``a-b.ipynb``), one error per name."""
        by_name: dict[str, list[str]] = {}
        for path in self.notebook_paths():
            by_name.setdefault(asset_name(path), []).append(path)
        return [AssetNameCollisionError(name, paths) for name, paths in sorted(by_name.items()) if len(paths) > 1]

    def notebooks(self) -> list[NotebookSpec]:
        """Every notebook under ``notebooks/`` (checkpoints excluded), in dependency order, then path order."""
        paths = self.notebook_paths()
        for listed in self._registry:
            if listed not in paths:
                raise ConfigError(REGISTRY_FILE, f"notebooks.{listed}", "lists a notebook that does not exist")
        return self.in_run_order([self._spec(path) for path in paths])

    def _spec(self, path: str) -> NotebookSpec:
        entry = self._registry.get(path, {})
        after = entry.get("after") or []
        for upstream in after:
            if upstream not in self._registry and not (self.root / upstream).is_file():
                raise ConfigError(REGISTRY_FILE, f"notebooks.{path}.after", f"{upstream!r} is not a notebook of this project")
        return NotebookSpec(
            path=path,
            config=entry.get("config"),
            schema=entry.get("schema"),
            after=tuple(after),
            device=entry.get("device", "cpu"),
            description=entry.get("description"),
            kernel=entry.get("kernel"),
            checks=tuple(parse_check(check) for check in entry.get("checks") or ()),
        )

    def find(self, notebook: str) -> NotebookSpec:
        """The notebook given by path (absolute, or relative to the cwd or the project) or by asset name."""
        path = self.path_of(notebook)
        if path is None:
            raise NotebookNotFoundError(notebook, self.notebook_paths())
        return next(spec for spec in self.notebooks() if spec.path == path)

    def path_of(self, notebook: str) -> str | None:
        """The path of the notebook given by path or asset name (as ``find``), None for none; the registry unread,
        so ``check`` can resolve names while ``configs/notebooks.yaml`` is broken."""
        paths = self.notebook_paths()
        named = [path for path in paths if asset_name(path) == notebook]
        if len(named) > 1:
            # A name two notebooks share means neither: running the one the listing happened to keep would be a guess.
            raise AssetNameCollisionError(notebook, named)
        if named:
            return named[0]
        for candidate in (Path(notebook), self.root / notebook):
            try:
                relative = candidate.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                continue
            if relative in paths:
                return relative
        return None

    def in_run_order(self, specs: list[NotebookSpec]) -> list[NotebookSpec]:
        """Upstream notebooks first (training before inference), ties broken by path."""
        chosen = {spec.path: spec for spec in specs}
        ordered: list[NotebookSpec] = []
        done: set[str] = set()
        visiting: list[str] = []  # the chain of `after:` being followed, downstream first

        def visit(spec: NotebookSpec) -> None:
            if spec.path in done:
                return
            if spec.path in visiting:
                cycle = [*visiting[visiting.index(spec.path):], spec.path]
                raise ConfigError(REGISTRY_FILE, f"notebooks.{spec.path}.after",
                                  "dependency cycle: " + " -> ".join(cycle) + " (each needs the next to run first)")
            visiting.append(spec.path)
            for upstream in sorted(spec.after):
                if upstream in chosen:
                    visit(chosen[upstream])
            visiting.pop()
            done.add(spec.path)
            ordered.append(spec)

        for spec in sorted(specs, key=lambda s: s.path):
            visit(spec)
        return ordered

    def schema_model(self, spec: NotebookSpec) -> type[BaseModel] | None:
        """The model that validates the notebook's config; None for a notebook without a schema (its config,
        if any, is plain YAML)."""
        from ds_pipelines.project.config import resolve_schema

        if spec.schema is None:
            return None
        return resolve_schema(spec.schema, root=self.root, display=REGISTRY_FILE, key=f"notebooks.{spec.path}.schema")

    def config_for(self, spec: NotebookSpec, override: Path | None = None) -> dict[str, Any]:
        """The notebook's validated config as plain data (``{}`` for a notebook without one)."""
        from ds_pipelines.project.config import (
            load_config,
            load_plain_config,
            resolve_schema,
        )

        if override is None and spec.config is None:
            return {}
        file = override or self.root / spec.config
        display = str(override) if override else spec.config
        if spec.schema is None:
            return load_plain_config(file, display=display)
        model = resolve_schema(spec.schema, root=self.root, display=REGISTRY_FILE, key=f"notebooks.{spec.path}.schema")
        return load_config(file, model, display=display).model_dump(mode="json")

    def resolve(self, relative: str | os.PathLike[str]) -> Path:
        """A path from a config file: relative ones are relative to the project root."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path
