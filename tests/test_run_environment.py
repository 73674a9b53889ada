"""The environment a commit's run may see: the allow-list, and no way around it through ``/proc``.

A process may read the environment of every process of its user (``/proc/<pid>/environ``), its parent's
included: what the deployment's processes hold would reach a commit's code that way, allow-list or not. The
processes that start a commit's code hide their environment (``project.run_environment.hide_environment``).
Root may read any process's environment, so the probe runs as an unprivileged user (``postgres``, the
database server's, which the machine image has) with the system's Python and this module's own file.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from required import require

from ds_pipelines.project import run_environment

PLANTED = "planted-deployment-token-" + "q7" * 10
PROBE = f"""
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from run_environment import environment_hidden, hide_environment
if sys.argv[2] == "hide":
    assert hide_environment() and environment_hidden()
# The commit's code: started with an empty environment, it reads its parent's.
read_parent = "import os\\ntry:\\n    print(open(f'/proc/{{os.getppid()}}/environ', 'rb').read().decode())\\nexcept OSError as error:\\n    print('refused:', type(error).__name__)"
print(subprocess.run([sys.executable, "-c", read_parent], env={{}}, capture_output=True, text=True, check=True).stdout)
"""


def probe(hide: bool) -> str:
    """What a child process of an unprivileged parent started with a token reads of the parent's environment."""
    require("; ".join(what for what, ok in [("setpriv (util-linux)", shutil.which("setpriv")),
                                            ("a postgres user", _user("postgres")),
                                            ("root, to run the probe as another user", os.geteuid() == 0)] if not ok))
    folder = Path(tempfile.mkdtemp(prefix="ds-pipelines-probe-"))
    try:
        folder.chmod(0o755)
        shutil.copy(run_environment.__file__, folder / "run_environment.py")
        (folder / "probe.py").write_text(PROBE)
        for path in folder.iterdir():
            path.chmod(0o644)
        done = subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "/usr/bin/python3",
                               str(folder / "probe.py"), str(folder), "hide" if hide else "keep"],
                              cwd=folder, capture_output=True, text=True, timeout=60,
                              env={"PATH": os.environ["PATH"], "DEPLOYMENT_TOKEN": PLANTED})
        assert done.returncode == 0, done.stderr
        return done.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_a_child_reads_its_parents_environment_unless_the_parent_hides_it():
    assert PLANTED in probe(hide=False), "the probe would not see a leak"
    assert probe(hide=True).strip() == "refused: PermissionError"


@pytest.mark.parametrize("module", ["ds_pipelines.definitions", "ds_pipelines.execution.run_launcher"])
def test_the_processes_that_start_commits_code_hide_their_environment(module: str):
    """The code location's processes (they execute the runs, the commit sensor's too), and the daemon and the
    webserver (they load the run launcher), as soon as they load ds-pipelines."""
    check = f"import {module}\nfrom ds_pipelines.project.run_environment import environment_hidden\nprint(environment_hidden())"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_plain_process_is_not_hidden():
    done = subprocess.run([sys.executable, "-c", "from ds_pipelines.project.run_environment import environment_hidden\n"
                                                 "print(environment_hidden())"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
