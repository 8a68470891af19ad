#!/usr/bin/env bash
# System packages `make image` / `make image-test` need, from Debian: installed when missing and
# we run as root. Elsewhere image-test skips with a reason; under CI=true a missing one fails.
#   podman, buildah: build and run the image (no Docker engine needed)
#   runc:            the OCI runtime (Debian's default crun fails on this kind of machine:
#                    "cgroups in hybrid mode not supported"); deploy/container/containers.conf
#                    selects it
#   debootstrap:     the local base image (no registry is reachable to pull one)
#   uidmap, slirp4netns, fuse-overlayfs: what podman wants around it (rootless too)
#   catatonit:       `podman run --init`
# Exit status: 0 ready, 1 failure, 3 missing and not root (the caller skips, outside CI).
set -euo pipefail
missing=()
for cmd in podman buildah runc debootstrap newuidmap slirp4netns fuse-overlayfs; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null 2>&1 || missing+=(catatonit)
[ ${#missing[@]} -eq 0 ] && exit 0
packages=()
for cmd in "${missing[@]}"; do
  case "$cmd" in
    newuidmap) packages+=(uidmap) ;;
    *) packages+=("$cmd") ;;
  esac
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${packages[*]} (Debian packages) for the container image"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${packages[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${packages[@]}" >/dev/null; }
elif [ "${CI:-}" = "true" ]; then
  echo "missing system packages: ${packages[*]} (CI needs them for make image-test; run as" \
    "root or install them)" >&2
  exit 1
else
  echo "note: ${packages[*]} not installed and not root: the container image can't be built" \
    "here (install them: apt-get install ${packages[*]})" >&2
  exit 3
fi
