"""HTTP front for a SageMaker endpoint: an API Gateway (Lambda proxy) POST with rows of features
in, the endpoint's predictions out, as JSON.

    POST {"data": [[38, 16, 4]]}        also {"instances": [[...]]} or a plain list of rows
    200  {"predictions": [...]}         the endpoint's JSON answer, as it is

Errors are {"error": "..."}: 400 bad input (naming row and column), 405 not POST, 413 too
big, the container's own 4xx passed through with its message, 502 when the endpoint fails,
503 when it is throttled or not ready, 504 when it does not answer in time.

Only the standard library and boto3 (part of the Lambda Python runtime): the zip is this file.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# 5 MB after base64 decoding: SageMaker refuses real-time payloads over 6 MB; the rest is
# headroom for the compact re-encoding we forward.
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 5 * 1024 * 1024))
# API Gateway gives up after 29 s; answer 504 ourselves before that.
READ_TIMEOUT_S = float(os.environ.get("READ_TIMEOUT_S", 25))

# The sagemaker-runtime client: made on first use and kept across warm invocations. Tests
# replace it with another client that has the same invoke_endpoint (e.g. local mode's).
runtime = None


def _runtime():
    global runtime
    if runtime is None:
        import boto3
        from botocore.config import Config

        # One attempt: a retry would not fit in API Gateway's 29 s, the caller can retry.
        runtime = boto3.client("sagemaker-runtime", config=Config(
            connect_timeout=5, read_timeout=READ_TIMEOUT_S, retries={"total_max_attempts": 1}))
    return runtime


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _reply(status: int, document, headers: dict | None = None) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(document)}


def _error(status: int, message: str, headers: dict | None = None) -> dict:
    return _reply(status, {"error": message}, headers)


def _method(event: dict) -> str:
    # REST API (payload 1.0) names it httpMethod; an HTTP API (payload 2.0) in requestContext.
    return (event.get("httpMethod") or event.get("requestContext", {}).get("http", {}).get("method") or "").upper()


def _body(event: dict) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest(400, 'empty body: send JSON such as {"data": [[38, 16, 4]]}')
    raw = body.encode("utf-8")
    if event.get("isBase64Encoded"):
        # Checked on the encoded size first so a huge body is never decoded.
        if len(raw) * 3 // 4 > MAX_BODY_BYTES:
            raise BadRequest(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(400, "body is marked base64 but is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    return raw


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def parse_rows(raw: bytes) -> list[list]:
    """The body's rows, checked: a non-empty list of equal-length lists of numbers (null is a
    missing value, for models that accept them). Errors name the row and column, 1-based."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_not_json_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        keys = [key for key in ("data", "instances") if key in document]
        if len(keys) != 1:
            raise BadRequest(400, 'expected exactly one of "data" or "instances" holding a list of rows, '
                                  'e.g. {"data": [[38, 16, 4]]}')
        rows = document[keys[0]]
    else:
        rows = document
    if not isinstance(rows, list) or not rows:
        raise BadRequest(400, 'expected a non-empty list of rows, e.g. {"data": [[38, 16, 4]]}')
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, list):
            raise BadRequest(400, f"row {r} is not a list of numbers: {json.dumps(row)[:80]}")
        if not row:
            raise BadRequest(400, f"row {r} is empty")
        if len(row) != len(rows[0]):
            raise BadRequest(400, f"row {r} has {len(row)} columns but row 1 has {len(rows[0])}")
        for c, value in enumerate(row, start=1):
            if value is not None:  # null: a missing value
                _check_number(value, r, c)
    return rows


def _check_number(value, r: int, c: int) -> None:
    # bool is an int to Python, not a number to a model.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(400, f"row {r}, column {c}: {json.dumps(value)[:80]} is not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a JSON integer beyond what a float64 holds
        raise BadRequest(400, f"row {r}, column {c}: an integer of {len(str(abs(value)))} digits is out of "
                              "range for a 64-bit float") from None
    if not finite:
        raise BadRequest(400, f"row {r}, column {c}: {json.dumps(value)[:80]} is not a number")


def _container_message(text: str) -> str:
    """Our containers answer {"error": "..."}; other containers may send plain text."""
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:1000] or "no message"
    return str(document.get("error", text)) if isinstance(document, dict) else text.strip()[:1000]


def _from_endpoint_error(exc, endpoint: str) -> dict:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", str(exc))
    if code == "ModelError":
        # The container answered with an error; SageMaker passes its status and body on.
        status = int(exc.response.get("OriginalStatusCode") or 0)
        original = _container_message(exc.response.get("OriginalMessage") or message)
        if 400 <= status < 500:
            return _error(status, original)
        if status == 504:
            return _error(504, f"endpoint {endpoint} timed out: {original}")
        logger.error("endpoint %s model error %s: %s", endpoint, status, original)
        return _error(502, f"endpoint {endpoint} failed: {original}")
    if code in ("ThrottlingException", "ServiceUnavailable", "ModelNotReadyException"):
        return _error(503, f"endpoint {endpoint} is busy or not ready ({code}); retry later", {"Retry-After": "1"})
    # ValidationError (no such endpoint), AccessDenied...: our configuration, not the caller's input.
    logger.error("invoke_endpoint %s failed: %s %s", endpoint, code, message)
    return _error(502, f"endpoint {endpoint} could not be called: {code}")


def lambda_handler(event: dict, context=None) -> dict:
    if _method(event) != "POST":
        return _error(405, "only POST is allowed", {"Allow": "POST"})
    try:
        rows = parse_rows(_body(event))
    except BadRequest as exc:
        return _error(exc.status, str(exc))

    endpoint = os.environ["ENDPOINT_NAME"]
    try:
        response = _runtime().invoke_endpoint(
            EndpointName=endpoint, Body=json.dumps({"instances": rows}, separators=(",", ":")),
            ContentType="application/json", Accept="application/json")
        body = response["Body"]
        text = body.read().decode("utf-8", "replace")
    except ClientError as exc:
        return _from_endpoint_error(exc, endpoint)
    except (ReadTimeoutError, ConnectTimeoutError):
        return _error(504, f"endpoint {endpoint} did not answer in time")
    except BotoCoreError as exc:  # no connection, bad credentials, ...: nothing the caller can fix
        logger.error("invoke_endpoint %s failed: %s", endpoint, exc)
        return _error(502, f"endpoint {endpoint} could not be reached")

    # Local mode's client hands back the container's response without raising for its errors:
    # honour the HTTP status it carries, as SageMaker's ModelError would.
    status = getattr(body, "status", 200)
    if 400 <= status < 500:
        return _error(status, _container_message(text))
    if status >= 300:
        return _error(502, f"endpoint {endpoint} failed: {_container_message(text)}")
    try:
        return _reply(200, json.loads(text))
    except ValueError:
        logger.error("endpoint %s answered non-JSON: %.200s", endpoint, text)
        return _error(502, f"endpoint {endpoint} answered something other than JSON")
