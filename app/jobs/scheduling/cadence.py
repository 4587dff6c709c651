"""When a periodic schedule runs: the ticks of a cron expression (UTC) or of a fixed interval.

Pure functions of the schedule and a moment (Unix seconds), no Redis and no clock of their own:
the tickers pass the Redis server's time, so workers on hosts whose clocks disagree still agree
on which tick is due. Every tick is a whole second (cron ticks are whole minutes), which is what
makes a tick usable in a job id.

Cron expressions are parsed by croniter (the library RQ's own cron uses), always in UTC: there is
no daylight-saving hour that runs twice or not at all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterBadDateError, CroniterError, croniter

#: The longest interval an every_seconds schedule may have: 366 days.
MAX_EVERY_SECONDS = 366 * 24 * 3600
MAX_CRON_LENGTH = 120
#: The @-names croniter knows, as in Vixie cron (``@reboot`` has no meaning here).
CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})

_SEPARATORS = re.compile(r"[\s,/-]+")


def _field(value: str) -> str:
    term = rf"(\*|{value}(-{value})?)(/[1-9][0-9]?)?"
    return rf"{term}(,{term})*"


#: What a cron expression may look like, exactly: five fields of numbers in range, ``*``, ranges,
#: lists and steps (month and weekday names in capitals), single spaces between, or an @-name.
#: The OpenAPI document declares it, so clients and fuzzers know the form the server takes;
#: croniter then checks the rest (an expression that never fires, such as ``0 0 31 2 *``).
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " ".join(
        _field(value)
        for value in (
            r"[0-5]?[0-9]",
            r"([01]?[0-9]|2[0-3])",
            r"(0?[1-9]|[12][0-9]|3[01])",
            r"(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)",
            r"([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)",
        )
    )
    + r")$"
)
_CRON = re.compile(CRON_PATTERN)


def check_cron(expression: str) -> str:
    """The expression, stripped, if it is five cron fields (minute hour day month weekday) or an
    @-name that fires at least once; a ``ValueError`` saying what is wrong otherwise.

    croniter also takes a sixth field (seconds) and a seventh (year), and ``R`` for a random
    value: neither is accepted, the first to keep to standard cron, the second because every
    worker would draw its own time.
    """
    text = expression
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_CRON_LENGTH:
        raise ValueError(f"must be at most {MAX_CRON_LENGTH} characters")
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise ValueError(f"unknown @-name; use one of {', '.join(sorted(CRON_ALIASES))}")
    else:
        fields = text.split(" ")
        if len(fields) != 5:
            raise ValueError("must have 5 fields, one space apart: minute hour day-of-month month day-of-week (UTC)")
        if any(token.upper() == "R" for field in fields for token in _SEPARATORS.split(field)):
            raise ValueError("random values (R) are not supported")
        if not _CRON.fullmatch(text):
            raise ValueError(
                "not a cron expression of the form the API takes: numbers in range, *, ranges (1-5), lists "
                "(1,15), steps (*/5), month and weekday names in capitals (JAN, MON)"
            )
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(float)
    except CroniterBadDateError:
        raise ValueError("never fires (no such date)") from None
    except CroniterError as exc:
        raise ValueError(f"not a valid cron expression: {exc}") from None
    except Exception:  # noqa: BLE001 - croniter has answered odd input with KeyError, IndexError...
        raise ValueError("not a valid cron expression") from None
    return text


@dataclass(frozen=True)
class Cadence:
    """A schedule's ticks: every ``cron`` match, or ``anchor + k * every_seconds``."""

    cron: str | None = None
    every_seconds: int | None = None
    #: For intervals: the whole second the ticks count from (when the interval was set).
    anchor: int = 0

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("a cadence is a cron expression or an interval, not both or neither")

    def next_after(self, moment: float) -> int:
        """The first tick strictly after ``moment`` (Unix seconds)."""
        if self.every_seconds is not None:
            if moment < self.anchor:
                return self.anchor
            return self.anchor + (math.floor((moment - self.anchor) / self.every_seconds) + 1) * self.every_seconds
        base = datetime.fromtimestamp(math.floor(moment), UTC)
        return int(croniter(self.cron, base).get_next(float))

    def describe(self) -> str:
        return f"cron {self.cron!r} (UTC)" if self.cron is not None else f"every {self.every_seconds} s"
