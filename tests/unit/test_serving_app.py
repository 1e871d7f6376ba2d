"""The flask app's payload limit at its edges, with and without Content-Length (chunked bodies are
what batch transform and streaming clients may send)."""
from __future__ import annotations

import io

import pytest

import support  # noqa: F401 - puts core/ on sys.path
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
    return create_app(Echo(), config).test_client()


def _post(client, size: int, chunked: bool):
    body = b"1" * size
    if not chunked:
        return client.post("/invocations", data=body, content_type="text/csv")
    # As gunicorn hands over a chunked body: no Content-Length, and wsgi.input_terminated.
    # (Before the fix werkzeug cut such a body at the limit and the app served the truncated rows.)
    return client.post("/invocations", input_stream=io.BytesIO(body), content_type="text/csv",
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


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
