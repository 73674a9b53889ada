"""A plan explained: every notebook of the project, whether it runs and why, on which runner, for how long.

Pure: a ``Plan`` (``ds_pipelines.triggers.rules``), the project's notebooks, the runner tags and the
durations of earlier runs in, an ``Explanation`` out. ``ds-pipelines detect --explain`` prints it;
``ds-pipelines publish plan`` posts it to the merge request of a ``[plan]`` commit. The durations are the
child pipeline's ``run-<name>`` jobs that succeeded (``ds_pipelines.gitlab.jobs``): each notebook is expected
to take the median of its latest ones.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ds_pipelines.project import NotebookSpec
from ds_pipelines.triggers.child_pipeline import Runners, job_name
from ds_pipelines.triggers.rules import (
    CONFIG_CHANGED,
    MODIFIED,
    NOTHING_CHANGED,
    OVERRIDE,
    SCHEDULED,
    Plan,
)

NO_EARLIER_RUN = "unknown (no earlier successful run)"
DURATIONS_SOURCE = "the median of each notebook's latest successful run-<name> jobs in this project's GitLab CI"


@dataclass(frozen=True)
class NotebookLine:
    """One notebook of the explanation (``publishing.render.plan.PlanLine`` reads these attributes)."""

    notebook: str
    runs: bool
    """Runs in this pipeline, or would in a dry run."""
    why: str
    """The rule that matched, in words: ``changed (modified)``, ``[skip run] in the commit message``, ..."""
    runner: str
    expected: str
    """Its expected duration in words; ``—`` for a notebook that does not run."""
    expected_s: float | None = None


@dataclass(frozen=True)
class Explanation:
    plan: Plan
    lines: tuple[NotebookLine, ...]
    durations_note: str
    """Where the expected durations come from, or why there are none."""

    @property
    def summary(self) -> str:
        """One sentence: what the pipeline does."""
        count = sum(line.runs for line in self.lines)
        notebooks = f"{count} notebook{'s' if count != 1 else ''}"
        if self.plan.dry_run and not count:
            return (f"Dry run ([plan] in the commit message): nothing executes; without [plan], nothing would run "
                    f"either ({NOTHING_CHANGED}).")
        if self.plan.dry_run:
            return f"Dry run ([plan] in the commit message): nothing executes; without [plan], {notebooks} would run."
        if self.plan.skip:
            return f"Nothing runs: {self.plan.skip_reason}."
        return f"{notebooks} {'run' if count != 1 else 'runs'}, in this order."

    @property
    def expected_total_s(self) -> float | None:
        """The expected durations of the notebooks that run, added up; None when one of them has none."""
        running = [line.expected_s for line in self.lines if line.runs]
        return sum(running) if running and None not in running else None  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "plan": self.plan.to_dict(), "notebooks": [asdict(line) for line in self.lines],
                "expected_total_s": self.expected_total_s, "durations": self.durations_note}

    def to_text(self) -> str:
        """Plain text for a terminal: the summary, one block per notebook (running ones first), the durations' source."""
        lines = [self.summary]
        if self.plan.tag:
            lines.append(f"Tag {self.plan.tag!r}: {self.plan.release} release.")
        for line in self.lines:
            mark = ("would run" if self.plan.dry_run else "runs") if line.runs else "not run"
            lines += [f"  {line.notebook}  [{mark}]", f"      why:      {line.why}"]
            if line.runs:
                lines += [f"      runner:   {line.runner}", f"      expected: {line.expected}"]
        total = self.expected_total_s
        if total is not None:
            lines.append(f"Expected runner time in all: {duration_text(total)}.")
        if any(line.runs for line in self.lines):
            lines.append(f"Durations: {self.durations_note}.")
        return "\n".join(lines)


def explain(plan: Plan, specs: Sequence[NotebookSpec], runners: Runners,
            durations: Mapping[str, Sequence[float]] | None, durations_note: str = DURATIONS_SOURCE) -> Explanation:
    """The explanation of ``plan`` over every notebook of ``specs`` (the project's, in run order).

    ``durations``: the latest successful durations in seconds by job name (``run-<name>``), newest first;
    None when they could not be read (``durations_note`` then says why)."""
    planned = {n.path: n.reason for n in (plan.would_run if plan.dry_run else plan.notebooks)}
    by_path = {spec.path: spec for spec in specs}
    ordered = [by_path[path] for path in planned if path in by_path]
    ordered += [spec for spec in specs if spec.path not in planned]
    lines = []
    for spec in ordered:
        reason = planned.get(spec.path)
        if reason is None:
            lines.append(NotebookLine(spec.path, False, _why_not(plan, spec), _runner(spec, runners), "—"))
            continue
        seconds = _expected_seconds(durations, spec)
        lines.append(NotebookLine(spec.path, True, _why(reason, spec), _runner(spec, runners),
                                  _expected_text(seconds, durations, spec), seconds))
    return Explanation(plan, tuple(lines), durations_note)


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _why(reason: str, spec: NotebookSpec) -> str:
    return {
        MODIFIED: "the notebook changed (modified)",
        CONFIG_CHANGED: f"its config {spec.config} changed (config-changed)",
        OVERRIDE: f"[run {spec.path}] in the commit message (override)",
        SCHEDULED: "the schedule runs the scoring notebook (scheduled)",
    }.get(reason, reason)


def _why_not(plan: Plan, spec: NotebookSpec) -> str:
    if plan.skip_reason and not plan.dry_run and plan.skip_reason != NOTHING_CHANGED:
        return plan.skip_reason
    if any(n.reason == SCHEDULED for n in plan.notebooks):
        return "a schedule runs the scoring notebook only"
    config = f" nor its config {spec.config}" if spec.config else ""
    return f"neither the notebook{config} changed, and no [run {spec.path}] in the commit message"


def _runner(spec: NotebookSpec, runners: Runners) -> str:
    kind = "GPU runner" if spec.device == "gpu" else "CPU runner"
    tag = runners.for_device(spec.device)
    return f"{kind} (tag {tag})" if tag else f"{kind} (no tag: any untagged runner)"


def _expected_seconds(durations: Mapping[str, Sequence[float]] | None, spec: NotebookSpec) -> float | None:
    latest = (durations or {}).get(job_name(spec)) or ()
    return statistics.median(latest) if latest else None


def _expected_text(seconds: float | None, durations: Mapping[str, Sequence[float]] | None, spec: NotebookSpec) -> str:
    if durations is None:
        return "unknown (earlier runs not read)"
    if seconds is None:
        return NO_EARLIER_RUN
    runs = len(durations[job_name(spec)])
    return f"about {duration_text(seconds)} (median of the last {runs} successful run{'s' if runs != 1 else ''})"
