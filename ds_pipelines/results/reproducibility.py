"""The reproducibility record: everything that decides a notebook's result, enough to run it again.

One record per notebook run (``Reproducibility``), in ``results.json``, on the notebook's MLflow run and in the
asset's Dagster materialization metadata:

- ``commit``: ``{sha, branch, dirty}`` of the project's files (``dirty``: uncommitted changes; None: unknown);
- ``notebook_sha256``, ``config_sha256``: the executed notebook file and the resolved config the run used;
- ``data``: every input the notebook read through the notebook API, ``{"path", "sha256"}`` for a file (path
  relative to the project root when inside it), ``{"source", "version"}`` for data that is not a file (a
  scikit-learn bundled dataset and scikit-learn's version);
- ``image``: the container image (tag or digest) when running in one, else None;
- ``python``, ``packages``: the interpreter's and ``PACKAGES``' versions;
- ``seeds``: every config value under a key named ``*seed*`` or ``random_state``, by dotted key;
- ``device``: ``cpu`` or ``cuda``, as the notebook reported it (default ``cpu``).

Gathered by the library, not by notebook code: hashes, seeds, versions and image here (called by the asset
from what it executes); data and device by the notebook API (``ds_pipelines.notebook``), handed back with the
results. Standard library only: the asset pays milliseconds for it, and hashing streams big files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.work_tree import ask_git

PACKAGES = ("xgboost", "scikit-learn", "optuna", "mlflow", "dagster", "numpy", "pandas")
IMAGE_ENV = "DSP_IMAGE"
"""The image the notebooks run in, as CI names it (``registry/group/ds:1.4`` or ``...@sha256:...``)."""
IMAGE_TAG_ENV = "DS_PIPELINES_IMAGE_TAG"
"""Set by the project's Dockerfile to the tag it was built with (``ds-pipelines image-tag``)."""
DEVICES = ("cpu", "cuda")
METADATA_KEY = "reproducibility"
CONFIG_METADATA_KEY = "config"
"""The asset's materialization metadata: the record, and the resolved config the notebook ran with."""
_PREFIX = "sha256:"


class ReproducibilityError(DsPipelinesError):
    """A reproducibility record that is missing or malformed."""


@dataclass(frozen=True)
class Reproducibility:
    commit: dict[str, Any] | None
    notebook_sha256: str
    config_sha256: str
    data: list[dict[str, str]] = field(default_factory=list)
    image: str | None = None
    python: str = ""
    packages: dict[str, str | None] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit, "notebook_sha256": self.notebook_sha256, "config_sha256": self.config_sha256,
            "data": [dict(entry) for entry in self.data], "image": self.image, "python": self.python,
            "packages": dict(self.packages), "seeds": dict(self.seeds), "device": self.device,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Reproducibility:
        """Checked: ``where`` (a file and key, or an MLflow run) is named in every error."""

        def fail(key: str, expected: str, value: Any) -> ReproducibilityError:
            return ReproducibilityError(f"{where}: {key}: expected {expected}, got {value!r}")

        if not isinstance(data, dict):
            raise fail("reproducibility", "an object", data)
        commit = data.get("commit")
        if commit is not None and not (isinstance(commit, dict) and isinstance(commit.get("sha"), str)):
            raise fail("reproducibility.commit", "null or an object with 'sha', 'branch' and 'dirty'", commit)
        for key in ("notebook_sha256", "config_sha256"):
            if not isinstance(data.get(key), str):
                raise fail(f"reproducibility.{key}", "a sha256 in hex", data.get(key))
        entries = data.get("data", [])
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and (isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
                                     or isinstance(e.get("source"), str) and isinstance(e.get("version"), str))
            for e in entries
        ):
            raise fail("reproducibility.data", "a list of {path, sha256} or {source, version}", entries)
        device = data.get("device", "cpu")
        if device not in DEVICES:
            raise fail("reproducibility.device", " or ".join(DEVICES), device)
        return cls(
            commit=commit, notebook_sha256=data["notebook_sha256"], config_sha256=data["config_sha256"],
            data=entries, image=data.get("image"), python=str(data.get("python", "")),
            packages=dict(data.get("packages") or {}), seeds=dict(data.get("seeds") or {}), device=device,
        )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks into one reused buffer (``hashlib.file_digest``): inputs may be far
    larger than memory, and a new chunk per read, on the hashing thread while a notebook streams the same file,
    raised the scoring process's peak RSS with the file's size."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def config_sha256(config: Mapping[str, Any]) -> str:
    """Hex sha256 of the resolved config as canonical JSON: the same values hash the same, in any key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def config_seeds(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every value under a key named ``*seed*`` or ``random_state``, by dotted key (``optuna.sampler_seed``)."""
    found: dict[str, Any] = {}
    if isinstance(config, Mapping):
        for key, value in config.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, (Mapping, list)):
                found.update(config_seeds(value, f"{dotted}."))
            elif "seed" in str(key).lower() or str(key).lower() == "random_state":
                found[dotted] = value
    elif isinstance(config, list):
        for index, value in enumerate(config):
            found.update(config_seeds(value, f"{prefix}{index}."))
    return found


def package_versions() -> dict[str, str | None]:
    """Installed versions of ``PACKAGES`` (None for one that is not installed)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def current_image(environ: Mapping[str, str] | None = None) -> str | None:
    """The image this runs in: CI's name for it (``DSP_IMAGE``, ``CI_JOB_IMAGE``), else the tag the project's
    image sets in its environment, else None (not in a container of the project's image)."""
    env = os.environ if environ is None else environ
    named = env.get(IMAGE_ENV) or env.get("CI_JOB_IMAGE")
    if named:
        return named
    tag = env.get(IMAGE_TAG_ENV)
    return f"ds-pipelines:{tag}" if tag and tag != "unknown" else None


def commit_state(root: Path, sha: str | None, branch: str | None) -> dict[str, Any] | None:
    """``{sha, branch, dirty}``; ``dirty`` is whether ``root``'s work tree has uncommitted changes to tracked
    files when it is at ``sha`` (None when that cannot be told: no git, or a checkout of another commit).

    Untracked files do not count, as in GitPython's and so MLflow's ``is_dirty``: a notebook's outputs, data
    downloads and CI's artifacts are not code the run came from."""
    if not sha:
        return None
    dirty = None
    head = ask_git(root, "rev-parse", "HEAD")
    if head is not None and head.returncode == 0 and head.stdout.strip() == sha:
        status = ask_git(root, "status", "--porcelain", "--untracked-files=no", "--", ".")
        dirty = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None
    return {"sha": sha, "branch": branch or "", "dirty": dirty}


def file_input(path: Path) -> dict[str, str]:
    """A file the notebook read: its absolute path and sha256 (``gather`` makes the path project-relative)."""
    resolved = Path(path).resolve()
    return {"path": str(resolved), "sha256": file_sha256(resolved)}


def for_handover(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    """Inputs as the notebook hands them back: digests as ``sha256:<hex>``. The executed notebook is masked
    before anything reads it, and secret detection takes a quoted bare hex string for a secret."""
    return [{**entry, "sha256": _PREFIX + entry["sha256"]} if "sha256" in entry else entry for entry in entries]


def from_handover(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**entry, "sha256": entry["sha256"].removeprefix(_PREFIX)} if "sha256" in entry else entry for entry in entries]


def relative_to_project(entry: dict[str, str], root: Path) -> dict[str, str]:
    """A file input's path relative to the project root when it is inside it: the same record in any checkout."""
    if "path" not in entry:
        return entry
    path, base = Path(entry["path"]), root.resolve()
    return {**entry, "path": path.relative_to(base).as_posix()} if path.is_relative_to(base) else entry


def gather(*, root: Path, notebook: Path, config: Mapping[str, Any], commit: dict[str, Any] | None,
           data: list[dict[str, str]], device: str | None) -> Reproducibility:
    """The record of one notebook run: what only the runner knows, plus what the notebook handed back."""
    return Reproducibility(
        commit=commit,
        notebook_sha256=file_sha256(notebook),
        config_sha256=config_sha256(config),
        data=_unique([relative_to_project(entry, root) for entry in from_handover(data)]),
        image=current_image(),
        python=platform.python_version(),
        packages=package_versions(),
        seeds=config_seeds(config),
        device=device if device in DEVICES else "cpu",
    )


def _unique(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each input once, in the order first read (a file read in several passes is one input)."""
    seen: dict[str, dict[str, str]] = {}
    for entry in entries:
        seen.setdefault(json.dumps(entry, sort_keys=True), entry)
    return list(seen.values())
