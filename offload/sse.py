"""Reading ``text/event-stream`` (server-sent events), as the WHATWG HTML standard defines it.

Only what a client of ``GET /jobs/{id}/events`` needs: ``event``, ``data`` (several ``data:``
lines join with a newline), ``id`` and ``retry`` fields, comment lines (``: keepalive``)
ignored, and an event dispatched on the blank line that ends it. Lines come already split
(httpx's ``iter_lines`` splits on CRLF, LF and CR alike), so this part has no I/O and is tested
on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import EventsUnavailable
from .models import Event, Job, Progress


@dataclass(frozen=True)
class RawEvent:
    """One dispatched event; ``data`` is still text."""

    event: str
    data: str
    id: str | None


class EventStreamParser:
    """Feed lines, get events. Keeps the last event id and the server's ``retry`` advice,
    which a reconnect sends back (``Last-Event-ID``) and waits (milliseconds)."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, lines: Iterable[str]) -> Iterator[RawEvent]:
        for line in lines:
            event = self.line(line)
            if event is not None:
                yield event

    def line(self, line: str) -> RawEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keepalive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> RawEvent | None:
        if not self._data:
            self._event = ""  # the standard: no data, no event (and the name is forgotten)
            return None
        event = RawEvent(event=self._event or "message", data="\n".join(self._data), id=self.last_event_id)
        self._event = ""
        self._data = []
        return event


def decode(raw: RawEvent) -> Event:
    """The typed event: a :class:`Job` for ``status`` and ``end``, a :class:`Progress` for
    ``progress``, the decoded JSON (or the text itself) for any other name."""
    data: Any
    try:
        data = json.loads(raw.data)
    except ValueError:
        return Event(raw.event, raw.data)
    if raw.event in ("status", "end") and isinstance(data, dict):
        data = Job.from_dict(data)
    elif raw.event == "progress" and isinstance(data, dict):
        data = Progress.from_dict(data)
    return Event(raw.event, data)


def expect_event_stream(content_type: str, path: str) -> None:
    """A 2xx answer that is not an event stream is a server without live events behind a
    catch-all route (or a proxy's page): not something to parse."""
    if not content_type.startswith("text/event-stream"):
        raise EventsUnavailable(f"GET {path} answered {content_type or 'no content type'}, not text/event-stream")
