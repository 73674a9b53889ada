"""Publishing a run: the orchestration behind ``ds-pipelines publish mr|wiki``, ``release`` and ``mask-secrets``.

Each function reads the results folder, looks things up in MLflow, renders with ``ds_pipelines.publish``
(every notebook string masked, then escaped) and writes through ``ds_pipelines.gitlab``. No click and no
Dagster here: a CLI, a CI script or a Dagster op can call them alike. Errors are DsPipelinesError
subclasses; ``outcome.strict_exit_code`` says which ones publishing may shrug off (best effort).
"""

from ds_pipelines.publishing.merge_request import (
    CommentOutcome,
    merge_request_iid,
    publish_merge_request_comment,
)
from ds_pipelines.publishing.models import (
    PRODUCTION_ALIAS,
    STAGING_ALIAS,
    ModelLookupError,
    Promotion,
    PromotionError,
    RegistryError,
)
from ds_pipelines.publishing.outcome import (
    NotConfiguredError,
    error_exit_code,
    strict_exit_code,
)
from ds_pipelines.publishing.release import ReleaseOutcome, ReleaseTagError, release
from ds_pipelines.publishing.wiki import WikiOutcome, publish_wiki_pages

__all__ = [
    "PRODUCTION_ALIAS",
    "STAGING_ALIAS",
    "CommentOutcome",
    "ModelLookupError",
    "NotConfiguredError",
    "Promotion",
    "PromotionError",
    "RegistryError",
    "ReleaseOutcome",
    "ReleaseTagError",
    "WikiOutcome",
    "error_exit_code",
    "merge_request_iid",
    "publish_merge_request_comment",
    "publish_wiki_pages",
    "release",
    "strict_exit_code",
]
