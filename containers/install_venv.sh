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
# binutils: trim_venv.py strips the compiled extensions. Online, PyPI may only have sources for
# some pins (sagemaker-training): give this build stage a compiler too. Offline the host already
# built every wheel.
packages="binutils"
[ -z "$(ls /wheels)" ] && ! command -v gcc >/dev/null && packages="$packages gcc libc6-dev"
if command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
# Every runtime dependency is pinned in the file, transitive ones included: --no-deps installs
# exactly that list, and pip check then proves nothing is missing but the deliberate omissions.
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps "$@" -r "$requirements"
problems=$(/opt/venv/bin/pip check --disable-pip-version-check | grep -v -i -E '^(multi-model-server [0-9.]+ requires (pillow|future|model-archiver)|sagemaker-training [0-9.]+ requires (paramiko|gevent|werkzeug)|No broken requirements)' || true)
if [ -n "$problems" ]; then echo "$problems" >&2; echo "install_venv.sh: a pin is missing from $requirements" >&2; exit 1; fi
/opt/venv/bin/python /src/trim_venv.py /opt/venv
