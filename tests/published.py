"""Helpers for the publishing command tests: editable copies of the session's results folder, the CLI
run against a FakeGitLab, and what readers get from a published page (rendered HTML, hidden data)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
from markdown_it import MarkdownIt
from sandbox import CLI, Sandbox

MARKDOWN = MarkdownIt("commonmark").enable("table")


def copy_results(box: Sandbox, target: Path) -> Path:
    """A copy of the session's results folder (training then inference) that a test may change."""
    shutil.copytree(box.root / "results", target)
    return target


def edit_results(results_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to results.json in place; returns the new content."""
    file = results_dir / "results.json"
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data, indent=2))
    return data


def notebook_entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(nb for nb in data["notebooks"] if nb["name"] == name)


def fail_with_cell(results_dir: Path, name: str, source: str, outputs: list[dict[str, Any]], error: str) -> None:
    """Make notebook ``name`` of the copy a failed one: a code cell with ``source`` and ``outputs`` is
    appended to its executed notebook and is the failing cell of results.json."""
    entry = notebook_entry(json.loads((results_dir / "results.json").read_text()), name)
    path = results_dir / entry["executed_notebook"]
    notebook = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    notebook.cells.append(cell)
    nbformat.write(notebook, path)
    injected = {"injected-parameters", "injected-teardown"}
    own = [c for c in notebook.cells if c.cell_type == "code" and not injected & set(c.metadata.get("tags", []))]

    def failed(data: dict[str, Any]) -> None:
        data["status"] = "failed"
        nb = notebook_entry(data, name)
        nb.update(status="failed", failed_cell=len(own), error=error, metrics_file=None)
    edit_results(results_dir, failed)


def cli_env(box: Sandbox, fake=None, **extra: str) -> dict[str, str]:
    """The sandbox's environment (its MLflow store), GitLab pointing at ``fake``, plus ``extra``."""
    env = {k: v for k, v in box.env.items() if not k.startswith(("GITLAB_", "REPO_TOKEN", "CI_"))}
    if fake is not None:
        env.update(fake.environ())
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def assert_clean_exit(result: subprocess.CompletedProcess, code: int = 0) -> None:
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def hidden_data(text: str) -> list[Any]:
    """The JSON of every hidden data block of a page (base64: a plain search would not see inside)."""
    blocks = re.findall(r"<!-- ds-pipelines:data:[a-z-]+ ([A-Za-z0-9+/=\s]+) -->", text)
    return [json.loads(base64.b64decode("".join(block.split()))) for block in blocks]


def everything_in(text: str) -> str:
    """A page's text and its hidden data, decoded: what a secret must be in neither of."""
    return text + "".join(json.dumps(data) for data in hidden_data(text))


class Rendered(HTMLParser):
    """A page as GitLab readers get it: the HTML of its markdown, with its tags, link targets, tables
    (rows of cell texts) and visible text."""

    def __init__(self, markdown: str):
        super().__init__()
        self.tags: list[str] = []
        self.targets: list[str] = []
        self.attributes: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.text = ""
        self._cell: str | None = None
        self.feed(MARKDOWN.render(markdown))

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        attrs = dict(attrs)
        if tag in ("a", "img"):
            self.targets.append(attrs.get("href") or attrs.get("src") or "")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        self.text += data
        if self._cell is not None:
            self._cell += data
