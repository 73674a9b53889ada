"""A catalogue of bad inputs, each through the real CLI in a subprocess: exit 2 (bad input), a message naming the
file, key or value, no traceback, and nothing half-written (no output folder, no Dagster run, no output file at a
config's output path, no dotenv plan, a given results folder left as it was).

Each case is data: a setup that writes the bad input into a fresh copy of this project (a git repository) and a
results folder made by hand, the arguments, the expected exit status and the texts stderr must hold. In argv,
env and expected texts, <project>, <results> and <root> stand for those folders."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from gitrepo import GitRepo, notebook_json
from published import run_cli
from sandbox import REPO, make_sandbox

from ds_pipelines.project import STATE_DIR

pytestmark = pytest.mark.slow  # about a hundred CLI calls, two to three seconds each for check and run

TRAINING_CONFIG = "configs/training_config.yaml"
INFERENCE_CONFIG = "configs/inference_config.yaml"
REGISTRY = "configs/notebooks.yaml"
TRAINING = "notebooks/training_example.ipynb"
INFERENCE = "notebooks/inference_example.ipynb"


@dataclass
class Ctx:
    root: Path
    project: Path
    results: Path
    env: dict[str, str]
    repo: GitRepo

    def fill(self, text: str) -> str:
        return (text.replace("<project>", str(self.project)).replace("<results>", str(self.results))
                .replace("<root>", str(self.root)))

    def write(self, relative: str, text: str) -> None:
        target = self.project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def edit_yaml(self, relative: str, change: Callable[[dict], None]) -> None:
        data = yaml.safe_load((self.project / relative).read_text())
        change(data)
        self.write(relative, yaml.safe_dump(data, sort_keys=False))

    def replace(self, relative: str, old: str, new: str) -> None:
        text = (self.project / relative).read_text()
        assert old in text, (relative, old)
        self.write(relative, text.replace(old, new))

    def edit_results(self, change: Callable[[dict], None]) -> None:
        file = self.results / "results.json"
        data = json.loads(file.read_text())
        change(data)
        file.write_text(json.dumps(data, indent=2))


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Ctx], None] | None
    argv: tuple[str, ...]
    expected: tuple[str, ...]
    code: int = 2
    env: dict[str, str | None] = field(default_factory=dict)


def valid_results(folder: Path) -> None:
    """A results folder as `ds-pipelines run --output-dir` leaves it: one failed training notebook."""
    (folder / "training_example").mkdir(parents=True)
    (folder / "training_example" / "training_example.ipynb").write_text(notebook_json("raise ValueError('bad')"))
    (folder / "results.json").write_text(json.dumps({
        "format": "ds-pipelines-results/1", "status": "failed",
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
        "commit": None,
        "notebooks": [{
            "notebook": TRAINING, "name": "training_example", "status": "failed", "duration_s": 3.0,
            "dagster_run_id": None, "mlflow_run_id": None, "metrics": {},
            "executed_notebook": "training_example/training_example.ipynb", "metrics_file": None,
            "artifacts": {}, "error": "ValueError: bad", "failed_cell": 1,
        }],
    }, indent=2))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- what the cases run -------------------------------------------------------------------------------------------

CHECK = ("check", "--project-dir", "<project>")
RUN_TRAINING = ("run", "training_example", "--project-dir", "<project>", "--output-dir", "<root>/out")


def run_with_config(notebook: str) -> tuple[str, ...]:
    return ("run", notebook, "--project-dir", "<project>", "--config", f"{notebook}=<root>/bad.yaml",
            "--output-dir", "<root>/out")


DETECT = ("detect", "--before", "HEAD", "--dotenv", "<root>/plan.env")


def bad_file(text: str) -> Callable[[Ctx], None]:
    return lambda ctx: (ctx.root / "bad.yaml").write_text(text)


def config_text(relative: str, text: str) -> Callable[[Ctx], None]:
    return lambda ctx: ctx.write(relative, text)


def config_append(relative: str, text: str) -> Callable[[Ctx], None]:
    return lambda ctx: ctx.write(relative, (ctx.project / relative).read_text() + text)


def yaml_edit(relative: str, change: Callable[[dict], None]) -> Callable[[Ctx], None]:
    return lambda ctx: ctx.edit_yaml(relative, change)


def notebook_setting(notebook: str, **settings) -> Callable[[Ctx], None]:
    return yaml_edit(REGISTRY, lambda data: data["notebooks"][notebook].update(settings))


def trigger(**settings) -> Callable[[Ctx], None]:
    return yaml_edit(REGISTRY, lambda data: data["triggers"].update(settings))


def schedule(**settings) -> Callable[[Ctx], None]:
    return yaml_edit(REGISTRY, lambda data: data["triggers"]["schedule"].update(settings))


def nested(section: str, **settings) -> Callable[[dict], None]:
    return lambda data: data[section].update(settings)


TRAIN = f"error: {TRAINING_CONFIG}: "
INFER = f"error: {INFERENCE_CONFIG}: "
REG = f"error: {REGISTRY}: "
# Nine levels of nine aliases each: a few hundred bytes that would expand to 9**9 values.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9))

CONFIG_CASES = [
    Case("training-malformed-yaml", config_text(TRAINING_CONFIG, "outcome: target\nmlflow: {experiment_name: x\n"),
         CHECK, (TRAIN, "malformed YAML at line 3")),
    Case("training-tab-indented-yaml", config_text(TRAINING_CONFIG, "outcome: target\nmlflow:\n\texperiment_name: x\n"),
         CHECK, (TRAIN, "malformed YAML")),
    Case("training-not-a-mapping", config_text(TRAINING_CONFIG, "- just\n- a list\n"),
         CHECK, (TRAIN, "expected a mapping of keys to values, got list")),
    Case("training-a-scalar", config_text(TRAINING_CONFIG, "just some text\n"),
         CHECK, (TRAIN, "expected a mapping of keys to values, got str")),
    Case("training-unknown-top-key", config_append(TRAINING_CONFIG, "\noptuna_trials: 5\n"),
         CHECK, (TRAIN + "optuna_trials: unknown key",)),
    Case("training-unknown-nested-key", yaml_edit(TRAINING_CONFIG, nested("optuna", n_trails=5)),
         CHECK, (TRAIN + "optuna.n_trails: unknown key (expected one of: ",)),
    Case("training-wrong-type", yaml_edit(TRAINING_CONFIG, nested("optuna", n_trials="many")),
         CHECK, (TRAIN + "optuna.n_trials: Input should be a valid integer", "'many'")),
    Case("training-test-size-text", yaml_edit(TRAINING_CONFIG, nested("data", test_size="a fifth")),
         CHECK, (TRAIN + "data.test_size: Input should be a valid number", "got 'a fifth'")),
    Case("training-missing-outcome", yaml_edit(TRAINING_CONFIG, lambda data: data.pop("outcome")),
         CHECK, (TRAIN + "outcome: required key is missing",)),
    Case("training-unknown-device", yaml_edit(TRAINING_CONFIG, nested("model", device="tpu")),
         CHECK, (TRAIN + "model.device: Input should be 'auto', 'cpu' or 'cuda', got 'tpu'",)),
    Case("training-unknown-metric", yaml_edit(TRAINING_CONFIG, nested("optuna", metric="rmse")),
         CHECK, (TRAIN + "optuna.metric: Input should be 'roc_auc'", "got 'rmse'")),
    Case("training-unknown-pruner", yaml_edit(TRAINING_CONFIG, nested("optuna", pruner="percentile")),
         CHECK, (TRAIN + "optuna.pruner: Input should be 'median', 'top_quarter', 'top_tenth', 'hyperband' or 'none', got 'percentile'",)),
    Case("training-early-stopping-zero", yaml_edit(TRAINING_CONFIG, nested("optuna", early_stopping_rounds=0)),
         CHECK, (TRAIN + "optuna.early_stopping_rounds: Input should be greater than or equal to 1, got 0",)),
    Case("training-register-without-name", yaml_edit(TRAINING_CONFIG, lambda data: data["mlflow"].pop("registered_model_name")),
         CHECK, (TRAIN, "registered_model_name is not set")),
    Case("training-outputs-not-a-mapping", yaml_edit(TRAINING_CONFIG, lambda data: data.update(outputs="outputs/")),
         CHECK, (TRAIN + "outputs: Input should be a valid dictionary", "got 'outputs/'")),
    Case("inference-malformed-yaml", config_text(INFERENCE_CONFIG, "model:\n  path: [unclosed\n"),
         CHECK, (INFER, "malformed YAML")),
    Case("inference-not-a-mapping", config_text(INFERENCE_CONFIG, "[1, 2, 3]\n"),
         CHECK, (INFER, "expected a mapping of keys to values, got list")),
    Case("inference-unknown-key", config_append(INFERENCE_CONFIG, "\nextra: 1\n"),
         CHECK, (INFER + "extra: unknown key",)),
    Case("inference-model-path-a-number", yaml_edit(INFERENCE_CONFIG, lambda data: data.update(model={"path": 3})),
         CHECK, (INFER + "model.path: Input should be a valid string, got 3",)),
    Case("inference-missing-fields", yaml_edit(INFERENCE_CONFIG, lambda data: data.pop("fields")),
         CHECK, (INFER + "fields: required key is missing",)),
    Case("inference-threshold-out-of-range", yaml_edit(INFERENCE_CONFIG, lambda data: data.update(threshold=2)),
         CHECK, (INFER + "threshold: Input should be less than or equal to 1", "2")),
    Case("inference-chunk-size-text", yaml_edit(INFERENCE_CONFIG, nested("input", chunk_size="big")),
         CHECK, (INFER + "input.chunk_size: Input should be a valid integer", "got 'big'")),
    Case("inference-unknown-field-key", yaml_edit(INFERENCE_CONFIG, nested("fields", id_colum="row_id")),
         CHECK, (INFER + "fields.id_colum: unknown key",)),
    # the same checks refuse `run` before any run, for a config given on the command line
    Case("run-config-unknown-key", bad_file("outcome: target\nmlflow: {experiment_name: x}\noptuna: {n_trails: 5}\n"),
         run_with_config("training_example"), ("error: <root>/bad.yaml: optuna.n_trails: unknown key",)),
    Case("run-config-wrong-type", bad_file("model: {path: 3}\n"),
         run_with_config("inference_example"), ("error: <root>/bad.yaml: model.path: Input should be a valid string",)),
    Case("run-config-not-a-mapping", bad_file("- a\n"),
         run_with_config("training_example"), ("error: <root>/bad.yaml: ", "expected a mapping of keys to values, got list")),
    Case("run-config-missing-file", None,
         run_with_config("training_example"), ("<root>/bad.yaml: file does not exist",)),
    Case("run-config-override-syntax", None,
         ("run", "training_example", "--project-dir", "<project>", "--config", "training_example"), ("expected NOTEBOOK=FILE",)),
    Case("run-training-config-unknown-key", config_append(TRAINING_CONFIG, "\noptuna_trials: 5\n"),
         RUN_TRAINING, (TRAIN + "optuna_trials: unknown key",)),
]

REGISTRY_CASES = [
    Case("registry-malformed-yaml", config_append(REGISTRY, "\n  bad: [unclosed\n"), CHECK, (REG, "malformed YAML")),
    Case("registry-nested-too-deep", config_append(REGISTRY, "\nextra: " + "[" * 500 + "]" * 500 + "\n"),
         CHECK, (REG, "refused: nested more than 50 levels deep at line")),
    Case("registry-alias-bomb", config_append(REGISTRY, "\n" + ALIAS_BOMB), CHECK,
         (REG, "refused: its aliases expand to more than 100000 values")),
    Case("registry-not-a-mapping", config_text(REGISTRY, "- notebooks/training_example.ipynb\n"),
         CHECK, (REG, "expected the top-level keys 'notebooks'")),
    Case("registry-unknown-top-key", config_append(REGISTRY, "\nschedules: {}\n"),
         CHECK, (REG + "schedules: unknown key (expected one of: notebooks, triggers)",)),
    Case("registry-unknown-notebook-setting", notebook_setting(TRAINING, devise="gpu"),
         CHECK, (REG + f"notebooks.{TRAINING}.devise: unknown key (expected one of: after, checks, config, description, "
                 "device, kernel, schema); did you mean 'device'?",)),
    Case("registry-bad-device", notebook_setting(TRAINING, device="tpu"),
         CHECK, (REG + f"notebooks.{TRAINING}.device: expected one of ['cpu', 'gpu'], got 'tpu'",)),
    Case("registry-after-unknown-notebook", notebook_setting(INFERENCE, after=["notebooks/gone.ipynb"]),
         CHECK, (REG + f"notebooks.{INFERENCE}.after: 'notebooks/gone.ipynb' is not a notebook of this project",)),
    Case("registry-after-not-a-list", notebook_setting(INFERENCE, after=3),
         CHECK, (REG + f"notebooks.{INFERENCE}.after: expected a list of notebook paths, got 3",)),
    Case("registry-after-cycle", notebook_setting(TRAINING, after=[INFERENCE]),
         CHECK, (REG + f"notebooks.{INFERENCE}.after: dependency cycle",)),
    Case("registry-after-itself", notebook_setting(TRAINING, after=[TRAINING]),
         CHECK, (REG + f"notebooks.{TRAINING}.after: dependency cycle",)),
    Case("registry-kernel-not-installed", notebook_setting(TRAINING, kernel="no-such-kernel"),
         CHECK, (REG + f"notebooks.{TRAINING}.kernel: no Jupyter kernel 'no-such-kernel' is installed",)),
    Case("registry-kernel-a-number", notebook_setting(TRAINING, kernel=3),
         CHECK, (REG + f"notebooks.{TRAINING}.kernel: expected the name of an installed Jupyter kernel, got 3",)),
    Case("registry-unknown-schema", notebook_setting(TRAINING, schema="xgb"),
         CHECK, (REG + f"notebooks.{TRAINING}.schema: unknown schema 'xgb'",)),
    Case("registry-config-file-missing", notebook_setting(TRAINING, config="configs/nope.yaml"),
         CHECK, ("error: configs/nope.yaml: file does not exist",)),
    Case("registry-lists-a-missing-notebook", yaml_edit(REGISTRY, lambda data: data["notebooks"].update({"notebooks/missing.ipynb": {}})),
         CHECK, (REG + "notebooks.notebooks/missing.ipynb: lists a notebook that does not exist",)),
    Case("registry-checks-not-a-list", notebook_setting(TRAINING, checks={"metric": "roc_auc", "min": 0.9}),
         CHECK, (REG + f"notebooks.{TRAINING}.checks: expected a list of checks",)),
    Case("registry-check-metric-malformed", notebook_setting(TRAINING, checks=[{"metric": "roc auc!", "min": 0.9}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].metric: expected the name of a metric the notebook reports",
                 "got 'roc auc!'")),
    Case("registry-check-metric-missing", notebook_setting(TRAINING, checks=[{"min": 0.9}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].metric: expected the name of a metric", "got None")),
    Case("registry-check-min-above-max", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "min": 0.9, "max": 0.5}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].min: min 0.9 is above max 0.5",)),
    Case("registry-check-unknown-key", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "minimum": 0.9}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].minimum: unknown key (expected one of: metric, min, max, "
                 "no_worse_than_baseline, blocking); did you mean 'min'?",
                 REG + f"notebooks.{TRAINING}.checks[0]: a check needs a condition")),
    Case("registry-check-bound-text", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "max": "high"}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].max: expected a number, got 'high'",)),
    Case("registry-check-blocking-text", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "min": 0.9, "blocking": "yes"}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[0].blocking: expected true or false, got 'yes'",)),
    Case("registry-check-twice", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "min": 0.9}, {"metric": "roc_auc", "min": 0.8}]),
         CHECK, (REG + f"notebooks.{TRAINING}.checks[1]: the same check as notebooks.{TRAINING}.checks[0]",)),
    # `run` refuses it before anything runs
    Case("run-registry-check-min-above-max", notebook_setting(TRAINING, checks=[{"metric": "roc_auc", "min": 2, "max": 1}]),
         RUN_TRAINING, (REG + f"notebooks.{TRAINING}.checks[0].min: min 2 is above max 1",)),
    Case("triggers-cron-out-of-range", schedule(cron="61 6 * * *"),
         CHECK, (REG + "triggers.schedule.cron: ", "minute field '61'", "'61 6 * * *'")),
    Case("triggers-cron-four-fields", schedule(cron="0 6 * *"),
         CHECK, (REG + "triggers.schedule.cron: ", "expected five fields, found 4, got '0 6 * *'")),
    Case("triggers-cron-words", schedule(cron="every morning"),
         CHECK, (REG + "triggers.schedule.cron: ", "expected five fields, found 2, got 'every morning'")),
    Case("triggers-unknown-time-zone", schedule(timezone="Mars/Olympus"),
         CHECK, (REG + "triggers.schedule.timezone: ", "expected an IANA time zone", "Mars/Olympus")),
    Case("triggers-schedule-notebook-missing", schedule(notebook="notebooks/scoring.ipynb"),
         CHECK, (REG + "triggers.schedule.notebook: notebook 'notebooks/scoring.ipynb' does not exist",)),
    Case("triggers-production-tag-regex", trigger(production_tag="v("),
         CHECK, (REG + "triggers.production_tag: Value error, expected a regular expression matching whole tags, got 'v('",)),
    Case("triggers-development-tag-regex", trigger(development_tag="dev-[0-9"),
         CHECK, (REG + "triggers.development_tag: Value error, expected a regular expression matching whole tags, got 'dev-[0-9'",)),
    Case("triggers-gpu-concurrency-0", trigger(gpu_concurrency=0),
         CHECK, (REG + "triggers.gpu_concurrency: Input should be greater than or equal to 1, got 0",)),
    Case("triggers-unknown-orchestrator", trigger(orchestrator="jenkins"),
         CHECK, (REG + "triggers.orchestrator: Input should be 'gitlab-ci' or 'dagster', got 'jenkins'",)),
    Case("triggers-unknown-key", trigger(poll_every="1m"),
         CHECK, (REG + "triggers.poll_every: unknown key",)),
    Case("triggers-poll-interval-text", trigger(poll_interval_s="often"),
         CHECK, (REG + "triggers.poll_interval_s: Input should be a valid integer", "got 'often'")),
    Case("triggers-branches-not-a-list", trigger(branches=7),
         CHECK, (REG + "triggers.branches: Input should be a valid list, got 7",)),
    Case("run-refuses-a-bad-cron", schedule(cron="61 6 * * *"),
         RUN_TRAINING, (REG + "triggers.schedule.cron: ", "'61 6 * * *'")),
    Case("detect-unknown-orchestrator", trigger(orchestrator="jenkins"),
         DETECT, ("triggers.orchestrator", "'jenkins'")),
    Case("detect-production-tag-regex-in-registry", trigger(production_tag="v("),
         DETECT, ("triggers.production_tag", "'v('"), env={"CI_COMMIT_TAG": "v1.2.3"}),
]


def r_notebook(ctx: Ctx) -> None:
    notebook = json.loads(notebook_json("print(1)"))
    notebook["metadata"] = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
                            "language_info": {"name": "R"}}
    ctx.write("notebooks/report.ipynb", json.dumps(notebook))


NOTEBOOK_CASES = [
    Case("notebook-not-json", config_text("notebooks/cut.ipynb", '{"cells": [\n  {"cell_type": "code"\n'),
         CHECK, ("error: notebooks/cut.ipynb: not valid JSON at line 3, column 1",)),
    Case("notebook-empty-file", config_text("notebooks/empty.ipynb", ""),
         CHECK, ("error: notebooks/empty.ipynb: not valid JSON",)),
    Case("notebook-json-list", config_text("notebooks/list.ipynb", "[1, 2]"),
         CHECK, ("error: notebooks/list.ipynb: not a Jupyter notebook",)),
    Case("notebook-json-without-cells", config_text("notebooks/other.ipynb", '{"name": "x"}'),
         CHECK, ("error: notebooks/other.ipynb: not a Jupyter notebook",)),
    Case("notebook-invalid-cells", config_text("notebooks/bad.ipynb", json.dumps(
        {"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})),
         CHECK, ("error: notebooks/bad.ipynb", "not a valid notebook")),
    Case("notebook-in-r", r_notebook,
         CHECK, ("notebooks/report.ipynb is written in R", "'ir'", "Python notebooks only")),
    Case("run-refuses-a-notebook-not-json", config_text("notebooks/cut.ipynb", "{not json"),
         RUN_TRAINING, ("notebooks/cut.ipynb: not valid JSON",)),
]

COMMIT_CASES = [
    Case("message-absolute-path", None, (*DETECT, "--message", "[run /etc/x.ipynb]"),
         ("'/etc/x.ipynb' is absolute",)),
    Case("message-leaves-repository", None, (*DETECT, "--message", "[run ../outside.ipynb]"),
         ("[run ../outside.ipynb] in the commit message: '../outside.ipynb' leaves the repository",)),
    Case("message-dotdot-inside", None, (*DETECT, "--message", "[run notebooks/../../x.ipynb]"),
         ("'notebooks/../../x.ipynb' leaves the repository",)),
    Case("message-not-a-notebook", None, (*DETECT, "--message", f"[run {TRAINING_CONFIG}]"),
         (f"'{TRAINING_CONFIG}' is not a notebook",)),
    Case("message-unknown-notebook", None, (*DETECT, "--message", "[run notebooks/missing.ipynb]"),
         ("notebook 'notebooks/missing.ipynb' does not exist", TRAINING)),
    Case("message-outside-notebooks", None, (*DETECT, "--message", "[run other/x.ipynb]"),
         ("'other/x.ipynb' is not under notebooks/",)),
    Case("message-empty-override", None, (*DETECT, "--message", "fix [run]"),
         ("malformed '[run]' in the commit message",)),
    Case("message-from-ci-variable", None, ("detect", "--before", "HEAD", "--dotenv", "<root>/plan.env"),
         ("'/tmp/x.ipynb' is absolute",), env={"CI_COMMIT_MESSAGE": "retrain\n\n[run /tmp/x.ipynb]"}),
]

TAG_CASES = [
    Case("release-pre-release-tag", None, ("release", "v1.2.3-rc1"),
         ("error: tag 'v1.2.3-rc1' is not a release", r"v[0-9]+\.[0-9]+\.[0-9]+")),
    Case("release-word-tag", None, ("release", "nightly"), ("error: tag 'nightly' is not a release",)),
    Case("release-tag-against-bad-pattern", trigger(production_tag="v("), ("release", "v1.2.3"),
         ("triggers.production_tag", "'v('")),
    Case("detect-bad-production-tag-option", None, (*DETECT, "--production-tag", "v(", "--tag", "v1"),
         ("production tag pattern 'v(' is not a valid regular expression",)),
    Case("detect-bad-development-tag-option", None, (*DETECT, "--development-tag", "dev-[", "--tag", "dev-1"),
         ("development tag pattern 'dev-[' is not a valid regular expression",)),
]


def no_results_json(ctx: Ctx) -> None:
    (ctx.results / "results.json").unlink()


def results_not_json(ctx: Ctx) -> None:
    (ctx.results / "results.json").write_text('{"format": "ds-pipelines-results/1",\n')


def wrong_format(ctx: Ctx) -> None:
    ctx.edit_results(lambda data: data.update(format="ds-pipelines-results/0"))


def missing_notebook_file(ctx: Ctx) -> None:
    (ctx.results / "training_example" / "training_example.ipynb").unlink()


def results_cases(command: str, *args: str, env: dict[str, str | None] | None = None) -> list[Case]:
    argv = (*command.split(), *args)
    prefix = command.replace(" ", "-")
    return [
        Case(f"{prefix}-missing-folder", None, (*argv, "<root>/nowhere"), ("results folder <root>/nowhere does not exist",),
             env=env or {}),
        Case(f"{prefix}-no-results-json", no_results_json, (*argv, "<results>"), ("<results>/results.json",), env=env or {}),
        Case(f"{prefix}-results-not-json", results_not_json, (*argv, "<results>"), ("<results>/results.json", "JSON"),
             env=env or {}),
        Case(f"{prefix}-wrong-format", wrong_format, (*argv, "<results>"),
             ("<results>/results.json: format: expected 'ds-pipelines-results/1'", "'ds-pipelines-results/0'"), env=env or {}),
        Case(f"{prefix}-missing-notebook-file", missing_notebook_file, (*argv, "<results>"),
             ("<results>/results.json", "notebooks[0].executed_notebook", "training_example/training_example.ipynb"),
             env=env or {}),
    ]


SLACK = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T000/B000/XXXX"}
RESULTS_CASES = [
    *results_cases("publish mr", "--results"),
    *results_cases("publish wiki", "--results"),
    *results_cases("notify slack", "--results", env=SLACK),
    *results_cases("mask-secrets"),
]

ENV_CASES = [
    Case("postgres-url-not-a-url", None, RUN_TRAINING, ("error: DAGSTER_POSTGRES_URL is not a database URL: expected postgresql://",),
         env={"DAGSTER_POSTGRES_URL": "not a url", "DAGSTER_HOME": None}),
    Case("postgres-url-not-postgres", None, RUN_TRAINING, ("error: DAGSTER_POSTGRES_URL=mysql://user@127.0.0.1/dagster is not a Postgres URL",),
         env={"DAGSTER_POSTGRES_URL": "mysql://user@127.0.0.1/dagster", "DAGSTER_HOME": None}),
    Case("merge-request-iid-not-a-number", None, ("publish", "mr", "--results", "<results>"),
         ("CI_MERGE_REQUEST_IID='abc' is not a merge-request number",), env={"CI_MERGE_REQUEST_IID": "abc"}),
    Case("mlflow-server-not-listening", None, ("release", "v1.2.3"),
         ("MLFLOW_TRACKING_URI=http://127.0.0.1:<port>", "cannot be reached"),
         env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:<port>"}),
    Case("project-dir-missing-check", None, ("check",), ("DS_PIPELINES_PROJECT_DIR=<root>/gone", "is not a folder"),
         env={"DS_PIPELINES_PROJECT_DIR": "<root>/gone"}),
    Case("project-dir-missing-run", None, ("run", "training_example", "--output-dir", "<root>/out"),
         ("DS_PIPELINES_PROJECT_DIR=<root>/gone", "is not a folder"), env={"DS_PIPELINES_PROJECT_DIR": "<root>/gone"}),
    Case("project-dir-missing-detect", None, ("detect", "--dotenv", "<root>/plan.env"),
         ("error: DS_PIPELINES_PROJECT_DIR=<root>/gone: the folder does not exist",),
         env={"DS_PIPELINES_PROJECT_DIR": "<root>/gone"}),
]



def training_data(text: Callable[[], str], **changes) -> Callable[[Ctx], None]:
    """Training data at <root>/data.csv and a small training config at <root>/bad.yaml that reads it and writes
    its outputs under <root>/artifacts (which must stay absent)."""

    def setup(ctx: Ctx) -> None:
        (ctx.root / "data.csv").write_text(text())
        config = {
            "outcome": "target", "data": {"path": str(ctx.root / "data.csv")},
            "optuna": {"n_trials": 2, "timeout": 60, "cv_folds": 2}, "model": {"device": "cpu"},
            "mlflow": {"experiment_name": "catalogue", "register_model": False},
            "outputs": {name: str(ctx.root / "artifacts" / name) for name in ("model_path", "metrics_path", "holdout_path", "plots_dir")},
        }
        config.update(changes)
        (ctx.root / "bad.yaml").write_text(yaml.safe_dump(config))
    return setup


def breast_cancer(rows: int = 80):
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.head(rows)


def text_in_a_numeric_column() -> str:
    data = breast_cancer().astype({"mean radius": object})
    data.loc[3, "mean radius"] = "large"
    return data.to_csv(index=False)


RUN_TRAINING_DATA = ("run", "training_example", "--project-dir", "<project>", "--config", "training_example=<root>/bad.yaml",
                     "--output-dir", "<root>/out")
DATA_CASES = [  # the notebook runs and fails (exit 1), naming the file
    Case("data-header-only", training_data(lambda: ",".join(breast_cancer().columns) + "\n"), RUN_TRAINING_DATA,
         ("training data (<root>/data.csv) has no rows",), code=1),
    Case("data-missing-outcome-column", training_data(lambda: breast_cancer().to_csv(index=False), outcome="diagnosis"),
         RUN_TRAINING_DATA, ("training data (<root>/data.csv) is missing column(s) 'diagnosis' (from outcome)",), code=1),
    Case("data-text-in-a-numeric-column", training_data(text_in_a_numeric_column), RUN_TRAINING_DATA,
         ("training data (<root>/data.csv): column(s) 'mean radius' are not numeric",), code=1),
]



def inference_data(write: Callable[[Path], None], name: str = "data.csv", **changes) -> Callable[[Ctx], None]:
    """A small model at <root>/model.json, input data that ``write`` puts at <root>/NAME, and an inference config
    at <root>/bad.yaml that scores it into <root>/artifacts (which must stay absent)."""

    def setup(ctx: Ctx) -> None:
        from xgboost import XGBClassifier

        data = breast_cancer()
        model = XGBClassifier(n_estimators=3, max_depth=2).fit(data.drop(columns=["target"]), data["target"])
        model.save_model(ctx.root / "model.json")
        write(ctx.root / name)
        config = {
            "model": {"path": str(ctx.root / "model.json")},
            "input": {"path": str(ctx.root / name), "chunk_size": 25},
            "fields": {"id_column": "row_id", "outcome_column": "target"},
            "output": {"path": str(ctx.root / "artifacts" / "scores.csv"),
                       "metrics_path": str(ctx.root / "artifacts" / "metrics.json")},
        }
        config.update(changes)
        (ctx.root / "bad.yaml").write_text(ctx.fill(yaml.safe_dump(config)))
    return setup


def scoring_input(change: Callable = lambda data: data) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = change(breast_cancer().rename_axis("row_id").reset_index())
        if path.suffix == ".csv":
            data.to_csv(path, index=False)
        else:
            data.to_parquet(path, index=False)
    return write


def text_in_row_4(data):
    data = data.astype({"mean radius": object})
    data.loc[3, "mean radius"] = "large"
    return data


RUN_INFERENCE_DATA = ("run", "inference_example", "--project-dir", "<project>", "--config", "inference_example=<root>/bad.yaml",
                      "--output-dir", "<root>/out")
SCORING_CASES = [  # the notebook runs and fails (exit 1), naming the file, the row or column and the config key
    Case("scoring-text-in-a-numeric-column", inference_data(scoring_input(text_in_row_4)), RUN_INFERENCE_DATA,
         ("input data <root>/data.csv (input.path): data row 4, column 'mean radius' (from fields.features.mean radius): "
          "'large' is not a number",), code=1),
    Case("scoring-missing-feature-column", inference_data(scoring_input(lambda data: data.drop(columns=["mean radius"]))),
         RUN_INFERENCE_DATA, ("input data <root>/data.csv (input.path) is missing column(s) 'mean radius' (from fields.features.mean radius)",),
         code=1),
    Case("scoring-empty-csv", inference_data(lambda path: path.write_bytes(b"")), RUN_INFERENCE_DATA,
         ("input data <root>/data.csv (input.path) is empty: expected a header row and rows to score",), code=1),
    Case("scoring-empty-parquet", inference_data(lambda path: path.write_bytes(b""), name="data.parquet"), RUN_INFERENCE_DATA,
         ("input data <root>/data.parquet (input.path) is empty: expected a header row and rows to score",), code=1),
    Case("scoring-header-only", inference_data(scoring_input(lambda data: data.head(0))), RUN_INFERENCE_DATA,
         ("input data <root>/data.csv (input.path) has no rows to score",), code=1),
    # an output format the notebook cannot write is refused before anything runs
    Case("scoring-output-unknown-extension",
         inference_data(scoring_input(), output={"path": "<root>/artifacts/scores.xlsx"}), RUN_INFERENCE_DATA,
         ("error: <root>/bad.yaml: output.path: Value error, expected a file ending in .csv or .parquet (the format follows "
          "the extension), got '<root>/artifacts/scores.xlsx'",)),
    Case("inference-output-unknown-extension", yaml_edit(INFERENCE_CONFIG, nested("output", path="outputs/inference/scores.txt")),
         CHECK, (INFER + "output.path: Value error, expected a file ending in .csv or .parquet", "got 'outputs/inference/scores.txt'")),
    Case("inference-input-unknown-extension", yaml_edit(INFERENCE_CONFIG, nested("input", path="data/holdout.json")),
         CHECK, (INFER + "input.path: Value error, expected a file ending in .csv or .parquet", "got 'data/holdout.json'")),
]

CASES = [*CONFIG_CASES, *REGISTRY_CASES, *NOTEBOOK_CASES, *COMMIT_CASES, *TAG_CASES, *RESULTS_CASES, *ENV_CASES, *DATA_CASES,
         *SCORING_CASES]


def test_the_catalogue_is_large_and_its_names_distinct():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    project = tmp_path / "project"
    shutil.copytree(REPO / "configs", project / "configs")
    shutil.copytree(REPO / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    repo = GitRepo(project)
    repo.git("init", "-q", "-b", "main")
    repo.commit("initial")
    results = tmp_path / "results"
    valid_results(results)
    env = {key: value for key, value in make_sandbox(tmp_path / "box").env.items()
           if not key.startswith(("GITLAB_", "REPO_TOKEN", "SLACK_", "CI_", "DAGSTER_POSTGRES"))}
    env["DS_PIPELINES_PROJECT_DIR"] = str(project)
    return Ctx(root=tmp_path, project=project, results=results, env=env, repo=repo)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input_is_refused_naming_it(ctx: Ctx, case: Case):
    port = str(closed_port())
    if case.setup is not None:
        case.setup(ctx)
    env = dict(ctx.env)
    for name, value in case.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = ctx.fill(value).replace("<port>", port)
    given = snapshot(ctx.results)

    result = run_cli(env, *(ctx.fill(arg) for arg in case.argv), cwd=ctx.root, timeout=120)

    output = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == case.code, output
    assert "Traceback" not in result.stdout + result.stderr, output
    assert "error: " in result.stderr.lower(), output  # click's usage errors say "Error: "
    for text in case.expected:
        assert ctx.fill(text).replace("<port>", port) in result.stderr, (text, output)
    # nothing half-written
    assert not (ctx.root / "artifacts").exists(), "no output file at the config's output paths"
    if case.code == 1:  # the notebook ran and failed: the results folder says so
        summary = json.loads((ctx.root / "out" / "results.json").read_text())
        assert summary["status"] == "failed" and summary["notebooks"][0]["status"] == "failed", summary
        assert summary["notebooks"][0]["metrics_file"] is None
        return
    assert not (ctx.root / "out").exists(), "no results folder was written"
    assert not (ctx.root / "plan.env").exists(), "no plan was written"
    assert not (ctx.project / "outputs").exists(), "no notebook output was written"
    state = [path.name for path in (ctx.project / STATE_DIR).rglob("*") if path.is_file()]
    assert set(state) <= {"dagster.yaml"}, f"no Dagster instance was used in the project: {state}"
    assert not any((ctx.root / "box" / "dagster").glob("history/runs/*")), "no Dagster run was started"
    assert snapshot(ctx.results) == given, "the given results folder is unchanged"
