"""Aliases in the MLflow model registry, also on servers without them (GitLab's MLflow-compatible API).

``ds-pipelines release`` promotes a version by alias, or where the server has no alias endpoints, by the
model version tag ``ds-pipelines.alias=<alias>`` (older versions keep theirs: the newest version carrying
the tag is the promoted one). Scoring resolves ``models:/name@alias`` the same way, so a model released on
GitLab's MLflow API is the one the inference notebook loads. No Dagster imports: the notebooks use it.
"""

from __future__ import annotations

import re

ALIAS_TAG = "ds-pipelines.alias"
"""Model version tag standing in for an alias on servers without aliases (GitLab's MLflow API)."""
_UNSUPPORTED_CODES = {"ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED"}
_UNSUPPORTED_TEXT = re.compile(r"\b(404|405|501)\b|not found|not allowed|not implemented", re.IGNORECASE)
_ALIAS_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)")


def unsupported_endpoint(exc: BaseException) -> bool:
    """Whether an MLflow error says the server lacks the endpoint (GitLab's MLflow API and aliases), as
    opposed to refusing the request (unknown model, bad version, permissions)."""
    if getattr(exc, "error_code", None) in _UNSUPPORTED_CODES:
        return True
    # A server that is not MLflow answers in its own JSON ({"error": "404 Not Found"}): no MLflow error code.
    payload = getattr(exc, "json", None)
    return isinstance(payload, dict) and "error_code" not in payload and bool(_UNSUPPORTED_TEXT.search(str(payload)))


def alias_uri_parts(uri: str) -> tuple[str, str] | None:
    """(name, alias) of ``models:/name@alias``; None for any other URI."""
    match = _ALIAS_URI.fullmatch(uri)
    return (match["name"], match["alias"]) if match else None


def version_tagged_with_alias(client, name: str, alias: str) -> str | None:
    """The newest version of ``name`` tagged ``ds-pipelines.alias=<alias>``; None when no version is."""
    if "'" in name or "\\" in name:
        return None
    tagged = [v for v in client.search_model_versions(f"name = '{name}'") if (v.tags or {}).get(ALIAS_TAG) == alias]
    return str(max(tagged, key=lambda v: int(v.version)).version) if tagged else None
