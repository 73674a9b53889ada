"""Mask secrets before anything a notebook produced is published (MR notes, wiki, releases, Slack, artifacts).

Two sources of secrets:

- the values of secret environment variables of the job that publishes: names containing TOKEN, SECRET,
  PASSWORD, PASSWD, KEY, WEBHOOK or CREDENTIAL (any case), plus ``GITLAB_TOKEN``, ``REPO_TOKEN``,
  ``MLFLOW_TRACKING_TOKEN``, ``CI_JOB_TOKEN`` and every ``SLACK_*``; values shorter than 8 characters are
  left alone (too likely to occur in harmless text);
- what detect-secrets' default plugins find (GitLab, GitHub, Slack, AWS, private keys, JWTs, basic-auth
  URLs, high-entropy strings in quotes, ``password = "..."`` ...), with its false-positive filters, except
  the ``pragma: allowlist secret`` comment, which a notebook must not be able to use to publish a secret.

Every occurrence is replaced with ``[MASKED]``. Over-masking is preferred to a leak: a regex detector's
whole match is masked (``https[MASKED]host`` for a basic-auth URL), and a value found once is masked
everywhere in the text or notebook.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


class MaskingError(DsPipelinesError):
    """A notebook that cannot be read or written while masking it."""


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """The values to mask from ``env``, longest first (so a secret containing another is masked whole)."""
    values = {
        value
        for name, value in env.items()
        if value
        and len(value) >= MIN_ENV_SECRET_LENGTH
        and (name.upper() in SECRET_NAMES or name.upper().startswith(SECRET_PREFIXES) or SECRET_NAME.search(name))
    }
    # The same secret URL-encoded (in a printed URL or query string) is masked too.
    values |= {quote(value, safe="") for value in values}
    return sorted(values, key=len, reverse=True)


@dataclass(frozen=True)
class Masker:
    """Masks the secrets of one environment; build it once per publish (``Masker.from_env``)."""

    env_values: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Masker:
        return cls(tuple(secret_env_values(os.environ if env is None else env)))

    def mask(self, text: str) -> str:
        return self.mask_counting(text)[0]

    def mask_counting(self, text: str) -> tuple[str, int]:
        """``text`` with secrets masked, and how many occurrences were masked."""
        masked, count = mask_strings([text], self.env_values)
        return masked[0], count


def mask_text(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with the secrets of ``env`` (default: ``os.environ``) and detected secrets replaced by ``[MASKED]``."""
    return Masker.from_env(env).mask(text)


def mask_strings(texts: list[str], env_values: Iterable[str]) -> tuple[list[str], int]:
    """Mask several strings together: a secret detected in one is masked in all. Returns the masked
    strings and the number of occurrences masked."""
    secrets = set(env_values) | detected_secrets(texts)
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)
    if not ordered:
        return list(texts), 0
    pattern = re.compile("|".join(re.escape(secret) for secret in ordered))
    masked, total = [], 0
    for text in texts:
        replaced, count = pattern.subn(MASK, text)
        masked.append(replaced)
        total += count
    return masked, total


def detected_secrets(texts: Iterable[str]) -> set[str]:
    """The secret strings detect-secrets finds in ``texts`` (all lines scanned in one pass)."""
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    if not lines:
        return set()
    from detect_secrets.core.scan import scan_file
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.settings import (
        default_settings,
        get_filters,
        get_plugins,
        get_settings,
    )

    found: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-mask-") as scratch:
        # detect-secrets applies its false-positive filters only when scanning files.
        scanned = Path(scratch) / "published-text.txt"
        scanned.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with default_settings():
            get_settings().disable_filters(_ALLOWLIST_FILTER)
            get_filters.cache_clear()
            try:
                plugins = {plugin.secret_type: plugin for plugin in get_plugins()}
                for secret in scan_file(str(scanned)):
                    line = lines[secret.line_number - 1]
                    plugin = plugins.get(secret.type)
                    if isinstance(plugin, RegexBasedDetector):
                        # Regex detectors report a capture group (for GitLab tokens only "glpat"): mask the whole match.
                        found |= {
                            match.group(0).strip(_TRIM) for regex in plugin.denylist for match in regex.finditer(line)
                        }
                    if secret.secret_value:
                        found.add(secret.secret_value)
            finally:
                get_filters.cache_clear()
    return {value for value in found if len(value) >= MIN_DETECTED_LENGTH}


def mask_notebook(src: Path, dst: Path, env: Mapping[str, str] | None = None) -> int:
    """Write ``src`` (an .ipynb) to ``dst`` with every secret masked in cell sources, outputs, error
    tracebacks and metadata; returns the number of occurrences masked. ``dst`` may be ``src``."""
    return mask_notebook_file(Path(src), Path(dst), Masker.from_env(env).env_values)


def mask_notebook_file(src: Path, dst: Path, env_values: Iterable[str]) -> int:
    """``mask_notebook`` with the environment's secret values already read (``Masker.env_values``)."""
    try:
        notebook = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaskingError(f"notebook {src} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskingError(f"notebook {src} cannot be read as JSON (an .ipynb file was expected): {exc}") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise MaskingError(f"notebook {src} is not a Jupyter notebook (expected a JSON object with 'cells')")
    masked, count = mask_json(notebook, env_values)
    if count == 0 and dst.exists() and dst.resolve() == src.resolve():
        return 0  # nothing to mask in place: the file stays byte for byte
    write_atomically(dst, lambda tmp: tmp.write_text(json.dumps(masked, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"))
    return count


def mask_json_file(file: Path, env_values: Iterable[str]) -> int:
    """Mask a JSON file in place (rewritten only when something was masked); returns the occurrences."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskingError(f"{file} cannot be read as JSON, so it cannot be masked: {exc}") from None
    masked, count = mask_json(data, env_values)
    if count:
        write_atomically(file, lambda tmp: tmp.write_text(json.dumps(masked, indent=2, sort_keys=True) + "\n", encoding="utf-8"))
    return count


def mask_json(data: Any, env_values: Iterable[str]) -> tuple[Any, int]:
    """A copy of JSON ``data`` with every text (values and keys; base64 images skipped) masked, and the count."""
    leaves: list[str] = []
    _collect(data, leaves)
    masked, count = mask_strings(leaves, env_values)
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
