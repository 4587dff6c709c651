"""offload.tasks, the public task API, with no server: what @task refuses at definition, what
load() says when a module cannot be loaded, and offload.testing."""

from __future__ import annotations

import sys
import textwrap

import pytest
from pydantic import BaseModel, Field

from offload import PermanentFailure, task
from offload.tasks import Registry, TaskDefinitionError, TaskLoadError, load
from offload.testing import LocalContext, run


class Args(BaseModel):
    """Do a thing."""

    name: str = Field(min_length=1)


def _noop(args, ctx) -> dict:
    return {}


@pytest.mark.parametrize(
    ("keywords", "said"),
    [
        ({"type": "Bad Type", "args": Args}, "must match"),
        ({"type": "thing", "args": dict}, "must be a pydantic model class"),
        ({"type": "thing", "args": None}, "must be a pydantic model class"),
        ({"type": "thing", "args": Args, "queue": "urgent"}, "queue must be one of"),
        ({"type": "thing", "args": Args, "timeout_seconds": 0}, "timeout_seconds must be"),
        ({"type": "thing", "args": Args, "max_retries": -1}, "max_retries must be"),
        ({"type": "thing", "args": Args, "concurrency_key": "k:{nope}"}, "concurrency_key names nope"),
        ({"type": "thing", "args": Args, "concurrency_limit": 2}, "needs a concurrency_key"),
        ({"type": "thing", "args": Args, "example": {"name": ""}}, "its example is not valid"),
    ],
)
def test_a_task_that_cannot_be_registered_is_refused_where_it_is_defined(keywords, said):
    with pytest.raises(TaskDefinitionError, match=said):
        task(**keywords, into=Registry())(_noop)


def test_a_model_may_not_use_the_job_options_names():
    class Clash(BaseModel):
        queue: str
        metadata: dict

    with pytest.raises(TaskDefinitionError, match="metadata, queue are job options"):
        task("clash", args=Clash, into=Registry())(_noop)


def test_a_type_registered_twice_names_both_functions():
    registry = Registry()
    task("thing", args=Args, into=registry)(_noop)

    def other(args, ctx):
        return {}

    with pytest.raises(TaskDefinitionError, match=r"registered twice: by .*_noop and by .*other"):
        task("thing", args=Args, into=registry)(other)


def test_the_description_is_the_models_docstring_and_defaults_are_kept():
    made = task("thing", args=Args, queue="high", max_retries=4, concurrency_key="n:{name}", into=Registry())(_noop)
    assert made.description == "Do a thing."
    assert made.defaults().queue == "high" and made.defaults().max_retries == 4
    assert made.concurrency_key_for({"name": "ada"}) == "n:ada"
    assert made(Args(name="x"), None) == {}  # still a plain function


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("import no_such_dependency_of_a_team\n", "could not be imported: ModuleNotFoundError"),
        ("def broken(:\n", "could not be imported: SyntaxError"),
        (
            textwrap.dedent("""
                from pydantic import BaseModel
                from offload import task
                class A(BaseModel):
                    x: int
                @task("count_words", args=A)
                def clash(args, ctx):
                    return {}
            """),
            "registered twice",
        ),
        ("from offload import task\n@task('modelless', args=None)\ndef f(args, ctx):\n    return {}\n", "must be a pydantic model"),
    ],
)
def test_load_names_the_module_that_failed_and_why(tmp_path, monkeypatch, source, said):
    import app.tasks  # noqa: F401 - the built-ins, as a server process has them

    name = f"team_tasks_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskLoadError, match=said) as caught:
        load(name, use_entry_points=False)
    assert name in str(caught.value) and "OFFLOAD_TASKS" in str(caught.value)
    assert name not in sys.modules  # not half-imported


def test_testing_run_validates_and_records_what_the_task_reports():
    registry = Registry()

    @task("steps", args=Args, into=registry)
    def steps(args, ctx):
        ctx.progress(1, 2)
        if ctx.cancelled():
            raise PermanentFailure("canceled")
        ctx.progress(2, 2)
        return {"name": args.name, "job": ctx.job_id, "token": ctx.secrets["TOKEN"].get_secret_value()}

    ctx = LocalContext(steps, job_id="j1", secrets={"TOKEN": "s3cret"})
    assert run(steps, ctx, name="ada") == {"name": "ada", "job": "j1", "token": "s3cret"}
    assert ctx.progress_reports == [(1, 2), (2, 2)] and "s3cret" not in repr(ctx.secrets)
    ctx.cancel_requested = True
    with pytest.raises(PermanentFailure):
        run(steps, ctx, name="ada")
    with pytest.raises(ValueError, match="name"):
        run(steps, name="")


def test_a_worker_reads_a_tasks_secrets_at_start_and_names_the_missing_one():
    made = task("secretive", args=Args, env={"REGION": "eu"}, secrets=("API_TOKEN",), into=Registry())(_noop)
    with pytest.raises(TaskDefinitionError, match="needs API_TOKEN"):
        made.read_config({})
    env, secrets = made.read_config({"API_TOKEN": "t0p"})
    assert env == {"REGION": "eu"} and secrets["API_TOKEN"].get_secret_value() == "t0p"
    assert "t0p" not in str(secrets["API_TOKEN"])
