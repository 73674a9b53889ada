"""Mask secrets before anything a notebook produced is published (MR notes, wiki, releases, Slack, artifacts).

Two sources of secrets:

- the values of secret environment variables of the job that publishes: names containing TOKEN, SECRET,
  PASSWORD, PASSWD, KEY, WEBHOOK or CREDENTIAL (any case), plus ``GITLAB_TOKEN``, ``REPO_TOKEN``,
  ``MLFLOW_TRACKING_TOKEN``, ``CI_JOB_TOKEN`` and every ``SLACK_*``; values shorter than 8 characters are
  left alone (too likely to occur in harmless text);
- what detect-secrets' default plugins find (GitLab, GitHub, Slack, AWS, private keys, JWTs, basic-auth
  URLs, high-entropy strings in quotes and as the values of ``name = value`` lines, ``password = "..."``
  ...), with its false-positive filters, except the ``pragma: allowlist secret`` comment, which a notebook
  must not be able to use to publish a secret. Its entropy detectors run over a whole text at once
  (``entropy_secrets``); its per-line scan gets only the lines that hold a hint of another detector
  (``candidate_lines``).

Multi-line secrets are masked whole: a PEM private key block from its BEGIN line to its END line, also when
its lines are separate strings (a notebook output's lines) or arrive one at a time (``LineMasker``, for the
console), and inside JSON strings with escaped newlines (a service-account key's ``private_key``); plus the
password of ``.netrc`` lines (``machine ... login ... password ...``), the last field of ``.pgpass`` lines
(``host:port:db:user:password``), a service-account key's ``private_key_id``, and Google API keys, npm and
PyPI tokens (gitleaks rules of GitLab's secret detection that detect-secrets lacks).

Every occurrence is replaced with ``[MASKED]``. Over-masking is preferred to a leak: a regex detector's
whole match is masked (``https[MASKED]host`` for a basic-auth URL), and a value found once is masked
everywhere in the text or notebook.
"""

from __future__ import annotations

import bisect
import collections
import functools
import io
import itertools
import json
import logging
import math
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.files import write_atomically

MASK = "[MASKED]"
MIN_ENV_SECRET_LENGTH = 8
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|WEBHOOK|CREDENTIAL", re.IGNORECASE)
SECRET_NAMES = frozenset({"GITLAB_TOKEN", "REPO_TOKEN", "MLFLOW_TRACKING_TOKEN", "CI_JOB_TOKEN"})
SECRET_PREFIXES = ("SLACK_",)
# Shorter detector hits (a three-letter "password") are not secrets worth masking everywhere.
MIN_DETECTED_LENGTH = 4
# Binary outputs: base64 image data holds no readable text, and scanning it only costs time.
_BINARY_MIME = re.compile(r"^image/(?!svg)")
_TRIM = " \t\"'`=:,;()[]{}<>"
_ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"
_VERIFICATION_FILTER = "detect_secrets.filters.common.is_ignored_due_to_verification_policies"
# PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP's "PRIVATE KEY BLOCK"): the block is masked whole.
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
# What may follow a BEGIN line inside a block: base64 lines, blank lines, RFC 1421 / PGP headers. Anything
# else ends a block that lost its END line, so a truncated key does not mask the rest of a notebook.
_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=]*|[A-Za-z][A-Za-z-]*: .*)\s*")
# Secrets a line's shape gives away; group 1 is masked (everywhere, like any secret found).
# Each with a string it cannot match without (None: none), so that a text without it costs no regex pass.
_SHAPED_SECRETS = [
    ("password", re.compile(r"\bmachine\s+\S+\s+(?:login\s+\S+\s+)?password\s+(\S+)")),  # .netrc
    (":", re.compile(r"^[^:\s]+:(?:\d+|\*):[^:\s]+:[^:\s]+:(\S+)$", re.MULTILINE)),  # .pgpass
    ("private_key_id", re.compile(r'"private_key_id"\s*:\s*"([^"]+)"')),  # a cloud service-account key file
    # Tokens of GitLab's secret detection (gitleaks rules) that detect-secrets' plugins do not know.
    ("AIza", re.compile(r"\b(AIza[0-9A-Za-z_-]{35})")),  # Google API key
    ("npm_", re.compile(r"\b(npm_[A-Za-z0-9]{36})")),  # npm access token
    ("pypi-", re.compile(r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})")),  # PyPI upload token
    # A whole JWT: detect-secrets' pattern may stop before the signature, which would then show.
    ("eyJ", re.compile(r"\b(eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")),
]
# A token after a credential keyword (also inside a name: aws_secret_access_key, mlflow_tracking_token) with
# only blanks or ``:`` between them: ``aws_secret_access_key AKIA...``, ``token: 3f9a...``. Neither
# detect-secrets (it wants ``=`` or quotes) nor gitleaks' generic rule finds these. Masked when the token
# looks random (``_looks_random``), so ``primary key column`` stays readable.
# The name is matched from its start only: tried inside a long run of name characters, it would cost the
# square of the run's length.
_KEYWORD_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])(?i:[A-Za-z0-9_.-]*(?:secret|token|password|passwd|key|credential)[A-Za-z0-9_.-]*)[ \t]*(?::[ \t]*|[ \t]+)"
    r"([A-Za-z0-9+/=_-]{16,})"
)
# Shannon entropy per character above which a keyword's token counts as random: 32 hex characters score
# about 3.7, a 40-character AWS secret key about 4.8; "abcdefabcdefabcdef" scores 2.6.
_RANDOM_TOKEN_ENTROPY = 3.2
_KEYWORD_VALUE_WORDS = ("secret", "token", "passw", "key", "credential")


@dataclass(frozen=True)
class _Hints:
    """What every match of one of detect-secrets' detectors holds, cheap to find in a whole text: one of
    ``literals`` (as written), one of ``words`` (in any case, given in lower case), or a match of ``pattern``
    (one pass for several literals of one shape)."""

    literals: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None


_CREDENTIAL_WORDS = ("key", "pw", "pass", "token")
# For each of detect-secrets' default detectors except the two entropy ones (found in bulk,
# ``entropy_secrets``), read off its patterns: a line without any of these cannot give it a match, so it never
# costs the per-line scan (~30 us a line with the keyword detector, whose patterns are tried from every
# position). A test holds this table to detect-secrets' plugin list.
_DETECTOR_HINTS = {
    "ArtifactoryDetector": _Hints(literals=("AKC", "AP")),
    "AWSKeyDetector": _Hints(literals=("A3T", "ABIA", "ACCA", "AKIA", "ASIA"), words=("aws",)),
    "AzureStorageKeyDetector": _Hints(literals=("AccountKey=",)),
    "BasicAuthDetector": _Hints(literals=("://",)),
    "CloudantDetector": _Hints(words=("cl",)),
    "DiscordBotTokenDetector": _Hints(pattern=re.compile(r"\.[\w-]{6}\.")),
    "GitHubTokenDetector": _Hints(pattern=re.compile(r"gh[pousr]_")),
    "GitLabTokenDetector": _Hints(literals=("GR1348941",),
                                  pattern=re.compile(r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-")),
    "IbmCloudIamDetector": _Hints(words=_CREDENTIAL_WORDS),
    "IbmCosHmacDetector": _Hints(words=("secret",)),
    "IPPublicDetector": _Hints(pattern=re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")),
    "JwtTokenDetector": _Hints(literals=("eyJ",)),
    "KeywordDetector": _Hints(words=("key", "pass", "pwd", "secret", "contrase")),
    "MailchimpDetector": _Hints(literals=("-us",)),
    "NpmDetector": _Hints(literals=("/:_authToken=",)),
    "OpenAIDetector": _Hints(literals=("T3BlbkFJ",)),
    "PrivateKeyDetector": _Hints(literals=("PRIVATE KEY", "PuTTY-User-Key-File-2")),
    "PypiTokenDetector": _Hints(literals=("pypi-AgE",)),
    "SendGridDetector": _Hints(literals=("SG.",)),
    "SlackDetector": _Hints(words=("xox", "://")),
    "SoftlayerDetector": _Hints(words=("sl", "softlayer")),
    "SquareOAuthDetector": _Hints(literals=("sq0csp-",)),
    "StripeDetector": _Hints(literals=("k_live_",)),
    "TelegramBotTokenDetector": _Hints(pattern=re.compile(r":[\w-]{35}")),
    "TwilioKeyDetector": _Hints(literals=("AC", "SK")),
}
# detect-secrets' entropy detectors, which look at quoted strings, and, in a text that reads as an INI file
# (its "eager" pass), at the values of ``name = value`` / ``name: value`` lines. Both are found here over the
# whole text at once, and the values of such lines in any text: a million lines that each hold a random id are
# masked in 20-40 s, where its per-line scan took some 18 minutes.
_ENTROPY_DETECTORS = ("Base64HighEntropyString", "HexHighEntropyString")
# The value of a ``name = value`` / ``name: value`` line, as Python's INI parser reads it (the name up to the
# first ``=`` or ``:``), without the quotes around it, when it is made of the detectors' characters (``chars``).
_ASSIGNED_VALUE = r"""(?m)^(?P<name>[^\s=:#;][^=:\n]*)[=:][ \t]*(?P<quote>["']?)(?P<value>[{chars}]+)(?P=quote)[ \t]*$"""
# A digest in its usual notation (``sha256:<hex>``, as ds-pipelines hands back the hashes of a notebook's inputs
# and as image digests are written) is a file's hash, not a secret: its value has the algorithm's length.
_DIGEST_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")
# The file name detect-secrets' filters are told: a plain text file, as notebook output is.
_SCANNED_NAME = "published-text.txt"


class MaskingError(DsPipelinesError):
    """A notebook that cannot be read or written while masking it."""


class UnmaskableFileError(MaskingError):
    """A binary file that cannot be masked: it holds a secret (masking would break it) or its content cannot
    be checked (compressed). It must not be kept."""


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """The values to mask from ``env``, longest first (so a secret containing another is masked whole): the
    values of secret-named variables, and the password of every ``scheme://user:password@host`` value
    (``DAGSTER_POSTGRES_URL``, ``MLFLOW_TRACKING_URI``, whatever its name), as written and percent-decoded."""
    values = {
        value
        for name, value in env.items()
        if value
        and len(value) >= MIN_ENV_SECRET_LENGTH
        and (name.upper() in SECRET_NAMES or name.upper().startswith(SECRET_PREFIXES) or SECRET_NAME.search(name))
    }
    values |= {password for value in env.values() for password in url_passwords(value)
               if len(password) >= MIN_ENV_SECRET_LENGTH}
    # The same secret URL-encoded (in a printed URL or query string) is masked too.
    values |= {quote(value, safe="") for value in values}
    return sorted(values, key=len, reverse=True)


def url_passwords(value: str) -> set[str]:
    """The password of a ``scheme://user:password@host...`` value, as written and percent-decoded; empty for
    any other value."""
    if "://" not in value or "@" not in value:
        return set()
    try:
        written = urlsplit(value.strip()).password
    except ValueError:  # a malformed URL, e.g. an unclosed IPv6 bracket
        return set()
    return {written, unquote(written)} if written else set()


@dataclass(frozen=True)
class Masker:
    """Masks the secrets of one environment; build it once per publish (``Masker.from_env``), and tell it
    the identifiers ds-pipelines itself wrote (``trusting``), which detectors would otherwise take for
    secrets: MLflow and Dagster run ids, commit SHAs, the reproducibility record's sha256 hashes."""

    env_values: tuple[str, ...] = ()
    known_safe: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Masker:
        return cls(tuple(secret_env_values(os.environ if env is None else env)))

    def trusting(self, identifiers: Iterable[str]) -> Masker:
        """This masker, leaving ``identifiers`` readable where a detector finds them (never where they are
        a secret variable's value)."""
        return Masker(self.env_values, self.known_safe | {value for value in identifiers if value})

    def mask(self, text: str) -> str:
        return self.mask_counting(text)[0]

    def mask_counting(self, text: str) -> tuple[str, int]:
        """``text`` with secrets masked, and how many occurrences were masked."""
        masked, count = mask_strings([text], self.env_values, self.known_safe)
        return masked[0], count


def mask_text(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with the secrets of ``env`` (default: ``os.environ``) and detected secrets replaced by ``[MASKED]``."""
    return Masker.from_env(env).mask(text)


def mask_strings(texts: list[str], env_values: Iterable[str],
                 known_safe: frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """Mask several strings together, in order: a secret detected in one is masked in all, and a private key
    block may run from one string into the next. What a detector finds inside one of ``known_safe`` (ids
    ds-pipelines wrote) is left alone. Returns the masked strings and the number of occurrences masked."""
    texts, total = _mask_key_blocks(texts)
    lines = _DistinctLines(texts)
    found = detected_secrets(lines) | shaped_secrets(texts) | keyword_valued_secrets(lines)
    secrets = set(env_values) | {value for value in found if not _known_safe(value, known_safe)}
    secrets.discard("")
    if not secrets:
        return texts, total
    replace = _replacer(frozenset(secrets)) if len(secrets) <= _MAX_ALTERNATION else _Replacer(secrets)
    masked = []
    for text in texts:
        replaced, count = replace(text)
        masked.append(replaced)
        total += count
    return masked, total


# Up to this many secrets are replaced by one regular expression of them all, longest first. Its cost is a
# try of each secret at each position of the text: past it, the secrets made of token characters (a million
# random ids, each found in a line of its own) are looked up among the text's runs of those characters.
_MAX_ALTERNATION = 256
_TOKEN_CHARS = "A-Za-z0-9+/=_-"
_TOKEN = re.compile(f"[{_TOKEN_CHARS}]+")


@functools.lru_cache(maxsize=16)
def _replacer(secrets: frozenset[str]) -> _Replacer:
    """A replacer of a few ``secrets``, built once for the lines of a console that find no secret of their own."""
    return _Replacer(secrets)


class _Replacer:
    """Replaces every occurrence of some secrets by ``[MASKED]``, the longest one where several start at a
    position, and counts them."""

    def __init__(self, secrets: set[str]):
        many = len(secrets) > _MAX_ALTERNATION
        tokens = {secret for secret in secrets if _TOKEN.fullmatch(secret)} if many else set()
        others = sorted(secrets - tokens, key=len, reverse=True)
        self._others = re.compile("|".join(map(re.escape, others))) if others else None
        self._tokens = tokens
        self._lengths = sorted({len(token) for token in tokens}, reverse=True)
        # A token secret lies inside one run of token characters, as long as it at least.
        self._runs = re.compile(f"[{_TOKEN_CHARS}]{{{self._lengths[-1]},}}") if tokens else None

    def __call__(self, text: str) -> tuple[str, int]:
        count = 0
        if self._others is not None:
            text, count = self._others.subn(MASK, text)
        if self._runs is not None:
            found = [0]
            text = self._runs.sub(lambda run: self._mask_run(run.group(), found), text)
            count += found[0]
        return text, count

    def _mask_run(self, run: str, found: list[int]) -> str:
        pieces, kept_from, position = [], 0, 0
        while position + self._lengths[-1] <= len(run):
            for length in self._lengths:
                if position + length <= len(run) and run[position:position + length] in self._tokens:
                    pieces += [run[kept_from:position], MASK]
                    position = kept_from = position + length
                    found[0] += 1
                    break
            else:
                position += 1
        pieces.append(run[kept_from:])
        return "".join(pieces)


class _DistinctLines:
    """The distinct non-blank lines of some texts, in order, joined into one text (as written and in lower
    case) where a string or pattern is found in one pass: each line is looked at once, however often it was
    printed."""

    def __init__(self, texts: Iterable[str]):
        self.lines = [line for line in dict.fromkeys(line for text in texts for line in text.splitlines()) if line.strip()]
        self.text = "\n".join(self.lines)
        self.lower = self.text.lower()
        self._starts = list(itertools.accumulate((len(line) + 1 for line in self.lines), initial=0))

    def with_strings(self, needles: Iterable[str], *, any_case: bool = False) -> set[int]:
        """The indices of the lines that hold one of ``needles`` (lower case ones, with ``any_case``)."""
        text, found = (self.lower if any_case else self.text), set()
        for needle in needles:
            position = text.find(needle)
            while position != -1:
                index = bisect.bisect_right(self._starts, position) - 1
                found.add(index)
                position = text.find(needle, self._starts[index + 1])  # the next line: this one is in
        return found

    def index_at(self, position: int) -> int:
        """The index of the line at ``position`` of ``text``."""
        return bisect.bisect_right(self._starts, position) - 1

    def matching(self, regex: re.Pattern[str]) -> set[int]:
        """The indices of the lines where ``regex`` matches."""
        return {self.index_at(match.start()) for match in regex.finditer(self.text)}


def shaped_secrets(texts: Iterable[str]) -> set[str]:
    """Passwords of .netrc and .pgpass lines and service-account key ids (``_SHAPED_SECRETS``)."""
    return {match.group(1) for text in texts for needle, regex in _SHAPED_SECRETS if needle in text
            for match in regex.finditer(text)
            if len(match.group(1)) >= MIN_DETECTED_LENGTH and match.group(1) != MASK}


def keyword_valued_secrets(lines: _DistinctLines) -> set[str]:
    """Random-looking tokens that follow a credential keyword with only blanks or ``:`` between
    (``_KEYWORD_VALUE``)."""
    return {match.group(1) for index in lines.with_strings(_KEYWORD_VALUE_WORDS, any_case=True)
            for match in _KEYWORD_VALUE.finditer(lines.lines[index]) if _looks_random(match.group(1))}


def _looks_random(token: str) -> bool:
    """Whether ``token`` has digits or mixed case and an entropy a word or a number does not reach."""
    mixed = any(c.isdigit() for c in token) + any(c.islower() for c in token) + any(c.isupper() for c in token) >= 2
    return mixed and _entropy(token) > _RANDOM_TOKEN_ENTROPY


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    length = len(text)
    return math.log2(length) - sum(n * math.log2(n) for n in collections.Counter(text).values()) / length


def _known_safe(value: str, known_safe: frozenset[str]) -> bool:
    """Whether a detected ``value`` is one of the identifiers ds-pipelines wrote, or a piece of one."""
    stripped = value.strip(_TRIM)
    return stripped in known_safe or any(stripped in safe for safe in known_safe if len(safe) > len(stripped))


def _mask_key_blocks(texts: list[str]) -> tuple[list[str], int]:
    """Private key blocks masked from BEGIN to END, also across consecutive strings. A block whose END never
    comes (a truncated key is still a key) is masked as long as its lines look like a key's body."""
    masked, count, inside = [], 0, False
    for text in texts:
        if inside and _PEM_END.search(text) is None and not _key_body_line(text):
            inside = False
        pieces, position = [], 0
        while True:
            if not inside:
                begin = _PEM_BEGIN.search(text, position)
                if begin is None:
                    pieces.append(text[position:])
                    break
                pieces.append(text[position:begin.start()] + MASK)
                count += 1
                inside, position = True, begin.end()
            end = _PEM_END.search(text, position)
            if end is None:
                # The block goes on in the next string: keep only the line break, so lines stay lines.
                pieces.append("\n" if text.endswith("\n") else "")
                break
            inside, position = False, end.end()
        masked.append("".join(pieces))
    return masked, count


def _key_body_line(text: str) -> bool:
    """Whether ``text`` can be a line inside a key block: key-shaped, and a whole line (a notebook output's
    lines end in a newline) or as long as a key's lines, not a short word such as a JSON key."""
    return bool(_PEM_BODY.fullmatch(text)) and (text.endswith("\n") or len(text.strip()) >= 16)


_LINES_KEPT = 4096


class LineMasker:
    """Masks text that arrives a line at a time (a notebook's output streamed to the console): the lines of a
    private key block after its BEGIN line are masked until its END line, then lines are masked one by one."""

    def __init__(self, env_values: Iterable[str], known_safe: Iterable[str] = ()):
        self._env_values = tuple(env_values)
        self._known_safe = frozenset(known_safe)
        self._inside_key = False
        self._masked: dict[str, str] = {}

    def __call__(self, line: str) -> str:
        if self._inside_key:
            end = _PEM_END.search(line)
            if end is not None:
                self._inside_key = False
                return MASK + self(line[end.end():])
            if _PEM_BODY.fullmatch(line):  # a whole line by construction, however short
                return MASK
            self._inside_key = False  # a block that lost its END line: this line is text again
        begin = _PEM_BEGIN.search(line)
        if begin is not None and _PEM_END.search(line, begin.end()) is None:
            self._inside_key = True
            return self._mask(line[:begin.start()]) + MASK
        return self._mask(line)

    def _mask(self, line: str) -> str:
        # Only a line that may hold a secret costs a detect-secrets scan (``detected_secrets``), and a line
        # printed again (a progress bar's) is masked once: up to _LINES_KEPT distinct lines, then it starts over.
        if line not in self._masked:
            if len(self._masked) >= _LINES_KEPT:
                self._masked.clear()
            self._masked[line] = mask_strings([line], self._env_values, self._known_safe)[0][0]
        return self._masked[line]


class MaskingLogFilter(logging.Filter):
    """Masks the records of a logger before any handler sees them: papermill's logger carries what a notebook
    prints, to the console and into Dagster's event log."""

    def __init__(self, env_values: Iterable[str]):
        super().__init__()
        self._lines = LineMasker(env_values)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = "\n".join(self._lines(line) for line in message.split("\n"))
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _fewest_needles(hints: Iterable[_Hints]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[re.Pattern[str], ...]]:
    """The literals, words and patterns of ``hints``, without a literal or word that holds a word (or a literal
    that holds a literal): a line that holds it holds the other. Each costs a pass over the whole text."""
    hints = list(hints)
    words = {word for hint in hints for word in hint.words}
    words = {word for word in words if not any(other != word and other in word for other in words)}
    literals = {literal for hint in hints for literal in hint.literals if not any(word in literal.lower() for word in words)}
    literals = {literal for literal in literals if not any(other != literal and other in literal for other in literals)}
    patterns = {hint.pattern for hint in hints if hint.pattern is not None}
    return tuple(sorted(literals)), tuple(sorted(words)), tuple(sorted(patterns, key=lambda pattern: pattern.pattern))


_HINT_LITERALS, _HINT_WORDS, _HINT_PATTERNS = _fewest_needles(_DETECTOR_HINTS.values())


def candidate_lines(lines: _DistinctLines) -> dict[str, frozenset[str]]:
    """The lines detect-secrets' detectors other than the entropy ones may find something in
    (``_DETECTOR_HINTS``), each with the detectors whose hints it holds, found over the text of those lines."""
    found: set[int] = set()
    for needles, text, any_case in ((_HINT_LITERALS, lines.text, False), (_HINT_WORDS, lines.lower, True)):
        # Most are in no line: one pass in C finds that, without the search for their lines.
        found |= lines.with_strings([needle for needle in needles if needle in text], any_case=any_case)
    for pattern in _HINT_PATTERNS:
        found |= lines.matching(pattern)
    if not found:
        return {}
    candidates = _DistinctLines([lines.lines[index] for index in sorted(found)])

    @functools.cache
    def holding(needle: str, any_case: bool) -> frozenset[int]:
        if needle not in (candidates.lower if any_case else candidates.text):
            return frozenset()
        return frozenset(candidates.with_strings([needle], any_case=any_case))

    detectors: list[set[str]] = [set() for _ in candidates.lines]
    for detector, hint in _DETECTOR_HINTS.items():
        held = set().union(*(holding(literal, False) for literal in hint.literals),
                           *(holding(word, True) for word in hint.words))
        if hint.pattern is not None:
            held |= candidates.matching(hint.pattern)
        for index in held:
            detectors[index].add(detector)
    return {line: frozenset(held) for line, held in zip(candidates.lines, detectors)}


def detected_secrets(texts: Iterable[str] | _DistinctLines) -> set[str]:
    """The secret strings detect-secrets' default detectors find in ``texts``: the entropy ones over the whole
    text at once (``entropy_secrets``), the others by its per-line scan, the costly part of masking, of each
    distinct line that may hold a secret with the detectors it may hold a secret of (``candidate_lines``)."""
    lines = texts if isinstance(texts, _DistinctLines) else _DistinctLines(texts)
    return entropy_secrets(lines) | _scanned_secrets(candidate_lines(lines))


def _scanned_secrets(candidates: Mapping[str, Iterable[str]]) -> set[str]:
    """What detect-secrets' scan of each line of ``candidates``, as a text file of its own, finds with only
    that line's detectors and its false-positive filters: the line as written and, where that gives nothing,
    the line as an INI file's (its "eager" pass). Its scan of a file of many lines reads all of them as INI
    when none gives anything, so whether a line's secret was found depended on the other lines printed with it."""
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.settings import get_settings

    # A detector checks a find with its service over the network when detect-secrets is set to, and reads
    # that from its global settings, which nothing in ds-pipelines sets: a secret never leaves the process.
    if _VERIFICATION_FILTER in get_settings().filters:
        raise MaskingError("detect-secrets is set to verify secrets with their services: masking never sends one")
    scan = _scan_parts()
    found: set[str] = set()
    for line, detectors in candidates.items():
        plugins = [scan.line_plugins[name] for name in sorted(detectors)]
        for form in _scanned_forms(line.rstrip()):
            finds = [(plugin, secret.secret_value) for plugin in plugins
                     for secret in plugin.analyze_line(filename=_SCANNED_NAME, line=form)
                     if secret.secret_value and not scan.filtered_out(
                         scan.secret_filters, filename=_SCANNED_NAME, line=form, plugin=plugin,
                         secret=secret.secret_value)]
            # detect-secrets tries its line filters first, on every line; they are rarely true and cost more
            # than the detectors, so they are tried here on the lines with a find only.
            if finds and scan.filtered_out(scan.line_filters, filename=_SCANNED_NAME, line=form):
                finds = []
            for plugin, secret in finds:
                found.add(secret)
                if isinstance(plugin, RegexBasedDetector):
                    # Regex detectors report a capture group (for GitLab tokens only "glpat"): mask the whole match.
                    found |= {match.group(0).strip(_TRIM) for regex in plugin.denylist for match in regex.finditer(form)}
            if finds:
                break
    return {value for value in found if len(value) >= MIN_DETECTED_LENGTH}


def _scanned_forms(line: str) -> Iterator[str]:
    """``line`` as detect-secrets' scan reads it: as written, then as an INI file's line (``name = "value"``),
    which only a line with ``=`` or ``:`` has."""
    from detect_secrets.transformers import get_transformed_file

    yield line
    if "=" in line or ":" in line:
        file = io.StringIO(line + "\n")
        file.name = _SCANNED_NAME
        yield from get_transformed_file(file, use_eager_transformers=True) or ()


@dataclass(frozen=True)
class _ScanParts:
    """detect-secrets' detectors, and the false-positive filters its scan applies to what its detectors find
    (to the entropy ones' finds here, and its line filters after its per-line scan). Made once: its settings
    cost ~0.3 ms each time they are set up, more than the scan of a line, and the console masks a line at a time."""

    entropy_plugins: tuple[Any, ...]
    # For each of ``entropy_plugins``, a string of its characters only.
    whole_strings: tuple[re.Pattern[str], ...]
    # Filters of a found string (``secret``, with its ``line``, ``plugin`` and ``filename``), and of a line.
    secret_filters: tuple[Any, ...]
    line_filters: tuple[Any, ...]
    # A ``name = value`` line whose value is one of the detectors' strings (``_ASSIGNED_VALUE``).
    assigned_value: re.Pattern[str]
    # The other detectors, by their class name (``_DETECTOR_HINTS``).
    line_plugins: Mapping[str, Any]

    @staticmethod
    def filtered_out(filters: Iterable[Any], **values: Any) -> bool:
        return any(check(**{name: values[name] for name in check.injectable_variables}) for check in filters
                   if check.path not in _FILTER_PRECHECKS or _FILTER_PRECHECKS[check.path].search(values["line"]))


_FILTER_VALUES = frozenset({"filename", "line", "plugin", "secret"})
# What a line must hold for a filter to hold true of it, read off the filter's pattern: the indirect-reference
# filter (``secret = get_secret()``) tries its pattern from every position of a line, ~80 us a line, and needs
# an opening bracket and then a closing one.
_FILTER_PRECHECKS = {"detect_secrets.filters.heuristic.is_indirect_reference": re.compile(r"[\[(].*[\])]")}


@functools.cache
def _scan_parts() -> _ScanParts:
    from detect_secrets.core.scan import get_filters_with_parameter
    from detect_secrets.settings import default_settings, get_filters, get_plugins, get_settings

    with default_settings():
        get_settings().disable_filters(_ALLOWLIST_FILTER)
        try:
            plugins = tuple(plugin for plugin in get_plugins() if type(plugin).__name__ in _ENTROPY_DETECTORS)
            line_plugins = {type(plugin).__name__: plugin for plugin in get_plugins()
                            if type(plugin).__name__ not in _ENTROPY_DETECTORS}
            secret_filters = tuple(get_filters_with_parameter("secret"))
            line_filters = tuple(check for check in get_filters_with_parameter("line")
                                 if "secret" not in check.injectable_variables)
        finally:
            get_filters.cache_clear()
            get_plugins.cache_clear()
    for check in secret_filters + line_filters:
        if not check.injectable_variables <= _FILTER_VALUES:
            raise MaskingError(f"detect-secrets' filter {check.path} needs "
                               f"{sorted(check.injectable_variables - _FILTER_VALUES)}, which masking does not give it")
    charset = "".join(sorted(set().union(*(plugin.charset for plugin in plugins))))
    whole_strings = tuple(re.compile(f"[{re.escape(plugin.charset)}]+") for plugin in plugins)
    return _ScanParts(plugins, whole_strings, secret_filters, line_filters,
                      re.compile(_ASSIGNED_VALUE.format(chars=re.escape(charset))), line_plugins)


def _detector_entropy(plugin: Any, string: str) -> float:
    """The entropy an entropy detector gives ``string``. Its formula runs over the detector's whole charset
    (~40 us a string); this one, over the string's own characters, gives the same. Only the hex detector
    changes it, and only for a number (all digits, which it scores lower): it is asked for those itself."""
    return plugin.calculate_shannon_entropy(string) if string.isdigit() else _entropy(string)


def _is_digest(name: str, value: str) -> bool:
    """``name: value`` writes a digest: the name is a hash algorithm's and the value a hex digest of its length."""
    length = _DIGEST_HEX_LENGTHS.get(name.strip().strip("\"'").lower())
    return length == len(value) and _HEX.fullmatch(value) is not None


def entropy_secrets(lines: _DistinctLines) -> set[str]:
    """What detect-secrets' entropy detectors find in ``lines``, with its filters: their strings in quotes and
    the values of ``name = value`` lines above their entropy limit, found over the whole text at once. Only a
    string above a detector's limit costs the filters."""
    scan = _scan_parts()
    found: set[str] = set()
    values = [(match.group("value"), match.start("value")) for match in scan.assigned_value.finditer(lines.text)
              if not _is_digest(match.group("name"), match.group("value"))]
    for plugin, whole in zip(scan.entropy_plugins, scan.whole_strings):
        quoted = ((match.group(2), match.start(2)) for match in plugin.regex.finditer(lines.text))
        assigned = ((value, position) for value, position in values if whole.fullmatch(value))
        checked: dict[str, bool] = {}
        for string, position in itertools.chain(quoted, assigned):
            if string in found:
                continue
            random = checked.get(string)
            if random is None:
                # A string of n distinct characters scores at most log2(n).
                random = checked[string] = (len(set(string)) > 2 ** plugin.entropy_limit
                                            and _detector_entropy(plugin, string) > plugin.entropy_limit)
            if not random:
                continue
            line = lines.lines[lines.index_at(position)]
            if not (scan.filtered_out(scan.line_filters, filename=_SCANNED_NAME, line=line)
                    or scan.filtered_out(scan.secret_filters, filename=_SCANNED_NAME, line=line, plugin=plugin,
                                         secret=string)):
                found.add(string)
    return {value for value in found if len(value) >= MIN_DETECTED_LENGTH}


def mask_notebook(src: Path, dst: Path, env: Mapping[str, str] | None = None) -> int:
    """Write ``src`` (an .ipynb) to ``dst`` with every secret masked in cell sources, outputs, error
    tracebacks and metadata; returns the number of occurrences masked. ``dst`` may be ``src``."""
    return mask_notebook_file(Path(src), Path(dst), Masker.from_env(env).env_values)


def mask_notebook_file(src: Path, dst: Path, env_values: Iterable[str], known_safe: frozenset[str] = frozenset()) -> int:
    """``mask_notebook`` with the environment's secret values already read (``Masker.env_values``)."""
    try:
        notebook = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaskingError(f"notebook {src} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskingError(f"notebook {src} cannot be read as JSON (an .ipynb file was expected): {exc}") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise MaskingError(f"notebook {src} is not a Jupyter notebook (expected a JSON object with 'cells')")
    masked, count = mask_json(notebook, env_values, known_safe)
    if count == 0 and dst.exists() and dst.resolve() == src.resolve():
        return 0  # nothing to mask in place: the file stays byte for byte
    write_atomically(dst, lambda tmp: tmp.write_text(json.dumps(masked, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"))
    return count


# Binary formats whose bytes hide their content (compressed or archived): a secret in them cannot be seen.
_COMPRESSED_FORMATS = {
    b"PK\x03\x04": "a zip archive (also .npz, .xlsx, PyTorch's .pt)", b"\x1f\x8b": "gzip-compressed",
    b"BZh": "bzip2-compressed", b"\xfd7zXZ\x00": "xz-compressed", b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"7z\xbc\xaf\x27\x1c": "a 7z archive", b"\x04\x22\x4d\x18": "lz4-compressed",
    b"%PDF-": "a PDF (its streams are compressed)", b"PAR1": "a Parquet file (its pages are compressed)",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The strings a binary file holds, as ``strings`` finds them: a secret written by accident is printable.
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{8,}")


def mask_kept_file(file: Path, env_values: Iterable[str], known_safe: frozenset[str] = frozenset()) -> int:
    """Mask a file CI keeps (an artifact, a file the notebook wrote) in place, rewritten only when something
    was masked; returns the occurrences. A text file (UTF-8 without NUL bytes) is masked; a binary file is
    checked and kept as it is when it holds no secret: its printable strings and a PNG's text chunks.
    Raises ``UnmaskableFileError`` for a binary file that holds a secret or whose content cannot be checked."""
    env_values = tuple(env_values)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise MaskingError(f"{file} cannot be read, so it cannot be masked: {exc}") from None
    try:
        text = None if b"\x00" in data else data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        masked, count = mask_strings([text], env_values, known_safe)
        if count:
            write_atomically(file, lambda tmp: tmp.write_text(masked[0], encoding="utf-8", newline=""))
        return count
    for magic, kind in _COMPRESSED_FORMATS.items():
        if data.startswith(magic):
            raise UnmaskableFileError(f"{file} is {kind}: its content cannot be checked for secrets")
    strings = [run.decode("ascii") for run in _PRINTABLE_RUN.findall(data)]
    if data.startswith(_PNG_SIGNATURE):
        try:
            strings += _png_texts(data)
        except ValueError as exc:
            raise UnmaskableFileError(f"{file} is a PNG whose text cannot be checked for secrets: {exc}") from None
    found = mask_strings(strings, env_values, known_safe)[1]
    found += sum(data.count(value.encode("utf-8")) for value in env_values if not value.isascii())
    if found:
        raise UnmaskableFileError(f"{file} is a binary file that holds {found} secret occurrence{'s' if found != 1 else ''}, "
                                  "which cannot be masked without breaking it")
    return 0


def _png_texts(data: bytes) -> list[str]:
    """The decompressed texts of a PNG's zTXt and iTXt chunks (tEXt is plain, found as printable strings)."""
    texts, position = [], len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        try:
            if kind == b"zTXt":
                _, _, rest = body.partition(b"\x00")
                texts.append(zlib.decompress(rest[1:]).decode("latin-1"))
            elif kind == b"iTXt":
                _, _, rest = body.partition(b"\x00")
                compressed, rest = rest[0], rest[2:]
                text = rest.split(b"\x00", 2)[-1]
                texts.append((zlib.decompress(text) if compressed else text).decode("utf-8", errors="replace"))
        except (zlib.error, IndexError) as exc:
            raise ValueError(f"its {kind.decode('latin-1')} chunk cannot be read ({exc})") from None
    return texts


def mask_json_file(file: Path, env_values: Iterable[str], known_safe: frozenset[str] = frozenset()) -> int:
    """Mask a JSON file in place (rewritten only when something was masked); returns the occurrences."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskingError(f"{file} cannot be read as JSON, so it cannot be masked: {exc}") from None
    masked, count = mask_json(data, env_values, known_safe)
    if count:
        write_atomically(file, lambda tmp: tmp.write_text(json.dumps(masked, indent=2, sort_keys=True) + "\n", encoding="utf-8"))
    return count


def mask_json(data: Any, env_values: Iterable[str], known_safe: frozenset[str] = frozenset()) -> tuple[Any, int]:
    """A copy of JSON ``data`` with every text (values and keys; base64 images skipped) masked, and the count."""
    leaves: list[str] = []
    _collect(data, leaves)
    masked, count = mask_strings(leaves, env_values, known_safe)
    return _replace(data, iter(masked)), count


def _is_binary(key: object) -> bool:
    return isinstance(key, str) and bool(_BINARY_MIME.match(key))


def _collect(node: Any, leaves: list[str]) -> None:
    if isinstance(node, str):
        leaves.append(node)
    elif isinstance(node, list):
        for item in node:
            _collect(item, leaves)
    elif isinstance(node, dict):
        for key, value in node.items():
            leaves.append(str(key))  # keys too: in results.json, metric names are keys
            if not _is_binary(key):
                _collect(value, leaves)


def _replace(node: Any, masked: Any) -> Any:
    if isinstance(node, str):
        return next(masked)
    if isinstance(node, list):
        return [_replace(item, masked) for item in node]
    if isinstance(node, dict):
        replaced = {}
        for key, value in node.items():
            new_key = next(masked)
            replaced[new_key] = value if _is_binary(key) else _replace(value, masked)
        return replaced
    return node
