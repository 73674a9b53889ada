import click


@click.command()
def detect() -> None:
    """Placeholder replaced by the trigger work."""
