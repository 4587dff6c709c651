"""Who is calling: API keys from ``API_KEYS``, as Bearer tokens or HTTP Basic passwords.

Keys are looked up by the SHA-256 digest of the presented secret (a dict built once per set of
keys), so the cost does not grow with the number of keys, and the time taken says nothing
about how much of a real secret was guessed (only digests are compared, and a digest's prefix
tells nothing of the secret). The found key's secret is then checked with
:func:`hmac.compare_digest`. A request is looked up once: the result is kept in ``flask.g``
for the rate limiter's key function, the view and ``/metrics`` alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading

from flask import Request, g, has_request_context

from .problems import ApiProblem
from ..jobs import ANONYMOUS, Principal
from ..settings import ApiKey, Settings

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
        except (binascii.Error, UnicodeDecodeError, ValueError):  # ValueError: not ASCII ("Basic é")
            return None
        return decoded.partition(":")[2] or None
    return None


_INDEXES: dict[int, tuple[tuple[ApiKey, ...], dict[bytes, ApiKey]]] = {}
_INDEX_LOCK = threading.Lock()


def _index(keys: tuple[ApiKey, ...]) -> dict[bytes, ApiKey]:
    """SHA-256 of each secret -> its key, built once per ``API_KEYS`` tuple."""
    cached = _INDEXES.get(id(keys))
    if cached is not None and cached[0] is keys:
        return cached[1]
    index = {hashlib.sha256(key.secret.get_secret_value().encode("utf-8")).digest(): key for key in keys}
    with _INDEX_LOCK:
        if len(_INDEXES) > 16:  # settings objects of finished tests
            _INDEXES.clear()
        _INDEXES[id(keys)] = (keys, index)  # the tuple is kept alive, so its id is not reused
    return index


def _match(secret: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    presented = secret.encode("utf-8")
    key = _index(keys).get(hashlib.sha256(presented).digest())
    if key is not None and hmac.compare_digest(presented, key.secret.get_secret_value().encode("utf-8")):
        return key
    return None


_UNSET = object()


def _lookup(request: Request, settings: Settings) -> tuple[str | None, ApiKey | None]:
    """The presented secret (or None) and the key it names (or None), once per request."""
    cache = g.get("_offload_auth", _UNSET) if has_request_context() else _UNSET
    if cache is not _UNSET:
        return cache  # type: ignore[return-value]
    secret = _presented_secret(request)
    found = (secret, _match(secret, settings.api_keys) if secret else None)
    if has_request_context():
        g._offload_auth = found
    return found


def identify(request: Request, settings: Settings) -> str | None:
    """The name of the key presented, if it is a valid one; never raises (for rate limits)."""
    if not settings.auth_enabled:
        return None
    key = _lookup(request, settings)[1]
    return f"key:{key.name}" if key else None


def authenticate(request: Request, settings: Settings, *, admin: bool = False, basic: bool = False) -> Principal:
    """The caller's principal, or a 401/403 problem.

    With no keys configured everyone is the anonymous principal (which the start-up check
    keeps to loopback unless ALLOW_ANONYMOUS is set).
    """
    if not settings.auth_enabled:
        return ANONYMOUS
    challenge = f'Basic realm="{REALM}"' if basic else f'Bearer realm="{REALM}"'
    secret, key = _lookup(request, settings)
    if secret is None:
        raise ApiProblem(401, "send an API key as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": challenge})
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
