"""Secrets that span lines or strings, or that only their line's shape gives away, and masking a stream.

``mask_strings`` sees a notebook's output lines as separate strings in order; ``LineMasker`` sees the console
a line at a time; ``MaskingLogFilter`` masks a logger's records before its handlers (the console, Dagster's
event log) see them. The planted-credentials test (tests/test_planted_credentials.py) runs all of them together.
"""

from __future__ import annotations

import io
import logging

from planted import make_credentials, printing_cell, secret_parts

from ds_pipelines.masking import MASK, LineMasker, MaskingLogFilter, mask_strings

PEM = ["-----BEGIN RSA PRIVATE KEY-----\n", "Proc-Type: 4,ENCRYPTED\n", "MIIEowIBAAKCAQEAx1xVbq8N0qP2\n",
       "kP7bJ/a+Z=\n", "-----END RSA PRIVATE KEY-----\n"]


def printed(credentials: dict[str, str]) -> list[str]:
    out = io.StringIO()
    exec(printing_cell(credentials), {"print": lambda *args: print(*args, file=out)})
    return out.getvalue().splitlines(keepends=True)


def test_a_key_block_split_over_output_lines_is_masked_whole_and_the_lines_stay_lines():
    masked, count = mask_strings(["key:\n", *PEM, "after\n"], [])
    assert masked == ["key:\n", f"{MASK}\n", "\n", "\n", "\n", "\n", "after\n"]
    assert count == 1


def test_a_key_in_a_json_string_is_masked_with_its_id():
    key = '{"private_key_id": "0123456789abcdef0123", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIB\\n-----END PRIVATE KEY-----\\n"}'
    [masked], _ = mask_strings([key], [])
    assert masked == f'{{"private_key_id": "{MASK}", "private_key": "{MASK}\\n"}}'


def test_a_truncated_key_masks_its_body_but_not_what_follows():
    masked, _ = mask_strings(["-----BEGIN PRIVATE KEY-----\n", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", "outputs", "code"], [])
    assert masked == [f"{MASK}\n", "\n", "outputs", "code"]


def test_netrc_and_pgpass_passwords_are_masked_wherever_they_appear():
    masked, _ = mask_strings(["machine api.example.com login me password Zq8-not-a-word\n",
                              "db.example.com:5432:app:me:Pg.Pass.4711\n", "retrying with Zq8-not-a-word"], [])
    assert masked == [f"machine api.example.com login me password {MASK}\n", f"db.example.com:5432:app:me:{MASK}\n",
                      f"retrying with {MASK}"]


def test_a_stream_masks_every_planted_credential_line_by_line():
    credentials = make_credentials()
    lines = printed(credentials)
    masker = LineMasker([credentials["gitlab_pat"]])
    streamed = "".join(masker(line) for line in lines)
    assert [secret[:10] for secret in secret_parts(credentials) if secret in streamed] == []
    assert streamed.count(MASK) >= len(credentials)


def test_a_stream_shows_ordinary_lines_unchanged_and_ends_a_key_block_at_its_end_line():
    masker = LineMasker([])
    assert [masker(line.rstrip("\n")) for line in ["trial 3/30: roc_auc=0.9912 (best 0.9930 at trial 2)", *PEM, "done"]] == [
        "trial 3/30: roc_auc=0.9912 (best 0.9930 at trial 2)", MASK, MASK, MASK, MASK, MASK, "done"]


def test_the_log_filter_masks_records_before_any_handler_sees_them():
    credentials = make_credentials()
    logger = logging.getLogger("ds-pipelines-test-masking")
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    masking = MaskingLogFilter([])
    logger.addFilter(masking)
    try:
        for line in printed(credentials):
            logger.info("%s", line.rstrip("\n"))
        logger.info("cell output:\n%s\n%s", PEM[0].strip(), PEM[2].strip())
    finally:
        logger.removeFilter(masking)
        logger.removeHandler(handler)
    text = seen.getvalue()
    assert [secret[:10] for secret in secret_parts(credentials) if secret in text] == []
    assert PEM[2].strip() not in text and "cell output:" in text
