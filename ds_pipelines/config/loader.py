"""Read YAML configs and validate them, turning parser and pydantic errors into messages naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ds_pipelines.config.inference import InferenceConfig
from ds_pipelines.config.training import TrainingConfig
from ds_pipelines.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
SCHEMAS: dict[str, type[BaseModel]] = {"training": TrainingConfig, "inference": InferenceConfig}


def read_yaml(file: Path, *, display: str | None = None) -> Any:
    display = display or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(display, None, "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, f"cannot be read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(display, None, f"malformed YAML{where}: {problem}") from None


def load_config(file: Path, schema: str | None, *, display: str | None = None) -> BaseModel:
    """Parse and validate one config file against the named schema (``training``, ``inference``)."""
    display = display or str(file)
    data = read_yaml(file, display=display)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(display, None, f"expected a mapping of keys to values, got {type(data).__name__}")
    model = SCHEMAS.get(schema or "")
    if model is None:
        raise ConfigError(display, None, f"unknown schema {schema!r} (known: {sorted(SCHEMAS)})")
    return validate(model, data, display=display)


def validate(model: type[Model], data: Any, *, display: str, key_prefix: str = "") -> Model:
    """``data`` as ``model``, or a ConfigError naming the file and the key (``key_prefix`` + the model's)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _config_error(display, exc, model, key_prefix) from None


def _config_error(display: str, exc: ValidationError, model: type[BaseModel], key_prefix: str) -> ConfigError:
    """The first problem, phrased for a person; the others are counted so nothing is hidden."""
    first = exc.errors()[0]
    key = key_prefix + ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = f"unknown key (expected one of: {', '.join(_allowed_keys(model, first['loc'][:-1]))})"
    elif kind == "missing":
        problem = "required key is missing"
    else:
        problem = f"{first['msg']}, got {first['input']!r}" if "input" in first and kind != "value_error" else first["msg"]
    others = len(exc.errors()) - 1
    if others:
        problem += f" (and {others} more problem{'s' if others > 1 else ''})"
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
