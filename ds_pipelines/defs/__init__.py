"""Dagster definitions, a folder per domain (``notebooks``, ``triggers``, ``alerts``), each with its own
``definitions.py``; ``ds_pipelines.definitions`` loads the folder with ``dg.load_defs``."""
