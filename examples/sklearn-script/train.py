"""A SageMaker scikit-learn script as users write them (argparse, SM_CHANNEL_*, joblib, model_fn).

It runs unchanged in SageMaker's own scikit-learn container and in sklearn-cpu.
"""
import argparse
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score


def model_fn(model_dir):
    """Serving: load the model that training saved."""
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=str, required=True)  # space-separated column names
    parser.add_argument("--target", type=str, required=True)
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", type=str, default=os.environ.get("SM_CHANNEL_TEST"))
    parser.add_argument("--train-file", type=str, default="train.csv")
    parser.add_argument("--test-file", type=str, default="test.csv")
    args, _ = parser.parse_known_args()

    features = args.features.split()
    train_df = pd.read_csv(os.path.join(args.train, args.train_file))
    test_df = pd.read_csv(os.path.join(args.test, args.test_file))
    print("SM_HPS:", os.environ.get("SM_HPS"))
    print("training LinearRegression on", features, "->", args.target, "rows:", len(train_df))

    model = LinearRegression()
    model.fit(train_df[features], train_df[args.target])
    predicted = model.predict(test_df[features])
    errors = np.abs(test_df[args.target] - predicted)
    print(f"AE-at-50th-percentile: {np.percentile(errors, 50):.4f}")
    print(f"MAE: {mean_absolute_error(test_df[args.target], predicted):.4f}")
    print(f"R2: {r2_score(test_df[args.target], predicted):.4f}")

    path = os.path.join(args.model_dir, "model.joblib")
    joblib.dump(model, path)
    print("model saved at", path)
