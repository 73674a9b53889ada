"""Validating a whole project, every problem at once: what ``ds-pipelines check`` reports and what
``ds-pipelines run`` refuses to start with.

The parts: ``configs/notebooks.yaml`` (notebook settings, unknown keys, ``triggers:`` with cron, time zone, tag
patterns, GPU limit, orchestrator), every notebook's config against its schema (plain YAML without one), every
notebook file, the asset names, and whether each notebook can run here (language, ``kernel:``). Free of Dagster: whether the Dagster definitions load is the command's step (``cli/check.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ds_pipelines.errors import ConfigError, DsPipelinesError, NotebookNotFoundError
from ds_pipelines.project.config import (
    config_problems,
    load_plain_config,
    resolve_schema,
    validation_problems,
)
from ds_pipelines.project.folder import REGISTRY_FILE, Project, entry_problems
from ds_pipelines.project.notebook_file import notebook_problem, read_notebook
from ds_pipelines.project.settings import TriggerSettings


def project_problems(project: Project, overrides: Mapping[str, Path] | None = None) -> list[DsPipelinesError]:
    """Every problem of ``project``, each naming the file, key and value; [] when it is valid.

    ``overrides`` maps notebook paths to config files used instead of their registered ones (``run --config``)."""
    problems: list[DsPipelinesError] = []
    paths = project.notebook_paths()
    try:
        registry = project.registry_data
    except ConfigError as exc:
        problems.append(exc)  # unreadable: its entries cannot be checked, the notebook files still are
    else:
        entries = registry.get("notebooks") or {}
        if not isinstance(entries, dict):
            problems.append(ConfigError(REGISTRY_FILE, "notebooks", "expected a mapping of notebook paths to settings"))
            entries = {}
        problems += _registry_problems(project, entries, paths)
        problems += _trigger_problems(project, registry.get("triggers") or {})
        problems += _config_problems(project, entries, paths, overrides or {})
    readable = []
    for path in paths:
        try:
            read_notebook(project.root / path, display=path)
            readable.append(path)
        except ConfigError as exc:
            problems.append(exc)
    problems += project.name_collisions()
    if not problems:
        # Whether each notebook can run here at all: its language, its kernel (``kernel:``).
        problems += [DsPipelinesError(problem) for spec in project.notebooks()
                     if spec.path in readable and (problem := notebook_problem(project.root, spec))]
    return problems


def _registry_problems(project: Project, entries: dict[str, Any], paths: list[str]) -> list[DsPipelinesError]:
    problems: list[DsPipelinesError] = []
    for path, entry in entries.items():
        problems += entry_problems(path, entry)
        if path not in paths:
            problems.append(ConfigError(REGISTRY_FILE, f"notebooks.{path}", "lists a notebook that does not exist"))
        after = entry.get("after") if isinstance(entry, dict) else None
        for upstream in after if isinstance(after, list) else []:
            if upstream not in entries and upstream not in paths:
                problems.append(ConfigError(REGISTRY_FILE, f"notebooks.{path}.after", f"{upstream!r} is not a notebook of this project"))
    if not problems:
        try:
            project.notebooks()  # what only the whole registry shows: a dependency cycle
        except ConfigError as exc:
            problems.append(exc)
    return problems


def _trigger_problems(project: Project, section: Any) -> list[DsPipelinesError]:
    problems: list[DsPipelinesError] = validation_problems(TriggerSettings, section, display=REGISTRY_FILE, key_prefix="triggers.")
    if problems:
        return problems
    notebook = project.triggers.schedule.notebook
    if notebook is not None:
        try:
            if project.path_of(notebook) is None:
                raise NotebookNotFoundError(notebook, project.notebook_paths())
        except DsPipelinesError as exc:  # not a notebook, or a name two notebooks share
            problems.append(ConfigError(REGISTRY_FILE, "triggers.schedule.notebook", str(exc)))
    return problems


def _config_problems(project: Project, entries: dict[str, Any], paths: list[str], overrides: Mapping[str, Path]) -> list[DsPipelinesError]:
    problems: list[DsPipelinesError] = []
    for path in paths:
        entry = entries.get(path) or {}
        if entry_problems(path, entry):
            continue  # which config and schema are meant is unclear: reported with the registry's problems
        config, schema, override = entry.get("config"), entry.get("schema"), overrides.get(path)
        if config is None and schema is None and override is None:
            continue  # no config: the notebook gets an empty one
        if schema is None:  # plain YAML: any mapping
            file, display = (override, str(override)) if override is not None else (project.root / config, config)
            try:
                load_plain_config(file, display=display)
            except ConfigError as exc:
                problems.append(exc)
            continue
        try:
            model = resolve_schema(schema, root=project.root, display=REGISTRY_FILE, key=f"notebooks.{path}.schema")
        except ConfigError as exc:
            problems.append(exc)
            continue
        if override is not None:
            problems += config_problems(override, model, display=str(override))
        elif config is not None:
            problems += config_problems(project.root / config, model, display=config)
    return problems
