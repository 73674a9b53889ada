"""The merge-request comment: one note per merge request, found again by its marker and updated in place.

The caller reads the results folder (bad input stops everything) and finds the merge request and GitLab
(nowhere to publish: best effort). Then, in order: the previous comment (its results become the history;
a refused token fails here, before any slow work), then MLflow (baselines, links; a lookup that fails is a warning and the
comment goes out without it), plot uploads, and last the one write that matters,
``upsert_merge_request_note``, which survives retried and duplicated requests.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab import GitLabAuthError, GitLabClient, GitLabError
from ds_pipelines.masking import Masker
from ds_pipelines.publishing.failures import describe_failures
from ds_pipelines.publishing.links import Artifacts, Warn, first_line, run_links
from ds_pipelines.publishing.render.comment import MR_MARKER, render_mr_comment
from ds_pipelines.results.folder import RunResults
from ds_pipelines.results.origin import Provenance
from ds_pipelines.tracking.baselines import Baseline, find_baseline

TEXT_PLOT_SUFFIXES = (".svg",)
"""Plots that are text, masked like any notebook output before they are uploaded (PNGs are pixels)."""


@dataclass(frozen=True)
class CommentOutcome:
    mr_iid: int
    note_id: int
    action: str
    """``created`` or ``updated``."""
    plots: int
    """Plots uploaded and shown in the comment."""


def publish_merge_request_comment(
    results: RunResults,
    *,
    mr_iid: int,
    client: GitLabClient,
    masker: Masker,
    origin: Provenance,
    tracking_uri: str | None,
    default_branch: str,
    artifacts: Artifacts | None,
    warn: Warn,
) -> CommentOutcome:
    """Create or update the results comment of merge request ``!mr_iid``."""
    previous = client.marked_note_body(mr_iid=mr_iid, marker=MR_MARKER)  # first: a refused token stops here, before MLflow
    links = run_links(results, origin, tracking_uri=tracking_uri, artifacts=artifacts, warn=warn)
    baselines = find_baselines_or_warn(results, default_branch, tracking_uri, warn)
    plots = upload_plots(client, results, masker, warn)
    body = render_mr_comment(
        results, default_branch=default_branch, baselines=baselines, links=links, plots=plots,
        previous_body=previous, failures=describe_failures(results), masker=masker,
    )
    note_id = client.upsert_merge_request_note(mr_iid=mr_iid, marker=MR_MARKER, body=body)
    return CommentOutcome(
        mr_iid=mr_iid, note_id=note_id, action="created" if previous is None else "updated",
        plots=sum(len(shown) for shown in plots.values()),
    )


def find_baselines_or_warn(
    results: RunResults, default_branch: str, tracking_uri: str | None, warn: Warn,
) -> dict[str, Baseline | None]:
    """The baseline of each notebook that ran through (a successful one, or one that failed only its blocking
    quality checks: it has an MLflow run); one that cannot be looked up is a warning (the comment then shows no
    baseline for it)."""
    from mlflow.exceptions import MlflowException

    baselines: dict[str, Baseline | None] = {}
    for nb in results.notebooks:
        if not nb.mlflow_run_id:
            continue
        try:
            baselines[nb.name] = find_baseline(nb.mlflow_run_id, default_branch, tracking_uri=tracking_uri)
        except (DsPipelinesError, MlflowException, OSError) as exc:
            warn(f"no baseline for {nb.name}: {first_line(exc)}")
    return baselines


def upload_plots(client: GitLabClient, results: RunResults, masker: Masker, warn: Warn) -> dict[str, dict[str, str]]:
    """Upload every notebook's plots: notebook name to {plot name: the markdown GitLab answered}.

    Only plot artifacts are uploaded, never an executed notebook. A plot GitLab refuses is a warning and
    is left out; a refused token is not (nothing else would get through either).
    """
    shown: dict[str, dict[str, str]] = {}
    for nb in results.notebooks:
        for plot, path in nb.plots.items():
            try:
                shown.setdefault(nb.name, {})[plot] = _upload_plot(client, path, masker)
            except GitLabAuthError:
                raise
            except GitLabError as exc:
                warn(f"plot {plot!r} of {nb.name} not uploaded: {exc}")
    return shown


def _upload_plot(client: GitLabClient, path: Path, masker: Masker) -> str:
    # GitLab keeps the file name: mask it like any notebook text, and keep it a plain file name.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", masker.mask(path.name)) or f"plot{path.suffix}"
    text_plot = path.suffix.lower() in TEXT_PLOT_SUFFIXES
    if name == path.name and not text_plot:
        return client.upload_file(path=path)
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-plot-") as scratch:
        copy = Path(scratch) / name
        if text_plot:
            copy.write_text(masker.mask(path.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
        else:
            copy.write_bytes(path.read_bytes())
        return client.upload_file(path=copy)
