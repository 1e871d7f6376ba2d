#!/usr/bin/env bash
# Build this project's SageMaker images (every containers/*/Dockerfile), online or offline.
set -euo pipefail
cd "$(dirname "$0")"

OFFICIAL_BASE=python:3.11-slim-bookworm
LOCAL_BASE=byoc-base:bookworm
WHEELHOUSE=.build/wheelhouse

usage() {
  cat <<'EOF'
Usage: ./build.sh [options] [IMAGE ...]

Builds the SageMaker images in containers/ (default: all of them) as IMAGE:TAG.

Options:
  --tag TAG           image tag (default: latest)
  --mode MODE         auto | online | offline (default: auto, or $BYOC_BUILD_MODE)
                        online:  FROM the official python:3.11-slim-bookworm image, pip from PyPI
                        offline: FROM byoc-base:bookworm, made here from Debian packages with
                                 mmdebstrap, and pip from a wheelhouse built on this host
                        auto:    online when the official base image is present or can be
                                 pulled, offline otherwise
  --base-image IMG    use IMG as the base image instead (either mode)
  --rebuild-base      offline: make byoc-base:bookworm again even if it exists
  --platform PLAT     target platform (default: linux/amd64, what ml.m5 instances run)
  --push              then push each image to ECR (repository created when missing) and print
                      its URI; AWS credentials from the normal AWS chain; needs boto3 on the host
  --region REGION     AWS region for --push (default: from the AWS configuration)
  --registry-endpoint HOST[:PORT]
                      --push to this registry instead of the one ECR's token names
                      (also $BYOC_REGISTRY_ENDPOINT; for mirrors and tests)
  -h, --help          this help

Examples:
  ./build.sh                          # every image, :latest
  ./build.sh --tag 1.2.0 xgboost-hdfs
  BYOC_BUILD_MODE=offline ./build.sh
EOF
}

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

TAG=latest MODE=${BYOC_BUILD_MODE:-auto} BASE_IMAGE="" PLATFORM=linux/amd64 REBUILD_BASE=0 IMAGES=()
PUSH=0 REGION="" REGISTRY_ENDPOINT=${BYOC_REGISTRY_ENDPOINT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --mode) MODE=${2:?--mode needs a value}; shift 2 ;;
    --base-image) BASE_IMAGE=${2:?--base-image needs a value}; shift 2 ;;
    --platform) PLATFORM=${2:?--platform needs a value}; shift 2 ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --push) PUSH=1; shift ;;
    --region) REGION=${2:?--region needs a value}; shift 2 ;;
    --registry-endpoint) REGISTRY_ENDPOINT=${2:?--registry-endpoint needs a value}; shift 2 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) IMAGES+=("$1"); shift ;;
  esac
done
case "$MODE" in auto|online|offline) ;; *) die "--mode must be auto, online or offline, not '$MODE'" ;; esac

ALL_IMAGES=()
for dockerfile in containers/*/Dockerfile; do ALL_IMAGES+=("$(basename "$(dirname "$dockerfile")")"); done
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=("${ALL_IMAGES[@]}")
for image in "${IMAGES[@]}"; do
  [ -f "containers/$image/Dockerfile" ] || die "no image '$image': choose from ${ALL_IMAGES[*]}"
done

docker info >/dev/null 2>&1 || die "no Docker engine reachable (is the daemon running, may this user use it?)"

# Present locally, or pullable. The legacy builder then uses the local copy without pulling again.
image_available() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  docker pull --platform "$PLATFORM" "$1" >/dev/null 2>&1
}

if [ "$MODE" = auto ]; then
  if image_available "$OFFICIAL_BASE"; then
    MODE=online; log "mode: online ($OFFICIAL_BASE is available)"
  else
    MODE=offline; log "mode: offline ($OFFICIAL_BASE cannot be pulled here: base from Debian packages, wheels from this host)"
  fi
else
  log "mode: $MODE (chosen with --mode or BYOC_BUILD_MODE)"
fi

sources_file() {
  # mmdebstrap takes the host's apt sources as its mirror argument: no mirror is named here.
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$f" ] && { echo "$f"; return; }
  done
  die "no apt sources file found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"
}

make_local_base() {
  if [ "$REBUILD_BASE" = 0 ] && docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    log "base: reusing $LOCAL_BASE (--rebuild-base makes it again)"; return
  fi
  if ! command -v mmdebstrap >/dev/null; then
    [ "$(id -u)" = 0 ] || die "mmdebstrap is missing: install it (sudo apt-get install -y mmdebstrap) or run as root"
    log "installing mmdebstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  fi
  local tarball start=$SECONDS; tarball=$(mktemp --suffix=.tar)
  trap "rm -f '$tarball'" EXIT  # a failed mmdebstrap leaves no 170 MB tarball behind
  log "base: making $LOCAL_BASE from Debian bookworm packages (mmdebstrap, about a minute)"
  # python3 without python3-venv: pip is bootstrapped from the wheelhouse instead of ensurepip.
  # The merged-usr hook makes /bin, /lib... links itself, so the usrmerge package (and the
  # ~50 MB of Perl it needs) is not installed just to convert an empty tree. glibc's iconv
  # modules (gconv, 9 MB) go too: Python decodes text itself and the locale is C.UTF-8.
  local hooks=/usr/share/mmdebstrap/hooks/merged-usr
  mmdebstrap --quiet --mode=root --variant=minbase --architectures="$ARCH" \
    $( [ -d "$hooks" ] && echo "--hook-dir=$hooks" ) --include=python3,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/lib/*/gconv/*' --dpkgopt='path-include=/usr/lib/*/gconv/gconv-modules*' \
    --format=tar bookworm "$tarball" "$(sources_file)"
  docker import --platform "$PLATFORM" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tarball" "$LOCAL_BASE" >/dev/null
  rm -f "$tarball"; trap - EXIT
  log "base: $LOCAL_BASE made in $(( SECONDS - start )) s"
}

make_wheelhouse() {
  local python=${PYTHON:-python3}
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "offline builds need Python 3.11 on the host (the image's Debian Python is 3.11); set PYTHON=..."
  log "wheelhouse: pip wheel for ${IMAGES[*]} into $WHEELHOUSE/<image>"
  local image start=$SECONDS
  for image in "${IMAGES[@]}"; do
    # Made afresh each time (pip's cache makes that cheap) so no stale wheel lingers; one per
    # image so a change to one image's pins does not invalidate the other's build cache.
    rm -rf "$WHEELHOUSE/$image.new"
    # requirements.txt, and requirements-*.txt for what an image installs apart from its venv
    # (one pip call each: they may pin another version of the same package).
    local file
    for file in "containers/$image"/requirements*.txt; do
      "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WHEELHOUSE/$image.new" -r "$file"
    done
    rm -rf "$WHEELHOUSE/$image" && mv "$WHEELHOUSE/$image.new" "$WHEELHOUSE/$image"
  done
  log "wheelhouse: ready in $(( SECONDS - start )) s"
}

for image in "${IMAGES[@]}"; do mkdir -p "$WHEELHOUSE/$image"; done  # COPYed; empty online
if [ "$MODE" = offline ]; then
  # The wheelhouse holds this host's wheels and the base its Debian architecture: no cross builds.
  ARCH=${PLATFORM#linux/}; ARCH=${ARCH%%/*}
  [ "$ARCH" = "$(dpkg --print-architecture 2>/dev/null || echo amd64)" ] \
    || die "offline builds are for this host's architecture only, not $PLATFORM (use --mode online)"
  make_wheelhouse
  [ -n "$BASE_IMAGE" ] || { make_local_base; BASE_IMAGE=$LOCAL_BASE; }
  PIP_INSTALL_ARGS="--no-index --find-links /wheels"
else
  BASE_IMAGE=${BASE_IMAGE:-$OFFICIAL_BASE}
  PIP_INSTALL_ARGS=""
fi
# Say so now rather than let the first FROM fail on a registry lookup.
if ! image_available "$BASE_IMAGE"; then
  [ "$BASE_IMAGE" = "$OFFICIAL_BASE" ] && hint="build without it: --mode offline (or auto)" || hint="check --base-image"
  die "$MODE build: base image $BASE_IMAGE is not present and cannot be pulled (no registry reachable?); $hint"
fi

REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# An explicit tag is the version; "latest" says nothing, so then the commit describes it.
if [ "$TAG" != latest ]; then VERSION=$TAG
else VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo "$TAG"); fi
# Credentials in an https remote (user:token@) must not end up in a label.
SOURCE=${BYOC_SOURCE_URL:-$(git remote get-url origin 2>/dev/null | sed -E 's#^([a-z+]+://)[^/@]*@#\1#' || true)}
SOURCE=${SOURCE:-https://github.com/byoc-sagemaker/byoc-images}
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for image in "${IMAGES[@]}"; do
  log "building $image:$TAG from $BASE_IMAGE for $PLATFORM"
  start=$SECONDS
  # --quiet still prints the whole build log when a step fails; --force-rm drops failed containers.
  DOCKER_BUILDKIT=0 docker build --quiet --force-rm --platform "$PLATFORM" \
    -f "containers/$image/Dockerfile" -t "$image:$TAG" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PIP_INSTALL_ARGS="$PIP_INSTALL_ARGS" \
    --label org.opencontainers.image.title="$image" \
    --label org.opencontainers.image.source="$SOURCE" \
    --label org.opencontainers.image.version="$VERSION" \
    --label org.opencontainers.image.revision="$REVISION" \
    --label org.opencontainers.image.created="$CREATED" \
    . >/dev/null
  log "built $image:$TAG in $(( SECONDS - start )) s"
done

filters=(); for image in "${IMAGES[@]}"; do filters+=(--filter "reference=$image:$TAG"); done
docker image ls "${filters[@]}" --format 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}'

if [ "$PUSH" = 1 ]; then
  # The push itself is the deploy tool's (one implementation): ECR repository, token login, tag, push.
  python=${PYTHON:-python3}
  "$python" -c 'import boto3' 2>/dev/null || die "--push needs boto3 on the host (pip install ./deploy)"
  for image in "${IMAGES[@]}"; do
    PYTHONPATH="$PWD/deploy${PYTHONPATH:+:$PYTHONPATH}" "$python" -m byoc_deploy push "$image:$TAG" \
      ${REGION:+--region "$REGION"} ${REGISTRY_ENDPOINT:+--registry-endpoint "$REGISTRY_ENDPOINT"}
  done
fi
