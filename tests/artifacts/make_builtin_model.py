"""Train and save a model as SageMaker's built-in XGBoost of this venv's XGBoost version does.

    python make_builtin_model.py TRAIN_CSV REQUEST_CSV OUT_DIR

Runs in the old versions' venvs (tests/artifacts/requirements-xgboost-*.txt): so plain Python 3
that xgboost 0.90 and numpy 1.23 accept. TRAIN_CSV: label first, no header. Writes
OUT_DIR/xgboost-model the way that built-in version writes it (0.90-1 ... 1.2-x: pickle.dump of
the Booster; later ones: Booster.save_model to the name without extension, which 1.3 ... 1.7 write
in the legacy binary format and 2.1 and later as UBJSON), and OUT_DIR/predictions.json: this
version's own predictions for the rows of REQUEST_CSV.
"""
import json
import pickle
import sys
import warnings

import numpy as np
import xgboost as xgb

train_csv, request_csv, out_dir = sys.argv[1:4]
train = np.loadtxt(train_csv, delimiter=",", ndmin=2)
booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "seed": 0},
                    xgb.DMatrix(train[:, 1:], label=train[:, 0]), num_boost_round=20)
version = tuple(int(part) for part in xgb.__version__.split(".")[:2])
model_path = out_dir + "/xgboost-model"
if version < (1, 3):
    with open(model_path, "wb") as out:
        # 0.90-x ran Python 3.6, whose default is protocol 3; the newest Python's default (4) for 1.0
        pickle.dump(booster, out, protocol=3 if version < (1, 0) else pickle.DEFAULT_PROTOCOL)
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2.x+: "Saving model in the UBJSON format as default"
        booster.save_model(model_path)
rows = np.loadtxt(request_csv, delimiter=",", ndmin=2)
with open(out_dir + "/predictions.json", "w") as out:
    json.dump({"xgboost": xgb.__version__, "predictions": booster.predict(xgb.DMatrix(rows)).tolist()}, out)
