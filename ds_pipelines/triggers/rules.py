"""The trigger rules: which notebooks a pipeline runs, and why.

Pure rules over data (changed files, commit message, pipeline source, tag); computing the changed files is
someone else's job (``ds_pipelines.triggers.git_changes`` with git, a Dagster sensor with the GitLab API). No Dagster
or GitLab imports, so ``ds-pipelines detect`` starts fast in CI.

Rules, for a push or merge-request pipeline:

- a notebook under ``notebooks/`` that was added, modified, copied or renamed runs (``modified``; a renamed
  one under its new path); a deleted one does not; ``.ipynb_checkpoints/`` and other files are ignored;
- a change to a notebook's config file (``configs/notebooks.yaml`` says which) runs that notebook
  (``config-changed``); a change to ``configs/notebooks.yaml`` itself runs nothing by itself, because
  the notebooks it affects are run through their own files or ``[run ...]``;
- ``[run notebooks/x.ipynb]`` in the commit message, any number of times, adds that notebook
  (``override``); ``[skip run]`` wins over everything and runs nothing.
- ``[plan]`` in the commit message makes the pipeline a dry run: the rules above decide what would run
  (``[run ...]`` included), nothing runs, and the plan says so (``dry_run``, ``would_run``); CI posts it to
  the merge request, the commit sensor logs it. ``[skip run]`` still wins: nothing is planned or posted.

A ``schedule`` pipeline runs the scoring notebook (``scheduled``) and nothing else: its commit message
belongs to an old push, so neither ``[run]``, ``[plan]`` nor ``[skip run]`` applies (like GitLab's ``[skip ci]``).
A tag pipeline runs no notebook (its commits ran when pushed); the tag only sets ``release``. A schedule that
targets a tag (production scoring) is a schedule: it runs the scoring notebook; ``release`` still names the
tag's kind, but releasing is the tag pipeline's job, which CI's rules never start from a schedule.

A notebook runs once, with the first reason that applies: modified, config-changed, override.
Upstream notebooks come first (training before inference), then path order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import CHECKPOINTS_DIR, NOTEBOOKS_DIR, NotebookSpec, Project
from ds_pipelines.project.defaults import (
    DEVELOPMENT_TAG,
    NO_RELEASE,
    PRODUCTION_TAG,
    SCORING_NOTEBOOK,
    release_kind,
)

MODIFIED, CONFIG_CHANGED, OVERRIDE, SCHEDULED = "modified", "config-changed", "override", "scheduled"
NOTHING_CHANGED = "no notebook or notebook config changed"
DOTENV_MAX_BYTES = 5 * 1024
"""GitLab's default limit for an ``artifacts:reports:dotenv`` file."""

# One bracket per match: the path may hold no "[", "]" or newline, so a scan stops at the next bracket and
# even a 1 MB message of "[run[run[run..." is matched in linear time.
_OVERRIDE = re.compile(r"\[run(?:\]|[ \t]([^\[\]\n]*)\])", re.IGNORECASE)
_SKIP = re.compile(r"\[skip[ \t]+run\]", re.IGNORECASE)
_DRY_RUN = re.compile(r"\[plan\]", re.IGNORECASE)
DRY_RUN_REASON = "[plan] in the commit message: a dry run, nothing executes"
# Planned paths travel space-separated through a dotenv file: no spaces, quotes, "$" or control characters.
_SAFE_PATH = re.compile(r"[\w.+@,~/-]+")
_UNSAFE_TEXT = re.compile(r"[^\w .,:;()\[\]+@/=-]")


class TriggerError(DsPipelinesError):
    """Bad input to the trigger rules: a malformed override, an unknown commit, a path outside notebooks/."""


@dataclass(frozen=True)
class Change:
    """One changed file: git's status letter (A, M, D, R, C, T) and the path relative to the project root."""

    status: str
    path: str
    old_path: str | None = None
    """The path before a rename or copy (R, C)."""

    @classmethod
    def from_gitlab_diff(cls, diff: Mapping[str, Any]) -> Change:
        """From one entry of GitLab's compare/commit diff API (``new_path``, ``deleted_file``, ...)."""
        if diff.get("deleted_file"):
            return cls("D", diff["old_path"])
        if diff.get("renamed_file"):
            return cls("R", diff["new_path"], diff["old_path"])
        return cls("A" if diff.get("new_file") else "M", diff["new_path"])


@dataclass(frozen=True)
class PlannedNotebook:
    path: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What a pipeline runs. ``skip`` means no notebook runs; ``skip_reason`` then says why.

    A dry run (``[plan]``) runs nothing (``notebooks`` is empty, so everything that reads it launches nothing)
    and lists in ``would_run`` what it would have run, with the same reasons and order."""

    notebooks: tuple[PlannedNotebook, ...] = ()
    skip_reason: str | None = None
    release: str = NO_RELEASE
    tag: str | None = None
    deferred: bool = False
    """The project leaves this pipeline's runs and releases to the other orchestrator (``triggers.orchestrator``)."""
    dry_run: bool = False
    would_run: tuple[PlannedNotebook, ...] = ()

    @property
    def skip(self) -> bool:
        return not self.notebooks

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebooks": [asdict(n) for n in self.notebooks],
            "skip": self.skip,
            "skip_reason": self.skip_reason,
            "release": self.release,
            "tag": self.tag,
            "deferred": self.deferred,
            "dry_run": self.dry_run,
            "would_run": [asdict(n) for n in self.would_run],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """The plan ``to_dict`` wrote (a child pipeline's job reads it back); TriggerError when it is not one."""
        def planned(key: str) -> tuple[PlannedNotebook, ...]:
            items = data.get(key, [])
            if not isinstance(items, list) or not all(
                    isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("reason"), str)
                    for item in items):
                raise TriggerError(f"plan: {key!r} must be a list of {{path, reason}} objects")
            return tuple(PlannedNotebook(item["path"], item["reason"]) for item in items)

        if not isinstance(data, dict):
            raise TriggerError(f"plan: expected a JSON object as `ds-pipelines detect --json` prints, not {type(data).__name__}")
        for key, kind in (("skip_reason", (str, type(None))), ("release", str), ("tag", (str, type(None))),
                          ("deferred", bool), ("dry_run", bool)):
            if key in data and not isinstance(data[key], kind):
                raise TriggerError(f"plan: {key!r} has the wrong type ({type(data[key]).__name__})")
        return cls(planned("notebooks"), data.get("skip_reason"), data.get("release", NO_RELEASE), data.get("tag"),
                   data.get("deferred", False), data.get("dry_run", False), planned("would_run"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dotenv(self) -> str:
        """The plan for GitLab's ``artifacts:reports:dotenv``: one ``KEY=value`` a line, no quoting.

        GitLab keeps quotes as they are and reads no multi-line values, so every value is one line of
        plain characters (paths were checked when planned; free text is sanitized here).
        """
        values = {
            "DSP_NOTEBOOKS": " ".join(n.path for n in self.notebooks),
            "DSP_SKIP": "true" if self.skip else "false",
            "DSP_SKIP_REASON": _UNSAFE_TEXT.sub("_", self.skip_reason or "")[:200],
            "DSP_RELEASE": self.release,
            "DSP_TAG": _UNSAFE_TEXT.sub("_", self.tag or "")[:200],
            "DSP_DEFERRED": "true" if self.deferred else "false",
            "DSP_DRY_RUN": "true" if self.dry_run else "false",
        }
        text = "".join(f"{key}={value}\n" for key, value in values.items())
        if len(text.encode()) > DOTENV_MAX_BYTES:
            raise TriggerError(
                f"the plan lists {len(self.notebooks)} notebooks: its dotenv report would be "
                f"{len(text.encode())} bytes, over GitLab's {DOTENV_MAX_BYTES}-byte limit; pass the plan as --json instead"
            )
        return text


def overrides(message: str) -> list[str]:
    """The paths of the ``[run path]`` markers in a commit message, in order, stripped of blanks."""
    paths = []
    for match in _OVERRIDE.finditer(message):
        path = (match.group(1) or "").strip()
        if not path:
            raise TriggerError(f"malformed {_shown(match.group(0))} in the commit message: expected [run notebooks/<name>.ipynb]")
        paths.append(path)
    return paths


def skips(message: str) -> bool:
    """Whether the commit message says ``[skip run]``."""
    return _SKIP.search(message) is not None


def dry_run(message: str) -> bool:
    """Whether the commit message says ``[plan]``."""
    return _DRY_RUN.search(message) is not None


def plan(
    project: Project,
    changed: Iterable[Change] = (),
    message: str = "",
    source: str = "push",
    tag: str | None = None,
    scoring_notebook: str = SCORING_NOTEBOOK,
    *,
    production_tag: str = PRODUCTION_TAG,
    development_tag: str = DEVELOPMENT_TAG,
    deferred: str | None = None,
) -> Plan:
    """Apply the rules (see the module docstring) to one pipeline; raises TriggerError for bad input.
    ``deferred``: why another orchestrator runs this project's pipelines (the plan then runs and releases
    nothing, and says so; the tag's release kind is still reported)."""
    release = release_kind(tag, production_tag, development_tag)
    if deferred:
        return Plan(skip_reason=deferred, release=release, tag=tag, deferred=True)
    if tag and source != "schedule":
        why = f"tag pipeline ({release} release): notebooks run on pushes, not on tags"
        return Plan(skip_reason=why, release=release, tag=tag)
    specs = {spec.path: spec for spec in project.notebooks()}
    if source == "schedule":
        path = _requested(project, specs, scoring_notebook, "the scoring notebook")
        return Plan((PlannedNotebook(path, SCHEDULED),), release=release, tag=tag)
    if skips(message):
        return Plan(skip_reason="[skip run] in the commit message")

    by_config: dict[str, list[str]] = {}
    for spec in specs.values():
        if spec.config:
            by_config.setdefault(spec.config, []).append(spec.path)
    reasons: dict[str, str] = {}
    config_changed: list[str] = []
    for change in changed:
        if change.status.startswith("D"):
            continue
        if _is_notebook(change.path) and _checked(project, change.path, "changed file") in specs:
            reasons.setdefault(change.path, MODIFIED)
        config_changed += by_config.get(change.path, [])
    for path in config_changed:
        reasons.setdefault(path, CONFIG_CHANGED)
    for raw in overrides(message):
        what = f"[run {raw if len(raw) <= 200 else '...'}] in the commit message"
        reasons.setdefault(_requested(project, specs, raw, what), OVERRIDE)

    ordered = project.in_run_order([specs[path] for path in reasons])
    planned = tuple(PlannedNotebook(spec.path, reasons[spec.path]) for spec in ordered)
    if dry_run(message):
        return Plan(skip_reason=DRY_RUN_REASON, dry_run=True, would_run=planned)
    if not planned:
        return Plan(skip_reason=NOTHING_CHANGED)
    return Plan(planned)


def _is_notebook(path: str) -> bool:
    parts = path.split("/")
    return parts[0] == NOTEBOOKS_DIR and len(parts) > 1 and path.endswith(".ipynb") and CHECKPOINTS_DIR not in parts


def _requested(project: Project, specs: dict[str, NotebookSpec], raw: str, what: str) -> str:
    """A notebook named by a person (override, scoring notebook): a relative path to an existing notebook."""
    path = PurePosixPath(raw)
    if path.is_absolute() or re.match(r"[A-Za-z]:[\\/]", raw):
        raise TriggerError(f"{what}: {_shown(raw)} is absolute; give the path relative to the repository root")
    if ".." in path.parts:
        raise TriggerError(f"{what}: {_shown(raw)} leaves the repository ('..' is not allowed)")
    if path.suffix != ".ipynb":
        raise TriggerError(f"{what}: {_shown(raw)} is not a notebook (.ipynb)")
    relative = path.as_posix()
    if not _is_notebook(relative):
        raise TriggerError(f"{what}: {_shown(raw)} is not under {NOTEBOOKS_DIR}/ (checkpoints excluded)")
    if _checked(project, relative, what) not in specs:
        known = sorted(specs)
        listing = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "") or "none"
        raise TriggerError(f"{what}: notebook {_shown(raw)} does not exist (notebooks: {listing})")
    return relative


def _checked(project: Project, path: str, what: str) -> str:
    """The path, once sure it is UTF-8, plain enough for a dotenv line, and stays in notebooks/."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise TriggerError(f"{what}: file name '{shown}' is not valid UTF-8; rename it") from None
    if not _SAFE_PATH.fullmatch(path):
        raise TriggerError(f"{what}: {_shown(path)} has characters a pipeline cannot pass on (spaces, quotes, $...); rename it")
    # A symlink may point anywhere; what runs is its target, so the target must be a notebook too.
    try:
        target = (project.root / path).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise TriggerError(f"{what}: {_shown(path)} cannot be resolved: {exc}") from None
    if not target.is_relative_to((project.root / NOTEBOOKS_DIR).resolve()):
        raise TriggerError(f"{what}: {_shown(path)} is a symlink that leads outside {NOTEBOOKS_DIR}/ (to {str(target)!r})")
    return path


def _shown(text: str) -> str:
    """A value for an error message, cut short: a commit message may hold a megabyte on one line."""
    return repr(text if len(text) <= 200 else f"{text[:200]}...")
