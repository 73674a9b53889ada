"""Masking finds what detect-secrets finds, a text at a time: its entropy detectors run over the whole text
(``entropy_secrets``), its other detectors' per-line scan gets only the lines their hints select
(``candidate_lines``), with the detectors those hints name, and many secrets are replaced by looking them up among the text's tokens."""

from __future__ import annotations

import base64
import random
import re
import string

import pytest
from detect_secrets.core.scan import scan_file
from detect_secrets.settings import default_settings, get_plugins, transient_settings
from made_up import random_text

from ds_pipelines.masking import (
    _DETECTOR_HINTS,
    _ENTROPY_DETECTORS,
    _MAX_ALTERNATION,
    MASK,
    MIN_DETECTED_LENGTH,
    Masker,
    MaskingError,
    _DistinctLines,
    _Replacer,
    _scanned_secrets,
    candidate_lines,
    entropy_secrets,
)

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits


def test_every_default_detector_of_detect_secrets_has_hints_or_is_found_in_bulk():
    with default_settings():
        names = {type(plugin).__name__ for plugin in get_plugins()}
    get_plugins.cache_clear()
    assert names == set(_DETECTOR_HINTS) | set(_ENTROPY_DETECTORS)


def _jwt_part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# A line with a secret of each detector, and nothing else that its hints or another detector's would select.
DETECTOR_LINES = {
    "ArtifactoryDetector": f"artifactory AKC{random_text(20, ALNUM)} done",
    "AWSKeyDetector": f"using AKIA{random_text(16, string.ascii_uppercase + string.digits)} today",
    "AzureStorageKeyDetector": f"DefaultEndpointsProtocol=https;AccountKey={random_text(86, ALNUM)}==;EndpointSuffix=x",
    "BasicAuthDetector": f"cloning https://deploy:{random_text(14, ALNUM)}@example.com/repo.git",
    "CloudantDetector": f"cloudant_password = '{random_text(24, string.ascii_lowercase)}'",
    "DiscordBotTokenDetector": f"bot M{random_text(23, ALNUM)}.{random_text(6, ALNUM)}.{random_text(27, ALNUM)} ready",
    "GitHubTokenDetector": f"gh ghp_{random_text(36, ALNUM)} in use",
    "GitLabTokenDetector": f"using glpat-{random_text(20, ALNUM)} now",
    "IbmCloudIamDetector": f"ibm_cloud_iam_api_key = '{random_text(44, ALNUM)}'",
    "IbmCosHmacDetector": f"ibm_cos_secret_access_key = '{random_text(48, '0123456789abcdef')}'",
    "IPPublicDetector": "connecting to 8.8.4.4 on port 53",
    "JwtTokenDetector": "bearer " + ".".join([_jwt_part(b'{"alg":"HS256"}'), _jwt_part(b'{"sub":"1"}'),
                                                random_text(43, ALNUM)]),
    "KeywordDetector": f'db_pass = "{random_text(6, string.ascii_lowercase)}"',
    "MailchimpDetector": f"list {random_text(32, LOWER_ALNUM)}-us12 synced",
    "NpmDetector": f"//registry.npmjs.org/:_authToken=npm_{random_text(36, ALNUM)}",
    "OpenAIDetector": f"calling sk-{random_text(20, ALNUM)}T3BlbkFJ{random_text(20, ALNUM)} now",
    "PrivateKeyDetector": "PuTTY-User-Key-File-2: ssh-rsa",
    "PypiTokenDetector": f"upload pypi-AgEIcHlwaS5vcmc{random_text(70, ALNUM)} done",
    "SendGridDetector": f"mail SG.{random_text(22, ALNUM)}.{random_text(43, ALNUM)} sent",
    "SlackDetector": f"posting xoxb-{random.randrange(10**11, 10**12)}-{random_text(24, LOWER_ALNUM)} now",
    "SoftlayerDetector": f"softlayer_api_key = '{random_text(64, LOWER_ALNUM)}'",
    "SquareOAuthDetector": f"square sq0csp-{random_text(43, ALNUM)} done",
    "StripeDetector": f"charging sk_live_{random_text(24, ALNUM)} now",
    "TelegramBotTokenDetector": f"bot {random.randrange(10**8, 10**9)}:{random_text(35, ALNUM)} ready",
    "TwilioKeyDetector": f"sms AC{random_text(32, LOWER_ALNUM)} sent",
}


def _found_by(detector: str, line: str, tmp_path) -> set[str]:
    """What detect-secrets' scan of a text file holding ``line`` alone finds with ``detector`` alone."""
    scanned = tmp_path / "line.txt"
    scanned.write_text(line + "\n")
    with transient_settings({"plugins_used": [{"name": detector}]}):
        return {secret.secret_value for secret in scan_file(str(scanned))}


def _raw_finds(detector: str, line: str) -> set:
    """What ``detector`` finds in ``line``, before detect-secrets' filters."""
    with transient_settings({"plugins_used": [{"name": detector}]}):
        (plugin,) = get_plugins()
        return plugin.analyze_line(filename="line.txt", line=line)


@pytest.mark.parametrize("detector", sorted(DETECTOR_LINES))
def test_a_line_only_one_detector_finds_a_secret_in_gets_its_scan_and_is_masked(detector, tmp_path):
    line = DETECTOR_LINES[detector]
    assert _raw_finds(detector, line), f"the example line holds nothing for {detector}"
    hinted = candidate_lines(_DistinctLines([line]))
    assert list(hinted) == [line] and detector in hinted[line]
    found = _found_by(detector, line, tmp_path)
    # An address is digits only, which detect-secrets' filters drop: its detector finds nothing in a scan.
    assert bool(found) == (detector != "IPPublicDetector")
    masked = Masker().mask(line)
    for secret in found:
        assert secret not in masked and MASK in masked


def test_lines_without_any_detector_hint_skip_the_per_line_scan():
    lines = ["epoch 3 step 41/1000 loss=0.12345 validation_auc=0.8734", "41,0.87345123451234,1",
             f"{{'row': 7, 'run': '{random_text(32, '0123456789abcdef')}'}}"]
    assert candidate_lines(_DistinctLines(lines)) == {}


HEX = "0123456789abcdef"
BASE64 = ALNUM + "+/"


def _random_id() -> str:
    """32 hex digits, each of the 16 twice: an entropy of 4.0, always above the hex detector's limit (a random
    draw may fall below it, and is then no secret)."""
    return "".join(random.sample(HEX, 16) + random.sample(HEX, 16))


ENTROPY_LINES = [
    f"print('{random_text(40, BASE64)}')",  # quoted, random base64
    f'{{"row": 3, "run": "{random_text(32, HEX)}"}}',  # quoted, random hex
    f"user_id = '{random_text(32, HEX)}'",  # an id: the id filter keeps it
    INDIRECT_REFERENCE := f"value = get_setting('{random_text(40, BASE64)}')",  # an indirect reference: filtered
    "seq = 'abcdefghijklmnopqrstuvwxyz0123456789'",  # sequential: filtered
    "number = '12345678901234567890'",  # a number: the hex detector scores it low
    f"uuid: '{random_text(8, HEX)}-{random_text(4, HEX)}-4{random_text(3, HEX)}-8{random_text(3, HEX)}-{random_text(12, HEX)}'",
    f"template = '${{{random_text(30, string.ascii_letters)}}}'",
    "words = 'only lower case words here'",
    f"two = '{random_text(32, HEX)}' and \"{random_text(40, BASE64)}\"",
]


def test_the_entropy_detectors_in_bulk_find_what_their_per_line_scan_finds(tmp_path):
    expected = set()
    for line in ENTROPY_LINES:
        if line is INDIRECT_REFERENCE:
            continue  # see below
        for detector in _ENTROPY_DETECTORS:
            expected |= _found_by(detector, line, tmp_path)
    assert expected, "the lines hold random strings"
    assert entropy_secrets(_DistinctLines(ENTROPY_LINES)) == expected
    # detect-secrets' filters leave the id, the indirect reference, the sequence and the number alone.
    for kept in ENTROPY_LINES[2:6]:
        assert re.search(r"'([^']+)'", kept).group(1) not in expected
    # Alone in a file, the indirect reference's string is found by detect-secrets' second, "eager" pass: it reads
    # the text as an INI file, and the quotes it puts around the value hide the call from its filter. Its
    # filter's intent is kept here, in any text.
    argument = re.search(r"'([^']+)'", INDIRECT_REFERENCE).group(1)
    assert _found_by("Base64HighEntropyString", INDIRECT_REFERENCE, tmp_path) == {argument}
    assert entropy_secrets(_DistinctLines([INDIRECT_REFERENCE])) == set()


def test_the_value_of_a_name_value_line_is_checked_unquoted_as_an_ini_file_would_be():
    token = _random_id()
    assert entropy_secrets(_DistinctLines([f"run: {token}", f"other = '{token[:8]}'"])) == {token}
    assert Masker().mask(f"note\nMLflow run = {token}\nsee above") == f"note\nMLflow run = {MASK}\nsee above"
    # A value with other characters, or a line that is not name = value, is left alone.
    assert entropy_secrets(_DistinctLines([f"run: {token} (done)", f"run {token}", f"  indented: {token}"])) == set()


def test_many_secrets_are_masked_wherever_they_occur_as_one_pattern_of_them_all_would():
    tokens = [_random_id() for _ in range(_MAX_ALTERNATION + 50)]
    env_value = "correct horse battery staple 42"
    lines = [f"{{'row': {i}, 'run': '{token}'}}" for i, token in enumerate(tokens)]
    # Unquoted, inside a longer run of token characters, twice in one run, and beside a secret variable's value.
    lines += [f"url?run={tokens[0]}&x=1", f"prefix{tokens[1]}suffix", f"{tokens[2]}{tokens[3]}", f"{env_value}{tokens[4]}"]
    text = "\n".join(lines)
    masker = Masker((env_value,))
    masked, count = masker.mask_counting(text)
    one_pattern = re.compile("|".join(map(re.escape, sorted(set(tokens) | {env_value}, key=len, reverse=True))))
    assert (masked, count) == one_pattern.subn(MASK, text)
    assert not any(token in masked for token in tokens)
    assert masked.splitlines()[-4:] == [f"url?run={MASK}&x=1", f"prefix{MASK}suffix", MASK * 2, MASK * 2]


def test_the_token_lookup_masks_the_longest_secret_starting_at_a_position():
    long, short = random_text(40, HEX), None
    short = long[:32]
    others = {random_text(32, HEX) for _ in range(_MAX_ALTERNATION)}
    replace = _Replacer(others | {long, short})
    assert replace(f"a {long} b {short}x c") == (f"a {MASK} b {MASK}x c", 2)
    assert replace(f"{short}{long[32:]}") == (MASK, 1)  # the whole of the longer one


@pytest.mark.parametrize("after, filtered", [
    ("x = 1", False),
    # detect-secrets' indirect-reference filter (tried here after its scan, only on lines with a bracket) drops
    # what its scan finds on a line with an assignment of a call, as its own scan does.
    ("x = f(y)", True),
])
def test_the_line_filters_drop_what_the_per_line_scan_finds_as_detect_secrets_does(after, filtered, tmp_path):
    password = "horse" + random_text(10, string.ascii_lowercase)
    line = f'password = "{password}"; {after}'
    assert _found_by("KeywordDetector", line, tmp_path) == (set() if filtered else {password})
    assert Masker().mask(line) == (line if filtered else line.replace(password, MASK))


def _found_by_each(detectors: frozenset[str], lines: list[str], tmp_path) -> set[str]:
    """What detect-secrets' scan of each of ``lines`` as a text file of its own finds with ``detectors``."""
    scanned = tmp_path / "line.txt"
    found = set()
    with transient_settings({"plugins_used": [{"name": detector} for detector in sorted(detectors)]}):
        for line in lines:
            scanned.write_text(line + "\n")
            found |= {secret.secret_value for secret in scan_file(str(scanned))}
    return found


# Lines for the per-line scan: found as written, found only in their INI form (detect-secrets' eager pass, which
# quotes the value), dropped by a filter, and found by no detector.
SCANNED_LINES = [
    *DETECTOR_LINES.values(),
    f"password = hunter{random_text(6, string.ascii_lowercase)}",
    f"db_pass: letmein{random.randrange(100, 999)}",
    f"  api_key = {random_text(12, ALNUM)}",
    QUOTED_SECRET := f'secret = "{random_text(9, string.ascii_lowercase)}"',
    f"password = get_password('{random_text(8, string.ascii_lowercase)}')",
    "password = '${DB_PASSWORD}'",
    "classifier: depth=6 key columns chosen",
]


def test_the_per_line_scan_finds_what_detect_secrets_finds_in_each_line_as_a_file_of_its_own(tmp_path):
    hinted = candidate_lines(_DistinctLines(SCANNED_LINES))
    assert set(hinted) == set(SCANNED_LINES)
    by_detectors: dict[frozenset[str], list[str]] = {}
    for line, detectors in hinted.items():
        by_detectors.setdefault(detectors, []).append(line)
    for detectors, lines in by_detectors.items():
        expected = _found_by_each(detectors, lines, tmp_path)
        found = _scanned_secrets(dict.fromkeys(lines, detectors))
        assert {secret for secret in expected if len(secret) >= MIN_DETECTED_LENGTH} <= found, (detectors, lines)
        # More only where a regex detector reports part of its match (GitHub's "ghp") or its blanks too: its
        # whole match is masked, without the blanks.
        assert all(any(secret in whole or whole in secret for secret in expected) for whole in found - expected)
    # The eager pass found the unquoted values, even when another line with them finds something as written.
    unquoted = [line for line in SCANNED_LINES if line.lstrip().startswith(("password = hunter", "db_pass:", "api_key"))]
    detectors = frozenset({"KeywordDetector"})
    found = _scanned_secrets(dict.fromkeys([QUOTED_SECRET, *unquoted], detectors))
    assert {line.split("=" if "=" in line else ":")[1].strip() for line in unquoted} <= found


def test_what_masks_a_line_does_not_depend_on_the_lines_printed_with_it():
    password = "hunter" + random_text(8, string.ascii_lowercase)
    alone = Masker().mask(f"password = {password}")
    # The other line needs the same detectors, and gives a find as written.
    together = Masker().mask(f'password = {password}\npassword = "{random_text(9, string.ascii_lowercase)}"')
    assert alone == f"password = {MASK}"
    assert together.splitlines()[0] == alone


def test_masking_refuses_to_run_where_detect_secrets_would_verify_a_secret_over_the_network():
    verifying = {"plugins_used": [{"name": "KeywordDetector"}],
                 "filters_used": [{"path": "detect_secrets.filters.common.is_ignored_due_to_verification_policies",
                                   "min_level": 2}]}
    line = f'password = "{random_text(12, string.ascii_lowercase)}"'
    with transient_settings(verifying), pytest.raises(MaskingError, match="verify secrets"):
        Masker().mask(line)
    assert Masker().mask(line) == f'password = "{MASK}"'
