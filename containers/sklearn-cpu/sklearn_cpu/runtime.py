"""Built-in serving: the trained regressor on feature rows (named features welcome)."""
from __future__ import annotations

import json

import joblib
import numpy as np

from byoc.errors import RequestError
from byoc.runtime import ModelRuntime

from .train import METADATA_FILE, MODEL_FILE


class BuiltinRuntime(ModelRuntime):
    dtype = np.float64  # scikit-learn computes in float64: float32 would move 1622535661 to 1622535680

    def load(self) -> None:
        self.metadata = json.loads((self.model_dir / METADATA_FILE).read_text())
        self.model = joblib.load(self.model_dir / MODEL_FILE)
        self.feature_names = self.metadata["feature_names"]

    def predict(self, features: np.ndarray) -> np.ndarray:
        if np.isnan(features).any():
            row, column = map(int, np.argwhere(np.isnan(features))[0])
            raise RequestError(f"row {row + 1}, column {column + 1} ({self.feature_names[column]}) is missing; "
                               "this model needs every feature")
        return self.model.predict(features)
