"""A dry run's plan on its merge request: the one comment, found by its marker and updated in place."""

from __future__ import annotations

from collections.abc import Sequence

from ds_pipelines.gitlab import GitLabClient
from ds_pipelines.publishing.render.comment import MR_MARKER
from ds_pipelines.publishing.render.plan import PlanLine, render_plan_comment
from ds_pipelines.results.origin import Provenance


def publish_plan_comment(lines: Sequence[PlanLine], *, summary: str, durations_note: str, expected_total: str | None,
                         mr_iid: int, client: GitLabClient, origin: Provenance) -> tuple[int, str]:
    """Make the merge request's comment show the plan; the note's id and ``created`` or ``updated``."""
    previous = client.marked_note_body(mr_iid=mr_iid, marker=MR_MARKER)
    body = render_plan_comment(
        lines, summary=summary, durations_note=durations_note, expected_total=expected_total,
        commit_sha=origin.commit, commit_url=origin.commit_url, pipeline_url=origin.pipeline_url,
        previous_body=previous,
    )
    note_id = client.upsert_merge_request_note(mr_iid=mr_iid, marker=MR_MARKER, body=body)
    return note_id, "created" if previous is None else "updated"
