"""The model runtime every image implements: load once, then decode -> predict -> encode per request.

The shape follows the SageMaker inference toolkit's handler contract:
load = model_fn, decode = input_fn, predict = predict_fn, encode = output_fn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import codecs
from .errors import UnsupportedMediaType


class ModelRuntime:
    """Base class: subclasses implement load() and predict(); the codecs do the rest."""

    #: content types accepted on /invocations and offered in responses
    content_types: Sequence[str] = tuple(codecs.DECODERS)
    accept_types: Sequence[str] = tuple(codecs.ENCODERS)
    #: the prediction fields written per line when the response is CSV
    csv_fields: Sequence[str] = ("score",)
    #: feature names in model order (None when the model does not know them)
    feature_names: Sequence[str] | None = None

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.load()

    def load(self) -> None:
        raise NotImplementedError

    def decode(self, body: bytes, content_type: str) -> Any:
        return codecs.decode(body, content_type, self.feature_names)

    def predict(self, data: Any) -> Any:
        raise NotImplementedError

    def encode(self, predictions: Any, accept: str) -> bytes:
        return codecs.encode(predictions, accept, self.csv_fields)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        """One /invocations request: 415 and 406 are decided before any parsing."""
        kind = codecs.media_type(content_type)
        if kind not in self.content_types:
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not supported; use one of {list(self.content_types)}"
            )
        response_type = codecs.negotiate(accept, kind, self.accept_types)
        predictions = self.predict(self.decode(body, kind))
        return self.encode(predictions, response_type), response_type
