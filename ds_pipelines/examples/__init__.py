"""Helpers of the reference notebooks, kept apart from the notebook API: what a project's notebooks share."""
