"""A thin, typed layer over python-gitlab: the writes our pipelines make to one project, safe to retry.

Every request has a timeout and is retried on 429, 5xx and dropped connections (``MAX_RETRIES`` times, with
python-gitlab's backoff, or the wait the server asks for in ``Retry-After``, at most ``MAX_RETRY_AFTER_S``).
A retried POST is not idempotent, so each write here is an upsert that ends in the same state however many
times its request reached GitLab. python-gitlab's exceptions never leave this
module: they become GitLabError and its subclasses, with messages built here that never hold the token.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import gitlab
import requests
from gitlab.v4.objects import CurrentUserManager, Project

from ds_pipelines.gitlab.errors import (
    TOKEN_VARIABLES,
    GitLabAuthError,
    GitLabError,
    GitLabNotFoundError,
)
from ds_pipelines.gitlab.settings import GitLabSettings

TIMEOUT_S = 30
"""Seconds one HTTP request may take (python-gitlab waits forever by default)."""
MAX_RETRIES = 5
"""Retries of one request after 429, 5xx or a dropped connection."""
MAX_RETRY_AFTER_S = 10
"""The longest wait before a retry, whatever ``Retry-After`` or ``RateLimit-Reset`` asks for: python-gitlab
sleeps for as long as they say (a 429 with ``Retry-After: 3600`` would hold a CI job or a sensor for an hour).
The commit sensor's tick must finish within Dagster's 60 s; a request still refused after its retries fails
with HTTP 429, and the next tick or job tries again (the Slack client caps its waits alike)."""

CREATED, UPDATED = "created", "updated"

_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_CONNECTION_ERRORS = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout)
_DETAIL_MAX_CHARS = 300
_PER_PAGE = 100  # GitLab's largest page: fewer requests than the default 20

T = TypeVar("T")


class GitLabClient:
    """One GitLab project, reached with one token; see GitLabSettings.from_env for where they come from."""

    def __init__(self, settings: GitLabSettings, *, timeout: float = TIMEOUT_S, max_retries: int = MAX_RETRIES,
                 max_retry_after: int = MAX_RETRY_AFTER_S):
        self.settings = settings
        self.timeout = timeout
        self.max_retries = max_retries
        session = requests.Session()
        session.hooks["response"].append(_retry_after_capper(max_retry_after))
        self._gitlab = gitlab.Gitlab(
            settings.url, private_token=settings.token, timeout=timeout, retry_transient_errors=True, session=session
        )
        self._project_attributes: dict[str, Any] | None = None
        self._own_user_id: int | None = None

    def __repr__(self) -> str:
        return f"GitLabClient({self.settings!r}, timeout={self.timeout}, max_retries={self.max_retries})"

    # -- plumbing shared with ds_pipelines.gitlab.repository --------------------------------------------

    @property
    def project(self) -> Project:
        """The python-gitlab project, not fetched (``lazy``): for building requests; use ``call`` to send them."""
        return self._gitlab.projects.get(self.settings.project_id, lazy=True)

    @property
    def request_options(self) -> dict[str, Any]:
        """Per-call options python-gitlab needs on every request (``max_retries`` is not a constructor option)."""
        return {"max_retries": self.max_retries}

    def call(self, operation: str, request: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``request(*args, **kwargs)`` with our retry options, its errors turned into GitLabError.

        ``operation`` says what was being done, for messages: "listing notes of merge request !3".
        """
        with self.handling_errors(operation):
            return request(*args, **kwargs, **self.request_options)

    @contextmanager
    def handling_errors(self, operation: str) -> Iterator[None]:
        """Turn python-gitlab and requests errors raised inside into GitLabError (for lazy iterators)."""
        try:
            yield
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._translated(operation, exc) from None

    def mask(self, text: str) -> str:
        """``text`` with the token, and a password in GitLab's URL, replaced by ``***``."""
        for secret in (self.settings.token, urlsplit(self.settings.url).password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def project_attributes(self) -> dict[str, Any]:
        """The project as the `projects API <https://docs.gitlab.com/api/projects/#get-a-single-project>`_
        returns it (read once, then cached)."""
        if self._project_attributes is None:
            project = self.call("reading the project", self._gitlab.projects.get, self.settings.project_id)
            self._project_attributes = dict(project.attributes)
        return self._project_attributes

    def own_user_id(self) -> int:
        """The id of the user the token belongs to (`GET /user
        <https://docs.gitlab.com/api/users/#get-the-current-user>`_, read once, then cached)."""
        if self._own_user_id is None:
            user = self.call("reading the token's own user", CurrentUserManager(self._gitlab).get)
            self._own_user_id = int(user.id)
        return self._own_user_id

    @property
    def project_web_url(self) -> str:
        """The project's page, e.g. ``https://gitlab.example.com/group/project``."""
        return self.project_attributes()["web_url"]

    def merge_request_url(self, *, mr_iid: int) -> str:
        """The web page of merge request ``!mr_iid``."""
        return f"{self.project_web_url}/-/merge_requests/{mr_iid}"

    # -- writes ------------------------------------------------------------------------------------------

    def marked_note_body(self, *, mr_iid: int, marker: str) -> str | None:
        """The body of the note ``upsert_merge_request_note`` would update (our oldest carrying ``marker``)."""
        marked = self._marked_notes(self.project.mergerequests.get(mr_iid, lazy=True).notes, mr_iid, marker)
        return marked[0].get("body") if marked else None

    def upsert_merge_request_note(self, *, mr_iid: int, marker: str, body: str) -> int:
        """Make the one note of merge request ``!mr_iid`` that carries ``marker`` say ``body``; its id.

        ``marker`` is a hidden HTML comment such as ``<!-- ds-pipelines:metrics -->`` that ``body`` must
        contain: it is how the next run finds the note to update instead of adding another. Only notes
        written by the token's own user count: anyone who may comment can paste the marker, and such a
        note is never adopted, edited or deleted (a Maintainer token could delete it). When several of our
        notes carry it (a retried POST whose first reply was lost created a twin, or two jobs raced), the
        oldest is kept and updated and the others are deleted, also right after a create.
        API: https://docs.gitlab.com/api/notes/#merge-requests
        """
        if not marker or marker not in body:
            raise ValueError(f"the note body must contain its marker {marker!r}, or the next run cannot find the note")
        notes = self.project.mergerequests.get(mr_iid, lazy=True).notes
        marked = self._marked_notes(notes, mr_iid, marker)
        if not marked:
            created = self.call(f"creating a note on merge request !{mr_iid}", notes.create, {"body": body})
            # python-gitlab retries a POST that got no reply; if the first one was applied there are two now.
            marked = self._marked_notes(notes, mr_iid, marker) or [created.attributes]
        keep, *twins = marked
        if keep.get("body") != body:
            self.call(f"updating note {keep['id']} of merge request !{mr_iid}", notes.update, keep["id"], {"body": body})
        for twin in twins:
            try:
                self.call(f"deleting duplicate note {twin['id']} of merge request !{mr_iid}", notes.delete, twin["id"])
            except GitLabNotFoundError:
                pass  # another job removing the same duplicate got there first
        return int(keep["id"])

    def upload_file(self, *, path: Path) -> str:
        """Upload ``path`` to the project; the Markdown GitLab returns for it (``![name](/uploads/...)``
        for images, ``[name.ext](/uploads/...)`` otherwise), for a note or wiki page of this project.
        API: https://docs.gitlab.com/api/project_markdown_uploads/#upload-a-file
        """
        path = Path(path)
        if not path.is_file():
            raise GitLabError(f"cannot upload {str(path)!r}: it is not a file")
        data = path.read_bytes()
        operation = f"uploading {path.name}"
        # python-gitlab builds the multipart body once and would resend it consumed on a retry: retry here,
        # building a new request each time, and let python-gitlab make a single attempt (max_retries=0).
        for attempt in itertools.count():
            try:
                result = self.project.upload(path.name, filedata=data, max_retries=0)
                break
            except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
                if attempt >= self.max_retries or not _transient(exc):
                    raise self._translated(operation, exc) from None
                time.sleep(0.1 * 2**attempt)  # python-gitlab's backoff
        if "markdown" not in result:
            raise GitLabError(f"GitLab answered an upload of {path.name} without its markdown: {sorted(result)}")
        return result["markdown"]

    def get_wiki_page(self, *, slug: str) -> str | None:
        """The content of wiki page ``slug`` (``dir/page``), or None when there is no such page.
        API: https://docs.gitlab.com/api/wikis/#get-a-wiki-page
        """
        try:
            page = self.call(f"reading wiki page {slug!r}", self.project.wikis.get, slug)
        except GitLabNotFoundError:
            return None
        return page.content

    def upsert_wiki_page(self, *, slug: str, title: str, content: str) -> None:
        """Create wiki page ``slug`` or replace its content.

        GitLab derives a page's slug from the title it is created with (spaces become hyphens, ``/`` makes
        folders), so the page is created with ``<folder of slug>/<title>`` when that leads to ``slug``
        (``metrics/training-example`` with title ``training example``) and with ``slug`` itself otherwise,
        GitLab then showing the slug's last part as the title. A create that answers "already exists" (its
        first try was applied but the reply lost, or another job was quicker) becomes an update.
        API: https://docs.gitlab.com/api/wikis/
        """
        update = f"updating wiki page {slug!r}"
        try:
            self.call(update, self.project.wikis.update, slug, {"content": content})
            return
        except GitLabNotFoundError:
            pass
        try:
            self.call(f"creating wiki page {slug!r}", self.project.wikis.create,
                      {"title": _wiki_title(slug, title), "content": content})
        except GitLabError as exc:
            if exc.status not in (400, 409, 422):
                raise
            self.call(update, self.project.wikis.update, slug, {"content": content})

    def upsert_release(self, *, tag: str, name: str, description: str) -> str:
        """Create the release of ``tag`` (which must exist), or update its name and description:
        returns ``"created"`` or ``"updated"``. A create retried after a lost reply answers 409 "Release
        already exists" and becomes an update, so that case reports ``"updated"``.
        API: https://docs.gitlab.com/api/releases/
        """
        try:
            self.call(f"creating release {tag!r}", self.project.releases.create,
                      {"tag_name": tag, "name": name, "description": description})
            return CREATED
        except GitLabError as exc:
            if exc.status != 409:
                raise
        self.call(f"updating release {tag!r}", self.project.releases.update, tag, {"name": name, "description": description})
        return UPDATED

    # -- helpers -----------------------------------------------------------------------------------------

    def _marked_notes(self, notes: Any, mr_iid: int, marker: str) -> list[dict[str, Any]]:
        """Our own notes carrying ``marker``, oldest first (GitLab lists newest first by default)."""
        own_user_id = self.own_user_id()
        listed = self.call(f"listing notes of merge request !{mr_iid}", notes.list,
                           get_all=True, per_page=_PER_PAGE, sort="asc", order_by="created_at")
        marked = [
            note.attributes for note in listed
            if not note.attributes.get("system") and marker in (note.attributes.get("body") or "")
            and (note.attributes.get("author") or {}).get("id") == own_user_id
        ]
        return sorted(marked, key=lambda note: (note.get("created_at") or "", note["id"]))

    def _translated(self, operation: str, exc: Exception) -> GitLabError:
        """Our error for a python-gitlab or requests one; built from scratch, the token masked."""
        url = self.mask(self.settings.url)
        if isinstance(exc, requests.RequestException):
            reason = self.mask(_short(str(exc)))
            return GitLabError(
                f"GitLab did not answer while {operation}: {url} unreachable after {self.max_retries} retries "
                f"({type(exc).__name__}: {reason})"
            )
        status = getattr(exc, "response_code", None)
        detail = self.mask(_short(_text(getattr(exc, "error_message", ""))))
        if isinstance(exc, gitlab.exceptions.GitlabAuthenticationError) or status == 401:
            return GitLabAuthError(
                f"GitLab refused the token (401 Unauthorized) for {url}: check {TOKEN_VARIABLES}; it may be "
                f"wrong, expired or revoked (while {operation})",
                status=401,
            )
        if status == 403:
            return GitLabAuthError(
                f"GitLab refused the token (403 Forbidden) for {url}: check {TOKEN_VARIABLES}; it needs the "
                f"api scope and access to project {self.settings.project_id!r} (while {operation})",
                status=403,
            )
        if status == 404:
            return GitLabNotFoundError(
                f"GitLab found nothing while {operation}: {detail or '404 Not found'} (project "
                f"{self.settings.project_id!r} at {url})",
                status=404,
            )
        if status:
            return GitLabError(f"GitLab request failed while {operation}: HTTP {status}: {detail}", status=status)
        return GitLabError(f"GitLab request failed while {operation}: {type(exc).__name__}: {detail}")


def _retry_after_capper(max_wait_s: int) -> Callable[..., requests.Response]:
    """A requests response hook that rewrites a failed response's wait to at most ``max_wait_s`` seconds.

    python-gitlab reads the wait of a retry from ``Retry-After`` (whole seconds, ``int()`` of it: an HTTP-date
    would raise), else from ``RateLimit-Reset`` (an epoch second), uncapped. The hook puts the capped wait
    into ``Retry-After`` in whole seconds, which python-gitlab then obeys, so no library code is replaced.
    Headers it cannot read are removed, and python-gitlab's own backoff applies.
    """

    def cap(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.status_code >= 400:
            wait_s = _asked_wait_s(response.headers)
            if wait_s is None:
                response.headers.pop("Retry-After", None)
                response.headers.pop("RateLimit-Reset", None)
            else:
                response.headers["Retry-After"] = str(min(max_wait_s, max(0, math.ceil(wait_s))))
        return response

    return cap


def _asked_wait_s(headers: Any) -> float | None:
    """Seconds the server asks to wait (``Retry-After`` as seconds or an HTTP-date, else ``RateLimit-Reset``);
    None when it asks nothing it can be understood to ask."""
    retry_after = (headers.get("Retry-After") or "").strip()
    if retry_after:
        seconds = _finite(retry_after)
        if seconds is not None:
            return seconds
        try:
            return email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
        except (TypeError, ValueError):
            pass
    reset = _finite(headers.get("RateLimit-Reset") or "")
    return None if reset is None else reset - time.time()


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _transient(exc: Exception) -> bool:
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    return getattr(exc, "response_code", None) in _TRANSIENT_STATUSES


def _wiki_title(slug: str, title: str) -> str:
    folder, _, name = slug.rpartition("/")
    if title.replace(" ", "-") != name:
        return slug
    return f"{folder}/{title}" if folder else title


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX_CHARS else f"{text[:_DETAIL_MAX_CHARS]}..."
