"""A task's fields read from its JSON Schema, and ``submit TYPE``'s options made from them: pure
functions and a click command run in-process, with no server. The schemas are real ones, made
by pydantic from models the way the server makes them (``model_json_schema()``); what the CLI
does with them against the real server is in test_cli.py."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from offload.cli_tasks import TaskCommand, example_command, option_names
from offload.fields import TaskField, convert
from offload.models import TaskInfo
from offload.tasks import long_text, upload


class Size(str, Enum):
    small = "small"
    large = "large"


class Point(BaseModel):
    x: int
    y: int


class Everything(BaseModel):
    """Every kind of field a task's model may have."""

    name: str = Field(description="A plain text.")
    count: int
    ratio: float = 0.5
    flag: bool = False
    color: Literal["red", "green"] = "red"
    level: Literal[1, 2, 3] = 1
    size: Size = Size.small
    tags: list[str] = []
    scores: list[int] = []
    options: dict[str, Any] = {}
    point: Point | None = None
    limit: int | None = None
    either: int | str = 0
    max_len: int = 10
    body: Annotated[str, long_text] = ""
    attachment: Annotated[str, upload] | None = None
    timeout: int = 5  # a field named like one of the command's own options


def info_of(model: type[BaseModel], **extra: Any) -> TaskInfo:
    """A task as GET /tasks/{type} describes it (the shape CONTRACT.md and the server give)."""
    return TaskInfo.from_dict({
        "type": "everything", "description": model.__doc__.strip(), "args_schema": model.model_json_schema(),
        "defaults": {"queue": "low", "timeout_seconds": 180, "max_retries": 3, "result_ttl_seconds": 86400,
                     "concurrency_key": None, "concurrency_limit": None},
        "example": None, "long_text_fields": ["body"], "upload_fields": ["attachment"],
        "links": {"self": "/tasks/everything"}, **extra,
    })  # fmt: skip


EVERYTHING = info_of(Everything)


def field(name: str) -> TaskField:
    found = EVERYTHING.field_named(name)
    assert found is not None, name
    return found


# --- reading the schema -------------------------------------------------------------------------


def test_each_field_is_read_with_its_kind_requiredness_and_default():
    table = {f.name: (f.type_label, f.required, f.default if f.has_default else "-") for f in EVERYTHING.fields}
    assert table == {
        "name": ("string", True, "-"),
        "count": ("integer", True, "-"),
        "ratio": ("number", False, 0.5),
        "flag": ("boolean", False, False),
        "color": ("red | green", False, "red"),
        "level": ("1 | 2 | 3", False, 1),
        "size": ("small | large", False, "small"),  # an Enum class: a $ref into $defs
        "tags": ("list of string", False, []),
        "scores": ("list of integer", False, []),
        "options": ("object", False, {}),
        "point": ("object | null", False, None),  # an optional model: anyOf [$ref, null]
        "limit": ("integer | null", False, None),
        "either": ("integer | string", False, 0),
        "max_len": ("integer", False, 10),
        "body": ("string", False, ""),
        "attachment": ("string | null", False, None),
        "timeout": ("integer", False, 5),
    }
    assert field("name").description == "A plain text."
    assert (field("body").long_text, field("body").upload) == (True, False)
    assert (field("attachment").upload, field("attachment").long_text) == (True, False)


def test_markers_are_read_from_the_schema_itself_too():
    bare = TaskInfo.from_dict({"type": "t", "args_schema": Everything.model_json_schema()})
    assert bare.field_named("body").long_text and bare.field_named("attachment").upload
    assert not bare.field_named("name").long_text and not bare.field_named("name").upload


def test_the_task_info_keeps_the_servers_answer():
    assert EVERYTHING.defaults.queue == "low" and EVERYTHING.defaults.max_retries == 3
    assert EVERYTHING.to_dict()["links"] == {"self": "/tasks/everything"}
    newer = info_of(Everything, added_later={"a": 1})
    assert newer.to_dict()["added_later"] == {"a": 1}


# --- converting text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, value",
    [
        ("name", "  spaced @ text ", "  spaced @ text "),
        ("count", "42", 42),
        ("count", "-3", -3),
        ("ratio", "2.5", 2.5),
        ("ratio", "2", 2),
        ("ratio", "1e3", 1000.0),
        ("flag", "true", True),
        ("flag", "FALSE", False),
        ("flag", "yes", True),
        ("flag", "0", False),
        ("color", "green", "green"),
        ("level", "2", 2),
        ("size", "large", "large"),
        ("tags", "a b", "a b"),  # one item of the list: the option is repeated for each
        ("scores", "7", 7),
        ("options", '{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
        ("point", '{"x": 1, "y": 2}', {"x": 1, "y": 2}),
        ("point", "null", None),
        ("limit", "null", None),
        ("either", "5", 5),
        ("either", "five", "five"),
        ("attachment", "null", "null"),  # a text stays a text, even a nullable one
    ],
)
def test_text_is_converted_by_the_fields_type(name, text, value):
    converted = convert(field(name), text)
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("count", "4.5", "'4.5' is not a whole number"),
        ("count", "true", "is not a whole number"),
        ("count", "", "is not a whole number"),
        ("ratio", "abc", "'abc' is not a number"),
        ("ratio", "nan", "is not a finite number"),
        ("ratio", "inf", "is not a finite number"),
        ("flag", "maybe", "'maybe' is not true or false"),
        ("color", "blue", "'blue' is not one of: red, green"),
        ("level", "4", "'4' is not one of: 1, 2, 3"),
        ("size", "medium", "is not one of: small, large"),
        ("scores", "x", "is not a whole number"),
        ("options", "[1, 2]", "must be a JSON object"),
        ("options", "{a: 1}", "not JSON"),
    ],
)
def test_text_that_can_never_be_valid_is_refused(name, text, message):
    with pytest.raises(ValueError) as caught:
        convert(field(name), text)
    assert message in str(caught.value)


def test_option_names_of_a_field():
    assert option_names("max_len") == ["--max-len", "--max_len"]
    assert option_names("count") == ["--count"]
    assert option_names("timeout") == [] and option_names("json") == [] and option_names("wait") == []
    assert option_names("has space") == []


def test_the_example_as_a_command():
    info = info_of(Everything, example={"name": "a b", "count": 2, "flag": True, "tags": ["x", "y"], "timeout": 3})
    assert example_command(info) == (
        "offload submit everything --name 'a b' --count 2 --flag true --tags x --tags y --field timeout=3"
    )


# --- the command made from a task ---------------------------------------------------------------


def submit(*args: str, info: TaskInfo = EVERYTHING, input: str | None = None):
    """Run ``submit everything ARGS`` in-process; what it would send is recorded, not sent."""
    sent: list[dict] = []

    def run(ctx, task, fields, options, *, idempotency_key, wait, timeout, progress, as_json):  # as cli._submit
        flags = {"idempotency_key": idempotency_key, "wait": wait, "timeout": timeout, "progress": progress}
        sent.append({"type": task.type, "fields": fields, "options": options, "flags": {**flags, "as_json": as_json}})

    command = TaskCommand(info, run)
    result = CliRunner().invoke(command, list(args), input=input, prog_name="offload submit everything")
    return result, (sent[0] if sent else None)


def test_every_kind_of_option_reaches_the_submission(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes("first line\r\nsecond, ünïcode\n".encode())
    point = tmp_path / "point.json"
    point.write_text('{"x": 3, "y": 4}\n', encoding="utf-8")
    result, sent = submit(
        "--name", "@@literal", "--count", "7", "--ratio", "0.25", "--flag", "true", "--color", "green",
        "--level", "3", "--size", "large", "--tags", "a", "--tags", "b c", "--scores", "1", "--scores", "2",
        "--options", '{"k": "v"}', "--point", f"@{point}", "--limit", "null", "--either", "x",
        "--max_len", "4", "--body", f"@{notes}", "--attachment", "@-", "--field", "timeout=9",
        "--queue", "high", "--delay", "1.5", "--max-retries", "0", "--metadata", '{"m": 1}',
        "--depends-on", "j1", "--depends-on", "j2", "--concurrency-key", "k", "--concurrency-limit", "2",
        "--idempotency-key", "key-1", "--wait", "--json",
        input="from stdin",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sent["fields"] == {
        "name": "@literal", "count": 7, "ratio": 0.25, "flag": True, "color": "green", "level": 3, "size": "large",
        "tags": ["a", "b c"], "scores": [1, 2], "options": {"k": "v"}, "point": {"x": 3, "y": 4}, "limit": None,
        "either": "x", "max_len": 4, "body": "first line\r\nsecond, ünïcode\n", "attachment": "from stdin",
        "timeout": 9,
    }  # fmt: skip
    assert sent["options"] == {
        "queue": "high", "delay_seconds": 1.5, "max_retries": 0, "metadata": {"m": 1}, "depends_on": ["j1", "j2"],
        "concurrency_key": "k", "concurrency_limit": 2,
    }  # fmt: skip
    assert sent["flags"] == {"idempotency_key": "key-1", "wait": True, "timeout": None, "progress": None, "as_json": True}


def test_only_what_is_given_is_sent_and_both_spellings_of_a_name_work():
    result, sent = submit("--name", "n", "--count", "1", "--max-len", "5")
    assert result.exit_code == 0, result.output
    assert sent["fields"] == {"name": "n", "count": 1, "max_len": 5} and sent["options"] == {}
    _, sent = submit("--name", "n", "--count", "1", "--max_len", "6")
    assert sent["fields"]["max_len"] == 6


def test_field_name_value_adds_to_a_list_and_may_send_null():
    result, sent = submit("--name", "n", "--count", "1", "--tags", "a", "--field", "tags=b", "--field", "point=null")
    assert result.exit_code == 0, result.output
    assert sent["fields"] == {"name": "n", "count": 1, "tags": ["a", "b"], "point": None}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "1"], "Missing '--name' (required by everything)"),
        (["--name", "n", "--count", "x"], "Invalid value for '--count': 'x' is not a whole number"),
        (["--name", "n", "--count", "1", "--color", "blue"], "'blue' is not one of: red, green"),
        (["--name", "n", "--count", "1", "--flag", "maybe"], "'maybe' is not true or false"),
        (["--name", "n", "--count", "1", "--point", "[1]"], "must be a JSON object"),
        (["--name", "n", "--count", "1", "--metadata", "[1]"], "must be a JSON object"),
        (["--name", "n", "--count", "1", "--body", "@/no/such/file"], "cannot read /no/such/file"),
        (["--name", "n", "--count", "1", "--nmae", "x"], "No such option '--nmae'"),
        (["--name", "n", "--count", "1", "--nmae", "x"], "everything has no field 'nmae'; its fields: --name, --count"),
        (["--name", "n", "--count", "1", "--field", "nope=1"], "everything has no field 'nope'"),
        (["--name", "n", "--count", "1", "--field", "novalue"], "'novalue' is not NAME=VALUE"),
        (["--name", "n", "--count", "1", "--field", "count=x"], "'x' is not a whole number"),
        (["--name", "n", "--count", "1", "--timeout", "x"], "Invalid value for '--timeout'"),
        (["--name", "n", "--count", "1", "extra"], "Got unexpected extra argument (extra)"),
    ],
)
def test_mistakes_are_refused_before_sending_with_exit_2(args, message):
    result, sent = submit(*args)
    assert result.exit_code == 2 and sent is None
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\xff\xfe\x00binary")
    result, sent = submit("--name", f"@{binary}", "--count", "1")
    assert result.exit_code == 2 and sent is None and "is not UTF-8 text" in result.output


def test_help_lists_the_fields_then_the_job_options():
    result, _ = submit("--help")
    assert result.exit_code == 0
    text = result.output
    fields_at, options_at, output_at = (text.index(s) for s in ("Fields of everything:", "Job options:", "Waiting and output:"))
    assert fields_at < options_at < output_at
    fields = text[fields_at:options_at]
    assert "--name TEXT" in fields and "A plain text. [required]" in fields
    assert "--count INTEGER" in fields and "--flag true|false" in fields and "[default: false]" in fields
    assert "--color [red|green]" in fields and "--level [1|2|3]" in fields
    assert "--tags TEXT" in fields and "Repeat the option for each item." in fields
    assert "--max-len INTEGER" in fields and "--max_len" not in fields  # the second spelling is not shown
    assert "--attachment @FILE|TEXT" in fields and "A text file: @path reads it (@- stdin)." in fields
    assert "--body TEXT" in fields and "A long text: @path reads it" in fields
    assert "--timeout INTEGER" not in fields and "Give timeout as --field NAME=VALUE" in text
    assert "--queue [high|default|low]" in text[options_at:output_at] and "--wait" in text[output_at:]


def test_a_task_without_fields():
    class Nothing(BaseModel):
        """Does nothing."""

    result, sent = submit("--queue", "low", info=info_of(Nothing))
    assert result.exit_code == 0 and sent["fields"] == {} and sent["options"] == {"queue": "low"}


def test_the_server_description_round_trips_as_json():
    assert json.loads(json.dumps(EVERYTHING.to_dict()))["type"] == "everything"
