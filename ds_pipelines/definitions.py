"""The Dagster code location: ``dg dev``, ``dagster dev -w workspace.yaml`` and ``dg check defs`` load it.

Definitions live in ``ds_pipelines/defs/``, a folder per domain (``notebooks``, ``triggers``, ``alerts``), each
with a ``definitions.py``; anything else placed there, such as what ``dg scaffold defs`` writes, is loaded
too (``dg.load_defs``). The project whose notebooks become assets is found from where the code location
starts (``ds_pipelines.project.find_project_root``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

import ds_pipelines.defs
from ds_pipelines.project.run_environment import hide_environment

# The processes that load the code location execute runs, the commit sensor's among them: a commit's code
# must not read their environment, and with it the deployment's credentials, through /proc.
hide_environment()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_defs(defs_root=ds_pipelines.defs, project_root=Path(__file__).resolve().parent.parent)
