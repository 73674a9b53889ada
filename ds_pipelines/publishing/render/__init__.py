"""Pure renderers: a run's results (and what was looked up about them) in, page text out. No I/O."""
