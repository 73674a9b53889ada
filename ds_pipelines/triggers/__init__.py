"""What starts a run: the trigger rules (``rules``), the files a push changed (``git_changes`` with git,
``watch`` through the GitLab API), and a commit's files checked out for its run (``checkout``). Dagster-free:
``ds-pipelines detect`` (GitLab CI) and the Dagster sensors decide with the same rules."""
