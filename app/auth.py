"""Who is calling: API keys from ``API_KEYS``, as Bearer tokens or HTTP Basic passwords.

Secrets are compared with :func:`hmac.compare_digest` against every configured key, so the
time taken says nothing about which key, or how much of one, matched.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Request

from .problems import ApiProblem
from .queueing import ANONYMOUS, Principal
from .settings import ApiKey, Settings

REALM = "offload"


def _presented_secret(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _match(secret: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    found = None
    presented = secret.encode("utf-8")
    for key in keys:  # no early exit: every key is compared
        if hmac.compare_digest(presented, key.secret.get_secret_value().encode("utf-8")):
            found = key
    return found


def identify(request: Request, settings: Settings) -> str | None:
    """The name of the key presented, if it is a valid one; never raises (for rate limits)."""
    if not settings.auth_enabled:
        return None
    secret = _presented_secret(request)
    key = _match(secret, settings.api_keys) if secret else None
    return f"key:{key.name}" if key else None


def authenticate(request: Request, settings: Settings, *, admin: bool = False, basic: bool = False) -> Principal:
    """The caller's principal, or a 401/403 problem.

    With no keys configured everyone is the anonymous principal (which the start-up check
    keeps to loopback unless ALLOW_ANONYMOUS is set).
    """
    if not settings.auth_enabled:
        return ANONYMOUS
    challenge = f'Basic realm="{REALM}"' if basic else f'Bearer realm="{REALM}"'
    secret = _presented_secret(request)
    if secret is None:
        raise ApiProblem(401, "send an API key as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": challenge})
    key = _match(secret, settings.api_keys)
    if key is None:
        raise ApiProblem(
            401,
            "the API key is not valid",
            headers={"WWW-Authenticate": f'{challenge.split(" ")[0]} realm="{REALM}", error="invalid_token"'},
        )
    principal = Principal(name=key.name, is_admin=key.role == "admin")
    if admin and not principal.is_admin:
        raise ApiProblem(
            403,
            "this needs an admin key",
            headers={"WWW-Authenticate": f'{challenge.split(" ")[0]} realm="{REALM}", error="insufficient_scope"'},
        )
    return principal
