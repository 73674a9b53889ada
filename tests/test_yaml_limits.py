"""YAML is read with limits, and parsed values are quoted in messages with a bounded repr: a config that is
deeply nested or an alias bomb is refused with a message naming the file, never a RecursionError or a message
the size of its expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ds_pipelines.errors import ConfigError, shown
from ds_pipelines.project.config import MAX_YAML_DEPTH, MAX_YAML_VALUES, read_yaml
from ds_pipelines.project.folder import entry_problems

# Nine levels of nine aliases each: a few hundred bytes that expand to 9**9 values.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9))


def read(tmp_path: Path, text: str):
    file = tmp_path / "config.yaml"
    file.write_text(text)
    return read_yaml(file, display="configs/config.yaml")


def test_nesting_deeper_than_the_limit_is_refused_naming_the_file_and_line(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, "ok: 1\nextra: " + "[" * 500 + "]" * 500 + "\n")
    assert str(caught.value) == (f"configs/config.yaml: refused: nested more than {MAX_YAML_DEPTH} levels deep "
                                 "at line 2")


def test_nesting_at_the_limit_is_read(tmp_path: Path):
    depth = MAX_YAML_DEPTH - 2  # the document's mapping and the innermost value are levels too
    value = read(tmp_path, "extra: " + "[" * depth + "1" + "]" * depth + "\n")["extra"]
    for _ in range(depth):
        (value,) = value
    assert value == 1


def test_an_alias_bomb_is_refused_before_anything_walks_it(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, ALIAS_BOMB)
    assert str(caught.value) == f"configs/config.yaml: refused: its aliases expand to more than {MAX_YAML_VALUES} values"


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, "loop: &loop [1, *loop]\n")
    assert "refused: the alias at line 1 refers to a value that holds it" in str(caught.value)


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path: Path):
    data = read(tmp_path, "base: &base {device: cpu, checks: [a, b]}\nnb:\n  <<: *base\n  device: gpu\nsame: *base\n")
    assert data["nb"] == {"device": "gpu", "checks": ["a", "b"]}
    assert data["same"] == {"device": "cpu", "checks": ["a", "b"]}


def test_a_wide_structure_is_shown_cut_short():
    wide = [[list(range(1000))] * 1000] * 1000  # would repr() to gigabytes
    text = shown(wide)
    assert len(text) <= 300 and text.startswith("[[[0, 1, 2, 3, 4, 5, ...]") and text.endswith("...")
    assert shown("x" * 10_000).count("x") < 130
    assert shown({"device": "tpu"}) == "{'device': 'tpu'}"  # small values read as before


def test_a_registry_entry_error_quotes_a_huge_value_briefly():
    huge = [["x"] * 1000] * 1000
    (problem,) = entry_problems("notebooks/a.ipynb", {"device": huge})
    assert str(problem).startswith("configs/notebooks.yaml: notebooks.notebooks/a.ipynb.device: expected one of")
    assert len(str(problem)) < 400
