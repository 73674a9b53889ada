"""Escaping for every string that comes from a notebook before it is published.

Metric names, notebook names, error messages and cell source are written by notebook authors (or by
whatever their code printed), and they end up in GitLab markdown (merge-request notes, wiki pages, release
notes) and in Slack messages. None of that text may:

- inject HTML (``<script>``, ``<img onerror=...>``) or fake our hidden ``<!-- ds-pipelines:... -->`` markers,
- inject markdown (``[link](javascript:...)``, images, emphasis, headings, tables broken by ``|`` or by
  newlines inside a cell, code spans closed by backticks),
- ping people or link things in GitLab (``@user``, ``@all``, ``#123``, ``!12``, ``~label``, ``%milestone``,
  ``$snippet``, ``&epic``) or run quick actions (``/merge`` at the start of a line in a note),
- become a link by itself: GitLab auto-links bare URLs (``https://...``, ``www.example.com``) and strings
  of 7 to 64 hex digits that name a commit of the project (a SHA, or an MLflow run id that happens to);
  Slack auto-links bare URLs too, in code blocks as well.

GitLab resolves references and auto-links on the rendered text, after markdown escapes are removed, so a
backslash stops none of them (for URLs: gitlab-org/gitlab#339017). A zero-width space does, and it is
invisible to readers: after a sigil (it is not a name character), between a URL's ``:`` and ``//`` (GitLab's
autolink filter and GLFM's extended autolinks both need the literal ``://``, or ``www.``), and after every
sixth digit of a hex run (a commit reference needs seven in a row). Code spans and blocks need none of this:
GitLab neither links nor resolves references inside ``code`` and ``pre``, so identifiers that readers may
copy (SHAs, run ids) go in code spans (``md_code``), which keep them intact.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

ZERO_WIDTH_SPACE = "\u200b"

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that start markdown
# constructs inline (emphasis, links, images, code, tables, strikethrough, math, headings, lists).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-!|~$])")
# GitLab reference sigils followed by something a reference could start with.
_REFERENCE = re.compile(r"([@#!~%$&])(?=[\w\"'.-])")
_URL_SCHEME_SEPARATOR = re.compile(r"(?<=:)(?=//)")
_WWW_PREFIX = re.compile(r"(?i)(?<![\w.-])(www)(?=\.)")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{7,}")
_HEX_CHUNK = 6  # a commit reference needs at least 7 hex digits in a row
_WHITESPACE_RUNS = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BACKTICK_RUN = re.compile(r"`+")
_SAFE_URL_SCHEMES = {"http", "https"}
_IMAGE_MARKDOWN = re.compile(r"!\[([^\]\n]*)\]\(([^()\s]+)\)")


def one_line(value: object, *, limit: int | None = None) -> str:
    """``value`` as text on one line (newlines and tabs become spaces), cut to ``limit`` characters."""
    text = _CONTROL.sub("", _WHITESPACE_RUNS.sub(" ", str(value))).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text


def md_text(value: object, *, limit: int | None = None) -> str:
    """Notebook text as literal GitLab markdown on one line: safe in paragraphs, headings, links' labels
    and table cells."""
    return _md_text(value, limit=limit, in_link=False)


def _md_text(value: object, *, limit: int | None, in_link: bool) -> str:
    text = _REFERENCE.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE, one_line(value, limit=limit))
    if not in_link:  # GitLab links nothing inside a link: its label (a SHA) stays whole for copying
        text = _no_autolinks(text)
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    # HTML as entities, last (the backslashes above must not split them): no tag, no comment marker and no
    # entity of the author's own survives.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_code(value: object, *, limit: int | None = None, in_table: bool = True) -> str:
    """Notebook text as an inline code span (identifiers such as metric and notebook names).

    GitLab resolves no references and renders no HTML inside code, but the raw text still travels in the
    note body: comment markers are split so the body never holds a ``<!--`` a notebook wrote.
    """
    text = _neutralize_html_comments(one_line(value, limit=limit))
    if not text:
        return ""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") or longest else text
    if in_table:
        # GFM splits table cells at unescaped pipes even inside code spans; ``\|`` is the documented way.
        padded = padded.replace("|", "\\|")
    return f"{fence}{padded}{fence}"


def md_code_block(text: str, *, language: str = "", max_lines: int | None = None) -> str:
    """Notebook text (cell source, tracebacks) as a fenced code block that the text cannot close."""
    lines = _neutralize_html_comments(_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… ({len(lines) - max_lines} more lines)"]
    # A line starting with "/" in a note could be read as a quick action (/merge, /approve...).
    lines = [ZERO_WIDTH_SPACE + line if line.lstrip().startswith("/") else line for line in lines]
    body = "\n".join(lines)
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    language = re.sub(r"[^\w+-]", "", language)
    return f"{fence}{language}\n{body}\n{fence}"


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL or a path on the same GitLab (``/uploads/...``), made safe to put in
    markdown link targets; else None (the link is then left out)."""
    if not url:
        return None
    url = url.strip()
    if _CONTROL.search(url) or _WHITESPACE_RUNS.search(url):
        return None
    parts = urlsplit(url)
    if parts.scheme:
        if parts.scheme.lower() not in _SAFE_URL_SCHEMES or not parts.netloc:
            return None
    elif not url.startswith("/") or url.startswith("//"):
        return None
    # Characters that end a link target or open HTML are percent-encoded; the URL still points to the same place.
    return quote(url, safe="/:?#[]@!$&'*+,;=%-._~")


def md_link(label: object, url: str | None) -> str:
    """``[label](url)`` with the label escaped; just the escaped label when the URL is absent or unsafe."""
    target = safe_url(url)
    text = _md_text(label, limit=None, in_link=bool(target))
    return f"[{text}]({target})" if target else text


def md_identifier(identifier: str, url: str | None) -> str:
    """One of ds-pipelines' own identifiers (a short SHA) linked to ``url``, or as a code span without a
    safe URL: GitLab links neither further, and readers copy it whole (no zero-width spaces in it)."""
    target = safe_url(url)
    return md_link(identifier, target) if target else md_code(identifier, in_table=True)


def md_image(markdown: str, *, fallback_label: str) -> str:
    """An image snippet such as GitLab's upload answer (``![name](/uploads/...)``), rebuilt from its parts
    so that only an image can come out; text that is not an image snippet with a safe URL is escaped."""
    match = _IMAGE_MARKDOWN.fullmatch(markdown.strip())
    target = safe_url(match.group(2)) if match else None
    if not target:
        return md_text(fallback_label)
    return f"![{md_text(match.group(1) or fallback_label)}]({target})"


def slack_text(value: object, *, limit: int | None = None) -> str:
    """Notebook text for Slack mrkdwn on one line: Slack's own escaping (``&``, ``<``, ``>``), so no
    ``<!channel>``, ``<@U123>`` or ``<url|label>`` can be formed, and ``@here``-style words are split."""
    return _slack_escape(one_line(value, limit=limit))


def slack_code_block(text: str, *, max_lines: int | None = None) -> str:
    """A Slack code block the text cannot close."""
    lines = _CONTROL.sub("", text.replace("\r\n", "\n")).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… ({len(lines) - max_lines} more lines)"]
    body = _slack_escape("\n".join(lines)).replace("```", "`" + ZERO_WIDTH_SPACE + "`" + ZERO_WIDTH_SPACE + "`")
    return f"```\n{body}\n```"


def slack_link(label: object, url: str | None) -> str:
    """``<url|label>``; just the escaped label when the URL is absent or not http(s)."""
    target = safe_url(url)
    text = slack_text(label)
    if not target or target.startswith("/"):
        return text
    return f"<{target.replace('|', '%7C')}|{text}>"


def _slack_escape(text: str) -> str:
    """Slack's escaping, ``@word`` split, and no bare URL: Slack links ``https://...`` and ``www.example.com``
    wherever they stand, so a notebook's error text could carry a clickable phishing link. Broken as for GitLab
    (a zero-width space between ``:`` and ``//``, after ``www``); hex runs stay whole, Slack links no SHAs."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _URL_SCHEME_SEPARATOR.sub(ZERO_WIDTH_SPACE, text)
    text = _WWW_PREFIX.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE, text)
    return re.sub(r"@(?=\w)", "@" + ZERO_WIDTH_SPACE, text)


def _no_autolinks(text: str) -> str:
    """``text`` with zero-width spaces where GitLab would start a bare URL or a commit link (see the module)."""
    text = _URL_SCHEME_SEPARATOR.sub(ZERO_WIDTH_SPACE, text)
    text = _WWW_PREFIX.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE, text)
    return _HEX_RUN.sub(lambda m: _split_every(m.group(0), _HEX_CHUNK), text)


def _split_every(text: str, size: int) -> str:
    return ZERO_WIDTH_SPACE.join(text[i:i + size] for i in range(0, len(text), size))


def _neutralize_html_comments(text: str) -> str:
    return text.replace("<!--", "<" + ZERO_WIDTH_SPACE + "!--").replace("-->", "--" + ZERO_WIDTH_SPACE + ">")
