"""Serving: feature rows in any codec's content type, or raw HDFS log lines as text/plain."""
from __future__ import annotations

import json
import logging

import numpy as np

from byoc import codecs
from byoc.errors import RequestError, UnsupportedMediaType
from byoc.runtime import ModelRuntime

from .artifacts import load_booster
from .bodylogs import BodyBlocks, BodyCounter
from .data import RAW_LOGS
from .logparse import LogFormatError, TemplateMatcher
from .outputs import Answers
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
        self.booster = load_booster(self._model_file())  # any built-in version's format, or ours
        self.booster.set_param({"nthread": 1})
        self.predictor = DensePredictor(self.booster)
        n = self.booster.num_features()
        self.feature_names = self.metadata.get("feature_names") or self.booster.feature_names or [f"f{i}" for i in range(n)]
        if len(self.feature_names) != n:
            raise ValueError(f"{METADATA_FILE} lists {len(self.feature_names)} features but the model has {n}")
        learner = json.loads(self.booster.save_config())["learner"]
        objective = self.objective = self.metadata.get("objective") or learner["objective"]["name"]
        # A score over the threshold is label 1: binary models only (multi-class answers the likeliest class).
        self.threshold = (self.metadata.get("threshold", 0.0 if objective == "binary:logitraw" else 0.5)
                          if objective.startswith("binary:") else None)
        num_class = int(learner["learner_model_param"].get("num_class") or 0)
        self.answers = Answers.from_env(objective, self.threshold, num_class)
        self.csv_fields = self.answers.csv_fields
        # libsvm requests count as training's files did; without metadata (a built-in artifact) each
        # request is guessed as the built-in does: 1-based when no row has index 0.
        self.libsvm_index_base = (self.metadata.get("libsvm_index_base") or 0) if self.metadata else None
        templates = self.metadata.get("templates")
        self.matcher = TemplateMatcher([tuple(t) for t in templates]) if templates else None
        self.count_body = BodyCounter(self.matcher) if self.matcher else None
        log.info("loaded %d-feature %s model, threshold %s, raw logs %s", n, objective,
                 "none" if self.threshold is None else f"{self.threshold:.4f}",
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
        records = self.answers.records(scores)
        return records if inverse is None else codecs.Distinct(records, inverse)

    def encode(self, predictions, accept: str) -> bytes:
        if isinstance(predictions, codecs.Columns):  # raw-log blocks: their own fields, whatever is selected
            return super().encode(predictions, accept, RAW_LOG_FIELDS[:2])
        if accept == codecs.CSV and self.answers.keys is None:
            # A default answer with a score per class (or target): those scores are the CSV columns, as the built-in's.
            records, inverse = predictions if isinstance(predictions, codecs.Distinct) else (predictions, None)
            if records and isinstance(records[0]["score"], list):
                predictions = codecs.Distinct([record["score"] for record in records], inverse)
        return super().encode(predictions, accept)
