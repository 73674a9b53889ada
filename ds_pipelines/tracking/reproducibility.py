"""A notebook run's reproducibility record on its MLflow run: tags, params and one JSON artifact.

Set by the library after the notebook ran (the notebook's own run id comes back with its results), so the
notebook needs no code for it:

- tags ``ds-pipelines.commit_dirty``, ``ds-pipelines.notebook_sha256``, ``ds-pipelines.config_sha256``,
  ``ds-pipelines.image``, ``ds-pipelines.device``, ``ds-pipelines.python`` and ``ds-pipelines.data`` (the
  inputs as JSON, or their count when that is longer than a tag holds); the commit's SHA and branch are the
  ``ds-pipelines.commit`` / ``ds-pipelines.branch`` tags every run already carries (``baselines.run_tags``);
- params ``ds-pipelines.seed.<dotted key>`` and ``ds-pipelines.package.<name>`` (searchable, comparable in
  MLflow's UI);
- the artifact ``RECORD_ARTIFACT``: ``{notebook, name, metrics, config, reproducibility}``, what
  ``ds-pipelines reproduce --mlflow-run ID`` reads back (``read_record``).

The record is a plain dict here (``ds_pipelines.results.reproducibility`` defines it; this layer does not
import that one).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.tracking.baselines import COMMIT_TAG, TAG_PREFIX
from ds_pipelines.tracking.links import shown_uri

RECORD_ARTIFACT = "ds-pipelines/reproducibility.json"
_TAG_LIMIT = 8000  # MLflow's longest tag value


class MlflowRunNotFoundError(DsPipelinesError):
    """An MLflow run id that the tracking server does not know."""


def record_tags_and_params(record: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(tags, params) of a record, as they are set on the notebook's MLflow run."""
    commit = record.get("commit") or {}
    data = json.dumps(record.get("data", []), sort_keys=True)
    tags = {
        COMMIT_TAG: commit.get("sha"),
        f"{TAG_PREFIX}commit_dirty": None if commit.get("dirty") is None else str(commit["dirty"]).lower(),
        f"{TAG_PREFIX}notebook_sha256": record.get("notebook_sha256"),
        f"{TAG_PREFIX}config_sha256": record.get("config_sha256"),
        f"{TAG_PREFIX}image": record.get("image") or "none",
        f"{TAG_PREFIX}device": record.get("device"),
        f"{TAG_PREFIX}python": record.get("python"),
        f"{TAG_PREFIX}data": data if len(data) <= _TAG_LIMIT else f"{len(record['data'])} inputs: see {RECORD_ARTIFACT}",
    }
    params = {f"{TAG_PREFIX}seed.{key}": str(value) for key, value in (record.get("seeds") or {}).items()}
    params.update({f"{TAG_PREFIX}package.{name}": str(version) for name, version in (record.get("packages") or {}).items()})
    return {key: str(value) for key, value in tags.items() if value not in (None, "")}, params


def log_record(run_id: str, payload: dict[str, Any], *, tracking_uri: str) -> None:
    """Put ``payload["reproducibility"]`` on MLflow run ``run_id`` as tags and params, and the whole payload
    (notebook, name, metrics, config, reproducibility) as ``RECORD_ARTIFACT``."""
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    tags, params = record_tags_and_params(payload["reproducibility"])
    # A param the notebook logged itself under the same name cannot be logged again: leave those out.
    logged = client.get_run(run_id).data.params
    client.log_batch(
        run_id,
        params=[Param(key, value) for key, value in params.items() if key not in logged],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / Path(RECORD_ARTIFACT).name
        file.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
        client.log_artifact(run_id, str(file), artifact_path=str(Path(RECORD_ARTIFACT).parent))


def read_record(run_id: str, *, tracking_uri: str) -> dict[str, Any]:
    """What ``log_record`` left on run ``run_id``: the payload, with ``where`` naming the run for errors."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    where = f"MLflow run {run_id!r} at {shown_uri(client.tracking_uri)}"
    try:
        client.get_run(run_id)
    except MlflowException:
        raise MlflowRunNotFoundError(f"{where} does not exist (is MLFLOW_TRACKING_URI the server the notebook logged to?)") from None
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(run_id, RECORD_ARTIFACT, folder)
        except (MlflowException, OSError):
            raise DsPipelinesError(
                f"{where} has no reproducibility record ({RECORD_ARTIFACT}): it was not run by a ds-pipelines "
                "version that records one"
            ) from None
        try:
            payload = json.loads(Path(local).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DsPipelinesError(f"{where}: {RECORD_ARTIFACT} is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise DsPipelinesError(f"{where}: {RECORD_ARTIFACT}: expected a JSON object, got {type(payload).__name__}")
    return {**payload, "where": where}
