"""Which registered model version a release is about, and its promotion in the MLflow model registry.

The version: the one the training run in the results folder registered (``find_model_versions``: the
newest version per registered model among the runs of ``results.json``); without a results folder, or
when its runs registered none, the latest version of the registered model named by ``--model``, else by
the training notebook's config (``mlflow.registered_model_name`` in ``configs/training_config.yaml``).

Promotion sets an alias (``production`` for production tags, ``staging`` for development ones) with
``set_registered_model_alias``: the alias moves to this version, so a rerun changes nothing. GitLab's
MLflow-compatible API has no alias endpoints: when the server answers that the endpoint does not exist,
the version gets the model version tag ``ds-pipelines.alias=<alias>`` instead (``ds_pipelines.registry``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import Project
from ds_pipelines.publish import RunResults, find_model_versions
from ds_pipelines.publishing.links import shown_uri
from ds_pipelines.registry import ALIAS_TAG, unsupported_endpoint

PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"
TRAINING_SCHEMA = "training"


class ModelLookupError(DsPipelinesError):
    """No model version to release: nothing registered, or no registered model configured."""


class RegistryError(DsPipelinesError):
    """The MLflow model registry cannot be read or refused a change (the release stops there)."""


class PromotionError(RegistryError):
    """The registry refused to promote the version: nothing is deployed half-way."""


@dataclass(frozen=True)
class ChosenVersion:
    name: str
    version: str
    run_id: str | None
    notebook: str
    """Asset name of the notebook whose run registered it (the release notes' section)."""
    notebook_path: str | None = None


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


def choose_versions(
    client, *, results: RunResults | None, model: str | None, project: Project, tracking_uri: str | None,
    warn: Callable[[str], None],
) -> list[ChosenVersion]:
    """The model versions a release promotes (see the module docstring); ModelLookupError when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        if results is not None:
            chosen = _registered_by_results(results, model, tracking_uri)
            if chosen:
                return chosen
            warn(f"no successful run in {results.directory} registered a model version"
                 f"{f' of {model!r}' if model else ''}: releasing the latest registered version instead")
        names = [(model, model, None)] if model else _configured_models(project)
        return [_latest_version(client, name, notebook, path) for name, notebook, path in names]
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"the MLflow model registry cannot be read at {_shown(tracking_uri)}: {_reason(exc)}") from None


def _registered_by_results(results: RunResults, model: str | None, tracking_uri: str | None) -> list[ChosenVersion]:
    newest: dict[str, ChosenVersion] = {}
    for notebook, versions in find_model_versions(results.notebooks, tracking_uri=tracking_uri).items():
        nb = next(nb for nb in results.notebooks if nb.name == notebook)
        for version in versions:
            if model and version.name != model:
                continue
            current = newest.get(version.name)
            if current is None or int(version.version) > int(current.version):
                newest[version.name] = ChosenVersion(version.name, version.version, nb.mlflow_run_id, nb.name, nb.notebook)
    return sorted(newest.values(), key=lambda chosen: chosen.name)


def _configured_models(project: Project) -> list[tuple[str, str, str]]:
    """(registered model name, notebook asset name, notebook path) of every training notebook's config."""
    found = []
    for spec in project.notebooks():
        if spec.schema != TRAINING_SCHEMA:
            continue
        name = (project.config_for(spec).get("mlflow") or {}).get("registered_model_name")
        if name:
            found.append((name, spec.name, spec.path))
    if not found:
        raise ModelLookupError(
            f"no registered model to release: no training notebook's config sets mlflow.registered_model_name "
            f"(e.g. configs/training_config.yaml in {project.root}); pass --model NAME or --results DIR"
        )
    return found


def _latest_version(client, name: str, notebook: str, path: str | None) -> ChosenVersion:
    if "'" in name or "\\" in name:
        raise ModelLookupError(f"registered model name {name!r} holds a quote or backslash, which MLflow search cannot take")
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelLookupError(
            f"registered model {name!r} has no version in the MLflow registry at {_shown(client.tracking_uri)}: "
            "did training run with mlflow.register_model: true against this MLFLOW_TRACKING_URI?"
        )
    latest = max(versions, key=lambda v: int(v.version))
    return ChosenVersion(name, str(latest.version), latest.run_id, notebook, path)


def promote(client, chosen: ChosenVersion, alias: str) -> Promotion:
    """Point ``alias`` at ``chosen`` (or tag it where the server has no aliases); PromotionError otherwise."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_registered_model_alias(chosen.name, alias, chosen.version)
        return Promotion(chosen.name, chosen.version, alias, "alias")
    except MlflowException as exc:
        if not unsupported_endpoint(exc):
            raise PromotionError(
                f"could not set alias {alias!r} on model {chosen.name!r} version {chosen.version}: {_reason(exc)}"
            ) from None
    except OSError as exc:
        raise PromotionError(f"could not set alias {alias!r} on model {chosen.name!r}: {_reason(exc)}") from None
    try:
        client.set_model_version_tag(chosen.name, chosen.version, ALIAS_TAG, alias)
    except (MlflowException, OSError) as exc:
        raise PromotionError(
            f"the MLflow server has no model aliases, and tagging model {chosen.name!r} version {chosen.version} "
            f"with {ALIAS_TAG}={alias} failed too: {_reason(exc)}"
        ) from None
    return Promotion(chosen.name, chosen.version, alias, "tag")


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


def _shown(uri: str | None) -> str:
    return shown_uri(uri) if uri else "the default tracking URI"
