"""Fake credentials in the formats GitLab's secret detection (gitleaks rules) knows, made up per test run.

None is a real token: each is random characters in the shape of one. A notebook that prints them all is the
planted-credentials notebook of the masking tests; ``CREDENTIALS`` is what must never appear anywhere.
"""

from __future__ import annotations

import base64
import json
import random
import string

_RANDOM = random.Random()


def _chars(alphabet: str, length: int) -> str:
    return "".join(_RANDOM.choice(alphabet) for _ in range(length))


ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def _jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': _chars(ALNUM, 12), 'admin': True})}.{_chars(ALNUM + '-_', 43)}"


def _pem_body() -> list[str]:
    return [_chars(ALNUM + "+/", 64) for _ in range(6)] + [_chars(ALNUM + "+/", 20) + "=="]


def make_credentials() -> dict[str, str]:
    """Name → one fake credential (the PEM key's body lines are checked one by one: ``secret_parts``)."""
    pem_body = _pem_body()
    return {
        "gitlab_pat": "glpat-" + _chars(ALNUM + "_-", 20),
        "aws_access_key_id": "AKIA" + _chars(UPPER_DIGITS, 16),
        "aws_secret_access_key": _chars(ALNUM + "+/", 40),
        "slack_bot_token": f"xoxb-{_chars(string.digits, 12)}-{_chars(string.digits, 12)}-{_chars(ALNUM, 24)}",
        "slack_webhook": f"https://hooks.slack.com/services/T{_chars(UPPER_DIGITS, 8)}/B{_chars(UPPER_DIGITS, 8)}/{_chars(ALNUM, 24)}",
        "github_pat": "ghp_" + _chars(ALNUM, 36),
        "stripe_secret": "sk_live_" + _chars(ALNUM, 24),
        "google_api_key": "AIza" + _chars(ALNUM + "-_", 35),
        "jwt": _jwt(),
        "pem_private_key": "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(pem_body) + "\n-----END RSA PRIVATE KEY-----",
        "url_password": _chars(string.ascii_letters, 6) + "Pw" + _chars(string.digits, 6),
        "npm_token": "npm_" + _chars(ALNUM, 36),
        "pypi_token": "pypi-AgEIcHlwaS5vcmc" + _chars(ALNUM + "-_", 60),
        "sendgrid_key": f"SG.{_chars(ALNUM + '-_', 22)}.{_chars(ALNUM + '-_', 43)}",
        "twilio_key": "SK" + _chars(HEX, 32),
        "netrc_password": "nrc" + _chars(ALNUM, 14),
        "pgpass_password": "pgp" + _chars(ALNUM, 14),
        "service_account_key_id": _chars(HEX, 40),
        # Printed as `name value`, no `=` after the name: neither detect-secrets nor gitleaks' generic rule finds it.
        "aws_secret_key_after_its_name": _chars(ALNUM + "+/", 40),
        "mlflow_token_after_its_name": _chars(HEX, 32),
    }


def secret_parts(credentials: dict[str, str]) -> list[str]:
    """Every string that must not appear: each credential, and each line of the PEM key on its own."""
    parts = [value for name, value in credentials.items() if name != "pem_private_key"]
    parts += [line for line in credentials["pem_private_key"].splitlines() if "-----" not in line]
    parts.append(credentials["jwt"].rsplit(".", 1)[1])  # the signature on its own is the secret part
    return parts


def printing_cell(credentials: dict[str, str]) -> str:
    """Source of a notebook cell that prints every credential the ways people do."""
    c = credentials
    lines = [
        f"print('gitlab', {c['gitlab_pat']!r})",
        f"print('aws_access_key_id =', {c['aws_access_key_id']!r})",
        f"print('aws_secret_access_key = \"' + {c['aws_secret_access_key']!r} + '\"')",
        f"print('slack', {c['slack_bot_token']!r})",
        f"print('webhook', {c['slack_webhook']!r})",
        f"print('github', {c['github_pat']!r})",
        f"print('stripe', {c['stripe_secret']!r})",
        f"print('google', {c['google_api_key']!r})",
        f"print('jwt', {c['jwt']!r})",
        f"print({c['pem_private_key']!r})",
        f"print('db', 'postgresql://analyst:' + {c['url_password']!r} + '@db.example.com:5432/app')",
        f"print('npm', {c['npm_token']!r})",
        f"print('pypi', {c['pypi_token']!r})",
        f"print('sendgrid', {c['sendgrid_key']!r})",
        f"print('twilio', {c['twilio_key']!r})",
        f"print('machine api.example.com login analyst password ' + {c['netrc_password']!r})",
        f"print('db.example.com:5432:app:analyst:' + {c['pgpass_password']!r})",
        "import json",
        f"print(json.dumps({{'type': 'service_account', 'private_key_id': {c['service_account_key_id']!r}}}))",
        f"print('aws_secret_access_key', {c['aws_secret_key_after_its_name']!r})",
        f"print('mlflow_tracking_token', {c['mlflow_token_after_its_name']!r})",
    ]
    return "\n".join(lines)
