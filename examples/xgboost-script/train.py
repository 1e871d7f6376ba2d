"""A SageMaker XGBoost script-mode script as users write them (argparse over the hyperparameters,
SM_MODEL_DIR, SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION, xgb.train, save_model, model_fn).

It runs unchanged in SageMaker's own XGBoost framework container (framework_version 1.7-1) and in
xgboost-hdfs. The channels hold CSV files without a header, the label in the first column (what
SageMaker's XGBoost expects, and what examples/opt_ml.py writes from the HDFS sample).
"""
import argparse
import glob
import json
import os

import numpy as np
import pandas as pd
import xgboost as xgb


def read_channel(folder):
    frames = [pd.read_csv(path, header=None) for path in sorted(glob.glob(os.path.join(folder, "*.csv")))]
    data = pd.concat(frames, ignore_index=True)
    return xgb.DMatrix(data.iloc[:, 1:].to_numpy(np.float32), label=data.iloc[:, 0].to_numpy())


def model_fn(model_dir):
    """Serving: load the booster that training saved."""
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    # Hyperparameters sent by the estimator, as --name value.
    parser.add_argument("--max_depth", type=int, default=5)
    parser.add_argument("--eta", type=float, default=0.2)
    parser.add_argument("--min_child_weight", type=float, default=1)
    parser.add_argument("--subsample", type=float, default=1.0)
    parser.add_argument("--objective", type=str, default="binary:logistic")
    parser.add_argument("--num_round", type=int, default=50)
    # SageMaker's environment.
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--output-data-dir", type=str, default=os.environ.get("SM_OUTPUT_DATA_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", type=str, default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args, _ = parser.parse_known_args()

    dtrain = read_channel(args.train)
    evals = [(dtrain, "train")]
    if args.validation:
        dvalidation = read_channel(args.validation)
        evals.append((dvalidation, "validation"))
    params = {"max_depth": args.max_depth, "eta": args.eta, "min_child_weight": args.min_child_weight,
              "subsample": args.subsample, "objective": args.objective, "eval_metric": "auc", "nthread": 1}
    print("SM_HPS:", os.environ.get("SM_HPS"))
    booster = xgb.train(params, dtrain, num_boost_round=args.num_round, evals=evals, verbose_eval=10)

    booster.save_model(os.path.join(args.model_dir, "xgboost-model"))  # XGBoost 3 writes UBJSON
    if args.output_data_dir:
        with open(os.path.join(args.output_data_dir, "training.json"), "w") as out:
            json.dump({"rounds": booster.num_boosted_rounds(), "features": booster.num_features(),
                       "rows": dtrain.num_row()}, out)
    print("model saved in", args.model_dir)
