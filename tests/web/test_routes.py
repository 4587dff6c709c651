"""Each route declared once (app/web/routes.py, issue 24 item 5): the view and its operation come
from one declaration, and the document is built by walking the declarations."""

from __future__ import annotations

import copy
import importlib
import json
import re

from flask import Blueprint, Flask

from app.jobs import schemas
from app.web import routes

from .openapi_diff import differences, resolved


def test_every_declared_operation_is_served_and_every_api_route_declared_once(app):
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    declared = [(op.path, op.method, op.view) for op in routes.OPERATIONS]
    assert len(declared) == len(set(declared)), "a route declared twice"
    assert set(declared) <= served, "declared but not served"
    api = {view.split(".")[0] for _path, _method, view in declared}  # the blueprints of the API
    assert {route for route in served if route[2].split(".")[0] in api} == set(declared), "served, not declared"


def test_route_serves_the_view_and_declares_its_operation(monkeypatch):
    monkeypatch.setattr(routes, "OPERATIONS", [])
    bp = Blueprint("probe", __name__)

    @routes.route(
        bp, "GET", "/probes/{job_id}", operation_id="getProbe", tag="jobs", summary="A probe", description="Probe.",
        responses={200: routes.Answer("The probe.", schemas.Progress, headers=("RetryAfter",)), 404: "NotFound"},
    )  # fmt: skip
    def get_probe(job_id: str):
        return {"id": job_id}

    app = Flask("probe")
    app.register_blueprint(bp)
    assert app.test_client().get("/probes/a1").get_json() == {"id": "a1"}
    assert [op.view for op in routes.OPERATIONS] == ["probe.get_probe"]


def test_the_document_is_built_from_the_declarations(monkeypatch, settings):
    declared = [op for op in routes.OPERATIONS if op.operation_id == "getJob"]
    monkeypatch.setattr(routes, "OPERATIONS", declared)
    monkeypatch.setattr(importlib.import_module("app.web.openapi.document"), "OPERATIONS", declared)
    document = importlib.import_module("app.web.openapi.document").document_for(settings)
    assert list(document["paths"]) == ["/jobs/{job_id}"]
    operation = document["paths"]["/jobs/{job_id}"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobResource"}
    assert set(operation["responses"]["200"]["headers"]) == {"Retry-After", "X-Request-ID"}
    assert operation["responses"]["503"] == {"$ref": "#/components/responses/ServiceUnavailable"}  # needs Redis
    wait = next(p for p in operation["parameters"] if p.get("name") == "wait")
    assert wait["schema"]["maximum"] == settings.max_wait_seconds  # a function of the settings, called at build
    path_id = document["components"]["parameters"]["JobId"]["schema"]["pattern"]
    assert path_id == schemas.JOB_ID_PATTERN  # the contract's one job-id pattern


def test_the_semantic_diff_sees_a_lost_header_but_not_a_renamed_component(client):
    before = client.get("/openapi.json").get_json()
    renamed = json.loads(json.dumps(before).replace('"#/components/schemas/JobResource"', '"#/components/schemas/TheJob"'))
    renamed["components"]["schemas"]["TheJob"] = renamed["components"]["schemas"].pop("JobResource")
    assert differences(resolved(before), resolved(renamed)) == []
    lost = copy.deepcopy(before)
    del lost["paths"]["/jobs/{job_id}"]["get"]["responses"]["200"]["headers"]["Retry-After"]
    assert differences(resolved(before), resolved(lost)) == ["/operations/GET /jobs/{job_id}/responses/200/headers/Retry-After: gone"]
