"""Every command and sub-command answers ``--help`` with a description, without starting Dagster."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ds_pipelines.cli import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("path", list(all_commands(cli)), ids=lambda p: " ".join(p) or "ds-pipelines")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="ds-pipelines")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = cli
    for name in path:
        command = command.commands[name]
    summary = " ".join(command.help.split("\n\n")[0].split())  # click re-wraps the text
    assert summary and summary in " ".join(result.output.split())


def test_commands_are_registered():
    assert {"run", "detect", "ui", "mlflow-ui"} <= set(cli.commands)
