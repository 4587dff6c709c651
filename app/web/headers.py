"""Headers written in one place: the request id a client may send, and the HTML pages' security
headers (``/`` and ``/docs``: one Content-Security-Policy builder)."""

from __future__ import annotations

#: An ``X-Request-ID`` the server keeps (any other is replaced): the access line and the document
#: (its answer header's ``pattern``) both read this one text.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


def content_security_policy(*, inline_styles: bool = False) -> str:
    """Only this origin's scripts, styles, images and API: a page loads nothing from anywhere
    else. ``inline_styles`` allows ``style=""`` attributes (Swagger UI sets a few)."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )
