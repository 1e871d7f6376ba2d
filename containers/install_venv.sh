#!/bin/sh
# Build stage of every image: /opt/venv with the image's pinned requirements (the Dockerfile adds the byoc core).
# Usage: install_venv.sh REQUIREMENTS_FILE [pip install args, e.g. --no-index --find-links /wheels]
set -eu
requirements=$1; shift
# The official slim image has ensurepip; Debian's base does not (its bundled wheels would stay
# in the image), so there pip is bootstrapped from the wheelhouse instead.
if ! python3 -m venv /opt/venv 2>/dev/null; then
  python3 -m venv --clear --without-pip /opt/venv
  pip_wheel=$(echo /wheels/pip-*.whl)
  /opt/venv/bin/python "$pip_wheel/pip" install --quiet --no-cache-dir --no-index --find-links /wheels pip
fi
# Online, PyPI may only have sources for some pins (sagemaker-training): give this build stage
# a compiler. Offline the host already built every wheel.
if [ -z "$(ls /wheels)" ] && ! command -v gcc >/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
fi
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "$@" -r "$requirements"
/opt/venv/bin/python /src/trim_venv.py /opt/venv
