"""``python -m app.dev``: the whole service for development (what ``make run`` runs)."""

from .stack import main

main()
