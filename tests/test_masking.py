"""Secrets never leave in what ds-pipelines publishes: masked notebooks, MR comments, wiki pages, release
notes, Slack text. A real notebook prints them (papermill runs it), and the published texts are checked."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from made_up import random_text

from ds_pipelines.masking import (
    MASK,
    LineMasker,
    Masker,
    MaskingError,
    mask_notebook,
    mask_text,
    secret_env_values,
)
from ds_pipelines.publishing.artifacts import mask_results_folder
from ds_pipelines.publishing.failures import describe_failures
from ds_pipelines.publishing.render.comment import render_mr_comment
from ds_pipelines.publishing.render.links import Links
from ds_pipelines.publishing.render.release import render_release_notes
from ds_pipelines.publishing.render.slack import (
    alert_from_results,
    render_failure_alert,
)
from ds_pipelines.publishing.render.wiki import render_wiki_pages
from ds_pipelines.results.folder import load_results
from ds_pipelines.results.origin import Provenance

PAPERMILL = Path(sys.executable).parent / "papermill"
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


# Made up at run time, so this file holds no token-shaped string for secret scanners to report.
GITLAB_TOKEN = "glpat-" + random_text(20)
PASSWORD = "horse-" + random_text(14)
"""Not recognisable as a secret by its shape: only masked because it is a secret env var's value."""


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A results folder around a real notebook, run by papermill, that prints a GitLab token and a secret
    env var's value, reports a metric whose name holds the token, and fails with the token in its error."""
    root = tmp_path_factory.mktemp("leaky")
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNEL})
    notebook.cells = [
        nbformat.v4.new_code_cell('print("roc_auc = 0.93 on 114 rows")'),
        nbformat.v4.new_code_cell('import os\nprint("service password:", os.environ["DEMO_SERVICE_PASSWORD"])'),
        nbformat.v4.new_code_cell(f'token = "{GITLAB_TOKEN}"\nprint(f"connecting with {{token}}")'),
        nbformat.v4.new_code_cell('raise ValueError(f"login refused for {token}")'),
    ]
    source = root / "demo.ipynb"
    nbformat.write(notebook, source)
    env = {**os.environ, "DEMO_SERVICE_PASSWORD": PASSWORD}
    executed = root / "results" / "demo" / "demo.ipynb"
    executed.parent.mkdir(parents=True)
    run = subprocess.run(
        [str(PAPERMILL), str(source), str(executed), "--kernel", "python3"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode != 0 and executed.is_file(), run.stderr[-2000:]  # it fails, and the output is kept
    results = {
        "format": "ds-pipelines-results/1",
        "status": "failed",
        "started_at": "2024-05-01T10:00:00+00:00",
        "finished_at": "2024-05-01T10:01:00+00:00",
        "commit": {"sha": "0123456789abcdef0123456789abcdef01234567", "branch": "feature"},
        "notebooks": [{
            "notebook": "notebooks/demo.ipynb", "name": "demo", "status": "failed", "duration_s": 4.2,
            "dagster_run_id": "run-1", "mlflow_run_id": None,
            "metrics": {"tuning_s": 3.5, f"auc_{GITLAB_TOKEN}": 0.5},
            "executed_notebook": "demo/demo.ipynb", "metrics_file": None, "artifacts": {},
            "error": f"notebooks/demo.ipynb failed in code cell 4: ValueError: login refused for {GITLAB_TOKEN}",
            "failed_cell": 4,
        }],
    }
    (root / "results" / "results.json").write_text(json.dumps(results))
    return root / "results", {"DEMO_SERVICE_PASSWORD": PASSWORD}


def test_the_leaky_notebook_really_holds_the_secrets_before_masking(leaky_run):
    results_dir, _ = leaky_run
    raw = (results_dir / "demo" / "demo.ipynb").read_text()
    # Without this the tests below would pass for the wrong reason.
    assert GITLAB_TOKEN in raw and PASSWORD in raw and "roc_auc = 0.93" in raw


def test_masked_notebook_has_no_token_and_no_env_secret_and_stays_a_valid_notebook(leaky_run, tmp_path):
    results_dir, env = leaky_run
    masked_file = tmp_path / "masked.ipynb"
    count = mask_notebook(results_dir / "demo" / "demo.ipynb", masked_file, env=env)
    text = masked_file.read_text()
    assert GITLAB_TOKEN not in text and PASSWORD not in text
    assert "glpat-" not in text  # the whole token, not only the part detect-secrets reports
    # cell 3 source and output, the error value and its traceback, and the password output
    assert count >= 5 and text.count(MASK) == count
    masked = nbformat.read(masked_file, as_version=4)
    nbformat.validate(masked)
    assert "roc_auc = 0.93 on 114 rows" in text  # harmless output untouched
    error = next(o for o in masked.cells[-1].outputs if o.output_type == "error")
    assert error.ename == "ValueError" and error.evalue == f"login refused for {MASK}"


def test_token_is_gone_from_comment_wiki_release_notes_and_slack(leaky_run):
    results_dir, env = leaky_run
    results = load_results(results_dir)
    masker = Masker.from_env(env)
    links = Links(executed_notebooks={"demo": "https://gitlab.example.com/g/p/-/jobs/7/artifacts/file/results/demo/demo.ipynb"})
    failures = describe_failures(results)
    texts = {
        "comment": render_mr_comment(results, default_branch="main", links=links, failures=failures, masker=masker),
        "wiki": "\n".join(page.content for page in render_wiki_pages(results, origin=Provenance(), masker=masker)),
        "release": render_release_notes("v1.0.0", "production", results, failures=failures, masker=masker).description,
        "slack": render_failure_alert(alert_from_results(results, origin=Provenance(), links=links, failures=failures), masker=masker),
    }
    for where, text in texts.items():
        visible_and_hidden = text + "".join(str(data) for data in hidden_data(text))
        assert GITLAB_TOKEN not in visible_and_hidden and "glpat" not in visible_and_hidden, where
    # What failed is still said: the error line and the failing cell, with the token masked.
    assert "ValueError: login refused for \\[MASKED\\]" in texts["comment"]
    assert "raise ValueError(f\"login refused for {token}\")" in texts["comment"]
    assert "ValueError: login refused for [MASKED]" in texts["slack"]
    assert "`auc_[MASKED]`" in texts["wiki"] and "`auc_[MASKED]`" in texts["comment"]


def hidden_data(text: str) -> list:
    """The JSON of every hidden data block of a page (base64, so a plain search would not see inside)."""
    blocks = re.findall(r"<!-- ds-pipelines:data:[a-z-]+ ([A-Za-z0-9+/=\s]+) -->", text)
    return [json.loads(base64.b64decode("".join(block.split()))) for block in blocks]


def test_results_folder_is_masked_in_place_and_still_reads(leaky_run, tmp_path):
    results_dir, env = leaky_run
    copy = tmp_path / "results"
    subprocess.run(["cp", "-r", str(results_dir), str(copy)], check=True)
    count = mask_results_folder(copy, env=env).occurrences
    assert count >= 6  # the notebook's occurrences and the error in results.json
    for file in copy.rglob("*"):
        if file.is_file():
            text = file.read_text()
            assert GITLAB_TOKEN not in text and PASSWORD not in text, file
    assert load_results(copy).notebooks[0].error.endswith(f"login refused for {MASK}")
    assert mask_results_folder(copy, env=env).occurrences == 0  # nothing left to mask


def test_secret_env_values_are_masked_and_harmless_text_is_unchanged():
    env = {
        "GITLAB_TOKEN": "tok-" + random_text(16),
        "MY_SERVICE_PASSWORD": PASSWORD,
        "SLACK_CHANNEL_HOOK": "https://hooks.example.com/" + random_text(10),
        "aws_secret_access_key": random_text(30),
        "HOME": "/home/someone",  # not a secret name
        "API_KEY": "short",  # shorter than 8 characters: too common to mask
    }
    text = (
        f"token={env['GITLAB_TOKEN']} pw {env['MY_SERVICE_PASSWORD']} hook {env['SLACK_CHANNEL_HOOK']} "
        f"aws {env['aws_secret_access_key']} home /home/someone short"
    )
    masked = mask_text(text, env=env)
    assert masked == f"token={MASK} pw {MASK} hook {MASK} aws {MASK} home /home/someone short"
    harmless = "roc_auc 0.9957 on 114 rows; run 8c39204eb707498aada8a34909942f93 finished\nsee https://gitlab.example.com/g/p"
    assert mask_text(harmless, env=env) == harmless


def test_url_encoded_secret_and_the_default_environment():
    value = "p@ss/word" + random_text(8)
    env = {"DB_PASSWORD": value}
    encoded = value.replace("@", "%40").replace("/", "%2F")
    assert mask_text(f"logged in with {encoded} today", env=env) == f"logged in with {MASK} today"
    assert value in secret_env_values(env)
    # Without env, the process environment is used: a variable that is not a secret is not masked.
    assert mask_text(os.environ.get("PATH", "/usr/bin")) == os.environ.get("PATH", "/usr/bin")


@pytest.mark.parametrize(
    "make_line, secret",
    [
        (lambda s: f"print('{s}')", "glpat-" + random_text(24)),
        (lambda s: f"aws key {s} in use", "AKIA" + random_text(16, string.ascii_uppercase + string.digits)),
        (lambda s: f"posting to {s}", "https://hooks.slack.com/services/T" + random_text(8) + "/B" + random_text(8) + "/" + random_text(24)),
        (lambda s: f"cloning https://{s}@example.com/repo.git", "deploy:" + random_text(12)),
        (lambda s: f'headers = {{"Authorization": "{s}"}}', random_text(40, string.ascii_letters + string.digits + "+/")),
        # A notebook must not be able to keep a secret by marking the line with detect-secrets' allowlist comment.
        (lambda s: f"{s}  # pragma: allowlist secret", "glpat-" + random_text(24)),
    ],
    ids=["gitlab-token", "aws-access-key", "slack-webhook", "basic-auth-url", "quoted-high-entropy", "allowlist-comment"],
)
def test_detect_secrets_finds_secrets_without_any_env(make_line, secret):
    masked = mask_text(make_line(secret), env={})
    assert secret not in masked and MASK in masked
    for part in secret.split(":"):  # basic auth: the password part too
        if len(part) > 8:
            assert part not in masked


def test_a_secret_found_once_is_masked_everywhere_in_the_notebook(tmp_path):
    token = random_text(40, string.ascii_letters + string.digits + "+/")
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNEL})
    notebook.cells = [
        nbformat.v4.new_code_cell(f'api_secret = "{token}"'),
        # Unquoted, detect-secrets would not see it here: it is masked because it was found in the cell above.
        nbformat.v4.new_markdown_cell(f"the key is {token} for now"),
        nbformat.v4.new_code_cell("show()", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": "iVBORw0KGgo" + token, "text/plain": f"<Figure {token}>"}
        )]),
    ]
    src = tmp_path / "nb.ipynb"
    nbformat.write(notebook, src)
    assert mask_notebook(src, src, env={}) == 3
    masked = nbformat.read(src, as_version=4)
    assert masked.cells[0].source == f'api_secret = "{MASK}"'
    assert masked.cells[1].source == f"the key is {MASK} for now"
    assert masked.cells[2].outputs[0].data["text/plain"] == f"<Figure {MASK}>"
    # Base64 image data is binary, not text: left as it is (and not scanned).
    assert masked.cells[2].outputs[0].data["image/png"] == "iVBORw0KGgo" + token


def test_masking_a_file_that_is_not_a_notebook_names_it(tmp_path):
    with pytest.raises(MaskingError, match=r"notebook .*missing\.ipynb does not exist"):
        mask_notebook(tmp_path / "missing.ipynb", tmp_path / "out.ipynb", env={})
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(MaskingError, match=r"broken\.ipynb cannot be read as JSON \(an \.ipynb file was expected\)"):
        mask_notebook(broken, tmp_path / "out.ipynb", env={})
    listing = tmp_path / "list.ipynb"
    listing.write_text("[1, 2]")
    with pytest.raises(MaskingError, match=r"list\.ipynb is not a Jupyter notebook"):
        mask_notebook(listing, tmp_path / "out.ipynb", env={})


AWS_SECRET_KEY = random_text(40, string.ascii_letters + string.digits + "+/")
MLFLOW_TOKEN = random_text(32, "0123456789abcdef")


@pytest.mark.parametrize(
    "line, secret",
    [
        (f"aws_secret_access_key {AWS_SECRET_KEY}", AWS_SECRET_KEY),
        (f"mlflow_tracking_token {MLFLOW_TOKEN}", MLFLOW_TOKEN),
        (f"password:\t{AWS_SECRET_KEY}", AWS_SECRET_KEY),
        (f"  Service-Credential : {MLFLOW_TOKEN} (rotated)", MLFLOW_TOKEN),
        (f"the API KEY {MLFLOW_TOKEN}", MLFLOW_TOKEN),
    ],
    ids=["aws-secret-key", "mlflow-token-hex", "password-colon-tab", "credential-in-a-name", "upper-case-key"],
)
def test_a_random_token_after_a_credential_keyword_with_no_equals_sign_is_masked(line, secret):
    masked = mask_text(line, env={})
    assert secret not in masked and MASK in masked
    # Streamed to the console a line at a time, the same.
    assert secret not in LineMasker(())(line)


@pytest.mark.parametrize("line", [
    "primary key customer_identifier_column",
    "token count 123456789012345678 in the corpus",
    "password reset_link_expired_for_the_account",
    "sort key: abcdefabcdefabcdefab",
])
def test_a_word_or_a_number_after_a_credential_keyword_stays(line):
    assert mask_text(line, env={}) == line


def test_the_password_inside_a_url_valued_variable_is_masked_alone_and_percent_decoded():
    password = "p@ss:" + random_text(12)
    written = password.replace("@", "%40").replace(":", "%3A")
    env = {"DAGSTER_POSTGRES_URL": f"postgresql://dagster:{written}@postgres:5432/dagster",
           "MLFLOW_TRACKING_URI": f"https://ml:{random_text(16)}@mlflow.example.com",
           "UPSTREAM": "https://gitlab.example.com/group/project"}  # no credentials: nothing to mask
    masker = Masker.from_env(env)
    for printed in (password, written):
        assert masker.mask(f"connecting with {printed} now") == f"connecting with {MASK} now"
    tracking_password = env["MLFLOW_TRACKING_URI"].split(":")[2].split("@")[0]
    assert masker.mask(f"token {tracking_password}.") == f"token {MASK}."
    assert masker.mask("see https://gitlab.example.com/group/project") == "see https://gitlab.example.com/group/project"
    # A password as short as the user name ("dagster") would mask every mention of Dagster: left alone.
    assert secret_env_values({"DAGSTER_POSTGRES_URL": "postgresql://dagster:dagster@db/dagster"}) == []


def test_identifiers_ds_pipelines_wrote_stay_readable_and_others_do_not():
    run_id, other = random_text(32, "0123456789abcdef"), random_text(32, "0123456789abcdef")
    commit = random_text(40, "0123456789abcdef")
    text = f'MLflow run: {run_id}\n{{"commit": "{commit}", "notebook_sha256": "sha256:{commit}"}}\nleaked: "{other}"'
    trusting = Masker().trusting([run_id, commit])
    assert trusting.mask(text) == text.replace(other, MASK)
    # Without being told, the ids read as secrets (what every run's summary showed: "MLflow run: [MASKED]"),
    # the unquoted value of a "name: value" line too, whatever else the text holds.
    assert Masker().mask(text) == (f'MLflow run: {MASK}\n{{"commit": "{MASK}", "notebook_sha256": "sha256:{MASK}"}}\n'
                                   f'leaked: "{MASK}"')
    assert Masker().mask(f"MLflow run: {run_id}") == f"MLflow run: {MASK}"
    assert trusting.mask(f"MLflow run: {run_id}") == f"MLflow run: {run_id}"
    # A secret variable's value is masked even when it equals a trusted id: trust never unmasks a secret.
    assert Masker.from_env({"MLFLOW_TRACKING_TOKEN": run_id}).trusting([run_id]).mask(run_id) == MASK


def test_a_digest_in_its_notation_stays_readable_and_a_hex_token_under_any_other_name_does_not():
    # How a notebook hands back the hashes of the files it read, one JSON leaf each (``for_handover``).
    sha256, sha1 = random_text(64, "0123456789abcdef"), random_text(40, "0123456789abcdef")
    for digest in (f"sha256:{sha256}", f"SHA1 = {sha1}", f'"sha256": {sha256}'):
        assert Masker().mask(digest) == digest
    # A hex string of another length, or under another name, is not a digest.
    assert Masker().mask(f"sha256:{sha1}") == f"sha256:{MASK}"
    assert Masker().mask(f"token: {sha256}") == f"token: {MASK}"
    assert Masker().mask(f"sha256x: {sha256}") == f"sha256x: {MASK}"
    # Quoted, a bare hex string stays a secret to detect-secrets whatever names it.
    assert Masker().mask(f'"sha256": "{sha256}"') == f'"sha256": "{MASK}"'


def _png(path: Path, **text_chunks: tuple[str, bool]) -> Path:
    """A real plot as matplotlib saves it, with extra PNG text chunks (``key=(text, compressed)``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from PIL import Image, PngImagePlugin

    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [0, 1])
    figure.savefig(path)
    plt.close(figure)
    if text_chunks:
        info = PngImagePlugin.PngInfo()
        for key, (text, compressed) in text_chunks.items():
            info.add_text(key, text, zip=compressed)
        with Image.open(path) as image:
            image.load()
            image.save(path, pnginfo=info)
    return path


def test_every_kept_file_is_masked_and_a_binary_that_cannot_be_checked_is_left_out_with_a_note(leaky_run, tmp_path):
    results_dir, env = leaky_run
    copy = tmp_path / "results"
    subprocess.run(["cp", "-r", str(results_dir), str(copy)], check=True)
    artifacts = copy / "demo" / "artifacts"
    artifacts.mkdir()
    (artifacts / "notes.txt").write_text(f"logged in with {GITLAB_TOKEN}\n")
    (copy / "metrics.txt").write_text(f'# TYPE auc gauge\nauc{{notebook="demo",via="{PASSWORD}"}} 0.9\n# EOF\n')
    written = tmp_path / "demo.files"
    outputs = written / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "run.log").write_text(f"step 1\naws_secret_access_key {AWS_SECRET_KEY}\nstep 2\n")
    clean_plot = _png(outputs / "roc.png", Software=("matplotlib", False))
    clean_bytes, clean_weights = clean_plot.read_bytes(), os.urandom(4096).replace(b"\x00", b"\x01")
    (outputs / "weights.bin").write_bytes(b"\x00" + clean_weights)
    leaky_plot = _png(outputs / "leaky.png", Comment=(f"made with {PASSWORD}", True))  # a zTXt chunk
    (outputs / "model.bin").write_bytes(b"\x00\x01" + f"token={GITLAB_TOKEN}".encode() + b"\x00\xff")
    (outputs / "dump.gz").write_bytes(gzip.compress(b"nothing to see"))

    result = subprocess.run([sys.executable, "-m", "ds_pipelines", "mask-secrets", str(copy), "--files", str(written)],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Masked ") and result.stdout.endswith(f" in {copy} and {written}.\n")
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: left out of the artifacts: ")]
    assert notes == [
        f"note: left out of the artifacts: {outputs / 'dump.gz'} is gzip-compressed: its content cannot be checked for secrets",
        (f"note: left out of the artifacts: {leaky_plot} is a binary file that holds 1 secret occurrence, "
         "which cannot be masked without breaking it"),
        (f"note: left out of the artifacts: {outputs / 'model.bin'} is a binary file that holds 1 secret occurrence, "
         "which cannot be masked without breaking it"),
    ]
    assert not any(path.exists() for path in (outputs / "dump.gz", leaky_plot, outputs / "model.bin"))
    # Text files are masked in place; binary files without a secret are kept byte for byte.
    assert (artifacts / "notes.txt").read_text() == f"logged in with {MASK}\n"
    assert f'via="{MASK}"' in (copy / "metrics.txt").read_text()
    assert (outputs / "run.log").read_text() == f"step 1\naws_secret_access_key {MASK}\nstep 2\n"
    assert clean_plot.read_bytes() == clean_bytes and (outputs / "weights.bin").read_bytes() == b"\x00" + clean_weights
    for file in [*copy.rglob("*"), *written.rglob("*")]:
        if file.is_file():
            data = file.read_bytes()
            assert not any(secret.encode() in data for secret in (GITLAB_TOKEN, PASSWORD, AWS_SECRET_KEY)), file
