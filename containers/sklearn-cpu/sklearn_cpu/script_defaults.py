"""Script mode serving with the defaults of SageMaker's scikit-learn container: no default
model_fn, the codecs' rows for input, model.predict. The rest is byoc.script_serving."""
from __future__ import annotations

import numpy as np

from byoc.script_serving import ScriptRuntime


class SklearnScriptRuntime(ScriptRuntime):
    framework = "scikit-learn"
    dtype = np.float64  # the default input_fn's: scikit-learn computes in float64 (1622535661 stays exact)
