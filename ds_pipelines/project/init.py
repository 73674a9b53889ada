"""``ds-pipelines init``: make an existing git repository with notebooks a ds-pipelines project.

The whole plan is computed first (every notebook read, every config file checked), then written: bad input
(not a git work tree, no notebooks, a broken notebook, a config file that is no YAML mapping) raises an
InitError before anything is written. Nothing is overwritten: an existing ``configs/notebooks.yaml``, config
file or ``.gitlab-ci.yml`` is left alone and reported; ``.gitignore`` is the one file lines are appended to.

What it writes:

- ``configs/notebooks.yaml``: every notebook under ``notebooks/`` (the notebooks a project runs), ``device: cpu``,
  and ``config:`` when the notebook's code names an existing YAML file of the project as a string literal
  (``yaml.safe_load(open("training_config.yaml"))``), else, for a notebook with a cell tagged ``parameters``,
  a new ``configs/<asset name>.yaml`` holding that cell's literal defaults (a config's top-level keys become
  the parameters cell's variables when the notebook runs, so the file repeats the defaults the notebook has);
- ``.gitlab-ci.yml`` including the CI/CD component at this package's version, its jobs in the ds-pipelines
  image of that version (the repository has no Dockerfile to build);
- ``.gitignore``: ``.ds-pipelines/``, ``results/`` and the folders the configs' output paths are in.
"""

from __future__ import annotations

import ast
import keyword
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds_pipelines.errors import ConfigError, DsPipelinesError
from ds_pipelines.files import write_atomically
from ds_pipelines.project.folder import CHECKPOINTS_DIR, NOTEBOOKS_DIR, REGISTRY_FILE, asset_name
from ds_pipelines.project.notebook_file import PARAMETERS_TAG, parameters_cell, read_notebook
from ds_pipelines.project.work_tree import ask_git

CI_FILE = ".gitlab-ci.yml"
GITIGNORE = ".gitignore"
IGNORED = (".ds-pipelines/", "results/")
_SKIPPED_DIRS = {"node_modules", CHECKPOINTS_DIR}
_YAML_SUFFIXES = (".yaml", ".yml")


class InitError(DsPipelinesError):
    """``ds-pipelines init`` cannot make the folder a project: nothing was written."""


@dataclass
class PlannedFile:
    path: str
    """Relative to the project root, with forward slashes."""
    content: str | None
    """The whole new content; None when the file is left alone."""
    action: str
    """``create``, ``append`` or ``exists``."""
    note: str = ""
    added: str = ""
    """For ``append``: the lines appended."""


@dataclass
class InitPlan:
    root: Path
    files: list[PlannedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self, *, dry_run: bool) -> list[str]:
        """What was (or, for ``dry_run``, would be) written, each file and its content, then the next steps."""
        lines: list[str] = []
        for planned in self.files:
            if planned.action == "exists":
                lines.append(f"{planned.path}: exists, left alone{f' ({planned.note})' if planned.note else ''}")
                continue
            verb = {"create": "would write" if dry_run else "wrote",
                    "append": "would append to" if dry_run else "appended to"}[planned.action]
            lines.append(f"{planned.path}: {verb}{f' ({planned.note})' if planned.note else ''}")
            if dry_run:
                lines += [f"    {line}" for line in (planned.added or planned.content or "").splitlines()]
        lines += [f"note: {note}" for note in self.notes]
        if dry_run:
            lines.append("dry run: nothing was written")
        lines += ["next steps:", "  ds-pipelines check        # validate the project",
                  "  ds-pipelines run --all    # run every notebook here"]
        return lines


def plan_init(root: Path) -> InitPlan:
    """The plan for ``root``, nothing written; an InitError (or ConfigError naming the file) on bad input."""
    root = root.resolve()
    if not root.is_dir():
        raise InitError(f"{root} is not a folder")
    answer = ask_git(root, "rev-parse", "--is-inside-work-tree")
    if answer is None or answer.returncode != 0 or answer.stdout.strip() != "true":
        raise InitError(f"{root} is not in a git work tree: ds-pipelines init sets up an existing git repository "
                        "(run `git init` first)")
    found = _notebooks(root)
    paths = [path for path in found if path.startswith(f"{NOTEBOOKS_DIR}/")]
    plan = InitPlan(root)
    outside = [path for path in found if path not in paths]
    if not paths:
        elsewhere = f" (found {', '.join(outside[:5])}{' ...' if len(outside) > 5 else ''} elsewhere: move them there)" if outside else ""
        raise InitError(f"{root}: no notebook (*.ipynb) under {NOTEBOOKS_DIR}/, where a ds-pipelines project keeps "
                        f"the notebooks it runs{elsewhere}")
    if outside:
        plan.notes.append(f"not listed, as ds-pipelines runs only notebooks under {NOTEBOOKS_DIR}/: {', '.join(outside)}")
    _check_names(paths)
    yaml_files = {path for path in _files(root) if path.endswith(_YAML_SUFFIXES) and path != REGISTRY_FILE}

    registry_exists = (root / REGISTRY_FILE).exists()
    entries: dict[str, dict[str, str]] = {}
    config_files: list[PlannedFile] = []
    outputs: list[str] = []
    for path in paths:
        nb = read_notebook(root / path, display=path)  # a ConfigError naming the file and where it is broken
        entry = {"device": "cpu"}
        cells = list(nb.cells)
        code = [cell for cell in cells if cell.cell_type == "code"]
        tagged = parameters_cell(cells)
        config = _mentioned_config(root, path, code, yaml_files, plan.notes)
        if config is not None:
            data = _mapping(root, config)
            bad = [key for key in data if not (isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key))]
            if tagged is not None and bad:
                plan.notes.append(f"{path} reads {config}, but its key {bad[0]!r} cannot be a parameter of the notebook's "
                                  f"'{PARAMETERS_TAG}' cell: not its config")
                config = None
        if config is None and tagged is not None:
            config = f"configs/{asset_name(path)}.yaml"
            if (root / config).exists():
                _mapping(root, config)
                config_files.append(PlannedFile(config, None, "exists"))
            elif registry_exists:
                plan.notes.append(f"{config} not written: {REGISTRY_FILE} exists and does not name it")
                config = None
            else:
                config_files.append(PlannedFile(config, _parameters_yaml(path, tagged, cells[tagged].source), "create",
                                                f"the defaults of {path}'s '{PARAMETERS_TAG}' cell"))
        if config is not None:
            entry["config"] = config
            planned = next((f for f in config_files if f.path == config and f.content is not None), None)
            outputs += _output_folders(root, _yaml_mapping(planned.content) if planned else _mapping(root, config))
        entries[path] = entry

    if registry_exists:
        plan.files.append(PlannedFile(REGISTRY_FILE, None, "exists"))
        listed = _mapping(root, REGISTRY_FILE).get("notebooks")
        for settings in (listed.values() if isinstance(listed, dict) else ()):
            config = settings.get("config") if isinstance(settings, dict) else None
            if isinstance(config, str) and (root / config).is_file():
                outputs += _output_folders(root, _mapping(root, config))
    else:
        plan.files.append(PlannedFile(REGISTRY_FILE, _registry_yaml(entries), "create", f"{len(entries)} notebooks"))
    plan.files += config_files
    if (root / CI_FILE).exists():
        existing = (root / CI_FILE).read_text(encoding="utf-8", errors="replace")
        if "ds-pipelines/notebooks@" in existing:
            plan.files.append(PlannedFile(CI_FILE, None, "exists", "it includes the ds-pipelines component"))
        else:
            plan.files.append(PlannedFile(CI_FILE, None, "exists"))
            plan.notes.append(f"add to {CI_FILE} to run the notebooks in GitLab CI:\n" + _include_lines())
    else:
        plan.files.append(PlannedFile(CI_FILE, _ci_yaml(), "create", "includes the ds-pipelines CI/CD component"))
    plan.files.append(_gitignore(root, [*IGNORED, *dict.fromkeys(sorted(outputs))]))
    return plan


def apply_init(plan: InitPlan) -> None:
    """Write what ``plan`` creates or appends (each file atomically); files that exist are left alone."""
    for planned in plan.files:
        if planned.content is not None:
            content = planned.content
            write_atomically(plan.root / planned.path, lambda tmp, text=content: tmp.write_text(text, encoding="utf-8"))


def _walk(root: Path):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in files:
            yield (Path(folder) / name).relative_to(root).as_posix()


def _files(root: Path) -> list[str]:
    return sorted(_walk(root))


def _notebooks(root: Path) -> list[str]:
    return [path for path in _files(root) if path.endswith(".ipynb")]


def _check_names(paths: list[str]) -> None:
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(asset_name(path), []).append(path)
    for name, same in sorted(by_name.items()):
        if len(same) > 1:
            raise InitError(f"{' and '.join(same)} both become the Dagster asset {name!r}: rename one of them")


def _string_literals(code_cells: list) -> list[str]:
    found: list[str] = []
    for cell in code_cells:
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        found += [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return found


def _mentioned_config(root: Path, notebook: str, code_cells: list, yaml_files: set[str],
                      notes: list[str]) -> str | None:
    """The first existing YAML file of the project a code cell names, relative to the root or to the notebook's folder."""
    folder = Path(notebook).parent
    for literal in _string_literals(code_cells):
        if not literal.endswith(_YAML_SUFFIXES) or "\n" in literal:
            continue
        for candidate in (Path(literal), folder / literal):
            normal = os.path.normpath(candidate.as_posix()).replace(os.sep, "/")
            if normal in yaml_files:
                if candidate != Path(literal):
                    notes.append(f"{notebook} opens {literal!r}, found as {normal}: ds-pipelines runs notebooks in "
                                       f"the project root, where that name is no file, so the notebook may need {normal!r}")
                return normal
    return None


def _mapping(root: Path, config: str) -> dict[Any, Any]:
    from ds_pipelines.project.config import read_mapping

    try:
        return read_mapping(root / config, display=config)
    except ConfigError as exc:
        raise InitError(f"{exc} (a notebook's config must be a YAML mapping of keys to values)") from None


def _yaml_value(value: Any) -> bool:
    """Whether ``value`` is plain YAML that comes back as it is (the config travels as JSON data)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_yaml_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _yaml_value(item) for key, item in value.items())
    return False


def _parameters_yaml(notebook: str, index: int, source: str) -> str:
    import yaml

    lines = [f"# Config of {notebook}: the defaults of its cell tagged '{PARAMETERS_TAG}' (cell {index + 1}),",
             "# written by ds-pipelines init. Each key becomes a variable of that cell's name when the notebook runs."]
    cleaned = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(cleaned)
    except SyntaxError as exc:
        return "\n".join([*lines, f"# the cell is not valid Python (line {exc.lineno}): no defaults read", "{}", ""])
    values: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            name, node = statement.targets[0].id, statement.value
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value is not None:
            name, node = statement.target.id, statement.value
        else:
            continue
        text = " ".join((ast.get_source_segment(cleaned, node) or ast.unparse(node)).split())
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            lines.append(f"# {name} = {text}: not a literal, the notebook keeps its default")
            continue
        if not _yaml_value(value):
            lines.append(f"# {name} = {text}: not a plain YAML value, the notebook keeps its default")
            continue
        values.pop(name, None)
        values[name] = value
    body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True) if values else "{}\n"
    return "\n".join(lines) + "\n" + body


def _registry_yaml(entries: dict[str, dict[str, str]]) -> str:
    import yaml

    header = ("# Which config file configures which notebook (written by ds-pipelines init).\n"
              "# Every *.ipynb under notebooks/ is a Dagster asset; a notebook not listed here runs with an empty config.\n"
              "#   config: YAML file (relative to the project root); its top-level keys become the variables of the\n"
              "#           notebook's cell tagged 'parameters', if it has one\n"
              "#   device: cpu | gpu (GPU notebooks share the GPU concurrency limit and run on the GPU runner)\n"
              "# More keys (schema, after, kernel, description, checks): see docs/configuration.md of ds-pipelines.\n")
    return header + yaml.safe_dump({"notebooks": entries}, sort_keys=False, allow_unicode=True)


def component_version() -> str:
    """The version the CI/CD component is pinned to: this package's, when it is a release (``0.1.0``); else ``~latest``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("ds-pipelines")
    except PackageNotFoundError:
        return "~latest"
    return installed if all(part.isdigit() for part in installed.split(".")) else "~latest"


def _image_tag_of_version(version: str) -> str:
    """The ds-pipelines image a consumer project runs in: release tags push ``:v<version>`` (release-image),
    the default branch moves ``:latest`` (build-container)."""
    return "latest" if version == "~latest" else f"v{version}"


def _include_lines() -> str:
    """What a repository without a Dockerfile or a ds_pipelines/ folder needs besides the component: the
    stages and runner variables its jobs use and the workflow rules this project's .gitlab-ci.yml has (one
    pipeline per change), and the ds-pipelines image of the same version for every job, detect included (the
    component's default light image has no ds-pipelines installed, and there is nothing here to build)."""
    version = component_version()
    image = f"$CI_REGISTRY/<group>/ds-pipelines:{_image_tag_of_version(version)}"
    return ("# Replace <group> with the group path of the ds-pipelines project on your GitLab.\n"
            "workflow:\n"
            "  auto_cancel:\n"
            "    on_new_commit: interruptible\n"
            "  rules:\n"
            "    # One pipeline per change: the merge request's when one is open, else the branch's.\n"
            '    - if: $CI_PIPELINE_SOURCE == "merge_request_event"\n'
            '    - if: $CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS && $CI_PIPELINE_SOURCE == "push"\n'
            "      when: never\n"
            '    - if: $CI_COMMIT_TAG || $CI_COMMIT_BRANCH || $CI_PIPELINE_SOURCE == "schedule"\n'
            "stages: [build, execute, deploy, test]\n"
            "variables:\n"
            "  # No Dockerfile here: the jobs run in the ds-pipelines image named below.\n"
            '  BUILD_CONTAINER: "false"\n'
            "  # Runner tags: jobs of device gpu / cpu notebooks (empty: COMMIT_RUNNER, in schedules SCHEDULED_RUNNER),\n"
            "  # detect and publishing (LIGHT_RUNNER), and every other job.\n"
            '  GPU_RUNNER: ""\n'
            '  CPU_RUNNER: ""\n'
            "  LIGHT_RUNNER: $COMMIT_RUNNER\n"
            "  COMMIT_RUNNER: saas-linux-small-amd64\n"
            "  SCHEDULED_RUNNER: saas-linux-small-amd64\n"
            "include:\n"
            f"  - component: $CI_SERVER_FQDN/<group>/ds-pipelines/notebooks@{version}\n"
            "    inputs:\n"
            f"      image: {image}\n"
            f"      light-image: {image}\n")


def _ci_yaml() -> str:
    return ("# GitLab CI/CD: run this project's notebooks with ds-pipelines (written by ds-pipelines init).\n"
            + _include_lines())


def _yaml_mapping(text: str) -> dict[Any, Any]:
    import yaml

    return yaml.safe_load(text) or {}


def _output_folders(root: Path, config: Any, under_output: bool = False) -> list[str]:
    """The top folders (``outputs/``) of the relative paths a config gives under its output keys (``outputs:
    {model_path: outputs/training/xgb_model.json}``, ``output_dir: reports/out``): what the notebooks write,
    which git should not offer to commit. Folders of notebooks and configs, and folders holding tracked files
    (committed data), are left out."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            found += _output_folders(root, value, under_output or (isinstance(key, str) and "output" in key.lower()))
    elif isinstance(config, list):
        for value in config:
            found += _output_folders(root, value, under_output)
    elif under_output and isinstance(config, str) and "://" not in config:
        parts = Path(config).parts
        if len(parts) > 1 and not Path(config).is_absolute() and parts[0] not in {".", "..", NOTEBOOKS_DIR, "configs"}:
            tracked = ask_git(root, "ls-files", "--", parts[0])
            if tracked is not None and tracked.returncode == 0 and not tracked.stdout.strip():
                found.append(f"{parts[0]}/")
    return found


def _gitignore(root: Path, ignored: list[str]) -> PlannedFile:
    file = root / GITIGNORE
    text = file.read_text(encoding="utf-8") if file.exists() else ""
    present = {line.strip().lstrip("/").rstrip("/") for line in text.splitlines()}
    missing = [line for line in ignored if line.rstrip("/") not in present]
    if not missing:
        return PlannedFile(GITIGNORE, None, "exists", f"already ignores {' and '.join(ignored)}")
    added = "\n".join(missing) + "\n"
    if not file.exists():
        return PlannedFile(GITIGNORE, added, "create", "the one file init appends to", added=added)
    separator = "" if not text or text.endswith("\n") else "\n"
    return PlannedFile(GITIGNORE, text + separator + added, "append", "the one file init appends to", added=added)
