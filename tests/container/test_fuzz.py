"""Fuzzing both images' servers in real containers with hypothesis.

At least FUZZ_REQUESTS requests per image: random methods and paths, random and near-valid bodies of
every content type (CSV with bad cells and widths, random JSON, JSON Lines, libsvm, corrupt and odd
.npy, raw log lines, random bytes, bodies over the payload limit), random Content-Type and Accept
headers. Every answer is checked against core/byoc/serving/openapi.yaml: a status the description
declares for that path and method (404/405 for the rest), never a 5xx, and every error a JSON body
that follows the Error schema. Afterwards the server still answers /ping and predicts correctly
with the same workers, and its log holds no traceback.

HTTP itself stays well-formed (what an HTTP client library sends): uvicorn's HTTP parser answers a
broken request line with its own plain-text 400 before the app sees the request.
"""
from __future__ import annotations

import gzip
import http.client
import io
import json
import math
import re
import os

import jsonschema
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from serving_support import IMAGES, WIDTH, csv_body, rows, serve_processes, trained_model
from support import REPO, Server, build

FUZZ_REQUESTS = int(os.environ.get("BYOC_FUZZ_REQUESTS", "10000"))  # fewer only for a quick local try
PAYLOAD_LIMIT_MB = 1
SPEC = yaml.safe_load((REPO / "core" / "byoc" / "serving" / "openapi.yaml").read_text())
ERROR_SCHEMA = SPEC["components"]["schemas"]["Error"]
KNOWN_TYPES = ["text/csv", "application/json", "application/jsonlines", "text/libsvm", "application/x-npy",
               "text/plain", "application/x-recordio-protobuf", "*/*", "text/*", "application/*"]


def declared_statuses(method: str, path: str) -> set[int]:
    """The statuses openapi.yaml allows for a request (HEAD is GET without a body)."""
    operations = SPEC["paths"].get(path)
    if operations is None:
        return {404}
    operation = operations.get("get" if method == "HEAD" else method.lower())
    if operation is None:
        return {405}
    return {int(code) for code in operation["responses"]}


# Strategies ---------------------------------------------------------------------------------------

# What str.splitlines() takes for line ends but HTTP bodies do not (bodies of only these gave a 500).
ODD_BREAKS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\r"]
odd_breaks = st.lists(st.sampled_from(ODD_BREAKS), min_size=1, max_size=6).map(lambda cs: "".join(cs).encode())

numbers = st.one_of(st.integers(-10, 10), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(width=32))
cells = st.one_of(numbers.map(str), st.sampled_from(["", "nan", "NaN", "NA", "null", "inf", "-inf", "1e39",
                                                      "0x1F", "1_000", " 1", "1 ", "--1", "1e", "١", "true"]),
                  st.text(max_size=8))


def csv_bodies(width: int):
    row = st.lists(cells, min_size=max(0, width - 2), max_size=width + 2).map(",".join)
    ends = st.sampled_from(["\n", "\r\n", *ODD_BREAKS])
    return st.tuples(st.lists(row, max_size=12), ends).map(lambda t: t[1].join(t[0]).encode())


json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                   st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                           max_leaves=30)


def json_bodies(width: int):
    number_rows = st.lists(st.lists(numbers, min_size=max(0, width - 1), max_size=width + 1), max_size=8)
    documents = st.one_of(
        json_values,
        number_rows,
        st.builds(lambda key, value: {key: value},
                  st.sampled_from(["instances", "data", "inputs", "features", "rows"]), st.one_of(number_rows, json_values)),
    )
    return documents.map(lambda d: json.dumps(d, allow_nan=True).encode())


def jsonlines_bodies(width: int):
    return st.lists(json_bodies(width), max_size=8).map(lambda lines: b"\n".join(lines))


libsvm_line = st.builds(
    lambda label, pairs: " ".join([label] + [f"{i}:{v}" for i, v in pairs]),
    cells, st.lists(st.tuples(st.one_of(st.integers(-3, 40), st.text(max_size=3)), cells), max_size=6))
libsvm_bodies = st.lists(libsvm_line, max_size=8).map(lambda lines: "\n".join(lines).encode())


@st.composite
def npy_bodies(draw):
    dtype = draw(st.sampled_from(["<f4", "<f8", "<i8", "|u1", "|b1", "<f2", "<c8", "<U3", "|O", "<M8[s]"]))
    shape = tuple(draw(st.lists(st.integers(0, 40), max_size=3)))
    if dtype == "|O":
        header = {"descr": dtype, "fortran_order": False, "shape": shape}
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, header)
        data = b"\x80\x04N."  # a pickle: must be refused, never loaded
        body = np.lib.format.MAGIC_PREFIX + b"\x01\x00" + buffer.getvalue()[8:] + data
    else:
        array = np.zeros(shape, dtype=dtype) if math.prod(shape) < 2000 else np.zeros((2, 2), dtype=dtype)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        body = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(body))))
    flip = draw(st.one_of(st.none(), st.tuples(st.integers(0, max(0, len(body) - 1)), st.integers(0, 255))))
    if cut is not None:
        body = body[:cut]
    if flip is not None and body:
        position, value = flip
        body = body[:position] + bytes([value]) + body[position + 1:]
    return body


def log_bodies(lines: list[bytes]):
    mutated = st.builds(lambda line, at, junk: line[:at] + junk.encode("utf-8", "surrogatepass") + line[at:],
                        st.sampled_from(lines), st.integers(0, 120),
                        st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                                  st.lists(st.sampled_from(ODD_BREAKS), max_size=3).map("".join)))
    return st.lists(st.one_of(st.sampled_from(lines), mutated, odd_breaks), max_size=10).map(lambda ls: b"\n".join(ls))


def over_the_limit():
    """Bodies around the payload limit, made by repetition (cheap to generate)."""
    limit = PAYLOAD_LIMIT_MB << 20
    return st.builds(lambda unit, extra: (unit * (limit // len(unit) + 1))[:limit + extra],
                     st.sampled_from([b"1,2,3\n", b"x", b"[1, 2]\n"]), st.integers(-2, 2))


def weighted(*choices):
    """One of the strategies, each drawn with its weight."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def requests_for(image: str, log_lines: list[bytes]):
    width = WIDTH[image]
    # Bodies of each type, most often sent with their own Content-Type (so they reach its decoder).
    typed = [("text/csv", csv_bodies(width)), ("application/json", json_bodies(width)),
             ("application/jsonlines", jsonlines_bodies(width)), ("text/libsvm", libsvm_bodies),
             ("application/x-npy", npy_bodies()), ("text/plain", log_bodies(log_lines)), ("text/plain", odd_breaks),
             ("text/csv", over_the_limit())]
    bodies = st.one_of(st.binary(max_size=600), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                       odd_breaks,
                       *(body for _, body in typed))
    header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
    known = st.sampled_from(KNOWN_TYPES)
    media = weighted((6, known), (1, st.none()), (1, st.builds(lambda t, p: f"{t}; {p}", known, header_text)),
                     (1, known.map(str.upper)), (1, header_text))
    content = weighted((3, st.one_of(*(st.tuples(st.just(kind), body) for kind, body in typed))),
                       (2, st.tuples(media, bodies)))
    accept = weighted((4, st.none()), (3, media),
                      (2, st.lists(st.builds(lambda t, q: f"{t};q={q}", known, st.sampled_from(["0", "0.5", "1", "x", "-1", "2"])),
                                   min_size=1, max_size=3).map(", ".join)))
    # Mostly what reaches the decoders (the right path and method), often something else.
    path = weighted((8, st.just("/invocations")),
                    (1, st.sampled_from(["/ping", "/execution-parameters", "//invocations", "/invocations/", "/models", "/"])),
                    (1, st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/%", max_size=20).map(lambda p: "/" + p)),
                    (1, header_text.map(lambda t: "/invocations?" + t.replace(" ", "+").replace("#", ""))))
    method = weighted((9, st.just("POST")), (1, st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])))
    return st.builds(lambda m, p, c, a: {"method": m, "path": p, "content_type": c[0], "accept": a, "body": c[1]},
                     method, path, content, accept)


# The test -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=IMAGES)
def server(request, tmp_path_factory):
    image = request.param
    ref = build(image)
    model_dir = trained_model(image, ref, tmp_path_factory.getbasetemp())
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(PAYLOAD_LIMIT_MB), "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with Server(ref, model_dir, env=env) as running:
        yield image, running


def send(server: Server, request: dict) -> tuple[int, str, bytes]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {}
        if request["content_type"] is not None:
            headers["Content-Type"] = request["content_type"]
        if request["accept"] is not None:
            headers["Accept"] = request["accept"]
        connection.request(request["method"], request["path"], body=request["body"], headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def check(request: dict, status: int, content_type: str, body: bytes) -> None:
    shown = {k: (v[:200] if isinstance(v, (bytes, str)) else v) for k, v in request.items()}
    assert status < 500, f"{status} {body[:300]!r} for {shown}"
    path = re.sub("/+", "/", request["path"].split("?")[0])  # repeated slashes count as one
    assert status in declared_statuses(request["method"], path), \
        f"{status} is not declared in openapi.yaml for {request['method']} {path}: {body[:200]!r}"
    if status >= 400 and request["method"] != "HEAD":
        assert content_type.startswith("application/json"), f"{status} {content_type} {body[:200]!r}"
        jsonschema.validate(json.loads(body), ERROR_SCHEMA)


def test_ten_thousand_random_requests_get_declared_answers_and_never_a_5xx(server, shared_data):
    image, running = server
    with gzip.open(shared_data / "hdfs" / "HDFS.log.gz", "rb") as logs:
        log_lines = [logs.readline().rstrip(b"\n") for _ in range(300)]
    matrix = rows(image, 5, seed=3)
    expected = running.post(csv_body(matrix), "text/csv").text
    _, workers, _ = serve_processes(running.name)
    seen: dict[int, int] = {}

    @settings(max_examples=FUZZ_REQUESTS, deadline=None, database=None, derandomize=False,
              phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))
    @given(requests_for(image, log_lines))
    def one(request):
        status, content_type, body = send(running, request)
        seen[status] = seen.get(status, 0) + 1
        check(request, status, content_type, body)

    one()
    sent = sum(seen.values())
    print(f"\n{image}: {sent} fuzzed requests, answers by status {dict(sorted(seen.items()))}")
    assert sent >= FUZZ_REQUESTS
    assert {200, 400, 404, 405, 413, 415} <= set(seen), seen  # the fuzzing reached every kind of answer

    # Alive, correct, and the same workers: nothing crashed or was replaced.
    assert running.post(csv_body(matrix), "text/csv").text == expected
    _, after, _ = serve_processes(running.name)
    assert after == workers
    logs = running.logs()
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs, logs[-3000:]
