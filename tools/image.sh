#!/usr/bin/env bash
# Build and test the container image with podman (no Docker engine needed).
#
#   tools/image.sh build   podman's pieces (tools/container-deps.sh), the local Debian base
#                          (tools/image-base.sh, made once), then the Dockerfile
#   tools/image.sh test    build, then tests/image/ against the image, then record sizes and
#                          durations in bench/results/image.json
#
# Env: IMAGE (default localhost/chattts-server:latest), BASE_IMAGE (default the local
# localhost/chattts-base:bookworm), TORCH_INDEX_URL (default PyPI: the CUDA build of torch),
# EXTRAS (the project's optional dependency groups, default torch; e.g. torch,postgres), PYTHON (the venv's python,
# for the tests), PYTEST_ARGS.
# Without podman and not root: says so and exits 0 (nothing can be built here); under CI=true
# that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/container/containers.conf}"
IMAGE="${IMAGE:-localhost/chattts-server:latest}"
BASE_IMAGE="${BASE_IMAGE:-localhost/chattts-base:bookworm}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://pypi.org/simple}"
PYTHON="${PYTHON:-.venv/bin/python}"
STATE=.cache/image
mkdir -p "$STATE"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

deps() {
  local rc=0
  tools/container-deps.sh || rc=$?
  if [ "$rc" = 3 ]; then
    echo "image: skipped (podman and its pieces are missing and we are not root; see above)" >&2
    exit 0
  fi
  [ "$rc" = 0 ] || exit "$rc"
}

build() {
  local t0 t1 base_made=false base_s=null build_s size
  t0=$(now)
  deps
  if [[ "$BASE_IMAGE" == localhost/* ]] && ! podman image exists "$BASE_IMAGE"; then
    t1=$(now)
    local rc=0
    BASE_IMAGE="$BASE_IMAGE" tools/image-base.sh || rc=$?
    if [ "$rc" = 3 ] && [ "${CI:-}" != "true" ]; then
      echo "image: skipped (the base image needs root to make; see above)" >&2
      exit 0
    fi
    [ "$rc" = 0 ] || exit "$rc"
    base_made=true
    base_s=$(since "$t1")
  fi
  t1=$(now)
  # --format docker keeps HEALTHCHECK (the OCI format has no field for it); the RUN cache
  # mounts keep pip's downloads between builds (outside the image); --layers reuses every step
  # whose inputs did not change (the dependencies' layer above all).
  # pip inside the build trusts what this host trusts (a TLS-intercepting proxy's CA included)
  local ca=()
  [ -s "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" ] \
    && ca=(--secret "id=ca,src=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}")
  set +e +o pipefail
  podman build --format docker --layers "${ca[@]}" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL" --build-arg EXTRAS="${EXTRAS:-torch}" \
    -t "$IMAGE" -f Dockerfile . 2>&1 | tee "$STATE/build.log" \
    | grep --line-buffered -v -E '^(Copying (blob|config)|Writing manifest|Storing signatures)'
  local status=${PIPESTATUS[0]}
  set -e -o pipefail
  [ "$status" = 0 ] || { echo "image: podman build failed ($STATE/build.log)" >&2; exit 1; }
  build_s=$(since "$t1")
  podman image prune -f >/dev/null  # the untagged images earlier builds left
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  cat >"$STATE/build.json" <<EOF
{"image": "$IMAGE", "base_image": "$BASE_IMAGE", "base_made": $base_made, "base_s": $base_s,
 "build_s": $build_s, "deps_and_build_s": $(since "$t0"), "size_bytes": $size,
 "torch_index_url": "$TORCH_INDEX_URL"}
EOF
  echo "image: $IMAGE, $(awk -v s="$size" 'BEGIN { printf "%.2f GB", s / 1e9 }')" \
    "(podman's figure, uncompressed), built in ${build_s} s$([ "$base_made" = true ] &&
      echo ", base image made in ${base_s} s")"
}

run_tests() {
  local t_all=$1 t0 rc=0
  t0=$(now)
  # shellcheck disable=SC2086
  IMAGE="$IMAGE" "$PYTHON" -m pytest tests/image -p no:cacheprovider ${PYTEST_ARGS:-} || rc=$?
  [ "$rc" = 0 ] || { echo "image: tests/image failed" >&2; exit "$rc"; }
  echo "{\"tests_s\": $(since "$t0"), \"total_s\": $(since "$t_all")}" >"$STATE/tests.json"
  "$PYTHON" tools/image_record.py "$STATE" bench/results/image.json
}

case "${1:-build}" in
  build) build ;;
  test)
    t_all=$(now)
    build
    run_tests "$t_all"
    ;;
  *) echo "usage: tools/image.sh build|test" >&2; exit 2 ;;
esac
