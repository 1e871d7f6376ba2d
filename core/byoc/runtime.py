"""The model runtime every image implements: load once, then decode -> predict -> encode per request.

The shape follows the SageMaker inference toolkit's handler contract:
load = model_fn, decode = input_fn, predict = predict_fn, encode = output_fn.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import codecs
from .errors import PayloadTooLarge, UnsupportedMediaType

DEFAULT_LIMIT_MB = 6  # InvokeEndpoint's limit on a real-time request and on its response


def response_limit_mb() -> int | None:
    """The largest answer, in MiB: SAGEMAKER_MAX_PAYLOAD_IN_MB, the request's limit (default 6, which
    is also SageMaker's limit on a real-time response). None in batch transform (SAGEMAKER_BATCH):
    its answers go to S3, and MaxPayloadInMB limits the request only (a 6 MB CSV for a 3-feature
    model answers 15 MB)."""
    if os.environ.get("SAGEMAKER_BATCH", "").strip().lower() in ("true", "1"):
        return None
    raw = os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_LIMIT_MB  # the server refuses other values


def default_accept(supported: Sequence[str]) -> str | None:
    """SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: the answer's type when a request has no Accept (or */*),
    as in SageMaker's built-in algorithms; None (unset) keeps the default by request type. A type
    not answered here fails the start, naming the ones that are."""
    raw = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip()
    if not raw:
        return None
    kind = codecs.media_type(raw)
    if kind not in supported:
        raise ValueError(f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={raw!r} is not an answer type of this image; "
                         f"use one of {', '.join(supported)}")
    return kind


class ModelRuntime:
    """Base class: subclasses implement load() and predict(), and parse() for their own inputs."""

    #: content types accepted on /invocations and offered in responses
    content_types: Sequence[str] = tuple(codecs.DECODERS)
    accept_types: Sequence[str] = tuple(codecs.ENCODERS)
    #: the prediction fields written per line when the response is CSV
    csv_fields: Sequence[str] = ("score",)
    #: feature names in model order (None when the model does not know them)
    feature_names: Sequence[str] | None = None
    #: the dtype request bodies decode to: what the model computes in (XGBoost: float32)
    dtype: type = np.float32

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        limit = response_limit_mb()
        self.max_response_bytes = None if limit is None else limit << 20
        self.default_accept = default_accept(self.accept_types)
        self.load()

    def load(self) -> None:
        raise NotImplementedError

    def decode(self, body: bytes, content_type: str) -> Any:
        """The parsed body, never without rows: the one check every runtime and content type passes."""
        return codecs.require_rows(self.parse(body, content_type))

    def parse(self, body: bytes, content_type: str) -> Any:
        return codecs.decode(body, content_type, self.feature_names, self.dtype)

    def predict(self, data: Any) -> Any:
        raise NotImplementedError

    def encode(self, predictions: Any, accept: str, csv_fields: Sequence[str] | None = None) -> bytes:
        fields = csv_fields or self.csv_fields
        if isinstance(predictions, codecs.Columns):  # many rows: refused before their text is made
            self.check_response_size(codecs.least_encoded_size(predictions, accept, fields), exact=False)
        return codecs.encode(predictions, accept, fields)

    def check_response_size(self, size: int, exact: bool = True) -> None:
        """413 for an answer over the limit (exact=False: `size` is a lower bound, known before predicting)."""
        if self.max_response_bytes is not None and size > self.max_response_bytes:
            raise PayloadTooLarge(
                f"the answer would be {'at least ' if not exact else ''}{size:,} bytes, over the "
                f"{self.max_response_bytes >> 20} MB response limit (SAGEMAKER_MAX_PAYLOAD_IN_MB); "
                "send fewer rows or blocks per request")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        """One /invocations request: 415 and 406 are decided before any parsing."""
        kind = codecs.media_type(content_type)
        if kind not in self.content_types:
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not supported; use one of {list(self.content_types)}"
            )
        response_type = codecs.negotiate(accept, kind, self.accept_types, self.default_accept)
        predictions = self.predict(self.decode(body, kind))
        payload = self.encode(predictions, response_type)
        self.check_response_size(len(payload))
        return payload, response_type
