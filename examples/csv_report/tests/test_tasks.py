"""The csv_report task as a plain function: offload.testing runs it with a LocalContext, no Redis.

Run with offload's ``make test`` (its pyproject puts ``examples/csv_report`` on the path), or in a
venv of their own: ``pip install -e . -e 'examples/csv_report[test]' && pytest examples/csv_report/tests``.
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import pytest
from offload_csv_report import tasks as module
from offload_csv_report.tasks import (
    CHUNK_ROWS,
    MAX_BAD_ROWS,
    MAX_GROUPS,
    ReportCancelled,
    csv_report,
)
from pydantic import ValidationError

import offload
import offload.tasks
from offload.testing import LocalContext, run

SALES = """region,product,amount,units
north,apples,10.10,3
south,pears,5.5,1
north,pears,0.2,
west,apples,100,10
north,apples,0.1,2
"""


def field_errors(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {".".join(map(str, error["loc"])): error["msg"] for error in excinfo.value.errors()}


# --- totals and grouping ----------------------------------------------------------------------


def test_totals_are_exact_decimal_sums_and_means() -> None:
    result = run(csv_report, csv=SALES, sum=["amount", "units"])

    assert result["rows"] == 5
    assert result["columns"] == ["region", "product", "amount", "units"]
    # Added as decimals: 10.10 + 5.5 + 0.2 + 100 + 0.1 is 115.9, not 115.89999999999999.
    assert result["totals"]["amount"] == {"sum": 115.9, "count": 5, "mean": 23.18}
    # The empty "units" cell is skipped: four values, not five, and the row is not bad.
    assert result["totals"]["units"] == {"sum": 16, "count": 4, "mean": 4}
    assert isinstance(result["totals"]["units"]["sum"], int)
    assert result["groups"] is None
    assert result["bad_rows"] == [] and result["bad_row_count"] == 0
    json.dumps(result, allow_nan=False)  # the job's result must be plain JSON


def test_ten_times_a_tenth_is_exactly_one() -> None:
    # Floats would give 0.9999999999999999; decimals give the whole number, as an int.
    result = run(csv_report, csv="price\n" + "0.1\n" * 10, sum=["price"])
    assert result["totals"]["price"] == {"sum": 1, "count": 10, "mean": 0.1}
    assert isinstance(result["totals"]["price"]["sum"], int)


def test_grouping_counts_and_totals_each_value() -> None:
    result = run(csv_report, csv=SALES, group_by="region", sum=["amount"])

    assert list(result["groups"]) == ["north", "south", "west"]  # sorted by value
    north = result["groups"]["north"]
    assert north["rows"] == 3
    assert north["totals"]["amount"] == {"sum": 10.4, "count": 3, "mean": pytest.approx(10.4 / 3)}
    assert result["groups"]["west"] == {"rows": 1, "totals": {"amount": {"sum": 100, "count": 1, "mean": 100}}}
    assert sum(group["rows"] for group in result["groups"].values()) == result["rows"]


def test_group_without_sum_columns_only_counts() -> None:
    result = run(csv_report, csv=SALES, group_by="product")
    assert result["groups"] == {"apples": {"rows": 3, "totals": {}}, "pears": {"rows": 2, "totals": {}}}
    assert result["totals"] == {}


def test_other_delimiter_quoted_fields_bom_and_padded_header() -> None:
    text = '\ufeffname; amount\n"Smith; J.";"1e3"\n"multi\nline";-2.5\n'
    result = run(csv_report, csv=text, delimiter=";", sum=["amount"])
    assert result["columns"] == ["name", "amount"]  # no BOM, header names stripped
    assert result["rows"] == 2
    assert result["totals"]["amount"]["sum"] == 997.5


def test_windows_and_old_mac_line_endings_read_alike() -> None:
    unix = run(csv_report, csv=SALES, group_by="region", sum=["amount"])
    for ending in ("\r\n", "\r"):
        text = SALES.replace("\n", ending)
        ctx = LocalContext(csv_report)
        assert run(csv_report, ctx, csv=text, group_by="region", sum=["amount"]) == unix
        assert ctx.progress_reports == [(len(text), len(text))]


def test_without_header_columns_are_numbered() -> None:
    result = run(csv_report, csv="a,1\nb,2\na,3\n", has_header=False, group_by="1", sum=["2"])
    assert result["columns"] == ["1", "2"]
    assert result["rows"] == 3
    assert result["groups"]["a"]["totals"]["2"]["sum"] == 4


def test_the_registered_example_gives_the_documented_report() -> None:
    result = run(csv_report, **csv_report.example)
    assert result["groups"]["north"]["totals"]["amount"]["sum"] == 12.25
    assert result["totals"]["amount"] == {"sum": 17.75, "count": 3, "mean": pytest.approx(17.75 / 3)}


# --- bad rows -----------------------------------------------------------------------------------


def test_bad_rows_are_listed_with_their_line_numbers_and_left_out() -> None:
    text = (
        "region,amount\n"  # line 1
        "north,10\n"  # 2
        "\n"  # 3: a blank line is no row at all
        "south,ten\n"  # 4: not a number
        "west,1,extra\n"  # 5: a field too many
        '"east\n'  # 6-7: a quoted field spanning two lines, one field short
        'coast"\n'
        "north,5\n"  # 8
        "south,NaN\n"  # 9: not a finite number
        "south,1e400\n"  # 10: out of range
    )
    result = run(csv_report, csv=text, group_by="region", sum=["amount"])

    assert result["bad_rows"] == [
        {"line": 4, "error": "column 'amount': 'ten' is not a number"},
        {"line": 5, "error": "3 fields where the header has 2"},
        {"line": 6, "error": "1 fields where the header has 2"},
        {"line": 9, "error": "column 'amount': 'NaN' is not a number"},
        {"line": 10, "error": "column 'amount': '1e400' is not a number"},
    ]
    assert result["bad_row_count"] == 5
    assert result["rows"] == 7
    assert result["totals"]["amount"]["sum"] == 15
    assert list(result["groups"]) == ["north"]  # bad rows count in no group


def test_an_unreadable_record_is_a_bad_row_and_reading_goes_on() -> None:
    huge = "x" * 200_000  # over the csv module's field size limit (131,072)
    result = run(csv_report, csv=f"a,b\n1,{huge}\n2,3\n", sum=["a"])
    assert result["rows"] == 2
    assert [row["line"] for row in result["bad_rows"]] == [2]
    assert "field larger than field limit" in result["bad_rows"][0]["error"]
    assert result["totals"]["a"]["sum"] == 2


def test_bad_rows_are_bounded_but_all_counted() -> None:
    text = "a\n" + "x\n" * (MAX_BAD_ROWS + 50)
    result = run(csv_report, csv=text, sum=["a"])
    assert len(result["bad_rows"]) == MAX_BAD_ROWS
    assert result["bad_row_count"] == MAX_BAD_ROWS + 50
    assert result["bad_rows"][-1]["line"] == MAX_BAD_ROWS + 1


def test_a_long_bad_cell_is_quoted_shortened() -> None:
    result = run(csv_report, csv="a\n" + "y" * 500 + "\n", sum=["a"])
    assert result["bad_rows"][0]["error"] == f"column 'a': '{'y' * 40}...' is not a number"


# --- progress and cancellation ------------------------------------------------------------------


def big_csv(rows: int) -> str:
    return "n,v\n" + "".join(f"{i},{i % 7}\n" for i in range(rows))


def test_progress_is_reported_per_chunk_in_characters_and_ends_at_the_total() -> None:
    text = big_csv(2 * CHUNK_ROWS + 500)
    ctx = LocalContext(csv_report)
    result = run(csv_report, ctx, csv=text, sum=["v"])

    assert result["rows"] == 2 * CHUNK_ROWS + 500
    reports = ctx.progress_reports
    assert len(reports) == 3
    assert all(total == len(text) for _, total in reports)
    done = [done for done, _ in reports]
    assert done == sorted(done) and 0 < done[0] < done[1] < done[2]
    assert reports[-1] == (len(text), len(text))
    # The first report comes after exactly CHUNK_ROWS data rows (and the header line).
    assert done[0] == len("".join(text.splitlines(keepends=True)[: CHUNK_ROWS + 1]))


def test_a_small_file_reports_once_at_the_end() -> None:
    ctx = LocalContext(csv_report)
    run(csv_report, ctx, csv=SALES)
    assert ctx.progress_reports == [(len(SALES), len(SALES))]


class CancelAfter(LocalContext):
    """Somebody presses cancel once the task has reported ``reports`` times."""

    def __init__(self, reports: int) -> None:
        super().__init__(csv_report)
        self.reports = reports
        self.checks = 0

    def cancelled(self) -> bool:
        self.checks += 1
        return len(self.progress_reports) >= self.reports


def test_cancelled_mid_report_raises_and_stops_reading() -> None:
    ctx = CancelAfter(reports=1)
    with pytest.raises(ReportCancelled, match=f"cancelled after {CHUNK_ROWS} rows"):
        run(csv_report, ctx, csv=big_csv(5 * CHUNK_ROWS), sum=["v"])
    assert len(ctx.progress_reports) == 1  # nothing read past the chunk where it was cancelled
    assert ctx.checks == 2
    # A cancelled report is a PermanentFailure: failed at once, never retried into a whole one.
    assert isinstance(ReportCancelled("x"), offload.PermanentFailure)


def test_cancelled_before_it_starts_reads_nothing() -> None:
    ctx = LocalContext(csv_report)
    ctx.cancel_requested = True
    with pytest.raises(ReportCancelled, match="after 0 rows"):
        run(csv_report, ctx, csv=SALES)
    assert ctx.progress_reports == []


# --- what can never succeed: PermanentFailure ---------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"group_by": "country"}, "column(s) 'country' not in the header; the columns are 'region', 'product'"),
        ({"sum": ["amount", "price"]}, "column(s) 'price' not in the header"),
        ({"has_header": False, "sum": ["5"]}, "not in the rows (columns are numbered without a header)"),
    ],
)
def test_a_column_the_file_lacks_fails_permanently(fields: dict, message: str) -> None:
    with pytest.raises(offload.PermanentFailure) as excinfo:
        run(csv_report, csv=SALES, **fields)
    assert message in str(excinfo.value)
    assert not isinstance(excinfo.value, ReportCancelled)


def test_an_ambiguous_column_fails_permanently() -> None:
    with pytest.raises(offload.PermanentFailure, match="names column\\(s\\) 'amount' more than once"):
        run(csv_report, csv="amount,amount\n1,2\n", sum=["amount"])
    # A repeated column nobody asked for is no problem.
    assert run(csv_report, csv="x,x,amount\n1,2,3\n", sum=["amount"])["totals"]["amount"]["sum"] == 3


@pytest.mark.parametrize("text", ["\n\n\n", "\ufeff"])
def test_a_file_without_rows_fails_permanently(text: str) -> None:
    with pytest.raises(offload.PermanentFailure, match="the CSV has no rows"):
        run(csv_report, csv=text)


@pytest.mark.parametrize("has_header", [True, False])
def test_an_unreadable_first_row_fails_permanently(has_header: bool) -> None:
    with pytest.raises(offload.PermanentFailure, match="the first row \\(line 1\\) cannot be read: field larger"):
        run(csv_report, csv="x" * 200_000 + "\n1\n", has_header=has_header)


def test_a_header_only_file_is_an_empty_report() -> None:
    result = run(csv_report, csv="region,amount\n", group_by="region", sum=["amount"])
    assert result["rows"] == 0
    assert result["totals"] == {"amount": {"sum": 0, "count": 0, "mean": None}}
    assert result["groups"] == {}


def test_too_many_groups_fails_permanently() -> None:
    text = "id\n" + "".join(f"{i}\n" for i in range(MAX_GROUPS + 1))
    with pytest.raises(offload.PermanentFailure, match=f"more than {MAX_GROUPS} distinct values"):
        run(csv_report, csv=text, group_by="id")
    assert (
        len(run(csv_report, csv="id\n" + "".join(f"{i}\n" for i in range(MAX_GROUPS)), group_by="id")["groups"])
        == MAX_GROUPS
    )


# --- the arguments model (what POST /jobs answers 422 for) ---------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "csv"),
        ({"csv": ""}, "csv"),
        ({"csv": "a", "delimiter": ";;"}, "delimiter"),
        ({"csv": "a", "delimiter": ""}, "delimiter"),
        ({"csv": "a", "delimiter": '"'}, "delimiter"),
        ({"csv": "a", "delimiter": "\n"}, "delimiter"),
        ({"csv": "a", "group_by": ""}, "group_by"),
        ({"csv": "a", "sum": "amount"}, "sum"),
        ({"csv": "a", "sum": ["a", "a"]}, "sum"),
        ({"csv": "a", "sum": [""]}, "sum.0"),
        ({"csv": "a", "sum": [str(i) for i in range(51)]}, "sum"),
        ({"csv": "a", "has_header": "perhaps"}, "has_header"),
        ({"csv": "a", "group-by": "a"}, "group-by"),  # unknown fields are refused
    ],
)
def test_invalid_arguments_name_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        run(csv_report, **fields)
    assert list(field_errors(excinfo)) == [field]


def test_the_model_describes_the_task_and_marks_the_upload() -> None:
    schema = csv_report.args.model_json_schema()
    assert schema["properties"]["csv"]["x-offload-upload"] is True
    assert schema["properties"]["csv"]["x-offload-long-text"] is True
    assert csv_report.upload_fields == ("csv",)
    assert csv_report.description.startswith("Report on a CSV file")
    assert schema["additionalProperties"] is False


# --- registration and discovery -----------------------------------------------------------------


def test_registered_with_its_defaults() -> None:
    assert offload.tasks.registry.get("csv_report") is csv_report
    assert csv_report.defaults() == offload.TaskDefaults(queue="low", timeout_seconds=300, max_retries=1)


def test_the_distribution_names_the_module_in_the_entry_point_group() -> None:
    # What makes every offload process load the task: installing the package is enough (the
    # discovery itself is tested with an installed distribution in offload's
    # tests/worker/test_user_tasks.py). offload's make test puts the package on the path without
    # installing it, so that its own stacks do not all serve csv_report.
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["name"] == "offload-example-csv-report"
    module_name = project["project"]["entry-points"][offload.tasks.ENTRY_POINT_GROUP]["csv_report"]
    assert module_name == "offload_csv_report.tasks"
    assert module_name in offload.tasks.load(module_name, use_entry_points=False)
    assert offload.tasks.registry.get("csv_report").func is module.csv_report.func


def test_logs_carry_counts_never_cell_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run(csv_report, csv="name,amount\nalice@example.com,12345.67\nbob,oops\n", group_by="name", sum=["amount"])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "csv_report: 2 rows (1 bad)" in logged
    for value in ("alice@example.com", "12345.67", "oops", "bob"):
        assert value not in logged
