"""Keys of ``configs/notebooks.yaml`` that a release renamed or removed, and what ``check`` says of them.

A project set up by ``ds-pipelines init`` keeps working on the next release; where a release renames or
removes a key, the project's old key gets a message naming what to write instead, never a bare "unknown key".
No key has been renamed or removed since 0.1.0, so the table is empty. A release that changes one adds an
entry, by the key's dotted path from the file's top (a notebook's settings as ``notebooks.*``), e.g.::

    "triggers.gpu_limit": KeyChange("0.2.0", renamed_to="triggers.gpu_concurrency"),
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ds_pipelines.errors import unknown_key


@dataclass(frozen=True)
class KeyChange:
    """A key renamed (``renamed_to``, a dotted path) or removed (``instead``: what to do now) in ``release``."""

    release: str
    renamed_to: str | None = None
    instead: str | None = None

    def problem(self) -> str:
        if self.renamed_to:
            return f"renamed to {self.renamed_to} in ds-pipelines {self.release}: write {self.renamed_to.rsplit('.', 1)[-1]!r} instead"
        return f"removed in ds-pipelines {self.release}: {self.instead or 'delete it'}"


REGISTRY_CHANGES: Mapping[str, KeyChange] = MappingProxyType({})


def registry_key_problem(path: str, key: object, allowed: Iterable[str],
                         changes: Mapping[str, KeyChange] = REGISTRY_CHANGES) -> str:
    """The problem of the key ``key`` at dotted ``path`` of ``configs/notebooks.yaml`` that is not among
    ``allowed``: what a release changed it to, or the keys expected and the one meant."""
    change = changes.get(path)
    return change.problem() if change else unknown_key(key, allowed)
