"""sklearn-cpu: a scikit-learn CPU-load regressor for PRTG sensor data, and script mode for a
user's own SageMaker scikit-learn script (byoc.script_mode, shared with xgboost-hdfs). Script mode
is chosen by SAGEMAKER_PROGRAM or the sagemaker_program hyperparameter, exactly as in SageMaker's
scikit-learn container."""
from __future__ import annotations

from byoc import script_mode
from byoc.training import TrainingEnv

from .runtime import BuiltinRuntime


def train(env: TrainingEnv) -> None:
    if script_mode.program(env.hyperparameters):
        script_mode.train(env)
    else:
        from .train import train as train_builtin

        train_builtin(env)


def Runtime(model_dir):  # noqa: N802 - the serving core calls it like a class
    if script_mode.program():
        from .script_defaults import SklearnScriptRuntime

        return SklearnScriptRuntime(model_dir)
    return BuiltinRuntime(model_dir)
