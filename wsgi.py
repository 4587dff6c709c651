"""Gunicorn's entry point: ``gunicorn wsgi:app``.

Settings are read and validated here, once, when gunicorn imports the module, and the
team's tasks are loaded; a bad setting or a task module that cannot be loaded stops the server
before it accepts a connection.
"""

from app import create_app, logs
from app.jobs import catalog
from app.settings import get_settings

settings = get_settings()
logs.configure(settings.log_level, process="web")
settings.check_bind_is_safe()
catalog.load_or_exit(worker=False)  # OFFLOAD_TASKS and the offload.tasks entry points
app = create_app(settings)
