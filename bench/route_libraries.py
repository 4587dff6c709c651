"""What a route-declaring library costs a request over plain Flask: two routes (``GET /healthz``,
``POST /jobs`` with a pydantic body) in flask-openapi3 and spectree, in process (Flask's test
client), best of 3 rounds of 3000. Neither library is a dependency of offload (docs/architecture.md,
"Routes and the document", says why): install them aside to run this,

    pip install --target /tmp/route-libraries --no-deps "flask-openapi3>=4,<5" "spectree>=3,<4"
    PYTHONPATH=/tmp/route-libraries .venv/bin/python -m bench.route_libraries

A library that is not importable is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Literal

from flask import Flask, Response, request
from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]


class Submit(BaseModel):
    type: Literal["count_words"]
    text: str = Field(max_length=100000)
    queue: Literal["high", "default", "low"] = "default"
    max_retries: int | None = None


class Answer(BaseModel):
    id: str
    status: str


BODY = json.dumps({"type": "count_words", "text": "the quick brown fox", "queue": "high"})
JSON = {"Content-Type": "application/json"}


def _alive() -> Response:
    return Response(json.dumps({"status": "ok"}), mimetype="application/json")


def _accepted() -> Response:
    return Response(json.dumps({"id": "x", "status": "queued"}), status=202, mimetype="application/json")


def plain() -> Flask:
    app = Flask("plain")
    app.get("/healthz")(_alive)

    @app.post("/jobs")
    def submit() -> Response:
        Submit.model_validate(request.get_json())
        return _accepted()

    return app


def flask_openapi3() -> Flask:
    from flask_openapi3 import OpenAPI

    app = OpenAPI("openapi3")
    app.get("/healthz", responses={200: Health})(_alive)

    @app.post("/jobs", responses={202: Answer})
    def submit(body: Submit) -> Response:  # noqa: ARG001 - validated by the library
        return _accepted()

    assert "/jobs" in app.api_doc["paths"]
    return app


def spectree(check_answers: bool) -> Flask:
    from spectree import Response as Answers
    from spectree import SpecTree

    app = Flask("spectree")
    spec = SpecTree("flask", annotations=False)
    skip = not check_answers
    app.get("/healthz")(spec.validate(resp=Answers(HTTP_200=Health), skip_validation=skip)(_alive))
    submit = spec.validate(json=Submit, resp=Answers(HTTP_202=Answer), skip_validation=skip)(lambda: _accepted())
    app.add_url_rule("/jobs", "submit", submit, methods=["POST"])
    spec.register(app)
    return app


def _cpu_ms(call: Callable[[], object], requests: int = 3000) -> float:
    best = float("inf")
    for _round in range(3):
        started = time.process_time()
        for _ in range(requests):
            call()
        best = min(best, (time.process_time() - started) * 1000 / requests)
    return best


def main() -> None:
    for name, make in (
        ("plain Flask", plain),
        ("flask-openapi3", flask_openapi3),
        ("spectree, answers validated", lambda: spectree(True)),
        ("spectree, answers not validated", lambda: spectree(False)),
    ):
        try:
            client = make().test_client()
        except ImportError as exc:
            print(f"{name:34} skipped ({exc})")
            continue
        assert client.post("/jobs", data=BODY, headers=JSON).status_code == 202, name
        assert client.get("/healthz").status_code == 200, name
        healthz = _cpu_ms(lambda: client.get("/healthz"))
        submit = _cpu_ms(lambda: client.post("/jobs", data=BODY, headers=JSON))
        print(f"{name:34} GET /healthz {healthz:.4f} ms CPU   POST /jobs {submit:.4f} ms CPU")


if __name__ == "__main__":
    main()
