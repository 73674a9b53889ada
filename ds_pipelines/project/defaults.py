"""The defaults of the ``triggers:`` section, and what a release tag is: production (``v1.2.3``, deployed),
development (``dev-1.2.3``) or none.

Shared by everyone who classifies a tag: ``ds-pipelines detect`` and the tag sensor (which tags start a
release), ``ds-pipelines release`` (which alias) and ``ds-pipelines image-tag`` (which image tags). Only the
standard library: ``image-tag`` runs in CI's docker client image, where ds-pipelines is installed without
its dependencies (``tests/test_image.py`` checks).
"""

from __future__ import annotations

import re

from ds_pipelines.errors import DsPipelinesError

PRODUCTION, DEVELOPMENT, NO_RELEASE = "production", "development", "none"

PRODUCTION_TAG = r"v[0-9]+\.[0-9]+\.[0-9]+"
"""Full-match pattern of production release tags. ``v1.2.3-rc1`` does not match: a pre-release is no
production release, and as it matches neither pattern it is no release at all (``none``)."""
DEVELOPMENT_TAG = r"dev-[0-9]+\.[0-9]+\.[0-9]+"
"""Full-match pattern of development tags: released, never deployed."""

SCORING_NOTEBOOK = "notebooks/inference_example.ipynb"
"""The notebook a ``schedule`` pipeline runs when ``triggers.schedule.notebook`` is unset."""

LIGHT_IMAGE = "python:3.11-alpine"
"""The small image of CI's detect-notebooks and of a child pipeline that runs no notebook (the component's
``light-image`` input)."""


class TagPatternError(DsPipelinesError):
    """A release tag pattern that is not a regular expression."""


def release_kind(tag: str | None, production: str = PRODUCTION_TAG, development: str = DEVELOPMENT_TAG) -> str:
    """``production``, ``development`` or ``none`` for a tag; patterns must match the whole tag."""
    if not tag:
        return NO_RELEASE
    for kind, pattern in ((PRODUCTION, production), (DEVELOPMENT, development)):
        try:
            if re.fullmatch(pattern, tag):
                return kind
        except re.error as exc:
            raise TagPatternError(f"{kind} tag pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return NO_RELEASE
