"""``csv_report``: a report of a CSV file, as an offload task.

The text a person uploads on offload's page (or a client posts as ``csv``) is read record by
record with the standard library's :mod:`csv`. The result counts the rows, names the columns,
totals and averages the numeric columns named in ``sum`` (overall and for each value of the
``group_by`` column), and lists the rows that could not be used, by line number, instead of
failing a whole report for one bad line.

Who refuses what, and why:

* The arguments model (:class:`CsvReportArgs`) checks each field on its own, so ``POST /jobs``
  answers ``422`` for, say, a two-character delimiter before anything is queued.
* What depends on the file's content (no header row, a ``group_by`` or ``sum`` column the header
  lacks or names twice, more distinct groups than a report can hold) is found by the task and
  raised as :class:`offload.PermanentFailure`: a retry would read the same text and fail the
  same way, so the job fails at once with the reason.
* The one retry (``max_retries=1``) is for what is not the input's fault: a worker killed or
  redeployed in the middle of a report. The task is a pure function of its arguments, so
  running it again is safe.
* Cancellation is checked before each chunk of :data:`CHUNK_ROWS` rows. A cancelled job
  *raises* :class:`ReportCancelled` (a PermanentFailure) rather than returning what it has: a
  partial report stored as the job's result would pass for a whole one.

Numbers are added as :class:`decimal.Decimal`, so a column of prices totals exactly
(``0.1 + 0.2`` is ``0.3``), and become JSON numbers only in the result. Cell values never reach
the log, since a CSV may hold personal data: log lines carry counts only.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from offload import Context, PermanentFailure, long_text, task, upload

#: Rows read between two progress reports and cancellation checks. A thousand rows take about ten
#: milliseconds, so a cancel is honoured at once; a check per row would be a call per row for
#: nothing (a worker's context reads the cancel flag at most four times a second anyway).
CHUNK_ROWS = 1000
#: Bad rows listed in the result (the others are only counted): the result is stored in Redis
#: and shown on a page, and a file where every row is bad would otherwise double in size.
MAX_BAD_ROWS = 100
#: Distinct values of the ``group_by`` column a report may hold. More means the column is not a
#: grouping (an id, a timestamp) and the result would grow with the file. (A result over the
#: server's MAX_RESULT_BYTES, 1 MiB by default, fails the job with a clear error anyway: a
#: thousand groups of a few totals fit in well under that.)
MAX_GROUPS = 1000
#: Numeric columns one report may total.
MAX_SUM_COLUMNS = 50
#: Characters of a bad cell quoted back in ``bad_rows`` (enough to recognise it).
QUOTED_CELL_CHARS = 40
#: The largest power of ten a number may have: beyond a float's range, and a whole number in the
#: result is an int of that many digits (``1e999999999`` would be a gigabyte of digits).
MAX_EXPONENT = 300

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class CsvReportArgs(BaseModel):
    """Report on a CSV file: rows, columns, counts per group, totals and averages of numeric columns.

    Rows whose number of fields differs from the header's, or with a value that is not a number
    in a ``sum`` column, are left out of the totals and listed in ``bad_rows`` with their line
    numbers. An empty cell in a ``sum`` column is skipped (not counted, not bad).
    """

    # Unknown fields are refused (a misspelt "group-by" must not yield an ungrouped report).
    model_config = ConfigDict(extra="forbid")

    csv: Annotated[str, long_text, upload] = Field(
        min_length=1, description="The CSV text: the file uploaded on the page, or its text in a JSON submission."
    )
    delimiter: str = Field(
        ",", min_length=1, max_length=1, description='The one character between fields: ",", ";", "\\t", "|", ...'
    )
    group_by: ColumnName | None = Field(
        None, description="A column to group the rows by: the report counts and totals each of its values."
    )
    sum: list[ColumnName] = Field(
        default_factory=list,
        max_length=MAX_SUM_COLUMNS,
        description="Numeric columns to total and average, overall and per group.",
    )
    has_header: bool = Field(
        True, description='Whether the first row names the columns; without one, columns are named "1", "2", ...'
    )

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str) -> str:
        if value in '\r\n"':
            raise ValueError("the delimiter cannot be a line break or a double quote")
        return value

    @field_validator("sum")
    @classmethod
    def _each_column_once(cls, value: list[str]) -> list[str]:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"columns named more than once: {', '.join(twice)}")
        return value


class ReportCancelled(PermanentFailure):
    """The job was cancelled while the report was being made: no result, and no retry."""


@task(
    "csv_report",
    args=CsvReportArgs,
    # A report is batch work a person waits on for seconds, not a request path: it must not
    # hold up mails and webhooks on the default and high queues.
    queue="low",
    # A 1 MiB file (~60,000 rows) takes about a second; five minutes bound a stuck job on a larger
    # configured MAX_TEXT_BYTES without cutting a real one short.
    timeout_seconds=300,
    max_retries=1,
    example={"csv": "region,amount\nnorth,10\nsouth,5.5\nnorth,2.25\n", "group_by": "region", "sum": ["amount"]},
)
def csv_report(args: CsvReportArgs, ctx: Context) -> dict[str, Any]:
    """Read ``args.csv`` in chunks of rows, reporting progress in characters of the text.

    Progress counts characters, not rows: the number of rows is known only at the end, the
    length of the text at the start.
    """
    # A byte order mark (Excel's "CSV UTF-8") would otherwise be part of the first column's name.
    text = args.csv.removeprefix("\ufeff")
    total = len(text)
    source = _CountingLines(text)
    records = _records(csv.reader(source, delimiter=args.delimiter))

    first = next(records, None)
    if first is None:
        raise PermanentFailure("the CSV has no rows")
    if first.error is not None:  # without it there are no column names, nor a number of fields
        raise PermanentFailure(f"the first row (line {first.line}) cannot be read: {first.error}")
    if args.has_header:
        columns = [name.strip() for name in first.fields or []]
    else:
        columns = [str(position) for position in range(1, len(first.fields or []) + 1)]
        records = itertools.chain([first], records)
    report = _Report(columns, _column_indexes(columns, args), args)

    while True:
        if ctx.cancelled():
            ctx.logger.info("csv_report cancelled after %d rows", report.rows)
            raise ReportCancelled(f"cancelled after {report.rows} rows")
        chunk = list(itertools.islice(records, CHUNK_ROWS))
        for record in chunk:
            report.add(record)
        if len(chunk) < CHUNK_ROWS:
            break
        ctx.progress(source.done, total)
    ctx.progress(total, total)

    result = report.result()
    ctx.logger.info(
        "csv_report: %d rows (%d bad), %d columns, %d groups, %d columns totalled",
        report.rows, report.bad_count, len(columns), len(report.groups), len(args.sum),
    )  # fmt: skip
    return result


# --- reading ---------------------------------------------------------------------------------


class _CountingLines:
    """The text's lines, for :func:`csv.reader`, counting the characters handed out so far.

    ``newline=""`` keeps line endings as they are (what the csv module asks of a file), so a
    quoted field may hold a line break and the count ends exactly at ``len(text)``.
    """

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")
        self.done = 0

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.done += len(line)
        return line


@dataclass(frozen=True)
class _Record:
    #: The line the record starts on (1-based; a quoted field may span lines).
    line: int
    fields: list[str] | None
    #: Why the csv module could not read it, or None.
    error: str | None = None


def _records(reader: Any) -> Iterator[_Record]:
    """The records of ``reader`` with their first line numbers; blank lines are no records.

    A record the csv module refuses (a field over its size limit) is yielded with its error
    and reading goes on after it: one bad line costs one row, not the report.
    """
    line = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == line:  # nothing consumed: it would fail the same way forever
                raise PermanentFailure(f"the CSV cannot be read past line {line}: {exc}") from None
            yield _Record(line + 1, None, str(exc))
            line = reader.line_num
            continue
        start, line = line + 1, reader.line_num
        if fields:
            yield _Record(start, fields)


def _column_indexes(columns: list[str], args: CsvReportArgs) -> dict[str, int]:
    """Where each column the report needs is; PermanentFailure when one is missing or ambiguous.

    Checked here rather than in the model: the model sees the fields one by one, as a form
    shows them, while this needs the file's header, and no retry can change a header.
    """
    wanted = ([args.group_by] if args.group_by is not None else []) + list(args.sum)
    missing = [name for name in wanted if name not in columns]
    if missing:
        shown = ", ".join(repr(name) for name in columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise PermanentFailure(
            f"column(s) {', '.join(repr(name) for name in missing)} not in the "
            f"{'header' if args.has_header else 'rows (columns are numbered without a header)'}; "
            f"the columns are {shown or 'none'}"
        )
    twice = sorted({name for name in wanted if columns.count(name) > 1})
    if twice:
        raise PermanentFailure(f"the header names column(s) {', '.join(map(repr, twice))} more than once")
    return {name: columns.index(name) for name in wanted}


# --- adding up -------------------------------------------------------------------------------


@dataclass
class _Total:
    sum: Decimal = Decimal(0)
    count: int = 0

    def add(self, value: Decimal) -> None:
        self.sum += value
        self.count += 1

    def result(self) -> dict[str, Any]:
        return {
            "sum": _json_number(self.sum),
            "count": self.count,
            "mean": _json_number(self.sum / self.count) if self.count else None,
        }


@dataclass
class _Group:
    rows: int = 0
    totals: dict[str, _Total] = field(default_factory=dict)


class _Report:
    """The report so far: rows are added one by one, :meth:`result` is the job's result."""

    def __init__(self, columns: list[str], indexes: dict[str, int], args: CsvReportArgs) -> None:
        self.columns = columns
        self.has_header = args.has_header
        self.group_index = indexes[args.group_by] if args.group_by is not None else None
        self.sums = [(name, indexes[name]) for name in args.sum]
        self.rows = 0
        self.totals: dict[str, _Total] = {}
        self.groups: dict[str, _Group] = {}
        self.bad_rows: list[dict[str, Any]] = []
        self.bad_count = 0

    def add(self, record: _Record) -> None:
        self.rows += 1
        values, error = self._values(record)
        if error is not None:
            self.bad_count += 1
            if len(self.bad_rows) < MAX_BAD_ROWS:
                self.bad_rows.append({"line": record.line, "error": error})
            return
        totals = [self.totals]
        if self.group_index is not None:
            key = record.fields[self.group_index].strip()
            group = self.groups.get(key)
            if group is None:
                if len(self.groups) >= MAX_GROUPS:
                    raise PermanentFailure(
                        f"the group_by column has more than {MAX_GROUPS} distinct values (by line {record.line}):"
                        " it is not a column to group by"
                    )
                group = self.groups[key] = _Group()
            group.rows += 1
            totals.append(group.totals)
        for name, value in values:
            for where in totals:
                where.setdefault(name, _Total()).add(value)

    def _values(self, record: _Record) -> tuple[list[tuple[str, Decimal]], str | None]:
        """The numbers of the row's ``sum`` columns (empty cells left out), or why the row is bad."""
        if record.error is not None:
            return [], record.error
        fields = record.fields or []
        if len(fields) != len(self.columns):
            where = "the header has" if self.has_header else "the first row has"
            return [], f"{len(fields)} fields where {where} {len(self.columns)}"
        values = []
        for name, index in self.sums:
            cell = fields[index].strip()
            if not cell:
                continue
            number = _number(cell)
            if number is None:
                quoted = cell if len(cell) <= QUOTED_CELL_CHARS else cell[:QUOTED_CELL_CHARS] + "..."
                return [], f"column {name!r}: {quoted!r} is not a number"
            values.append((name, number))
        return values, None

    def result(self) -> dict[str, Any]:
        names = [name for name, _ in self.sums]
        return {
            "rows": self.rows,
            "columns": self.columns,
            "totals": {name: self.totals.get(name, _Total()).result() for name in names},
            "groups": None
            if self.group_index is None
            else {
                key: {
                    "rows": group.rows,
                    "totals": {name: group.totals.get(name, _Total()).result() for name in names},
                }
                for key, group in sorted(self.groups.items())
            },
            "bad_rows": self.bad_rows,
            "bad_row_count": self.bad_count,
        }


def _number(cell: str) -> Decimal | None:
    """The cell as a finite number (``12``, ``-3.5``, ``1e3``, ``1_000``), or None."""
    try:
        value = Decimal(cell)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value.adjusted() <= MAX_EXPONENT else None


def _json_number(value: Decimal) -> int | float:
    """A whole number as an int (exact, whatever its size), anything else as the nearest float."""
    return int(value) if value == value.to_integral_value() else float(value)
