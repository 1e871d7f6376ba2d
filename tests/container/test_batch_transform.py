"""Batch transform's contract in real containers, both images, as SageMaker runs it: SAGEMAKER_BATCH
set, MULTI_RECORD payloads up to MaxPayloadInMB (SAGEMAKER_MAX_PAYLOAD_IN_MB, default 6 MiB) answered
with exactly one output line per input line in order, 413 with a JSON error just over the limit
(with Content-Length or chunked), JSON Lines in and out line for line, and the limit following
SAGEMAKER_MAX_PAYLOAD_IN_MB."""
from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from serving_support import IMAGES, csv_body, csv_rows_up_to, execution_parameters, rows, serve_processes, trained_model
from support import Server, build

MIB = 1024 * 1024


@pytest.fixture(scope="module", params=IMAGES)
def model(request, tmp_path_factory):
    ref = build(request.param)
    return request.param, ref, trained_model(request.param, ref, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def batch_server(model):
    image, ref, model_dir = model
    with Server(ref, model_dir, env={"SAGEMAKER_BATCH": "true"}) as server:
        yield image, server


def _scores(image: str, response) -> list[float]:
    """The prediction of each output line (CSV: the score; JSON Lines: the score field or the value)."""
    if response.headers["Content-Type"].startswith("text/csv"):
        return [float(line) for line in response.text.split("\n")]
    values = [json.loads(line) for line in response.text.split("\n")]
    return [v["score"] if isinstance(v, dict) else v for v in values]


def _check_in_order(image, server, matrix, response, sample=25):
    """Output lines answer input lines one for one: a sample of rows sent again on their own agree."""
    got = _scores(image, response)
    assert len(got) == len(matrix)
    picks = sorted(np.random.default_rng(7).choice(len(matrix), size=min(sample, len(matrix)), replace=False))
    alone = server.post(csv_body(matrix[picks]), "text/csv", "text/csv")
    assert alone.status_code == 200, alone.text
    assert [got[i] for i in picks] == pytest.approx(_scores(image, alone), rel=1e-6)


def test_execution_parameters(batch_server):
    _, server = batch_server
    _, workers, _ = serve_processes(server.name)
    assert execution_parameters(server) == {"MaxConcurrentTransforms": len(workers), "BatchStrategy": "MULTI_RECORD",
                                            "MaxPayloadInMB": 6}


def test_payload_just_under_the_limit_gives_one_line_per_input_line_in_order(batch_server):
    image, server = batch_server
    matrix, body = csv_rows_up_to(image, 6 * MIB)
    assert 6 * MIB - 2 * 31 < len(body) <= 6 * MIB
    response = server.post(body, "text/csv")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/csv")
    # SAGEMAKER_BATCH: no trailing newline, since batch transform adds one after each response
    assert not response.text.endswith("\n") and response.text.count("\n") == len(matrix) - 1
    print(f"\n{image}: {len(body)} bytes, {len(matrix)} rows -> {len(matrix)} lines")
    _check_in_order(image, server, matrix, response)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_payload_just_over_the_limit_is_413_json(batch_server, chunked):
    image, server = batch_server
    _, under = csv_rows_up_to(image, 6 * MIB)
    body = under + csv_body(rows(image, 1, seed=9))  # one row more
    assert 6 * MIB < len(body) < 6 * MIB + 200
    data = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    response = server.post(data, "text/csv")
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert "6 MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in response.json()["error"]
    assert server.post(csv_body(rows(image, 1)), "text/csv").status_code == 200


@pytest.mark.parametrize("accept", [None, "application/jsonlines"])
def test_json_lines_in_json_lines_out_line_for_line(batch_server, accept):
    image, server = batch_server
    matrix = rows(image, 3000, seed=3)
    body = "".join(json.dumps(row) + "\n" for row in matrix.tolist())
    response = server.post(body, "application/jsonlines", accept)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/jsonlines")
    assert response.text.count("\n") == len(matrix) - 1  # every line a JSON value (read by _scores)
    _check_in_order(image, server, matrix, response)


def test_limit_follows_sagemaker_max_payload_in_mb(model):
    image, ref, model_dir = model
    with Server(ref, model_dir, env={"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}) as server:
        assert execution_parameters(server)["MaxPayloadInMB"] == 1
        matrix, under = csv_rows_up_to(image, MIB)
        response = server.post(under, "text/csv")
        assert response.status_code == 200 and response.text.count("\n") == len(matrix) - 1
        over = under + csv_body(rows(image, 1))
        assert len(over) > MIB
        response = server.post(over, "text/csv")
        assert response.status_code == 413 and "1 MB limit" in response.json()["error"]
        # The 6 MiB default no longer applies: 2 MiB is refused, chunked or not.
        _, two = csv_rows_up_to(image, 2 * MIB)
        assert server.post(two, "text/csv").status_code == 413
        assert server.post(iter([two]), "text/csv").status_code == 413
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
