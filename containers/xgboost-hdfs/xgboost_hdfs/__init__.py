"""xgboost-hdfs: an XGBoost binary classifier for anomalous blocks in HDFS_v1 logs.

train(env) is the training job; Runtime serves the model (byoc's contract does the rest).
"""
from .runtime import Runtime
from .train import train

__all__ = ["Runtime", "train"]
