"""The MLflow model registry: which versions a run registered, the latest version of a model, and aliases,
also on servers without them (GitLab's MLflow-compatible API).

``ds-pipelines release`` promotes a version by alias (``promote``), or where the server has no alias
endpoints, by the model version tag ``ds-pipelines.alias=<alias>``, moved as an alias moves: the versions
that carried it lose it, so a rollback to an older version is what scoring loads. Scoring resolves ``models:/name@alias`` the same way, so a
model released on GitLab's MLflow API is the one the inference notebook loads. No Dagster imports: the
notebooks use it.

Functions take an ``MlflowClient``; MLflow's errors stay theirs except where a function says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.tracking.links import model_version_url, shown_uri

PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"

ALIAS_TAG = "ds-pipelines.alias"
"""Model version tag standing in for an alias on servers without aliases (GitLab's MLflow API)."""
_UNSUPPORTED_CODES = {"ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED"}
_UNSUPPORTED_TEXT = re.compile(r"\b(404|405|501)\b|not found|not allowed|not implemented", re.IGNORECASE)
_ALIAS_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)")


def unsupported_endpoint(exc: BaseException) -> bool:
    """Whether an MLflow error says the server lacks the endpoint (GitLab's MLflow API and aliases), as
    opposed to refusing the request (unknown model, bad version, permissions)."""
    if getattr(exc, "error_code", None) in _UNSUPPORTED_CODES:
        return True
    # A server that is not MLflow answers in its own JSON ({"error": "404 Not Found"}): no MLflow error code.
    payload = getattr(exc, "json", None)
    return isinstance(payload, dict) and "error_code" not in payload and bool(_UNSUPPORTED_TEXT.search(str(payload)))


def alias_uri_parts(uri: str) -> tuple[str, str] | None:
    """(name, alias) of ``models:/name@alias``; None for any other URI."""
    match = _ALIAS_URI.fullmatch(uri)
    return (match["name"], match["alias"]) if match else None


def version_tagged_with_alias(client, name: str, alias: str) -> str | None:
    """The newest version of ``name`` tagged ``ds-pipelines.alias=<alias>``; None when no version is."""
    if "'" in name or "\\" in name:
        return None
    tagged = [v for v in client.search_model_versions(f"name = '{name}'") if (v.tags or {}).get(ALIAS_TAG) == alias]
    return str(max(tagged, key=lambda v: int(v.version)).version) if tagged else None


class ModelLookupError(DsPipelinesError):
    """No model version to release: nothing registered, or no registered model configured."""


class RegistryError(DsPipelinesError):
    """The MLflow model registry cannot be read or refused a change (the release stops there)."""


class PromotionError(RegistryError):
    """The registry refused to promote the version: nothing is deployed half-way."""


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version (MLflow model registry)."""

    name: str
    version: str
    run_id: str | None = None
    """The MLflow run that registered it."""
    aliases: tuple[str, ...] = ()
    url: str | None = None
    """Its page in the MLflow UI, when there is one."""


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    method: str
    """``alias`` (registry alias set) or ``tag`` (``ds-pipelines.alias`` model version tag, no aliases there)."""

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.method == "alias" else f"models:/{self.name}/{self.version}"


def versions_registered_by(client, run_id: str, *, ui_url: str | None = None) -> list[ModelVersion]:
    """The model versions MLflow run ``run_id`` registered, by name and version."""
    # Run ids are hex; anything else is not looked up (it would end up in a filter string).
    if not run_id.isalnum():
        return []
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    return [
        ModelVersion(
            name=v.name, version=str(v.version), run_id=v.run_id, aliases=tuple(getattr(v, "aliases", None) or ()),
            url=model_version_url(ui_url, v.name, v.version) if ui_url else None,
        )
        for v in sorted(versions, key=lambda v: (v.name, int(v.version)))
    ]


def latest_version(client, name: str) -> ModelVersion:
    """The newest version of registered model ``name``; ModelLookupError when it has none."""
    if "'" in name or "\\" in name:
        raise ModelLookupError(f"registered model name {name!r} holds a quote or backslash, which MLflow search cannot take")
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelLookupError(
            f"registered model {name!r} has no version in the MLflow registry at {shown_uri(client.tracking_uri)}: "
            "did training run with mlflow.register_model: true against this MLFLOW_TRACKING_URI?"
        )
    latest = max(versions, key=lambda v: int(v.version))
    return ModelVersion(name=name, version=str(latest.version), run_id=latest.run_id)


def promote(client, name: str, version: str, alias: str) -> Promotion:
    """Point ``alias`` at the version (or tag it where the server has no aliases); PromotionError otherwise."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_registered_model_alias(name, alias, version)
        return Promotion(name, version, alias, "alias")
    except MlflowException as exc:
        if not unsupported_endpoint(exc):
            raise PromotionError(f"could not set alias {alias!r} on model {name!r} version {version}: {_reason(exc)}") from None
    except OSError as exc:
        raise PromotionError(f"could not set alias {alias!r} on model {name!r}: {_reason(exc)}") from None
    try:
        client.set_model_version_tag(name, version, ALIAS_TAG, alias)
        # Then untagged elsewhere: in between, the newest tagged version is the one scoring loads.
        for other in client.search_model_versions(f"name = '{name}'"):
            if str(other.version) != str(version) and (other.tags or {}).get(ALIAS_TAG) == alias:
                client.delete_model_version_tag(name, str(other.version), ALIAS_TAG)
    except (MlflowException, OSError) as exc:
        raise PromotionError(
            f"the MLflow server has no model aliases, and tagging model {name!r} version {version} "
            f"with {ALIAS_TAG}={alias} failed too: {_reason(exc)}"
        ) from None
    return Promotion(name, version, alias, "tag")


def aliased_version(client, name: str, alias: str) -> str | None:
    """The version ``alias`` points at (the registry's alias, else the ``ds-pipelines.alias`` tag); None when
    no version has it."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if not unsupported_endpoint(exc) and getattr(exc, "error_code", None) not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    return version_tagged_with_alias(client, name, alias)


def current_aliases(client, name: str, version: str) -> tuple[str, ...]:
    """The aliases the registry lists for a version (empty where it cannot tell)."""
    from mlflow.exceptions import MlflowException

    try:
        return tuple(getattr(client.get_model_version(name, version), "aliases", None) or ())
    except (MlflowException, OSError):
        return ()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
