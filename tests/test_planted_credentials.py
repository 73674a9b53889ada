"""A notebook that prints 20 kinds of made-up credentials leaves none of them anywhere ds-pipelines writes.

Through the real CLI and Dagster: the console of ``ds-pipelines run`` (a CI job's log), every file under
``DAGSTER_HOME`` (executed notebooks, captured logs, the event log database), the MLflow store and its
artifacts, the results folder after ``mask-secrets``, and what publishing sends to the loopback GitLab (merge
request comment, wiki) and Slack. The GitLab token's value is also in the environment, as CI sets it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from gitrepo import notebook_json
from planted import make_credentials, printing_cell, secret_parts
from published import assert_clean_exit, cli_env, run_cli
from sandbox import Sandbox

pytestmark = pytest.mark.slow  # runs notebooks through Dagster

MR = 5
MLFLOW_CELL = """import mlflow
from ds_pipelines import notebook as dsp
dsp.setup_mlflow("planted")
with mlflow.start_run() as run:
    mlflow.log_metric("rows", 3)
dsp.report(metrics={"rows": 3.0}, mlflow_run_id=run.info.run_id)"""


def planted_project(root: Path, credentials: dict[str, str], *, fail: bool) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump({"notebooks": {}}))
    notebook = json.loads(notebook_json(printing_cell(credentials)))
    cells = [MLFLOW_CELL] + ([f"raise RuntimeError('login refused for ' + {credentials['gitlab_pat']!r})"] if fail else [])
    for source in cells:
        notebook["cells"].append({**notebook["cells"][0], "source": [source]})
    (root / "notebooks").mkdir()
    (root / "notebooks" / "planted.ipynb").write_text(json.dumps(notebook, indent=1))
    # Output that bypasses Python's sys.stdout: native code writing to the file descriptors, a shell command.
    # ipykernel echoes it to the descriptors the kernel inherited: ds-pipelines gives its kernels none.
    native = (f"import os, subprocess\nos.write(2, b'native ' + {credentials['github_pat']!r}.encode() + b'\\n')\n"
              f"subprocess.run(['echo', 'shell', {credentials['stripe_secret']!r}], check=True)")
    (root / "notebooks" / "native.ipynb").write_text(notebook_json(native))
    return root


def leaks(texts: dict[str, str], secrets: list[str]) -> dict[str, list[str]]:
    found = {where: [s[:12] + "..." for s in secrets if s in text] for where, text in texts.items()}
    return {where: hits for where, hits in found.items() if hits}


def files_under(folder: Path) -> dict[str, str]:
    """Every file's bytes as text (latin-1 keeps every byte): SQLite databases and logs included."""
    return {str(f.relative_to(folder)): f.read_bytes().decode("latin-1") for f in folder.rglob("*") if f.is_file()}


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
def test_no_planted_credential_leaves_the_run(sandbox: Sandbox, tmp_path: Path, fake_gitlab, fake_slack, fail: bool):
    credentials = make_credentials()
    secrets = secret_parts(credentials)
    project = planted_project(tmp_path / "project", credentials, fail=fail)
    # The job's own GitLab token, as CI sets it: a masked CI variable whose value the notebook prints.
    sandbox.env.update(DS_PIPELINES_PROJECT_DIR=str(project), GITLAB_TOKEN=credentials["gitlab_pat"])

    # Two notebooks: the first runs in the kernel started early, the second in one nbclient starts.
    ran = sandbox.cli("run", "notebooks/native.ipynb", "notebooks/planted.ipynb", "--output-dir", str(tmp_path / "results"))
    assert ran.returncode == (1 if fail else 0), ran.stderr[-3000:]
    assert "| gitlab [MASKED]" in ran.stderr, "the cell's output is streamed, masked"
    masked = sandbox.cli("mask-secrets", str(tmp_path / "results"))
    assert masked.returncode == 0, masked.stderr

    published = {}
    env = cli_env(sandbox, fake_gitlab, CI_MERGE_REQUEST_IID=str(MR), CI_PROJECT_DIR=str(tmp_path))
    if fail:
        assert_clean_exit(run_cli({**env, **fake_slack.webhook_environ()}, "notify", "slack", "--results",
                                  str(tmp_path / "results"), cwd=tmp_path))
        [published["slack"]] = fake_slack.texts
        assert "RuntimeError: login refused for [MASKED]" in published["slack"]
    else:
        assert_clean_exit(run_cli(env, "publish", "mr", "--results", str(tmp_path / "results"), cwd=tmp_path))
        assert_clean_exit(run_cli(env, "publish", "wiki", "--results", str(tmp_path / "results"), cwd=tmp_path))
        published["comment"] = fake_gitlab.notes[MR][0]["body"]
        published.update({f"wiki {slug}": page["content"] for slug, page in fake_gitlab.wiki.items()})
        mlflow_files = files_under(sandbox.root / "mlartifacts")
        assert any(name.endswith(".ipynb") for name in mlflow_files), "the executed notebook was logged to MLflow"

    everything = {
        "console": ran.stdout + ran.stderr,
        **{f"DAGSTER_HOME/{name}": text for name, text in files_under(Path(sandbox.env["DAGSTER_HOME"])).items()},
        **{f"results/{name}": text for name, text in files_under(tmp_path / "results").items()},
        **{f"mlflow/{name}": text for name, text in files_under(sandbox.root).items() if name.startswith(("mlartifacts", "mlflow.db"))},
        **published,
    }
    assert leaks(everything, secrets) == {}
    # The notebook really ran and printed: its executed copy holds the masked lines.
    [executed] = (tmp_path / "results" / "planted").glob("*.ipynb")
    assert "gitlab [MASKED]" in executed.read_text()
