"""The reference server: a model served the way AWS's own framework containers do it.

flask under gunicorn with sync workers (benchmarks/serving.py starts it inside the same image:
`/opt/venv/bin/gunicorn --worker-class sync --workers N --chdir /opt/benchmarks/reference app:app`),
the CSV body parsed with `numpy.loadtxt`, scored with `Booster.inplace_predict`, one score per line
back. Written for this benchmark, not taken from any AWS code base; it checks nothing beyond what
loadtxt checks. Each worker loads the model itself when gunicorn imports this module.

Like our server it gives XGBoost one thread per worker (the benchmark also sets
OMP_NUM_THREADS=1), so the two compare serving stacks, not numbers of compute threads.
"""
from __future__ import annotations

import io
import os

import flask
import numpy as np
import xgboost as xgb

MODEL_DIR = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")

booster = xgb.Booster()
with open(os.path.join(MODEL_DIR, "xgboost-model"), "rb") as handle:
    booster.load_model(bytearray(handle.read()))
booster.set_param({"nthread": 1})


def predict_csv(body: bytes) -> bytes:
    """Parse, predict, format: the whole per-request work (benchmarks/inprocess.py times it alone)."""
    features = np.loadtxt(io.StringIO(body.decode("utf-8")), delimiter=",", dtype=np.float32, ndmin=2)
    scores = booster.inplace_predict(features)
    return "".join(f"{score}\n" for score in scores.tolist()).encode()


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response("{}", status=200, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations():
    if flask.request.content_type != "text/csv":
        return flask.Response("text/csv only", status=415, mimetype="text/plain")
    try:
        payload = predict_csv(flask.request.get_data())
    except ValueError as exc:
        return flask.Response(str(exc), status=400, mimetype="text/plain")
    return flask.Response(payload, status=200, mimetype="text/csv")
