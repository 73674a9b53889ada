"""What a run leaves: the results folder (typed, written and read in one module), where the run came from,
and how a notebook hands its results over. Dagster-free: the CLI, CI jobs and publishing read it."""
