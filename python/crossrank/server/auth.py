"""API keys: ``Authorization: Bearer <key>`` checked in constant time.

Keys come from ``--api-key`` (repeatable) and the ``CROSSRANK_API_KEYS`` environment variable
(comma-separated; preferred, since command lines are visible to other local users). They are
never logged: the access log records neither headers nor keys.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable

ENV_VAR = "CROSSRANK_API_KEYS"


def load_keys(
    cli_keys: Iterable[str] | None = None, environ: dict[str, str] | None = None
) -> tuple[str, ...]:
    """Return the configured keys (command line first, then the environment), without duplicates.

    Raises
    ------
    ValueError
        When a key is empty or contains whitespace or a comma (it could never be sent intact).
    """
    env = os.environ if environ is None else environ
    keys: list[str] = list(cli_keys or [])
    raw = env.get(ENV_VAR, "")
    keys.extend(k.strip() for k in raw.split(",") if k.strip())
    out: list[str] = []
    for key in keys:
        if not key or any(c.isspace() for c in key) or "," in key:
            raise ValueError(
                "an API key must be non-empty and contain no whitespace or commas; "
                f"check --api-key and {ENV_VAR}"
            )
        if key not in out:
            out.append(key)
    return tuple(out)


class KeyChecker:
    """Check ``Authorization`` headers against a set of keys.

    Parameters
    ----------
    keys
        Accepted keys; empty means authentication is off.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: bytes | None) -> bool:
        """Return whether the raw ``Authorization`` header value carries an accepted key."""
        if not self._keys:
            return True
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        # Compare against every key (no early exit) so timing reveals neither which key nor how many.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(token, key)
        return ok
