#!/usr/bin/env bash
# The main job, end to end on this machine: lay out /opt/ml from ../shared/data/hdfs (raw logs,
# chronological 80/20 split), run `train` in the xgboost-hdfs image, then `serve` the model and
# call it with curl: feature rows as CSV, and raw log lines as text/plain.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-xgboost-hdfs:latest}
PORT=${PORT:-8080}
WORK=${WORK:-$(mktemp -d)}

python3 examples/opt_ml.py hdfs-raw "$WORK"
echo "== training ($IMAGE) on $WORK"
docker run --rm -v "$WORK:/opt/ml" "$IMAGE" train | grep -v '^\[[0-9]*\]' || true
[ -f "$WORK/model/xgboost-model" ] || { echo "training failed: $(cat "$WORK/output/failure")"; exit 1; }
cat "$WORK/output/data/evaluation.json"

echo "== serving on 127.0.0.1:$PORT"
name=xgboost-hdfs-demo-$$
docker run -d --rm --name "$name" -p "127.0.0.1:$PORT:8080" -v "$WORK/model:/opt/ml/model:ro" "$IMAGE" serve >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && break; sleep 0.2; done

echo "-- CSV feature rows (E1..E30, unmatched):"
curl -sS -H 'Content-Type: text/csv' --data-binary $'0,0,0,0,3,0,0,0,3,0,3,0,0,0,0,0,0,0,0,0,0,1,0,0,0,3,0,0,0,0,0\n0,1,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0' \
  "http://127.0.0.1:$PORT/invocations"
echo "-- the first 40 raw log lines, 10 blocks (text/plain -> one prediction per block):"
# head closes the pipe early: zcat's SIGPIPE is expected, not a failure under pipefail
{ zcat ../shared/data/hdfs/HDFS.log.gz || true; } | head -40 | \
  curl -sS -H 'Content-Type: text/plain' -H 'Accept: application/json' --data-binary @- "http://127.0.0.1:$PORT/invocations"
echo
echo "-- a bad request (wrong column count) gets a 400 with a JSON error:"
curl -sS -w ' (HTTP %{http_code})\n' -H 'Content-Type: text/csv' --data-binary '1,2,3' "http://127.0.0.1:$PORT/invocations"
