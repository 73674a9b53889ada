"""MLflow, as a client: where runs are tracked, the tags that say where a run comes from, baselines, and
the model registry (aliases, also on servers without them). No Dagster imports: notebooks use it too."""

from ds_pipelines.tracking.uri import TRACKING_URI_ENV, tracking_uri

__all__ = ["TRACKING_URI_ENV", "tracking_uri"]
