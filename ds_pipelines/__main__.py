"""``python -m ds_pipelines``: the CLI, for processes that know the interpreter but not the script path."""

from ds_pipelines.cli import main

main()
