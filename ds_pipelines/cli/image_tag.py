"""``ds-pipelines image-tag``: the container image's tag, from the files that define it (``ds_pipelines.project.image``)."""

from __future__ import annotations

from pathlib import Path

import click


def _build_args(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for value in values:
        name, equals, argument = value.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", ctx=ctx, param=param)
        parsed[name] = argument
    return parsed


@click.command("image-tag")
@click.option("--project-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=".",
              show_default=True, envvar="DS_PIPELINES_PROJECT_DIR", show_envvar=True,
              help="Folder holding the Dockerfile, .dockerignore, pyproject.toml and uv.lock.")
@click.option("--prefix", default="", metavar="TEXT",
              help='Printed before each tag, e.g. "$CI_REGISTRY_IMAGE:" for full image references.')
@click.option("--release", "git_tag", metavar="GIT_TAG",
              help="Print the image tags of this release instead, one a line: v1.2.3 gives v1.2.3 and "
              "production, dev-1.2.3 gives staging-dev-1.2.3 and staging.")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE", callback=_build_args,
              help="A build argument the image is built with (repeat it, as for docker build): part of the hash.")
@click.option("--unprotected-ref", metavar="SLUG",
              help="The build is of an unprotected ref (CI_COMMIT_REF_SLUG): the tag ends in -SLUG, never "
              "the shared tag of protected refs.")
def image_tag(project_dir: Path, prefix: str, git_tag: str | None, build_args: dict[str, str],
              unprotected_ref: str | None) -> None:
    """Print the image tag: a short sha256 over the files that define the image.

    \b
    The hash covers exactly Dockerfile, .dockerignore, pyproject.toml and
    uv.lock (path and content) and the --build-arg values; notebooks,
    configs and the package code are not part of it, so the tag changes
    only when the environment does. Exit status 2 when one of those files
    is missing, a --build-arg is not NAME=VALUE or --release is given a tag
    that is no release.
    """
    from ds_pipelines.project import image

    tags = (image.release_tags(git_tag) if git_tag else
            [image.image_tag(project_dir.resolve(), build_args, unprotected_ref=unprotected_ref)])
    for tag in tags:
        click.echo(f"{prefix}{tag}")
