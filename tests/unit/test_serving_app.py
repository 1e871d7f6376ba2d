"""The app's payload limit at its edges, with and without Content-Length (chunked bodies are
what batch transform and streaming clients may send)."""
from __future__ import annotations

import pytest

import support  # noqa: F401 - puts core/ on sys.path
from asgi_client import Client
from byoc.serving.app import create_app
from byoc.serving.config import ServerConfig

LIMIT = 1024 * 1024


class Echo:
    """Answers with the size of the body it was given."""

    def invoke(self, body, content_type, accept):
        return str(len(body)).encode(), "text/csv"


@pytest.fixture
def client():
    config = ServerConfig(port=8080, workers=1, timeout=60, max_payload_mb=1, model_dir="/nowhere")
    return Client(create_app(Echo(), config))


def _post(client, size: int, chunked: bool):
    body = b"1" * size
    if not chunked:
        return client.post("/invocations", data=body, content_type="text/csv")
    # As uvicorn hands over a chunked upload: no Content-Length, the body in pieces.
    return client.post("/invocations", content_type="text/csv", chunks=[body[i:i + 65536] for i in range(0, size, 65536)])


@pytest.mark.parametrize("chunked", [False, True])
def test_body_at_the_limit_is_served_whole(client, chunked):
    response = _post(client, LIMIT, chunked)
    assert response.status_code == 200 and response.text == str(LIMIT)


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("over", [1, 5000])
def test_body_over_the_limit_is_413_never_truncated(client, chunked, over):
    response = _post(client, LIMIT + over, chunked)
    assert response.status_code == 413
    assert "1 MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in response.get_json()["error"]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/ping", 200), ("HEAD", "/ping", 200), ("GET", "//ping", 200), ("GET", "/execution-parameters", 200),
    ("GET", "/nowhere", 404), ("GET", "/ping/", 404), ("POST", "/ping", 405), ("GET", "/invocations", 405),
    ("DELETE", "/invocations", 405), ("OPTIONS", "/ping", 405),
])
def test_routes(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST") and method in response.get_json()["error"]
    if status == 404:
        assert "/invocations" in response.get_json()["error"]


def test_repeated_accept_headers_are_one_list():
    class Negotiating:
        def invoke(self, body, content_type, accept):
            return accept.encode(), "text/plain"

    config = ServerConfig(port=8080, workers=1, timeout=60, max_payload_mb=1, model_dir="/nowhere")
    app = create_app(Negotiating(), config)
    headers = [("Accept", "application/json;q=0.5"), ("Accept", "text/csv")]
    response = Client(app).post("/invocations", data=b"1", content_type="text/csv", headers=headers)
    assert response.text == "application/json;q=0.5,text/csv"


def test_batch_transform_drops_the_last_newline():
    class Lines:
        def invoke(self, body, content_type, accept):
            return b"1\n2\n", "text/csv"

    config = ServerConfig(port=8080, workers=1, timeout=60, max_payload_mb=1, model_dir="/nowhere", batch=True)
    response = Client(create_app(Lines(), config)).post("/invocations", data=b"a\nb\n", content_type="text/csv")
    assert response.status_code == 200 and response.data == b"1\n2"


def test_unexpected_errors_are_a_json_500_naming_them():
    class Broken:
        def invoke(self, body, content_type, accept):
            raise KeyError("oops")

    config = ServerConfig(port=8080, workers=1, timeout=60, max_payload_mb=1, model_dir="/nowhere")
    response = Client(create_app(Broken(), config)).post("/invocations", data=b"1", content_type="text/csv")
    assert response.status_code == 500 and "KeyError" in response.get_json()["error"]
