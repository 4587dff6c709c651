"""Gunicorn's entry point: ``gunicorn wsgi:app``.

Settings are read and validated here, once, when gunicorn imports the module; a bad
setting stops the server before it accepts a connection.
"""

from app import create_app, logs
from app.settings import get_settings

settings = get_settings()
logs.configure(settings.log_level, process="web")
settings.check_bind_is_safe()
app = create_app(settings)
