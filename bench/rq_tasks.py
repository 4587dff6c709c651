"""The benchmark's jobs for plain RQ: the same work as offload's ``noop`` and ``count_words``,
called by import path as any RQ job is, with no validation around them."""

from app import tasks


def noop() -> dict:
    return tasks.noop()


def count_words(text: str) -> dict:
    return tasks.count_words(text)
