"""Serving: feature rows in any codec's content type, or raw HDFS log lines as text/plain."""
from __future__ import annotations

import json
import logging

import numpy as np
import xgboost as xgb

from byoc import codecs
from byoc.errors import RequestError, UnsupportedMediaType
from byoc.runtime import ModelRuntime

from .bodylogs import BodyBlocks, BodyCounter
from .data import RAW_LOGS
from .logparse import LogFormatError, TemplateMatcher
from .predictor import DensePredictor
from .train import METADATA_FILE, MODEL_FILE

log = logging.getLogger(__name__)
MODEL_SUFFIXES = (".json", ".ubj", ".bst", ".model", ".bin")
RAW_LOG_FIELDS = ("block_id", "score", "predicted_label")  # per block; CSV answers the first two


class Runtime(ModelRuntime):
    content_types = (*codecs.DECODERS, codecs.TEXT)

    def load(self) -> None:
        metadata_path = self.model_dir / METADATA_FILE
        self.metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {}
        self.booster = xgb.Booster()
        # From bytes, XGBoost tells JSON, UBJSON and the legacy binary format apart by content.
        self.booster.load_model(bytearray(self._model_file().read_bytes()))
        self.booster.set_param({"nthread": 1})
        self.predictor = DensePredictor(self.booster)
        n = self.booster.num_features()
        self.feature_names = self.metadata.get("feature_names") or self.booster.feature_names or [f"f{i}" for i in range(n)]
        if len(self.feature_names) != n:
            raise ValueError(f"{METADATA_FILE} lists {len(self.feature_names)} features but the model has {n}")
        objective = self.metadata.get("objective") or json.loads(self.booster.save_config())["learner"]["objective"]["name"]
        self.threshold = self.metadata.get("threshold", 0.0 if objective == "binary:logitraw" else 0.5)
        # libsvm requests count as training's files did; without metadata (a built-in artifact) each
        # request is guessed as the built-in does: 1-based when no row has index 0.
        self.libsvm_index_base = (self.metadata.get("libsvm_index_base") or 0) if self.metadata else None
        templates = self.metadata.get("templates")
        self.matcher = TemplateMatcher([tuple(t) for t in templates]) if templates else None
        self.count_body = BodyCounter(self.matcher) if self.matcher else None
        log.info("loaded %d-feature model, threshold %.4f, raw logs %s", n, self.threshold,
                 "accepted" if self.matcher else "not accepted")

    def _model_file(self):
        """Ours or SageMaker built-in XGBoost's 'xgboost-model'; else the one model-like file present."""
        named = self.model_dir / MODEL_FILE
        if named.exists():
            return named
        found = [p for p in self.model_dir.iterdir() if p.suffix in MODEL_SUFFIXES and p.name != METADATA_FILE]
        if len(found) != 1:
            raise FileNotFoundError(f"no {MODEL_FILE} in {self.model_dir} and {len(found)} other model files "
                                    f"({', '.join(MODEL_SUFFIXES)}); expected exactly one")
        return found[0]

    def parse(self, body: bytes, content_type: str):
        """A feature matrix, a Distinct of one (CSV), or the BodyBlocks of raw log lines."""
        if content_type == codecs.CSV:  # rows score independently: each distinct row once
            return codecs.decode_csv_distinct(body, self.feature_names, self.dtype)
        if content_type == codecs.LIBSVM:
            return codecs.decode(body, content_type, self.feature_names, self.dtype, self.libsvm_index_base)
        if content_type != codecs.TEXT:
            return super().parse(body, content_type)
        if self.matcher is None or self.metadata.get("feature_source") != RAW_LOGS:
            raise UnsupportedMediaType("this model was trained on feature rows, not raw logs; "
                                       "send text/csv, application/json, application/jsonlines, text/libsvm, "
                                       "application/x-npy or application/x-recordio-protobuf")
        if not body.strip():
            raise RequestError("empty request body: send at least one log line")
        try:
            return self.count_body(body)
        except LogFormatError as exc:
            raise RequestError(str(exc)) from None

    def predict(self, data):
        if isinstance(data, BodyBlocks):  # columns: no Python object per block
            scores = np.concatenate([self.predictor(batch) for batch in data.batches()])
            labels = (scores >= self.threshold).astype(np.int8)
            return codecs.Columns(RAW_LOG_FIELDS, (data.block_ids, scores, labels))
        features, inverse = (data.values, data.inverse) if isinstance(data, codecs.Distinct) else (data, None)
        scores = self.predictor(features)
        # Python floats and ints in one call each (float() per numpy scalar is 3x slower).
        labels = (scores >= self.threshold).astype(np.int8).tolist()
        records = [{"score": s, "predicted_label": l} for s, l in zip(scores.tolist(), labels)]
        return records if inverse is None else codecs.Distinct(records, inverse)

    def encode(self, predictions, accept: str) -> bytes:
        raw_logs = isinstance(predictions, codecs.Columns)
        return super().encode(predictions, accept, RAW_LOG_FIELDS[:2] if raw_logs else None)
