"""Publishing a run: the merge-request comment, wiki pages, GitLab releases with the model promotion, the
Slack alert, and a results folder masked for CI artifacts.

``render/`` holds the pure renderers (text in, markdown or Slack mrkdwn out: every notebook string masked,
then escaped); the modules beside it do the I/O. Every input is a typed parameter (the results, a GitLab
client, a masker, the run's origin, the tracking URI): nothing here reads the environment, so the CLI (from
GitLab CI's variables) and the Dagster ops (from their resources and run tags) call the same functions.
No click and no Dagster here. Errors are DsPipelinesError subclasses; ``outcome.strict_exit_code`` says
which ones publishing may shrug off (best effort).
"""
