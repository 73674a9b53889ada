"""Errors that ds-pipelines reports to people: each names the file, key or value at fault."""

from __future__ import annotations


class DsPipelinesError(Exception):
    """Base class: the CLI prints these as ``error: <message>`` and exits non-zero, without a traceback."""


class ConfigError(DsPipelinesError):
    """A config file that cannot be read or does not match its schema."""

    def __init__(self, file: str, key: str | None, problem: str):
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class NotebookNotFoundError(DsPipelinesError):
    def __init__(self, notebook: str, known: list[str]):
        listing = ", ".join(known) if known else "none"
        super().__init__(f"notebook {notebook!r} does not exist (notebooks of this project: {listing})")


class AssetNameCollisionError(DsPipelinesError):
    """Notebooks whose file names become the same Dagster asset name: the asset graph can hold only one."""

    def __init__(self, name: str, paths: list[str]):
        self.name, self.paths = name, tuple(paths)
        super().__init__(
            f"{' and '.join(self.paths)} both become the Dagster asset {name!r} (asset names keep the letters, digits "
            f"and _ of the file name): rename one of them"
        )


class ProjectProblemsError(DsPipelinesError):
    """Every problem ``ds-pipelines check`` found in a project, reported together."""

    def __init__(self, problems: list[DsPipelinesError]):
        self.problems = list(problems)
        # One problem a line, each with the CLI's "error: " in front as the first gets it (ds_pipelines.cli.main).
        super().__init__("\nerror: ".join(str(problem) for problem in self.problems))


class NotebookInputError(DsPipelinesError):
    """Raised inside a notebook when its input data or model does not fit its config."""
