"""What ds-pipelines publishes about a run, rendered from the results folder: the merge-request comment,
wiki pages, release notes and the Slack failure text, with every secret masked and every string a
notebook controls escaped.

Pure functions: no Dagster and no GitLab imports. The CLI reads the results folder (``load_results``),
looks up baselines in MLflow (``find_baselines``), masks executed notebooks before they are uploaded
(``mask_notebook``), renders here, and sends the text with the GitLab client.
"""

from ds_pipelines.publish.baseline import Baseline, find_baseline, find_baselines, mlflow_run_context_env, run_tags
from ds_pipelines.publish.comment import MR_MARKER, render_mr_comment
from ds_pipelines.publish.context import Links, RunContext, job_artifact_url, mlflow_run_url
from ds_pipelines.publish.masking import Masker, mask_notebook, mask_text
from ds_pipelines.publish.release import ModelVersion, ReleaseNotes, find_model_versions, render_release_notes
from ds_pipelines.publish.results import NotebookResult, RunResults, load_results
from ds_pipelines.publish.slack import render_slack_failure
from ds_pipelines.publish.wiki import INDEX_SLUG, WikiPage, render_wiki_pages, wiki_slug

__all__ = [
    "INDEX_SLUG", "MR_MARKER", "Baseline", "Links", "Masker", "ModelVersion", "NotebookResult", "ReleaseNotes",
    "RunContext", "RunResults", "WikiPage", "find_baseline", "find_baselines", "find_model_versions",
    "job_artifact_url", "load_results", "mask_notebook", "mask_text", "mlflow_run_context_env", "mlflow_run_url",
    "render_mr_comment", "render_release_notes", "render_slack_failure", "render_wiki_pages", "run_tags",
    "wiki_slug",
]
