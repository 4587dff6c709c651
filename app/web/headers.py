"""Security headers for the HTML pages (``/`` and ``/docs``): one Content-Security-Policy builder."""

from __future__ import annotations


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
