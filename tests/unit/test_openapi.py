"""core/byoc/serving/openapi.yaml stays a valid OpenAPI 3 description of what the app really serves:
the same routes and methods, the content types the codecs read and write, every error status the
app can answer with, and the 4xx JSON error schema the app's error bodies follow."""
from __future__ import annotations

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from support import REPO
from byoc import codecs, errors
from asgi_client import Client
from byoc.serving.app import ROUTES, create_app
from byoc.serving.config import ServerConfig

SPEC_PATH = REPO / "core" / "byoc" / "serving" / "openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def app():
    config = ServerConfig(port=8080, workers=2, timeout=60, max_payload_mb=6, model_dir="/nowhere")
    return create_app(runtime=None, config=config)


def _deref(spec: dict, node: dict) -> dict:
    if "$ref" not in node:
        return node
    target = spec
    for part in node["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return _deref(spec, target)


def test_is_valid_openapi_3(spec):
    validate(spec)


def test_routes_and_methods_match_the_app(spec):
    served = {path: {method.lower()} for path, method in ROUTES.items()}
    described = {path: set(item) - {"parameters", "summary", "description"} for path, item in spec["paths"].items()}
    assert described == served


def test_request_and_response_types_match_the_codecs(spec):
    invocations = spec["paths"]["/invocations"]["post"]
    # text/plain is xgboost-hdfs's raw log lines, on top of the shared codecs
    assert set(invocations["requestBody"]["content"]) == set(codecs.DECODERS) | {codecs.TEXT}
    assert set(invocations["responses"]["200"]["content"]) == set(codecs.ENCODERS)


def test_every_error_status_the_app_can_answer_is_described(spec):
    statuses = {cls.status for cls in (errors.RequestError, *errors.RequestError.__subclasses__())}
    statuses |= {408, 503, 504}  # slow body, BYOC_MAX_CONCURRENT_INVOCATIONS, SAGEMAKER_MODEL_SERVER_TIMEOUT (app.py)
    described = {int(code) for code in spec["paths"]["/invocations"]["post"]["responses"] if code != "200"}
    assert statuses == described
    for code in described:
        response = _deref(spec, spec["paths"]["/invocations"]["post"]["responses"][str(code)])
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("post", "/invocations", {"data": b"1,2", "content_type": "application/xml"}, 415),
    ("get", "/nowhere", {}, 404),
    ("get", "/ping/x", {}, 404),
    ("options", "/invocations", {}, 405),
    ("put", "/invocations", {}, 405),
    ("post", "/invocations", {"data": b"x" * (7 << 20), "content_type": "text/csv"}, 413),
])
def test_error_bodies_follow_the_error_schema(spec, app, method, path, kwargs, status):
    class Refusing:
        content_types = ("text/csv",)

        def invoke(self, body, content_type, accept):
            raise errors.UnsupportedMediaType(f"Content-Type {content_type!r} is not supported")

    config = ServerConfig(port=8080, workers=2, timeout=60, max_payload_mb=6, model_dir="/nowhere")
    response = getattr(Client(create_app(Refusing(), config)), method)(path, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    jsonschema.validate(response.get_json(), spec["components"]["schemas"]["Error"])


def test_execution_parameters_follow_their_schema(spec, app):
    response = Client(app).get("/execution-parameters")
    schema = spec["paths"]["/execution-parameters"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(response.get_json(), schema)
