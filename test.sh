#!/usr/bin/env bash
# The project's test command: a venv with the pinned dev dependencies, then pytest.
# Unit tests run anywhere; container tests build the images through build.sh and need a Docker
# engine (they are skipped, saying so, when none is reachable). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${BYOC_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the pins changed.
stamp="$VENV/.requirements.sha"
want=$(cat requirements-dev.txt containers/*/requirements.txt benchmarks/reference/requirements.txt deploy/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install --quiet -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
# checkov (tests/deploy/test_static_checks.py) in a venv of its own: its many pinned dependencies
# would clash with moto's and cfn-lint's above.
CHECKOV_VENV=${BYOC_CHECKOV_VENV:-.venv-checkov}
if [ ! -x "$CHECKOV_VENV/bin/python" ]; then
  "$PYTHON" -m venv "$CHECKOV_VENV"
fi
stamp="$CHECKOV_VENV/.requirements.sha"
want=$(sha256sum requirements-checkov.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$CHECKOV_VENV/bin/pip" install --quiet -r requirements-checkov.txt
  echo "$want" > "$stamp"
fi
export BYOC_CHECKOV="$(cd "$CHECKOV_VENV" && pwd)/bin/checkov"
exec "$VENV/bin/python" -m pytest "$@"
