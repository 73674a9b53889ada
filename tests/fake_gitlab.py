"""A stateful fake of GitLab's REST API v4, served over HTTP on 127.0.0.1, for python-gitlab unpatched.

One project (``project_id`` 7, ``project_path`` "group/project"), found by numeric id or URL-encoded path,
with merge-request notes, uploads, wiki pages, releases, pipelines, CI jobs and, when given ``repo``, the read side
of a real git repository on disk (branches, commits, diffs, compare, tags; ``http_url_to_repo`` is that
repository's path, so ``git clone`` of it works). Every API request needs ``PRIVATE-TOKEN: <token>`` (or
``Authorization: Bearer <token>``), else 401. Lists are paginated like GitLab (``per_page`` 20 by default,
100 at most, ``X-Total``/``X-Page``/``X-Next-Page``/``Link`` headers).

Users: every token belongs to a user, ``GET /user`` answers who (``fake.token`` is the bot's,
``fake.add_user("reviewer")`` gives another user's token). A note's author is the user whose token created it;
like GitLab, only its author may edit a note (403 otherwise), while deleting one is allowed to every token
(the Maintainer role may delete anyone's note).

Use it as a context manager, or take the ``fake_gitlab`` fixture (no repository): tests/conftest.py loads
this module as a plugin (``pytest_plugins``), so tests name the fixture as a parameter without importing it,
and import only the class::

    from fake_gitlab import FakeGitLab

    def test_x(fake_gitlab): ...
    def test_y(tmp_path):
        with FakeGitLab(repo=make_project(tmp_path / "repo").root) as fake: ...

``fake.environ()`` gives the variables ``GitLabSettings.from_env`` reads, for a CLI run in a subprocess.

Faults: ``fake.fail_next("POST", r"/notes$", "lose-reply")`` makes the next matching request fail: ``429``
(with ``Retry-After: 0`` unless ``headers`` says otherwise: ``headers={"Retry-After": "3600"}``), ``500`` (or
any other 3-digit status), ``drop`` (connection closed without a reply, nothing applied) or ``lose-reply``
(applied, then the connection closed without a reply). Paths are matched
with ``re.search`` against the raw path as sent (``/api/v4/projects/7/merge_requests/1/notes``; ``%2F``
stays encoded), without the query string. ``fake.requests`` logs every request as ``(method, path)``.

Where it is simpler than GitLab: merge-request notes are accepted for any iid (tests need not declare the
merge request first), ``merge_requests`` is whatever tests put there (``add_merge_request`` helps), diffs
carry no patch text (``diff`` is ""), commits of an unknown ``ref_name`` list as ``[]``.
"""

from __future__ import annotations

import fnmatch
import json
import mimetypes
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pytest
from loopback import LoopbackServer

API = "/api/v4"
DROP, LOSE_REPLY = "drop", "lose-reply"
DEFAULT_PER_PAGE, MAX_PER_PAGE = 20, 100
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".svg", ".ico", ".tiff"}
_SEGMENT = r"([^/]+)"
BOT_USER = {"id": 1, "username": "ds-pipelines-bot", "name": "ds-pipelines bot"}


@dataclass
class Reply:
    status: int
    body: Any = None
    """JSON-able data, or bytes sent as they are."""
    headers: dict[str, str] | None = None
    content_type: str = "application/json"


_PROJECT, _USER, _PUBLIC = "project", "user", "public"
"""What a route needs: a token and the project, only a token, nothing (uploaded files)."""


class _Fault:
    def __init__(self, method: str, path_regex: str, kind: str, times: int, headers: dict[str, str]):
        if kind not in (DROP, LOSE_REPLY) and not re.fullmatch(r"[1-5][0-9][0-9]", kind):
            raise ValueError(f"fault kind {kind!r}: expected 429, 500 (any 3-digit status), {DROP!r} or {LOSE_REPLY!r}")
        self.headers = {"Retry-After": "0", **headers} if kind == "429" else headers
        self.method, self.pattern, self.kind, self.left = method.upper(), re.compile(path_regex), kind, times


class FakeGitLab(LoopbackServer):
    """See the module docstring. State is plain data that tests may read and set between requests."""

    def __init__(self, repo: Path | None = None, *, project_id: int = 7, project_path: str = "group/project",
                 default_branch: str = "main"):
        super().__init__(_Handler, name="fake-gitlab")
        self.repo = Path(repo) if repo is not None else None
        self.project_id = project_id
        self.project_path = project_path
        self.default_branch = default_branch
        # Made at run time so that no token-looking string sits in the source (secret scanners read it),
        # yet shaped like a real one so that a leak in output is caught by the same detectors.
        self.token = "glpat-" + secrets.token_hex(10)
        self.users: dict[str, dict] = {self.token: BOT_USER}
        """Each token's user (``add_user`` adds one)."""
        self.notes: dict[int, list[dict]] = {}
        self.uploads: dict[str, bytes] = {}
        """Uploaded files by the ``url`` GitLab answered (``/uploads/<secret>/<name>``)."""
        self.wiki: dict[str, dict] = {}
        self.releases: dict[str, dict] = {}
        self.statuses: dict[str, list[dict]] = {}
        """Commit statuses by commit SHA, in the order they were set."""
        self.merge_requests: list[dict] = []
        self.protected_tags: list[str] = ["v*", "dev-*"]
        """Patterns of protected tags, as the README asks GitLab to be set."""
        self.pipelines: list[dict] = []
        """Pipelines created through the API, with their ``variables`` and ``jobs``."""
        self.jobs_of_new_pipelines: Callable[[dict], list[dict]] = lambda pipeline: [{"name": "dagster-run"}]
        """The jobs GitLab would make of a new pipeline's configuration (``name``, ``status``, ``tag_list``):
        a test that runs the real configuration with gitlab-ci-local tells the fake what it planned."""
        self.jobs: list[dict] = []
        """CI jobs, oldest first (``add_job``); listed newest first, filtered by ``scope[]`` statuses."""
        self.max_per_page = MAX_PER_PAGE
        """GitLab's cap on ``per_page``; lower it to make a test page through a short list."""
        self.wiki_write_delay_s = 0.0
        """How long a wiki write takes to land, as on a busy GitLab: widens the window in which two writers
        that read the same page race."""
        self.clone_url: str | None = None
        """Where git fetches the repository from (``http_url_to_repo``); None: the repository on disk. Set an
        unreachable URL to make fetches fail, as when GitLab's git service is down."""
        self.requests: list[tuple[str, str]] = []
        self._faults: list[_Fault] = []
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.RLock()
        self._routes = self._make_routes()

    # -- lifecycle and helpers for tests -----------------------------------------------------------------

    @property
    def web_url(self) -> str:
        return f"{self.url}/{self.project_path}"

    def environ(self) -> dict[str, str]:
        """The variables GitLabSettings.from_env reads, pointing at this fake."""
        return {"GITLAB_URL": self.url, "GITLAB_PROJECT_ID": str(self.project_id), "GITLAB_TOKEN": self.token}

    def fail_next(self, method: str, path_regex: str, kind: str, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Make the next ``times`` requests of ``method`` whose path matches fail with ``kind``, an HTTP
        status one answering with ``headers`` too."""
        with self._lock:
            self._faults.append(_Fault(method, path_regex, kind, times, headers or {}))

    def add_user(self, username: str) -> str:
        """Add a user; a token of theirs, for writes by someone other than the bot."""
        token = "glpat-" + secrets.token_hex(10)
        with self._lock:
            self.users[token] = {"id": next(self._ids), "username": username, "name": username.title()}
        return token

    def add_merge_request(self, *, iid: int, source_branch: str = "feature", target_branch: str = "main",
                          sha: str | None = None, base_sha: str | None = None, state: str = "opened",
                          source_project_id: int | None = None) -> dict:
        """Add a merge request; with a repository, ``sha`` and ``base_sha`` default to the source branch's
        head and its merge base with the target branch. ``source_project_id`` other than this project's makes
        it a fork's merge request (its commits then belong in ``refs/merge-requests/<iid>/head``)."""
        if self.repo is not None:
            sha = sha or self._git("rev-parse", f"refs/heads/{source_branch}")
            base_sha = base_sha or self._git("merge-base", f"refs/heads/{target_branch}", sha)
        merge_request = {
            "id": next(self._ids), "iid": iid, "project_id": self.project_id, "title": f"Merge request {iid}",
            "source_project_id": self.project_id if source_project_id is None else source_project_id,
            "target_project_id": self.project_id,
            "state": state, "source_branch": source_branch, "target_branch": target_branch, "sha": sha,
            "web_url": f"{self.web_url}/-/merge_requests/{iid}",
            "diff_refs": {"base_sha": base_sha, "head_sha": sha, "start_sha": base_sha},
        }
        with self._lock:
            self.merge_requests.append(merge_request)
        return merge_request

    def add_job(self, name: str, *, status: str = "success", duration: float | None = None, ref: str = "main") -> dict:
        """Add a CI job that ran (newer than every job added before it)."""
        job_id = next(self._ids)
        job = {"id": job_id, "name": name, "status": status, "stage": "execute", "ref": ref, "duration": duration,
               "web_url": f"{self.web_url}/-/jobs/{job_id}"}
        with self._lock:
            self.jobs.append(job)
        return job

    def marked_notes(self, mr_iid: int, marker: str) -> list[dict]:
        """The notes of merge request ``mr_iid`` whose body carries ``marker``."""
        with self._lock:
            return [note for note in self.notes.get(mr_iid, []) if marker in note["body"]]

    # -- request handling (called by _Handler, one thread per connection) -------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self._faults:
                if fault.left > 0 and fault.method == method and fault.pattern.search(path):
                    fault.left -= 1
                    return fault
        return None

    def _user(self, headers: Any) -> dict | None:
        """The user of the request's token, or None when it has no known token."""
        bearer = (headers.get("Authorization") or "").removeprefix("Bearer ")
        return self.users.get(headers.get("PRIVATE-TOKEN") or bearer)

    def _dispatch(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        user = self._user(headers)
        for route_method, pattern, scope, action in self._routes:
            match = pattern.fullmatch(path)
            if route_method != method or not match:
                continue
            args = [unquote(group) for group in match.groups()]
            if scope == _PUBLIC:
                return action(*args)
            if user is None:
                return Reply(401, {"message": "401 Unauthorized"})
            if scope == _USER:
                return action(user)
            if args[0] not in (str(self.project_id), self.project_path):
                return _not_found("Project")
            try:
                params = {**query, **_parse_body(headers.get("Content-Type", ""), body), "_user": user}
            except (ValueError, TypeError) as exc:
                return Reply(400, {"error": str(exc)})
            with self._lock:
                return action(params, *args[1:])
        if path.startswith(API) and user is None:
            return Reply(401, {"message": "401 Unauthorized"})
        return Reply(404, {"error": "404 Not Found"})

    def _make_routes(self) -> list[tuple[str, re.Pattern, str, Callable[..., Reply]]]:
        project = f"{API}/projects/{_SEGMENT}"
        mr = f"{project}/merge_requests/{_SEGMENT}"
        api = [
            ("GET", project, self._project),
            ("GET", f"{project}/merge_requests", self._list_merge_requests),
            ("GET", mr, self._merge_request),
            ("GET", f"{mr}/notes", self._list_notes),
            ("POST", f"{mr}/notes", self._create_note),
            ("GET", f"{mr}/notes/{_SEGMENT}", self._note),
            ("PUT", f"{mr}/notes/{_SEGMENT}", self._update_note),
            ("DELETE", f"{mr}/notes/{_SEGMENT}", self._delete_note),
            ("POST", f"{project}/uploads", self._upload),
            ("GET", f"{project}/wikis", self._list_wiki),
            ("POST", f"{project}/wikis", self._create_wiki),
            ("GET", f"{project}/wikis/{_SEGMENT}", self._wiki_page),
            ("PUT", f"{project}/wikis/{_SEGMENT}", self._update_wiki),
            ("DELETE", f"{project}/wikis/{_SEGMENT}", self._delete_wiki),
            ("GET", f"{project}/releases", self._list_releases),
            ("POST", f"{project}/releases", self._create_release),
            ("GET", f"{project}/releases/{_SEGMENT}", self._release),
            ("PUT", f"{project}/releases/{_SEGMENT}", self._update_release),
            ("POST", f"{project}/pipeline", self._create_pipeline),
            ("GET", f"{project}/pipelines", self._list_pipelines),
            ("GET", f"{project}/pipelines/{_SEGMENT}", self._pipeline),
            ("GET", f"{project}/pipelines/{_SEGMENT}/variables", self._pipeline_variables),
            ("GET", f"{project}/pipelines/{_SEGMENT}/jobs", self._pipeline_jobs),
            ("POST", f"{project}/pipelines/{_SEGMENT}/cancel", self._cancel_pipeline),
            ("GET", f"{project}/jobs/{_SEGMENT}/trace", self._job_trace),
            ("GET", f"{project}/jobs", self._list_jobs),
            ("GET", f"{project}/repository/branches/{_SEGMENT}", self._branch),
            ("GET", f"{project}/repository/commits", self._list_commits),
            ("GET", f"{project}/repository/commits/{_SEGMENT}", self._commit),
            ("GET", f"{project}/repository/commits/{_SEGMENT}/diff", self._commit_diff),
            ("GET", f"{project}/repository/compare", self._compare),
            ("GET", f"{project}/repository/tags", self._list_tags),
            ("POST", f"{project}/statuses/{_SEGMENT}", self._set_commit_status),
        ]
        files = [  # uploaded files, outside the API and without a token, like a public project's
            ("GET", rf"/-/project/{_SEGMENT}/uploads/{_SEGMENT}/{_SEGMENT}", self._uploaded_file),
            ("GET", rf"/{re.escape(self.project_path)}/uploads/{_SEGMENT}/{_SEGMENT}", self._uploaded_file_by_web_path),
        ]
        routes = [(m, re.compile(p), _PROJECT, a) for m, p, a in api]
        routes.append(("GET", re.compile(f"{API}/user"), _USER, self._current_user))
        return routes + [(m, re.compile(p), _PUBLIC, a) for m, p, a in files]

    def _current_user(self, user: dict) -> Reply:
        return Reply(200, {**user, "state": "active", "web_url": f"{self.url}/{user['username']}"})

    # -- project and merge requests -------------------------------------------------------------------

    def _project(self, params: dict) -> Reply:
        name = self.project_path.rsplit("/", 1)[-1]
        return Reply(200, {
            "id": self.project_id, "name": name, "path": name, "path_with_namespace": self.project_path,
            "default_branch": self.default_branch, "web_url": self.web_url, "wiki_enabled": True,
            "http_url_to_repo": self.clone_url or (str(self.repo) if self.repo else f"{self.web_url}.git"),
            "ssh_url_to_repo": f"git@127.0.0.1:{self.project_path}.git",
        })

    def _list_merge_requests(self, params: dict) -> Reply:
        state = params.get("state", "all")
        # GitLab's list leaves diff_refs out; only the single merge request has them.
        listed = [{k: v for k, v in mr.items() if k != "diff_refs"} for mr in self.merge_requests
                  if state == "all" or mr.get("state", "opened") == state]
        return self._page(sorted(listed, key=lambda mr: -mr["iid"]), params)

    def _merge_request(self, params: dict, iid: str) -> Reply:
        for mr in self.merge_requests:
            if str(mr["iid"]) == iid:
                return Reply(200, mr)
        return _not_found("Merge Request")

    # -- notes ---------------------------------------------------------------------------------------------

    def _list_notes(self, params: dict, iid: str) -> Reply:
        notes = self.notes.get(int(iid), [])
        key = params.get("order_by", "created_at")
        if key not in ("created_at", "updated_at"):
            return Reply(400, {"error": "order_by does not have a valid value"})
        ordered = sorted(notes, key=lambda note: (note[key], note["id"]), reverse=params.get("sort", "desc") == "desc")
        return self._page(ordered, params)

    def _create_note(self, params: dict, iid: str) -> Reply:
        if not params.get("body"):
            return Reply(400, {"error": "body is missing"})
        now = _now()
        note = {
            "id": next(self._ids), "type": None, "body": params["body"], "system": False,
            "author": dict(params["_user"]),
            "created_at": now, "updated_at": now, "noteable_id": int(iid), "noteable_iid": int(iid),
            "noteable_type": "MergeRequest", "project_id": self.project_id, "resolvable": False,
        }
        self.notes.setdefault(int(iid), []).append(note)
        return Reply(201, note)

    def _find_note(self, iid: str, note_id: str) -> dict | None:
        return next((n for n in self.notes.get(int(iid), []) if str(n["id"]) == note_id), None)

    def _note(self, params: dict, iid: str, note_id: str) -> Reply:
        note = self._find_note(iid, note_id)
        return Reply(200, note) if note else _not_found("Note")

    def _update_note(self, params: dict, iid: str, note_id: str) -> Reply:
        note = self._find_note(iid, note_id)
        if note is None:
            return _not_found("Note")
        if note["author"]["id"] != params["_user"]["id"]:
            return Reply(403, {"message": "403 Forbidden"})
        if not params.get("body"):
            return Reply(400, {"error": "body is missing"})
        note.update(body=params["body"], updated_at=_now())
        return Reply(200, note)

    def _delete_note(self, params: dict, iid: str, note_id: str) -> Reply:
        note = self._find_note(iid, note_id)
        if note is None:
            return _not_found("Note")
        self.notes[int(iid)].remove(note)
        return Reply(204)

    # -- uploads -------------------------------------------------------------------------------------------

    def _upload(self, params: dict) -> Reply:
        upload = params.get("file")
        if not isinstance(upload, tuple):
            return Reply(400, {"error": "file is missing"})
        filename, data = upload
        secret = secrets.token_hex(16)
        url = f"/uploads/{secret}/{quote(filename)}"
        self.uploads[url] = data
        alt = filename.rsplit(".", 1)[0]
        image = Path(filename).suffix.lower() in IMAGE_EXTENSIONS
        return Reply(201, {
            "id": next(self._ids), "alt": alt, "url": url,
            "full_path": f"/-/project/{self.project_id}{url}",
            "markdown": f"![{alt}]({url})" if image else f"[{filename}]({url})",
        })

    def _uploaded_file(self, project_id: str, secret: str, name: str) -> Reply:
        if project_id != str(self.project_id):
            return _not_found("Project")
        return self._uploaded_file_by_web_path(secret, name)

    def _uploaded_file_by_web_path(self, secret: str, name: str) -> Reply:
        with self._lock:
            data = self.uploads.get(f"/uploads/{secret}/{quote(name)}")
        if data is None:
            return Reply(404, b"Not Found", content_type="text/plain")
        return Reply(200, data, content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    # -- wiki ------------------------------------------------------------------------------------------------

    def _list_wiki(self, params: dict) -> Reply:
        with_content = str(params.get("with_content")).lower() in ("1", "true")
        pages = [page if with_content else {k: v for k, v in page.items() if k != "content"}
                 for _, page in sorted(self.wiki.items())]
        return Reply(200, pages)

    def _wiki_page(self, params: dict, slug: str) -> Reply:
        page = self.wiki.get(slug)
        return Reply(200, page) if page else _not_found("Wiki Page")

    def _create_wiki(self, params: dict) -> Reply:
        if not params.get("title") or "content" not in params:
            return Reply(400, {"error": "title, content are missing" if not params.get("title") else "content is missing"})
        path = " ".join(str(params["title"]).split()).strip("/")  # GitLab squishes blanks in titles
        slug = path.replace(" ", "-")
        if slug in self.wiki:
            return Reply(400, {"message": "Duplicate page: A page with that title already exists"})
        self.wiki[slug] = {"slug": slug, "title": path.rsplit("/", 1)[-1], "content": params["content"],
                           "format": params.get("format", "markdown"), "encoding": "UTF-8"}
        return Reply(201, self.wiki[slug])

    def _update_wiki(self, params: dict, slug: str) -> Reply:
        page = self.wiki.get(slug)
        if page is None:
            return _not_found("Wiki Page")
        if not any(key in params for key in ("title", "content", "format")):
            return Reply(400, {"error": "title, content, format are missing, at least one parameter must be provided"})
        if params.get("title"):
            # A title without "/" keeps the page's folder; a new title moves the page (GitLab does).
            title = " ".join(str(params["title"]).split())
            folder = slug.rpartition("/")[0]
            path = title.lstrip("/") if "/" in title else (f"{folder}/{title}" if folder else title)
            new_slug = path.replace(" ", "-")
            if new_slug != slug and new_slug in self.wiki:
                return Reply(400, {"message": "Duplicate page: A page with that title already exists"})
            del self.wiki[slug]
            page.update(slug=new_slug, title=path.rsplit("/", 1)[-1])
            self.wiki[new_slug] = page
        for key in ("content", "format"):
            if key in params:
                page[key] = params[key]
        return Reply(200, page)

    def _delete_wiki(self, params: dict, slug: str) -> Reply:
        if self.wiki.pop(slug, None) is None:
            return _not_found("Wiki Page")
        return Reply(204)

    # -- releases and pipelines ---------------------------------------------------------------------------

    def _list_releases(self, params: dict) -> Reply:
        ordered = sorted(self.releases.values(), key=lambda r: r["released_at"], reverse=True)
        return self._page(ordered, params)

    def _release(self, params: dict, tag: str) -> Reply:
        release = self.releases.get(tag)
        return Reply(200, release) if release else _not_found("Release")

    def _create_release(self, params: dict) -> Reply:
        tag = params.get("tag_name")
        if not tag:
            return Reply(400, {"error": "tag_name is missing"})
        if tag in self.releases:
            return Reply(409, {"message": "Release already exists"})
        commit = None
        if self.repo is not None:
            commit = self._resolve(f"refs/tags/{tag}")
            if commit is None and not params.get("ref"):
                return Reply(422, {"message": "Ref is not specified"})
        now = _now()
        self.releases[tag] = {
            "tag_name": tag, "name": params.get("name") or tag, "description": params.get("description") or "",
            "created_at": now, "released_at": now, "commit": {"id": commit} if commit else None,
            "_links": {"self": f"{self.web_url}/-/releases/{quote(tag, safe='')}"},
        }
        return Reply(201, self.releases[tag])

    def _set_commit_status(self, params: dict, sha: str) -> Reply:
        """As GitLab: the state is one of its six, the description at most 255 characters."""
        state = params.get("state")
        if state not in ("pending", "running", "success", "failed", "canceled", "skipped"):
            return Reply(400, {"error": "state does not have a valid value"})
        if len(params.get("description") or "") > 255:
            return Reply(400, {"message": {"description": ["is too long (maximum is 255 characters)"]}})
        if self.repo is not None and self._resolve(sha) is None:
            return _not_found("Commit")
        status = {"id": len(self.statuses) + 1, "sha": sha, "status": state, "name": params.get("name") or "default",
                  "description": params.get("description"), "target_url": params.get("target_url"), "created_at": _now()}
        self.statuses.setdefault(sha, []).append(status)
        return Reply(201, status)

    def _update_release(self, params: dict, tag: str) -> Reply:
        release = self.releases.get(tag)
        if release is None:
            return _not_found("Release")
        for key in ("name", "description", "released_at"):
            if key in params:
                release[key] = params[key]
        return Reply(200, release)

    def _create_pipeline(self, params: dict) -> Reply:
        ref = params.get("ref")
        if not ref:
            return Reply(400, {"error": "ref is missing"})
        sha = self._resolve(ref) if self.repo is not None else None
        pipeline_id = next(self._ids)
        if self.repo is not None and sha is None:
            return Reply(400, {"message": {"base": ["Reference not found"]}})
        pipeline = {"id": pipeline_id, "iid": len(self.pipelines) + 1, "project_id": self.project_id, "ref": ref,
                    "sha": sha, "status": "created", "source": "api", "variables": params.get("variables") or [],
                    "created_at": _now(), "updated_at": _now(), "web_url": f"{self.web_url}/-/pipelines/{pipeline_id}"}
        self.pipelines.append(pipeline)
        pipeline["jobs"] = [self._new_job(pipeline, job) for job in self.jobs_of_new_pipelines(pipeline)]
        return Reply(201, _shown_pipeline(pipeline))

    def _new_job(self, pipeline: dict, job: dict) -> dict:
        job_id = next(self._ids)
        return {"id": job_id, "name": job.get("name", "job"), "status": job.get("status", "pending"), "stage": "execute",
                "ref": pipeline["ref"], "tag_list": list(job.get("tag_list", [])), "runner": None, "duration": None,
                "created_at": _now(), "pipeline": {"id": pipeline["id"]}, "web_url": f"{self.web_url}/-/jobs/{job_id}",
                "trace": ""}

    def pipeline_of(self, variable: str, value: str) -> list[dict]:
        """The pipelines created with ``variable`` set to ``value``."""
        with self._lock:
            return [p for p in self.pipelines if {"key": variable, "value": value} in
                    [{"key": v.get("key"), "value": v.get("value")} for v in p["variables"]]]

    def set_job(self, job_id: int, **changes: Any) -> None:
        """Change a pipeline job's fields (``status``, ``trace``, ``runner``), as a runner working on it would;
        the pipeline's status follows its jobs."""
        with self._lock:
            for pipeline in self.pipelines:
                for job in pipeline.get("jobs", []):
                    if job["id"] == job_id:
                        job.update(changes)
                        pipeline["status"] = job["status"]
                        pipeline["updated_at"] = _now()
                        return
        raise KeyError(job_id)

    def _find_pipeline(self, pipeline_id: str) -> dict | None:
        return next((p for p in self.pipelines if str(p["id"]) == pipeline_id), None)

    def _list_pipelines(self, params: dict) -> Reply:
        listed = [p for p in reversed(self.pipelines)
                  if all(params.get(key) in (None, p[key]) for key in ("ref", "source", "status"))
                  and p["updated_at"] >= params.get("updated_after", "")]
        return self._page([_shown_pipeline(p) for p in listed], params)

    def _pipeline(self, params: dict, pipeline_id: str) -> Reply:
        pipeline = self._find_pipeline(pipeline_id)
        return Reply(200, _shown_pipeline(pipeline)) if pipeline else _not_found("Pipeline")

    def _pipeline_variables(self, params: dict, pipeline_id: str) -> Reply:
        pipeline = self._find_pipeline(pipeline_id)
        return Reply(200, pipeline["variables"]) if pipeline else _not_found("Pipeline")

    def _pipeline_jobs(self, params: dict, pipeline_id: str) -> Reply:
        pipeline = self._find_pipeline(pipeline_id)
        if pipeline is None:
            return _not_found("Pipeline")
        return self._page([{k: v for k, v in job.items() if k != "trace"} for job in pipeline.get("jobs", [])], params)

    def _cancel_pipeline(self, params: dict, pipeline_id: str) -> Reply:
        pipeline = self._find_pipeline(pipeline_id)
        if pipeline is None:
            return _not_found("Pipeline")
        for job in pipeline.get("jobs", []):
            if job["status"] not in ("success", "failed", "canceled", "skipped"):
                job["status"] = "canceled"
        pipeline["status"], pipeline["updated_at"] = "canceled", _now()
        return Reply(200, _shown_pipeline(pipeline))

    def _job_trace(self, params: dict, job_id: str) -> Reply:
        for pipeline in self.pipelines:
            for job in pipeline.get("jobs", []):
                if str(job["id"]) == job_id:
                    return Reply(200, job["trace"].encode(), content_type="text/plain")
        return _not_found("Job")

    def _list_jobs(self, params: dict) -> Reply:
        scope = params.get("scope[]")
        scopes = {scope} if isinstance(scope, str) else set(scope or ())
        listed = [job for job in reversed(self.jobs) if not scopes or job["status"] in scopes]
        return self._page(listed, params)

    # -- repository (read from the real git repository) ---------------------------------------------------

    def _no_repository(self) -> Reply | None:
        return None if self.repo is not None else _not_found("Repository")

    def _branch(self, params: dict, name: str) -> Reply:
        if missing := self._no_repository():
            return missing
        sha = self._resolve(f"refs/heads/{name}")
        if sha is None:
            return _not_found("Branch")
        return Reply(200, {"name": name, "commit": self._commits([sha], walk=False)[0], "merged": False,
                           "protected": name == self.default_branch, "default": name == self.default_branch,
                           "web_url": f"{self.web_url}/-/tree/{quote(name)}"})

    def _list_commits(self, params: dict) -> Reply:
        if missing := self._no_repository():
            return missing
        sha = self._resolve(params.get("ref_name") or self.default_branch)
        return self._page(self._commits([sha]) if sha else [], params)

    def _commit(self, params: dict, ref: str) -> Reply:
        if missing := self._no_repository():
            return missing
        sha = self._resolve(ref)
        return Reply(200, self._commits([sha], walk=False)[0]) if sha else _not_found("Commit")

    def _commit_diff(self, params: dict, ref: str) -> Reply:
        if missing := self._no_repository():
            return missing
        sha = self._resolve(ref)
        if sha is None:
            return _not_found("Commit")
        parents = self._git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        # Against the first parent, like GitLab; a root commit against the empty tree.
        diffs = self._diff(parents[0], sha) if parents else self._diff("--root", sha)
        return self._page(diffs, params)

    def _compare(self, params: dict) -> Reply:
        if missing := self._no_repository():
            return missing
        source, target = self._resolve(params.get("from", "")), self._resolve(params.get("to", ""))
        if source is None or target is None:
            return _not_found("Ref")
        straight = str(params.get("straight")).lower() in ("1", "true")
        base = source if straight else (self._git("merge-base", source, target) or source)
        return Reply(200, {
            "commit": self._commits([target], walk=False)[0],
            "commits": self._commits([f"{base}..{target}"])[::-1],
            "diffs": self._diff(base, target), "compare_timeout": False, "compare_same_ref": source == target,
            "web_url": f"{self.web_url}/-/compare/{source}...{target}",
        })

    def _list_tags(self, params: dict) -> Reply:
        if missing := self._no_repository():
            return missing
        out = self._git("for-each-ref", "--sort=-creatordate",
                        "--format=%(refname:strip=2)%1f%(objectname)%1f%(*objectname)%1f%(contents)%1e", "refs/tags")
        found = []
        for record in filter(str.strip, out.split("\x1e")):
            name, target, peeled, message = record.strip("\n").split("\x1f")
            commit = self._commits([peeled or target], walk=False)[0]
            found.append({"name": name, "target": target, "message": message.strip() if peeled else "",
                          "commit": commit, "release": None,
                          "protected": any(fnmatch.fnmatchcase(name, pattern) for pattern in self.protected_tags)})
        return self._page(found, params)

    def _resolve(self, ref: str) -> str | None:
        if not ref or ref.startswith("-"):
            return None
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or None
        except subprocess.CalledProcessError:
            return None

    def _commits(self, revisions: list[str], *, walk: bool = True) -> list[dict]:
        fields = "%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%B%x1e"
        out = self._git("log", f"--format={fields}", *([] if walk else ["--no-walk"]), *revisions, "--")
        commits = []
        for record in filter(str.strip, out.split("\x1e")):
            sha, parents, author, email, authored, committer, committer_email, committed, message = (
                record.lstrip("\n").split("\x1f"))
            commits.append({
                "id": sha, "short_id": sha[:8], "title": message.split("\n", 1)[0], "message": message,
                "parent_ids": parents.split(), "author_name": author, "author_email": email,
                "authored_date": authored, "committer_name": committer, "committer_email": committer_email,
                "committed_date": committed, "created_at": committed, "web_url": f"{self.web_url}/-/commit/{sha}",
            })
        return commits

    def _diff(self, base: str, target: str) -> list[dict]:
        out = self._git("diff-tree", "-r", "-M", "-z", "--raw", "--no-commit-id", base, target)
        fields = out.split("\0")
        diffs, i = [], 0
        while i < len(fields) and fields[i]:
            a_mode, b_mode, _, _, status = fields[i].lstrip(":").split(" ")
            old_path = fields[i + 1]
            new_path = fields[i + 2] if status[0] in "RC" else old_path
            i += 3 if status[0] in "RC" else 2
            diffs.append({
                "old_path": old_path, "new_path": new_path, "a_mode": a_mode, "b_mode": b_mode,
                "new_file": status[0] == "A", "renamed_file": status[0] == "R", "deleted_file": status[0] == "D",
                "generated_file": False, "diff": "",
            })
        return diffs

    def _git(self, *args: str) -> str:
        assert self.repo is not None
        env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin:/usr/local/bin"}
        out = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, check=True, env=env)
        return out.stdout.decode("utf-8", "surrogateescape").strip("\n")

    # -- pagination ----------------------------------------------------------------------------------------

    def _page(self, items: list, params: dict) -> Reply:
        try:
            per_page = min(max(int(params.get("per_page", DEFAULT_PER_PAGE)), 1), self.max_per_page)
            page = max(int(params.get("page", 1)), 1)
        except ValueError:
            return Reply(400, {"error": "page or per_page is invalid"})
        pages = max(1, -(-len(items) // per_page))
        headers = {
            "X-Total": str(len(items)), "X-Total-Pages": str(pages), "X-Per-Page": str(per_page),
            "X-Page": str(page), "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        path = params["_path"]
        query = {k: v for k, v in params.items() if not k.startswith("_") and not isinstance(v, (tuple, list, dict))}

        def link(number: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"'

        links = [link(page - 1, "prev")] if page > 1 else []
        links += [link(page + 1, "next")] if page < pages else []
        headers["Link"] = ", ".join([*links, link(1, "first"), link(pages, "last")])
        return Reply(200, items[(page - 1) * per_page:page * per_page], headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like GitLab behind its proxy
    timeout = 10  # an idle keep-alive connection frees its thread
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)
    fake: FakeGitLab

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def _handle(self, method: str) -> None:
        try:
            self._serve(method)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client hung up or sent less than it announced: no one to answer

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.fake._take_fault(method, split.path)
        kind = fault.kind if fault else None
        if kind == DROP:
            self.close_connection = True
            return
        if fault is not None and kind != LOSE_REPLY:
            status = int(fault.kind)
            if status == 429:
                self._send(Reply(429, b"Retry later\n", fault.headers, "text/plain"))
            else:
                self._send(Reply(status, {"message": f"{status} {HTTPStatus(status).phrase}"}, fault.headers))
            return
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        query["_path"] = split.path
        if method in ("POST", "PUT") and "/wikis" in split.path:
            time.sleep(self.fake.wiki_write_delay_s)
        reply = self.fake._dispatch(method, split.path, query, self.headers, body)
        if kind == LOSE_REPLY:
            self.close_connection = True  # applied, but the client never hears of it
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for key, value in (reply.headers or {}).items():
            self.send_header(key, value)
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _shown_pipeline(pipeline: dict) -> dict:
    return {k: v for k, v in pipeline.items() if k not in ("variables", "jobs")}


def _not_found(what: str) -> Reply:
    return Reply(404, {"message": f"404 {what} Not Found"})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """JSON, form or multipart parameters; an uploaded file becomes ``(filename, bytes)``."""
    if not body:
        return {}
    if content_type.startswith("multipart/form-data"):
        return _parse_multipart(content_type, body)
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise TypeError("the request body is not a JSON object")
    return data


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("multipart body without a boundary")
    fields: dict[str, Any] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:-1]:
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1), data) if filename else data.decode()
    return fields


@pytest.fixture
def fake_gitlab() -> Iterator[FakeGitLab]:
    """A running FakeGitLab without a repository (a plugin fixture: see tests/conftest.py)."""
    with FakeGitLab() as fake:
        yield fake
