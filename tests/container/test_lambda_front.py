"""The Lambda front (deploy/lambda_front/handler.py) against a real endpoint: the sklearn-cpu
image trained and served in SageMaker local mode by the SDK, the handler called with API Gateway
events and local mode's runtime client (same invoke_endpoint, posts to the local container)."""
from __future__ import annotations

import base64
import importlib.util
import json
import math

import pytest

import opt_ml
from support import REPO, build, free_port

byoc_deploy = pytest.importorskip("byoc_deploy.steps", reason="the deploy tool is not installed (./test.sh installs it)")
from byoc_deploy.sessions import session  # noqa: E402

steps = byoc_deploy
HANDLER = REPO / "deploy" / "lambda_front" / "handler.py"
FEATURES = "minutes hour day_of_week"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """Trained once for the module, served until its tests are done."""
    image = build("sklearn-cpu")
    local = session(local=True)
    # A port of our own: other local-mode tests default to 8080.
    local.config = {"local": {"local_code": True, "serving_port": free_port()}}
    root = tmp_path_factory.mktemp("lambda-front")
    opt_ml.prtg_csv(root / "data")
    channels = {name: str(root / "data" / "input" / "data" / name) for name in ("train", "test")}
    estimator = steps.train(local, image, channels, {"features": FEATURES, "target": "snmpcpu_processor_1"},
                            output_path=str(root / "output"))
    predictor = steps.deploy(local, image, estimator.model_data)
    try:
        yield local, predictor
    finally:
        steps.teardown(local, predictor.endpoint_name)


@pytest.fixture()
def front(endpoint, monkeypatch, shared_data):
    """The handler module with local mode's runtime client injected; counts the calls it makes."""
    from sagemaker.local import LocalSagemakerRuntimeClient

    local, predictor = endpoint

    class CountingClient(LocalSagemakerRuntimeClient):
        calls = 0

        def invoke_endpoint(self, **kwargs):
            self.calls += 1
            return super().invoke_endpoint(**kwargs)

    monkeypatch.setenv("ENDPOINT_NAME", predictor.endpoint_name)
    spec = importlib.util.spec_from_file_location("lambda_front_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.runtime = CountingClient(config=local.config)
    return module


def call(front, body: str | None, method: str = "POST", base64_body: bool = False) -> tuple[int, dict]:
    """One API Gateway REST API Lambda-proxy event (payload 1.0) through the handler."""
    if base64_body:
        body = base64.b64encode(body.encode()).decode()
    event = {"resource": "/predict", "path": "/predict", "httpMethod": method,
             "headers": {"Content-Type": "application/json"}, "requestContext": {"stage": "v1", "httpMethod": method},
             "body": body, "isBase64Encoded": base64_body}
    result = front.lambda_handler(event, None)
    assert result["headers"]["Content-Type"] == "application/json"
    return result["statusCode"], json.loads(result["body"])


def test_predictions_come_back(front, endpoint):
    _, predictor = endpoint
    status, answer = call(front, '{"data": [[38, 16, 4]]}')
    assert status == 200, answer
    [value] = answer["predictions"]
    assert isinstance(value, float) and math.isfinite(value)
    # The same model through the SDK's own predictor (CSV in): the same number.
    assert value == pytest.approx(predictor.predict([[38, 16, 4]])["predictions"][0])

    two = [[38, 16, 4], [0, 3, 6]]
    for body, encoded in ((json.dumps({"instances": two}), False), (json.dumps(two), False),
                          (json.dumps({"data": two}), True)):
        status, answer = call(front, body, base64_body=encoded)
        assert status == 200 and len(answer["predictions"]) == 2, (body, answer)
        assert answer["predictions"][0] == pytest.approx(value)
    assert front.runtime.calls == 4


@pytest.mark.parametrize("body, message", [
    ('{"data": [[38, "16", 4]]}', 'row 1, column 2: "16" is not a number'),
    ('{"data": [[38, 16, 4], [0, 3]]}', "row 2 has 2 columns but row 1 has 3"),
    ('{"data": [[38, 16, 4], [0, 3, {"hour": 3}]]}', 'row 2, column 3: {"hour": 3} is not a number'),
    ('{"data": [[38, 16, 4], 7]}', "row 2 is not a list"),
    ('{"data": []}', "non-empty list of rows"),
    ('{"data": [[38, 16, 4]', "not valid JSON"),
    ('{"data": [[1%s, 16, 4]]}' % ("0" * 400), "row 1, column 1: an integer of 401 digits is out of range"),
    ("", "empty body"),
])
def test_bad_bodies_get_400_before_the_endpoint(front, body, message):
    status, answer = call(front, body)
    assert status == 400 and message in answer["error"], answer
    assert front.runtime.calls == 0


def test_container_4xx_becomes_the_handlers_4xx(front):
    """Only the model knows its width and whether it takes missing values: the container's 400
    and its message reach the caller."""
    status, answer = call(front, '{"data": [[38, 16]]}')
    assert (status, answer) == (400, {"error": "row 1 has 2 columns but the model expects 3"})
    status, answer = call(front, '{"data": [[38, null, 4]]}')
    assert status == 400 and answer["error"].startswith("row 1, column 2 (hour) is missing")
    assert front.runtime.calls == 2
    status, answer = call(front, '{"data": [[38, 16, 4]]}')  # and the endpoint keeps serving
    assert status == 200 and len(answer["predictions"]) == 1


def test_method_and_size_limits(front):
    assert call(front, None, method="GET") == (405, {"error": "only POST is allowed"})
    front.MAX_BODY_BYTES = 1000
    status, answer = call(front, json.dumps({"data": [[38, 16, 4]] * 100}))
    assert status == 413 and "larger than 1000 bytes" in answer["error"]
    assert front.runtime.calls == 0
