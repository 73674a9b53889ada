"""The GitLab layer through the real python-gitlab, over HTTP, against FakeGitLab (and real git repositories)."""

from __future__ import annotations

import email.utils
import secrets
import subprocess
import time
import urllib.request

import gitlab
import pytest
from fake_gitlab import FakeGitLab
from gitrepo import TRAINING, TRAINING_CONFIG, GitRepo, make_project

from ds_pipelines.gitlab import (
    GitLabAuthError,
    GitLabClient,
    GitLabConfigError,
    GitLabError,
    GitLabNotFoundError,
    GitLabSettings,
    missing_gitlab_variables,
)
from ds_pipelines.gitlab.repository import (
    Commit,
    MergeRequest,
    Tag,
    branch_head,
    commits_since,
    open_merge_requests,
    repository_url,
    tags,
)
from ds_pipelines.triggers.rules import Change
from ds_pipelines.triggers.watch import commit_changes, compare

pytestmark = pytest.mark.timeout(60)

MARKER = "<!-- ds-pipelines:metrics -->"
NOTES = r"/merge_requests/1/notes$"


def client_for(fake: FakeGitLab, *, token: str | None = None, project: str | None = None, max_retries: int = 3,
               max_retry_after: int = 10) -> GitLabClient:
    settings = GitLabSettings(url=fake.url, project_id=project or str(fake.project_id), token=token or fake.token)
    return GitLabClient(settings, timeout=5, max_retries=max_retries, max_retry_after=max_retry_after)


def plain_notes(fake: FakeGitLab, mr_iid: int, *, token: str | None = None):
    """python-gitlab's own notes manager, for notes written by someone else than our client (with the bot's
    token unless ``token`` is another user's)."""
    gl = gitlab.Gitlab(fake.url, private_token=token or fake.token, timeout=5)
    project = gl.projects.get(fake.project_id, lazy=True)
    return project.mergerequests.get(mr_iid, lazy=True).notes


@pytest.fixture
def client(fake_gitlab) -> GitLabClient:
    return client_for(fake_gitlab)


# -- settings ---------------------------------------------------------------------------------------------

def test_settings_from_gitlab_ci_variables():
    env = {"CI_SERVER_URL": "https://gitlab.example.com/", "CI_PROJECT_ID": "42", "GITLAB_TOKEN": "glpat-abc",
           "GITLAB_URL": "https://other.example.com", "REPO_TOKEN": "seed-token"}
    settings = GitLabSettings.from_env(env)
    assert settings == GitLabSettings(url="https://gitlab.example.com", project_id="42", token="glpat-abc")


def test_settings_fall_back_to_our_own_variables():
    env = {"GITLAB_URL": "http://127.0.0.1:8929", "GITLAB_PROJECT_ID": "group/sub/project", "REPO_TOKEN": "seed-token",
           "CI_SERVER_URL": "", "GITLAB_TOKEN": "  "}
    assert GitLabSettings.from_env(env) == GitLabSettings("http://127.0.0.1:8929", "group/sub/project", "seed-token")


def test_missing_settings_name_the_variables_to_set():
    assert missing_gitlab_variables({}) == [
        "CI_SERVER_URL (or GITLAB_URL)", "CI_PROJECT_ID (or GITLAB_PROJECT_ID)", "GITLAB_TOKEN (or REPO_TOKEN)"]
    configured = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42", "REPO_TOKEN": "x"}
    assert missing_gitlab_variables(configured) == []
    without_token = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42"}
    with pytest.raises(GitLabConfigError) as caught:
        GitLabSettings.from_env(without_token)
    assert str(caught.value) == "GitLab is not configured: set GITLAB_TOKEN (or REPO_TOKEN)"
    with pytest.raises(GitLabConfigError, match=r"set CI_SERVER_URL \(or GITLAB_URL\), CI_PROJECT_ID"):
        GitLabSettings.from_env({"GITLAB_TOKEN": "x"})


def test_settings_from_os_environ_by_default(monkeypatch):
    # monkeypatch only sets variables of this process here: no library is replaced.
    for name in ("CI_SERVER_URL", "CI_PROJECT_ID", "GITLAB_TOKEN", "REPO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITLAB_URL", "https://gitlab.example.com")
    monkeypatch.setenv("GITLAB_PROJECT_ID", "7")
    assert missing_gitlab_variables() == ["GITLAB_TOKEN (or REPO_TOKEN)"]
    monkeypatch.setenv("REPO_TOKEN", "from-the-environment")
    assert GitLabSettings.from_env().token == "from-the-environment"


def test_bad_url_names_variable_and_value():
    with pytest.raises(GitLabConfigError, match=r"GITLAB_URL='gitlab.example.com' is not a GitLab URL: expected http"):
        GitLabSettings.from_env({"GITLAB_URL": "gitlab.example.com", "GITLAB_PROJECT_ID": "7", "GITLAB_TOKEN": "x"})


def test_token_is_masked_in_repr_and_str():
    token = "glpat-" + secrets.token_hex(10)  # made at run time: no token-shaped string in the source
    settings = GitLabSettings(url="https://gitlab.example.com", project_id="7", token=token)
    for shown in (repr(settings), str(settings), repr(GitLabClient(settings))):
        assert token not in shown
        assert "token='***'" in shown
        assert "https://gitlab.example.com" in shown


# -- merge-request notes ----------------------------------------------------------------------------------

def test_note_upserted_twice_is_one_note_updated(client, fake_gitlab):
    first = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER}\nAUC 0.91")
    second = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER}\nAUC 0.95")
    assert first == second
    assert [(n["id"], n["body"]) for n in fake_gitlab.notes[1]] == [(first, f"{MARKER}\nAUC 0.95")]


def test_notes_without_the_marker_are_left_alone(client, fake_gitlab):
    client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} one")
    client.upsert_merge_request_note(mr_iid=1, marker="<!-- ds-pipelines:other -->", body="<!-- ds-pipelines:other --> two")
    client.upsert_merge_request_note(mr_iid=2, marker=MARKER, body=f"{MARKER} three")
    assert sorted(n["body"] for n in fake_gitlab.notes[1]) == [f"{MARKER} one", "<!-- ds-pipelines:other --> two"]
    assert [n["body"] for n in fake_gitlab.notes[2]] == [f"{MARKER} three"]


@pytest.mark.parametrize("kind", ["429", "500", "drop", "lose-reply"])
def test_note_create_survives_a_failed_post(client, fake_gitlab, kind):
    fake_gitlab.fail_next("POST", NOTES, kind)
    note_id = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER}\nAUC 0.9")
    assert [(n["id"], n["body"]) for n in fake_gitlab.marked_notes(1, MARKER)] == [(note_id, f"{MARKER}\nAUC 0.9")]
    assert fake_gitlab.requests.count(("POST", "/api/v4/projects/7/merge_requests/1/notes")) == 2  # retried once


def test_lost_reply_duplicate_is_deleted_and_the_oldest_kept(client, fake_gitlab):
    fake_gitlab.fail_next("POST", NOTES, "lose-reply")
    note_id = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v1")
    deletes = [r for r in fake_gitlab.requests if r[0] == "DELETE"]
    assert len(deletes) == 1 and not deletes[0][1].endswith(f"/{note_id}")
    assert note_id == min(n["id"] for n in fake_gitlab.notes[1])


def test_note_update_survives_a_lost_reply(client, fake_gitlab):
    client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v1")
    fake_gitlab.fail_next("PUT", r"/notes/\d+$", "lose-reply")
    client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v2")
    assert [n["body"] for n in fake_gitlab.notes[1]] == [f"{MARKER} v2"]


def test_duplicates_from_earlier_runs_are_removed(client, fake_gitlab):
    plain = plain_notes(fake_gitlab, 1)
    oldest = plain.create({"body": f"{MARKER} old 1"}).id
    plain.create({"body": "a reviewer's comment"})
    plain.create({"body": f"{MARKER} old 2"})
    assert client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} new") == oldest
    assert sorted(n["body"] for n in fake_gitlab.notes[1]) == [f"{MARKER} new", "a reviewer's comment"]


def test_a_marked_note_by_another_author_is_never_adopted_edited_or_deleted(client, fake_gitlab):
    reviewer = plain_notes(fake_gitlab, 1, token=fake_gitlab.add_user("reviewer"))
    planted = reviewer.create({"body": f"{MARKER}\nAUC 1.00, ship it"}).id
    assert client.marked_note_body(mr_iid=1, marker=MARKER) is None  # its data block is not read back either
    ours = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER}\nAUC 0.91")
    assert client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER}\nAUC 0.92") == ours != planted
    by_id = {n["id"]: (n["author"]["username"], n["body"]) for n in fake_gitlab.notes[1]}
    assert by_id == {planted: ("reviewer", f"{MARKER}\nAUC 1.00, ship it"),
                     ours: ("ds-pipelines-bot", f"{MARKER}\nAUC 0.92")}
    assert not [r for r in fake_gitlab.requests if r[0] in ("PUT", "DELETE") and r[1].endswith(f"/{planted}")]
    assert client.marked_note_body(mr_iid=1, marker=MARKER) == f"{MARKER}\nAUC 0.92"


def test_the_token_s_user_is_read_once_per_client(client, fake_gitlab):
    for version in range(3):
        client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v{version}")
    assert fake_gitlab.requests.count(("GET", "/api/v4/user")) == 1


def test_note_is_found_beyond_the_first_page(client, fake_gitlab):
    note_id = client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v1")
    plain = plain_notes(fake_gitlab, 1)
    fake_gitlab.max_per_page = 10
    for i in range(25):  # the marked note is now on page 3
        plain.create({"body": f"comment {i}"})
    assert client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v2") == note_id
    assert [n["body"] for n in fake_gitlab.marked_notes(1, MARKER)] == [f"{MARKER} v2"]
    assert len(fake_gitlab.notes[1]) == 26
    assert fake_gitlab.requests.count(("GET", "/api/v4/projects/7/merge_requests/1/notes")) == 2 + 3


def test_note_body_without_its_marker_is_refused(client, fake_gitlab):
    with pytest.raises(ValueError, match="must contain its marker"):
        client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body="no marker")
    assert fake_gitlab.requests == []


# -- errors -----------------------------------------------------------------------------------------------

def test_wrong_token_is_an_auth_error_naming_the_variable_not_the_token(fake_gitlab):
    wrong = "glpat-" + "w" * 20
    with pytest.raises(GitLabAuthError) as caught:
        client_for(fake_gitlab, token=wrong).upsert_merge_request_note(mr_iid=1, marker=MARKER, body=MARKER)
    message = str(caught.value)
    assert message.startswith(f"GitLab refused the token (401 Unauthorized) for {fake_gitlab.url}: check GITLAB_TOKEN (or REPO_TOKEN)")
    assert wrong not in message and fake_gitlab.token not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_forbidden_is_an_auth_error(client, fake_gitlab):
    fake_gitlab.fail_next("PUT", r"/releases/", "403")
    client.upsert_release(tag="v1.0.0", name="first", description="one")
    with pytest.raises(GitLabAuthError, match=r"\(403 Forbidden\) .*check GITLAB_TOKEN .*updating release 'v1.0.0'") as caught:
        client.upsert_release(tag="v1.0.0", name="first", description="two")
    assert fake_gitlab.token not in str(caught.value)


def test_persistent_server_errors_name_operation_and_status(fake_gitlab):
    fake_gitlab.fail_next("GET", NOTES, "502", times=10)
    client = client_for(fake_gitlab, max_retries=2)
    with pytest.raises(GitLabError, match=r"while listing notes of merge request !1: HTTP 502: 502 Bad Gateway") as caught:
        client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=MARKER)
    assert caught.value.status == 502
    assert fake_gitlab.requests.count(("GET", "/api/v4/projects/7/merge_requests/1/notes")) == 3


def _in_an_hour() -> dict[str, str]:
    return {"Retry-After": email.utils.formatdate(time.time() + 3600, usegmt=True)}


@pytest.mark.parametrize(("status", "asks"), [
    ("429", lambda: {"Retry-After": "3600"}),
    ("429", _in_an_hour),
    ("503", lambda: {"RateLimit-Reset": str(int(time.time()) + 3600)}),
], ids=["retry-after-seconds", "retry-after-http-date", "ratelimit-reset"])
def test_an_hour_long_retry_after_is_capped(fake_gitlab, status, asks):
    fake_gitlab.fail_next("GET", NOTES, status, headers=asks())
    client = client_for(fake_gitlab, max_retry_after=1)
    started = time.monotonic()
    client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v1")
    waited = time.monotonic() - started
    assert 1 <= waited < 60  # the capped wait is still obeyed, the hour is not (a loose bound: a busy machine)
    assert fake_gitlab.requests.count(("GET", "/api/v4/projects/7/merge_requests/1/notes")) == 2 + 1
    assert [n["body"] for n in fake_gitlab.notes[1]] == [f"{MARKER} v1"]


def test_an_unreadable_retry_after_falls_back_to_the_backoff(client, fake_gitlab):
    fake_gitlab.fail_next("GET", NOTES, "429", headers={"Retry-After": "soon"})
    started = time.monotonic()
    client.upsert_merge_request_note(mr_iid=1, marker=MARKER, body=f"{MARKER} v1")
    assert time.monotonic() - started < 1
    assert [n["body"] for n in fake_gitlab.notes[1]] == [f"{MARKER} v1"]


def test_dropped_connections_after_retries_are_a_gitlab_error(fake_gitlab):
    fake_gitlab.fail_next("POST", r"/releases$", "drop", times=10)
    with pytest.raises(GitLabError, match=r"GitLab did not answer while creating release 'v1.0.0': .* after 1 retries"):
        client_for(fake_gitlab, max_retries=1).upsert_release(tag="v1.0.0", name="n", description="d")
    assert fake_gitlab.releases == {}


def test_unknown_project_is_not_found(fake_gitlab):
    with pytest.raises(GitLabNotFoundError, match=r"404 Project Not Found \(project 'group/nothing' at http"):
        client_for(fake_gitlab, project="group/nothing").project_attributes()


def test_unreachable_server_is_a_gitlab_error():
    with FakeGitLab() as fake:
        url = fake.url  # a port that nothing listens on once the fake is gone
    client = GitLabClient(GitLabSettings(url=url, project_id="7", token="glpat-secret"), timeout=2, max_retries=0)
    with pytest.raises(GitLabError, match=rf"did not answer while reading the project: {url} unreachable") as caught:
        client.project_attributes()
    assert "glpat-secret" not in str(caught.value)


# -- uploads, wiki, releases --------------------------------------------------------------------------------

def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def test_upload_returns_markdown_and_the_file_is_served(client, fake_gitlab, tmp_path):
    image = tmp_path / "roc curve.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n\r\n" + bytes(range(256)))
    markdown = client.upload_file(path=image)
    assert markdown.startswith("![roc curve](/uploads/") and markdown.endswith("/roc%20curve.png)")
    url = markdown[len("![roc curve]("):-1]
    assert fake_gitlab.uploads[url] == image.read_bytes()
    assert _get(f"{fake_gitlab.web_url}{url}") == image.read_bytes()
    assert _get(f"{fake_gitlab.url}/-/project/7{url}") == image.read_bytes()

    table = tmp_path / "scores.csv"
    table.write_text("id,probability\n1,0.5\n")
    assert client.upload_file(path=table).startswith("[scores.csv](/uploads/")


@pytest.mark.parametrize("kind", ["500", "drop", "429"])
def test_upload_is_retried_with_the_whole_file(client, fake_gitlab, tmp_path, kind):
    data = tmp_path / "plot.png"
    data.write_bytes(b"x" * 100_000)
    fake_gitlab.fail_next("POST", r"/uploads$", kind)
    markdown = client.upload_file(path=data)
    assert fake_gitlab.uploads[markdown[len("![plot]("):-1]] == data.read_bytes()
    assert [r[0] for r in fake_gitlab.requests] == ["POST", "POST"]


def test_upload_of_a_missing_file_names_it(client, tmp_path):
    with pytest.raises(GitLabError, match=r"cannot upload '.*nothing.png': it is not a file"):
        client.upload_file(path=tmp_path / "nothing.png")


def test_wiki_page_created_then_updated(client, fake_gitlab):
    assert client.get_wiki_page(slug="metrics/training-example") is None
    client.upsert_wiki_page(slug="metrics/training-example", title="training example", content="AUC 0.91")
    assert client.get_wiki_page(slug="metrics/training-example") == "AUC 0.91"
    client.upsert_wiki_page(slug="metrics/training-example", title="training example", content="AUC 0.95")
    assert list(fake_gitlab.wiki) == ["metrics/training-example"]
    page = fake_gitlab.wiki["metrics/training-example"]
    assert (page["title"], page["content"]) == ("training example", "AUC 0.95")
    assert ("GET", "/api/v4/projects/7/wikis/metrics%2Ftraining-example") in fake_gitlab.requests


def test_wiki_page_lands_on_its_slug_whatever_the_title(client, fake_gitlab):
    client.upsert_wiki_page(slug="runs/abc123", title="Run abc123: metrics", content="v1")
    client.upsert_wiki_page(slug="runs/abc123", title="Run abc123: metrics", content="v2")
    assert {slug: page["content"] for slug, page in fake_gitlab.wiki.items()} == {"runs/abc123": "v2"}


def test_wiki_create_survives_a_lost_reply(client, fake_gitlab):
    fake_gitlab.fail_next("POST", r"/wikis$", "lose-reply")
    client.upsert_wiki_page(slug="Home", title="Home", content="hello")
    assert {slug: page["content"] for slug, page in fake_gitlab.wiki.items()} == {"Home": "hello"}
    assert [m for m, _ in fake_gitlab.requests] == ["PUT", "POST", "POST", "PUT"]


def test_release_created_then_updated(client, fake_gitlab):
    assert client.upsert_release(tag="v1.2.3", name="v1.2.3", description="first") == "created"
    assert client.upsert_release(tag="v1.2.3", name="v1.2.3 (rerun)", description="second") == "updated"
    release = fake_gitlab.releases["v1.2.3"]
    assert (release["name"], release["description"]) == ("v1.2.3 (rerun)", "second")


def test_release_create_survives_a_lost_reply(client, fake_gitlab):
    fake_gitlab.fail_next("POST", r"/releases$", "lose-reply")
    assert client.upsert_release(tag="dev-1.0.0", name="dev", description="notes") == "updated"
    assert list(fake_gitlab.releases) == ["dev-1.0.0"]
    assert fake_gitlab.releases["dev-1.0.0"]["description"] == "notes"


def test_release_tag_with_a_slash_is_encoded(client, fake_gitlab):
    client.upsert_release(tag="ml/v1.0.0", name="a", description="b")
    assert client.upsert_release(tag="ml/v1.0.0", name="a", description="c") == "updated"
    assert ("PUT", "/api/v4/projects/7/releases/ml%2Fv1.0.0") in fake_gitlab.requests


# -- repository read side ---------------------------------------------------------------------------------

@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return make_project(tmp_path / "repo")


@pytest.fixture
def served(repo):
    with FakeGitLab(repo=repo.root) as fake:
        yield fake, client_for(fake, project=fake.project_path)


def _commit(repo: GitRepo, message: str) -> str:
    repo.git("commit", "-q", "--allow-empty", "-m", message)
    return repo.head()


def test_commits_since_a_cursor(repo, served):
    fake, client = served
    start = repo.head()
    shas = [_commit(repo, f"change {i}") for i in range(3)]
    found = commits_since(client, ref="main", since_sha=start)
    assert [c.sha for c in found] == shas
    assert found[0] == Commit(sha=shas[0], message="change 0\n", parent_ids=(start,),
                              committed_date=found[0].committed_date, web_url=f"{fake.web_url}/-/commit/{shas[0]}")
    assert found[0].committed_date.startswith(repo.git("log", "-1", "--format=%cs", shas[0]))
    assert [c.sha for c in commits_since(client, ref="main", since_sha=shas[0])] == shas[1:]
    assert commits_since(client, ref="main", since_sha=shas[-1]) == []
    assert [c.sha for c in commits_since(client, ref="main", since_sha=None)] == [shas[-1]]


def test_commits_since_pages_through_long_histories(repo, served):
    _, client = served
    start = repo.head()
    shas = [_commit(repo, f"change {i}") for i in range(30)]
    assert [c.sha for c in commits_since(client, ref="main", since_sha=start, limit=5)] == [shas[-1]]
    served[0].max_per_page = 7  # limit 40 asks for 40 a page: pages of 7 make the walk follow pages
    found = commits_since(client, ref="main", since_sha=start, limit=40)
    assert [c.sha for c in found] == shas


def test_commits_since_after_a_force_push_is_the_newest_only(repo, served):
    _, client = served
    start = repo.head()
    dropped = _commit(repo, "pushed, then force-pushed away")
    repo.git("reset", "-q", "--hard", start)
    shas = [_commit(repo, f"rewritten {i}") for i in range(2)]
    assert [c.sha for c in commits_since(client, ref="main", since_sha=dropped)] == [shas[-1]]


def test_commit_changes_add_modify_delete_rename(repo, served):
    _, client = served
    repo.write("notebooks/new.ipynb")
    repo.touch(TRAINING_CONFIG)
    repo.git("rm", "-q", "README.md")
    repo.git("mv", TRAINING, "notebooks/renamed.ipynb")
    sha = repo.commit("all kinds")
    assert sorted(commit_changes(client, sha=sha), key=lambda c: c.path) == [
        Change("D", "README.md"), Change("M", TRAINING_CONFIG),
        Change("A", "notebooks/new.ipynb"), Change("R", "notebooks/renamed.ipynb", TRAINING),
    ]


def test_commit_changes_of_many_files_are_all_read(repo, served):
    fake, client = served
    fake.max_per_page = 10
    for i in range(25):
        repo.write(f"notebooks/n{i:02}.ipynb")
    sha = repo.commit("many notebooks")
    changes = commit_changes(client, sha=sha)
    assert sorted(c.path for c in changes) == [f"notebooks/n{i:02}.ipynb" for i in range(25)]
    assert {c.status for c in changes} == {"A"}
    assert sum(1 for _, path in fake.requests if path.endswith(f"/commits/{sha}/diff")) == 3


def test_compare_lists_the_branch_changes_from_the_merge_base(repo, served):
    _, client = served
    base = repo.diverge_feature_branch()
    changes = compare(client, from_sha=repo.git("rev-parse", "main"), to_sha=repo.git("rev-parse", "feature"))
    assert changes == [Change("M", TRAINING_CONFIG)]
    assert base != repo.git("rev-parse", "main")
    with pytest.raises(GitLabNotFoundError, match="404 Ref Not Found"):
        compare(client, from_sha="0" * 40, to_sha="main")


def test_open_merge_requests_with_their_diff_base(repo, served):
    fake, client = served
    base = repo.diverge_feature_branch()
    repo.git("branch", "other", base)
    fake.add_merge_request(iid=3, source_branch="feature")
    fake.add_merge_request(iid=1, source_branch="other")
    fake.add_merge_request(iid=2, source_branch="other", state="merged")
    feature = repo.git("rev-parse", "feature")
    assert open_merge_requests(client) == [
        MergeRequest(iid=1, source_branch="other", target_branch="main", sha=base,
                     web_url=f"{fake.web_url}/-/merge_requests/1", diff_base_sha=base,
                     source_project_id=fake.project_id, target_project_id=fake.project_id),
        MergeRequest(iid=3, source_branch="feature", target_branch="main", sha=feature,
                     web_url=f"{fake.web_url}/-/merge_requests/3", diff_base_sha=base,
                     source_project_id=fake.project_id, target_project_id=fake.project_id),
    ]
    assert not any(mr.from_fork for mr in open_merge_requests(client))


def test_tags_branch_head_and_clone_url(repo, served, tmp_path):
    _, client = served
    first = repo.head()
    repo.git("tag", "v1.0.0")
    second = _commit(repo, "next")
    repo.git("-c", "user.name=T", "-c", "user.email=t@e", "tag", "-a", "dev-1.1.0", "-m", "annotated")
    assert sorted(tags(client), key=lambda t: t.name) == [Tag("dev-1.1.0", second, protected=True),
                                                                 Tag("v1.0.0", first, protected=True)]  # the fake protects v*, dev-*
    assert branch_head(client, branch="main") == second
    with pytest.raises(GitLabNotFoundError, match="404 Branch Not Found"):
        branch_head(client, branch="nope")
    url = repository_url(client)
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], check=True, capture_output=True)
    assert (tmp_path / "clone" / TRAINING).is_file()


def test_fake_pagination_headers(served):
    fake, _ = served
    for i in range(5):
        fake.add_merge_request(iid=i + 1, source_branch="main")
    plain = gitlab.Gitlab(fake.url, private_token=fake.token, timeout=5)
    response = plain.http_request("get", "/projects/7/merge_requests", query_data={"per_page": 2, "page": 2})
    assert response.headers["X-Total"] == "5" and response.headers["X-Next-Page"] == "3"
    assert response.headers["X-Page"] == "2" and response.headers["X-Total-Pages"] == "3"
    assert [mr["iid"] for mr in response.json()] == [3, 2]
    assert 'rel="next"' in response.headers["Link"] and "page=3" in response.links["next"]["url"]


def test_fake_records_pipelines_and_lists_wiki_pages(served, repo):
    fake, client = served
    created = client.call("creating a pipeline", client.project.pipelines.create,
                          {"ref": "main", "variables": [{"key": "DSP_NOTEBOOKS", "value": TRAINING}]})
    assert (created.ref, created.sha, created.status) == ("main", repo.head(), "created")
    assert fake.pipelines[0]["variables"] == [{"key": "DSP_NOTEBOOKS", "value": TRAINING}]
    client.upsert_wiki_page(slug="a/b", title="b", content="x")
    pages = client.call("listing wiki pages", client.project.wikis.list, get_all=True, with_content=True)
    assert [(p.slug, p.title, p.content) for p in pages] == [("a/b", "b", "x")]
