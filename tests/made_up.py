"""Secret-shaped values made up at run time, so that the repository holds no token-shaped literal for
secret scanners to report, while detectors that go by shape still recognise the values in output."""

from __future__ import annotations

import secrets
import string


def random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
