"""A notebook's pydantic config model as Dagster config, so the launchpad shows and checks its fields.

Each field becomes a Dagster config field of the matching type (nested models, lists, mappings, optional
values, literals as enums), with the model's description and, as default, the value from the notebook's
YAML: the launchpad starts from the file, and a run that overrides one key keeps the others. What Dagster's
config types cannot say (unions of several types, value ranges) is left to the model, which validates the
whole config again when the notebook reads it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel

_SCALARS = {int: dg.Int, float: dg.Float, str: dg.String, bool: dg.Bool}


def config_schema(model: type[BaseModel], defaults: Mapping[str, Any]) -> dg.Field:
    """The Dagster config of ``model``, defaulting to ``defaults`` (the validated YAML, as JSON data)."""
    return dg.Field(_shape(model, defaults, model.__name__), default_value=dict(defaults), is_required=False)


def _shape(model: type[BaseModel], defaults: Mapping[str, Any], path: str) -> dg.Shape:
    fields = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        config_type = _type(info.annotation, defaults.get(key) if isinstance(defaults, Mapping) else None, f"{path}.{key}")
        description = info.description
        if key in defaults:
            fields[key] = dg.Field(config_type, default_value=defaults[key], is_required=False, description=description)
        else:
            fields[key] = dg.Field(config_type, is_required=info.is_required(), description=description)
    return dg.Shape(fields)


def _type(annotation: Any, default: Any, path: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        inner = _type(options[0], default, path) if len(options) == 1 else dg.Any
        return dg.Noneable(inner) if type(None) in args else inner
    if origin is Literal:
        if all(isinstance(value, str) for value in args):
            return dg.Enum(path.replace(".", "_"), [dg.EnumValue(value) for value in args])
        return dg.Any
    if origin in (list, tuple, set, frozenset) and args:
        return [_type(args[0], None, f"{path}[]")]
    if origin in (dict, Mapping) and len(args) == 2 and args[0] is str:
        return dg.Map(str, _type(args[1], None, f"{path}{{}}"))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _shape(annotation, default if isinstance(default, Mapping) else {}, path)
    return _SCALARS.get(annotation, dg.Any)
