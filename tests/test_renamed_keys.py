"""A key of configs/notebooks.yaml that a release renamed or removed gets a message naming what to write now
(the table of ds_pipelines/project/upgrades.py), never a bare "unknown key"."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from ds_pipelines.errors import ConfigError
from ds_pipelines.project.config import validate
from ds_pipelines.project.folder import _REGISTRY_KEYS, _TOP_LEVEL_KEYS
from ds_pipelines.project.settings import TriggerSettings
from ds_pipelines.project.upgrades import REGISTRY_CHANGES, KeyChange, registry_key_problem

# What an entry of the table looks like, for keys that exist today standing in for old ones.
CHANGES = {
    "triggers.gpu_limit": KeyChange("0.2.0", renamed_to="triggers.gpu_concurrency"),
    "notebooks.*.gpu": KeyChange("0.2.0", instead="write device: gpu"),
}


def test_a_renamed_trigger_setting_names_its_new_key_through_validation():
    with pytest.raises(ConfigError) as raised:
        validate(TriggerSettings, {"gpu_limit": 2}, display="configs/notebooks.yaml", key_prefix="triggers.",
                 changes=CHANGES)
    assert str(raised.value) == ("configs/notebooks.yaml: triggers.gpu_limit: renamed to triggers.gpu_concurrency in "
                                 "ds-pipelines 0.2.0: write 'gpu_concurrency' instead")


def test_a_removed_key_says_what_to_do_and_other_keys_keep_the_suggestion():
    assert registry_key_problem("notebooks.*.gpu", "gpu", sorted(_REGISTRY_KEYS), CHANGES) == (
        "removed in ds-pipelines 0.2.0: write device: gpu")
    assert registry_key_problem("notebooks.*.devise", "devise", sorted(_REGISTRY_KEYS), CHANGES).endswith(
        "did you mean 'device'?")


def accepted(path: str) -> bool:
    """Whether today's configs/notebooks.yaml takes the key at ``path`` (dotted; notebooks' settings as notebooks.*)."""
    parts = path.split(".")
    if parts[:2] == ["notebooks", "*"]:
        return len(parts) == 3 and parts[2] in _REGISTRY_KEYS
    if len(parts) == 1:
        return parts[0] in _TOP_LEVEL_KEYS
    model: type[BaseModel] = TriggerSettings
    if parts[0] != "triggers":
        return False
    for part in parts[1:-1]:
        field = model.model_fields.get(part)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return False
        model = field.annotation
    return parts[-1] in model.model_fields


@pytest.mark.parametrize("path", sorted(set(REGISTRY_CHANGES) | set(CHANGES)))
def test_every_change_in_the_table_names_a_key_gone_and_a_key_taken_today(path: str):
    """The real table (empty since 0.1.0) and the example above: a renamed key's old name must no longer be
    taken, or the entry would never be shown, and its new name must be. The example's names are today's."""
    change = REGISTRY_CHANGES.get(path) or CHANGES[path]
    if path in REGISTRY_CHANGES:
        assert not accepted(path), f"{path} is still a key of configs/notebooks.yaml"
    if change.renamed_to:
        assert accepted(change.renamed_to), f"{change.renamed_to} is no key of configs/notebooks.yaml"
    assert accepted("notebooks.*.device") and accepted("triggers.schedule.cron") and not accepted("triggers.nothing")
