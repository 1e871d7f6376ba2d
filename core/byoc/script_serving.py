"""Script mode serving, shared by every image: the user's model_fn, input_fn, predict_fn, output_fn
or transform_fn, as SageMaker's framework containers call them.

Where the script defines no handler, the image's subclass supplies the default its framework's
SageMaker container has (default_model_fn, default_input_fn, default_predict_fn); the shared
codecs decode and encode. A handler that rejects its input is the client's error (400).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from . import codecs
from .errors import RequestError, UnsupportedMediaType
from .runtime import ModelRuntime
from .script_mode import CODE_DIR, fetch_code, install_requirements, program, warn_if_already_imported

HANDLERS = ("input_fn", "predict_fn", "output_fn")


class ScriptRuntime(ModelRuntime):
    """The user's module is imported once, at load; each image subclasses this with its defaults."""

    #: the framework whose SageMaker container this one stands in for (in messages)
    framework = "the framework"
    #: what default_input_fn decodes (a script with its own input_fn takes any content type)
    content_types = (codecs.CSV, codecs.JSON, codecs.JSONLINES, codecs.NPY)

    def load(self) -> None:
        entry_point = program()
        code_dir = fetch_code(os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY"), CODE_DIR)
        warn_if_already_imported(install_requirements(code_dir, required=True))  # before the import, as SageMaker
        spec = importlib.util.spec_from_file_location("user_module", code_dir / entry_point)
        if spec is None or not (code_dir / entry_point).is_file():
            raise FileNotFoundError(f"SAGEMAKER_PROGRAM {entry_point!r} is not in {code_dir}")
        sys.path.insert(0, str(code_dir))
        self.user = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.user)
        self.transform_fn = getattr(self.user, "transform_fn", None)
        self.input_fn, self.predict_fn, self.output_fn = (getattr(self.user, name, None) for name in HANDLERS)
        also = [name for name in HANDLERS if getattr(self.user, name, None)]
        if self.transform_fn and also:  # SageMaker's containers refuse the mix too: which one would run?
            raise ValueError(f"{entry_point} defines transform_fn and {', '.join(also)}: "
                             "define transform_fn alone, or input_fn / predict_fn / output_fn")
        model_fn = getattr(self.user, "model_fn", None)
        self.model = model_fn(str(self.model_dir)) if model_fn else self.default_model_fn(entry_point)

    # The defaults: where the script defines no handler --------------------------------------------

    def default_model_fn(self, entry_point: str) -> Any:
        raise AttributeError(f"{entry_point} defines no model_fn(model_dir); serving needs it to load the model "
                             f"({self.framework}'s SageMaker container has no default either)")

    def default_input_fn(self, body: bytes, content_type: str) -> Any:
        return self.decode(body, content_type)

    def default_predict_fn(self, data: Any, model: Any) -> Any:
        return model.predict(data)

    # One request --------------------------------------------------------------------------------

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        kind = codecs.media_type(content_type)
        if self.transform_fn:
            return self._response(self._call(self.transform_fn, self.model, body, kind, accept), accept or codecs.JSON)
        if not self.input_fn and kind not in self.content_types:
            raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; use one of "
                                       f"{list(self.content_types)}, or define input_fn in the script")
        response_type = codecs.negotiate(accept, kind, self.accept_types, self.default_accept) if not self.output_fn \
            else (codecs.media_type(accept) if accept and accept != "*/*" else self.default_accept or kind or codecs.JSON)
        data = self._call(self.input_fn, body, kind) if self.input_fn else self.default_input_fn(body, kind)
        prediction = self._call(self.predict_fn or self.default_predict_fn, data, self.model)
        if self.output_fn:
            return self._response(self._call(self.output_fn, prediction, response_type), response_type)
        return self.encode(prediction, response_type), response_type

    @staticmethod
    def _call(function, *args) -> Any:
        """User code that rejects its input (ValueError, TypeError, KeyError) is the client's error: 400."""
        try:
            return function(*args)
        except (ValueError, TypeError, KeyError) as exc:
            raise RequestError(f"{getattr(function, '__name__', 'user code')}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _response(result: Any, default_type: str) -> tuple[bytes, str]:
        body, kind = result if isinstance(result, tuple) else (result, default_type)
        return (body.encode() if isinstance(body, str) else bytes(body)), kind
