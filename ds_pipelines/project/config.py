"""Read YAML configs and validate them, turning parser and pydantic errors into messages naming file and key.

The model that validates a notebook's config is named by ``schema:`` in ``configs/notebooks.yaml``:

- a built-in name: ``training`` or ``inference`` (``BUILT_IN_SCHEMAS``, the reference notebooks' models);
- a class in a Python file of the project: ``configs/schemas.py:ChurnConfig`` (relative to the project root);
- a class in a module: ``package.module:ChurnConfig``, the project's own ``package/module.py`` (or
  ``package/module/__init__.py``) when there is one, else a module of the environment.

A project's schema file or module is loaded from its file under a name unique to its path and content, never
through ``sys.path``: a long-lived process (the Dagster code location, the sensor) that validates a later
commit gets that commit's schema, not the first one it imported. Paths stay inside the project: an absolute
path or one with ``..`` is refused (``check`` executes the schema's code).

Any pydantic model works; so a project adds a schema without changing ds-pipelines.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from ds_pipelines.errors import ConfigError, shown
from ds_pipelines.project.upgrades import KeyChange, registry_key_problem

Model = TypeVar("Model", bound=BaseModel)
BUILT_IN_SCHEMAS = {
    "training": "ds_pipelines.project.schemas.training:TrainingConfig",
    "inference": "ds_pipelines.project.schemas.inference:InferenceConfig",
}
_SCHEMA_FORMS = "a built-in name (training, inference), FILE.py:Class or package.module:Class"
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


# A config is a few hundred values. These limits stop what would exhaust the reader instead: deep nesting
# (PyYAML composes recursively, and 500 nested [ raise RecursionError) and aliases that expand to far more
# than the file holds (a "billion laughs": nine aliases of nine aliases ...).
MAX_YAML_DEPTH = 50
MAX_YAML_VALUES = 100_000


class _TooComplex(yaml.YAMLError):
    pass


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing documents nested deeper than MAX_YAML_DEPTH, holding more than
    MAX_YAML_VALUES values once aliases are expanded, or an alias inside the value it names."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooComplex(f"nested more than {MAX_YAML_DEPTH} levels deep at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise _TooComplex(f"its aliases expand to more than {MAX_YAML_VALUES} values")
        return node


_COUNTING = -1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias expanded; an alias is the same node object, so each
    node is counted once (``sizes``) and the whole count costs what the file holds."""
    if sizes.get(id(node)) == _COUNTING:  # an alias inside the value it names: nothing could walk it
        raise _TooComplex(f"the alias at line {node.start_mark.line + 1} refers to a value that holds it")
    if id(node) not in sizes:
        sizes[id(node)] = _COUNTING
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def read_yaml(file: Path, *, display: str | None = None) -> Any:
    display = display or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(display, None, "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, f"cannot be read: {exc}") from None
    try:
        return yaml.load(text, Loader=_LimitedLoader)  # a SafeLoader, with limits
    except _TooComplex as exc:
        raise ConfigError(display, None, f"refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(display, None, f"malformed YAML{where}: {problem}") from None


def read_mapping(file: Path, *, display: str | None = None) -> dict[Any, Any]:
    """One config file's YAML, which must be a mapping (an empty file is an empty one)."""
    display = display or str(file)
    data = read_yaml(file, display=display)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(display, None, f"expected a mapping of keys to values, got {type(data).__name__}")
    return data


def load_config(file: Path, model: type[Model], *, display: str | None = None) -> Model:
    """Parse and validate one config file against ``model``."""
    display = display or str(file)
    return validate(model, read_mapping(file, display=display), display=display)


def config_problems(file: Path, model: type[BaseModel], *, display: str | None = None) -> list[ConfigError]:
    """Every problem of one config file against ``model`` (``load_config`` stops at the first); [] when valid."""
    display = display or str(file)
    try:
        data = read_mapping(file, display=display)
    except ConfigError as exc:
        return [exc]
    return validation_problems(model, data, display=display)


def load_plain_config(file: Path, *, display: str | None = None) -> dict[str, Any]:
    """A config file without a schema: any mapping, as JSON data (YAML dates become ISO strings, keys
    strings), since it travels as Dagster run config and as literals in the notebook's parameters cell."""
    return to_jsonable_python(read_mapping(file, display=display))


def resolve_schema(schema: str | None, *, root: Path, display: str, key: str | None) -> type[BaseModel]:
    """The model class ``schema`` names (see the module docstring); a ConfigError naming ``display`` and
    ``key`` when it names none."""
    if not schema:
        raise ConfigError(display, key, f"no schema: expected {_SCHEMA_FORMS}")
    target = BUILT_IN_SCHEMAS.get(schema, schema)
    where, sep, attribute = target.rpartition(":")
    if not sep or not where or not attribute:
        raise ConfigError(display, key, f"unknown schema {schema!r}: expected {_SCHEMA_FORMS}")
    if where.endswith(".py"):
        relative = Path(where)
        if relative.is_absolute() or ".." in relative.parts or where.startswith("~"):
            raise ConfigError(display, key, f"schema {schema!r}: {where!r} is outside the project: expected a "
                                            "path relative to the project root, without '..'")
    elif not _DOTTED_NAME.fullmatch(where):
        raise ConfigError(display, key, f"schema {schema!r}: {where!r} is not a module name: expected "
                                        "package.module (letters, digits, _ and dots)")
    try:
        module = _schema_file(root / where, root) if where.endswith(".py") else _schema_module(where, root)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything while it is imported
        raise ConfigError(display, key, f"schema {schema!r}: {where} cannot be imported: {type(exc).__name__}: {exc}") from None
    model = getattr(module, attribute, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        found = "nothing" if model is None else type(model).__name__
        raise ConfigError(display, key, f"schema {schema!r}: {where} has no pydantic model {attribute!r} (found {found})")
    return model


def _schema_file(file: Path, root: Path) -> Any:
    """The module of a schema file, imported once per path and content (an edited file is imported anew)."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist")
    if not file.resolve().is_relative_to(root.resolve()):  # a symbolic link out of the project
        raise FileNotFoundError(f"{file} leads outside the project")
    content = file.read_bytes()
    name = f"_ds_pipelines_schema_{hashlib.sha256(str(file.resolve()).encode() + content).hexdigest()[:16]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: pydantic resolves the module's annotations through it
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _schema_module(name: str, root: Path) -> Any:
    """``package.module`` of the project folder (loaded from its file, as ``_schema_file``), else of the
    environment."""
    relative = Path(*name.split("."))
    for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
        if candidate.is_file():
            return _schema_file(candidate, root)
    return importlib.import_module(name)


def validate(model: type[Model], data: Any, *, display: str, key_prefix: str = "",
             changes: Mapping[str, KeyChange] | None = None) -> Model:
    """``data`` as ``model``, or a ConfigError naming the file and the key (``key_prefix`` + the model's);
    ``changes``: keys a release renamed or removed (``project.upgrades``), by their full dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _config_error(display, exc, model, key_prefix, changes or {}) from None


def validation_problems(model: type[BaseModel], data: Any, *, display: str, key_prefix: str = "") -> list[ConfigError]:
    """Every problem of ``data`` as ``model``, each naming the file and the key; [] when it is valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [_problem(display, error, model, key_prefix, {}) for error in exc.errors()]
    return []


def _config_error(display: str, exc: ValidationError, model: type[BaseModel], key_prefix: str,
                  changes: Mapping[str, KeyChange]) -> ConfigError:
    """The first problem, phrased for a person; the others are counted so nothing is hidden."""
    first = _problem(display, exc.errors()[0], model, key_prefix, changes)
    others = len(exc.errors()) - 1
    if not others:
        return first
    return ConfigError(display, first.key, f"{first.problem} (and {others} more problem{'s' if others > 1 else ''})")


def _problem(display: str, error: Any, model: type[BaseModel], key_prefix: str, changes: Mapping[str, KeyChange]) -> ConfigError:
    """One pydantic error, phrased for a person."""
    key = key_prefix + ".".join(str(part) for part in error["loc"]) or None
    kind = error["type"]
    if kind == "extra_forbidden":
        problem = registry_key_problem(key, error["loc"][-1], _allowed_keys(model, error["loc"][:-1]), changes)
    elif kind == "missing":
        problem = "required key is missing"
    else:
        problem = f"{error['msg']}, got {shown(error['input'])}" if "input" in error and kind != "value_error" else error["msg"]
    return ConfigError(display, key, problem)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)
