"""The development stack: what ``make run`` starts, and the SMTP sink that catches its mail.

``python -m app.dev`` runs :func:`app.dev.stack.main`.
"""
