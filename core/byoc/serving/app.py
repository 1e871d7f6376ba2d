"""The flask app behind SageMaker's serving contract: /ping, /invocations, /execution-parameters.

Bad requests get a 4xx with {"error": "..."}; nothing a client sends can produce a 500.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..codecs import CSV, JSONLINES
from ..errors import PayloadTooLarge, RequestError
from ..runtime import ModelRuntime
from .config import ServerConfig
from .deadline import DeadlineExceeded, Deadlines

log = logging.getLogger(__name__)
LINE_TYPES = (CSV, JSONLINES)


def _error(message: str, status: int) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def create_app(runtime: ModelRuntime, config: ServerConfig) -> Flask:
    app = Flask("byoc")
    # One byte over the limit: werkzeug stops reading a chunked body (no Content-Length) at
    # MAX_CONTENT_LENGTH without a word, so the byte after the limit is what tells it was longer.
    app.config["MAX_CONTENT_LENGTH"] = config.max_payload_bytes + 1
    # Repeated slashes are served as one ("//ping" under gunicorn), never redirected (a 308 is no
    # answer a SageMaker client follows). Routes take no automatic OPTIONS either: every method
    # the contract does not list is a JSON 405 (openapi.yaml).
    app.url_map.merge_slashes = False
    deadlines = Deadlines()

    @app.get("/ping", provide_automatic_options=False)
    def ping() -> Response:
        # The model is loaded before the first worker accepts a connection (see server.py),
        # so answering at all means a worker with a loaded model is ready.
        return Response("{}", status=200, mimetype="application/json")

    @app.get("/execution-parameters", provide_automatic_options=False)
    def execution_parameters() -> Response:
        return jsonify(
            MaxConcurrentTransforms=config.workers,
            BatchStrategy="MULTI_RECORD",
            MaxPayloadInMB=config.max_payload_mb,
        )

    @app.post("/invocations", provide_automatic_options=False)
    def invocations() -> Response:
        if request.content_length is not None and request.content_length > config.max_payload_bytes:
            raise PayloadTooLarge(
                f"body of {request.content_length} bytes is over the {config.max_payload_mb} MB limit "
                "(SAGEMAKER_MAX_PAYLOAD_IN_MB)"
            )
        try:
            # Reading the body counts: a request is timed from its start (see deadline.py).
            with deadlines.limit(config.timeout):
                body = request.get_data(cache=False)
                if len(body) > config.max_payload_bytes:
                    raise PayloadTooLarge(f"chunked body is over the {config.max_payload_mb} MB limit "
                                          "(SAGEMAKER_MAX_PAYLOAD_IN_MB)")
                payload, mimetype = runtime.invoke(body, request.headers.get("Content-Type"), request.headers.get("Accept"))
        except DeadlineExceeded:
            log.warning("request stopped after SAGEMAKER_MODEL_SERVER_TIMEOUT=%d s (%s bytes of %s)",
                        config.timeout, request.content_length, request.headers.get("Content-Type"))
            return _error(f"the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT={config.timeout} s and was "
                          "stopped; send fewer rows per request or raise SAGEMAKER_MODEL_SERVER_TIMEOUT", 504)
        if config.batch and mimetype in LINE_TYPES and payload.endswith(b"\n"):
            # Batch transform with AssembleWith=Line adds a newline after each response itself:
            # without this one more, every input line gives exactly one output line.
            payload = payload[:-1]
        return Response(payload, status=200, mimetype=mimetype)

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError) -> Response:
        return _error(str(exc), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return _error(f"body is over the {config.max_payload_mb} MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)", 413)
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error while serving")
        return _error(f"internal error: {type(exc).__name__}: {exc}", 500)

    return app
