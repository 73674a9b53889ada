"""The documentation site builds without a warning (``mkdocs build --strict``: broken links and heading anchors
fail), its CLI reference, generated from the click commands, has a section for every command, and README.md
stays a first page: at most 150 lines, every relative link pointing at a file of the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ds_pipelines.cli import cli

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_MAX_LINES = 150
CLI_PAGE = Path("cli") / "index.html"  # docs/cli.md, with mkdocs' default use_directory_urls


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # What the build needs of this environment, no more; NO_MKDOCS_2_WARNING hides mkdocs-material's notice
    # about MkDocs 2.0, which is no warning of the site.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    env["NO_MKDOCS_2_WARNING"] = "1"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"mkdocs build --strict failed (exit {built.returncode}):\n{built.stdout}\n{built.stderr}"
    return out


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every command under ``group`` as its path of names, sub-commands of groups included."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def test_the_site_builds_without_a_warning(site):
    assert (site / "index.html").is_file()


@pytest.mark.parametrize("path", list(commands(cli)), ids=" ".join)
def test_the_cli_reference_has_a_section_for_every_command(site, path):
    page = (site / CLI_PAGE).read_text(encoding="utf-8")
    # mkdocs-click writes a heading per command, named by the command's last name ("mr" for `publish mr`).
    heading = re.compile(rf"<h[2-6][^>]*>{re.escape(path[-1])}<")
    assert heading.search(page), f"{CLI_PAGE} has no section for `ds-pipelines {' '.join(path)}`"
    assert f"ds-pipelines {' '.join(path)}" in page, f"{CLI_PAGE} does not show the usage of `ds-pipelines {' '.join(path)}`"


def test_the_readme_is_a_first_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def readme_links() -> list[str]:
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks hold no links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_every_relative_link_of_the_readme_exists():
    relative = [link for link in readme_links() if not re.match(r"[a-z][a-z0-9+.-]*:|#", link)]
    assert relative, "README.md links to no page of the documentation"
    missing = [link for link in relative if not (README.parent / link.split("#", 1)[0]).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def test_placeholders_in_help_text_stay_visible_in_the_cli_reference(site):
    """Help text such as ``DIR/<name>`` reaches the page as text (docs/hooks/placeholders.py), not as an unknown
    HTML tag that browsers hide; real markup stays markup."""
    page = (site / CLI_PAGE).read_text(encoding="utf-8")
    assert "DIR/&lt;name&gt;" in page and "<name>" not in page
    assert "<table>" in page and "<code>" in page
