"""xgboost-hdfs: an XGBoost binary classifier for anomalous blocks in HDFS_v1 logs, and script mode
for a user's own SageMaker XGBoost script (byoc.script_mode, shared with sklearn-cpu).

train(env) is the training job; Runtime serves the model (byoc's contract does the rest). Script
mode is chosen by the sagemaker_program hyperparameter (training) or SAGEMAKER_PROGRAM (serving),
as in SageMaker's XGBoost container.
"""
from byoc import script_mode

from .runtime import Runtime as BuiltinRuntime
from .train import train as train_builtin

__all__ = ["Runtime", "train"]


def train(env) -> None:
    if script_mode.program(env.hyperparameters):
        script_mode.train(env)
    else:
        train_builtin(env)


def Runtime(model_dir):  # noqa: N802 - the serving core calls it like a class
    if script_mode.program():
        from .script_defaults import XGBoostScriptRuntime

        return XGBoostScriptRuntime(model_dir)
    return BuiltinRuntime(model_dir)
