"""xgboost-hdfs: an XGBoost binary classifier for anomalous blocks in HDFS_v1 logs, and script mode
for a user's own SageMaker XGBoost script (byoc.script_mode, shared with sklearn-cpu).

train(env) is the training job; Runtime serves the model (byoc's contract does the rest). Script
mode is chosen by the sagemaker_program hyperparameter (training) or SAGEMAKER_PROGRAM (serving),
as in SageMaker's XGBoost container.
"""
from byoc import script_mode

from .runtime import Runtime as BuiltinRuntime
from .script_defaults import XGBoostScriptRuntime
from .train import train as train_builtin

__all__ = ["Runtime", "train"]

train, Runtime = script_mode.entry_points(train_builtin, BuiltinRuntime, XGBoostScriptRuntime)
