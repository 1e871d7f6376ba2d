"""sklearn-cpu: a scikit-learn CPU-load regressor for PRTG sensor data, and script mode for a
user's own SageMaker scikit-learn script. Script mode is chosen by SAGEMAKER_PROGRAM or the
sagemaker_program hyperparameter, exactly as in SageMaker's scikit-learn container."""
from __future__ import annotations

from byoc.training import TrainingEnv

from . import script_mode
from .runtime import BuiltinRuntime


def train(env: TrainingEnv) -> None:
    if script_mode.program(env.hyperparameters):
        script_mode.train(env)
    else:
        from .train import train as train_builtin

        train_builtin(env)


def Runtime(model_dir):  # noqa: N802 - the serving core calls it like a class
    return script_mode.ScriptRuntime(model_dir) if script_mode.program() else BuiltinRuntime(model_dir)
