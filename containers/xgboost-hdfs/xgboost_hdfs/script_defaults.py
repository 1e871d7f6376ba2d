"""Script mode serving with the defaults of SageMaker's XGBoost framework container, where the
script defines no handler: input_fn decodes the body into a DMatrix, predict_fn is
booster.predict(data, validate_features=False). Unlike that container (which has none), a default
model_fn loads the model file as the built-in algorithm's serving does. The rest is byoc.script_serving."""
from __future__ import annotations

import numpy as np
import xgboost as xgb

from byoc import codecs
from byoc.script_serving import ScriptRuntime


class XGBoostScriptRuntime(ScriptRuntime):
    framework = "XGBoost"
    content_types = tuple(codecs.DECODERS)
    dtype = np.float32  # what XGBoost computes in

    def load(self) -> None:
        super().load()
        if isinstance(self.model, xgb.Booster):  # rows of the wrong width: a 400 naming it, not XGBoost's error
            n = self.model.num_features()
            self.feature_names = self.model.feature_names or [f"f{i}" for i in range(n)]

    def default_model_fn(self, entry_point: str) -> xgb.Booster:
        from .runtime import Runtime  # xgboost-model of any built-in version, or the one model file there

        return Runtime(self.model_dir).booster

    def default_input_fn(self, body: bytes, content_type: str) -> xgb.DMatrix:
        return xgb.DMatrix(self.decode(body, content_type), feature_names=self.feature_names)

    def default_predict_fn(self, data, model):
        if not isinstance(model, xgb.Booster):  # an XGBClassifier, a pipeline: its own predict
            return model.predict(data)
        if not isinstance(data, xgb.DMatrix):  # the script's input_fn made an array or a DataFrame
            data = xgb.DMatrix(data)
        return model.predict(data, validate_features=False)
