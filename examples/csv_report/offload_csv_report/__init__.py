"""An example of a team's own offload task, installable on its own: see ``tasks.py`` and the README."""
