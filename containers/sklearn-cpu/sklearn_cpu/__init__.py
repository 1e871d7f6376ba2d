"""sklearn-cpu: a scikit-learn CPU-load regressor for PRTG sensor data, and script mode for a
user's own SageMaker scikit-learn script (byoc.script_mode, shared with xgboost-hdfs). Script mode
is chosen by SAGEMAKER_PROGRAM or the sagemaker_program hyperparameter, exactly as in SageMaker's
scikit-learn container."""
from __future__ import annotations

from byoc import script_mode

from .runtime import BuiltinRuntime
from .script_defaults import SklearnScriptRuntime
from .train import train as train_builtin

__all__ = ["Runtime", "train"]

train, Runtime = script_mode.entry_points(train_builtin, BuiltinRuntime, SklearnScriptRuntime)
