#!/usr/bin/env bash
# The local base image for `make image`: Debian bookworm (minbase) + its Python 3.11 with venv,
# made with debootstrap and imported into podman, because no registry is reachable here to pull
# python:3.11-slim-bookworm (the Dockerfile's default BASE_IMAGE, which it stands in for).
# Made once and kept: a second call with the image present does nothing (--force remakes it).
#
#   tools/image-base.sh [--force]     env: BASE_IMAGE (default localhost/chattts-base:bookworm),
#                                           DEBIAN_MIRROR (default: the host's apt mirror)
# Needs root (debootstrap), podman and debootstrap (tools/container-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/container/containers.conf}"
BASE_IMAGE="${BASE_IMAGE:-localhost/chattts-base:bookworm}"
SUITE=bookworm

if [ "${1:-}" != "--force" ] && podman image exists "$BASE_IMAGE"; then
  echo "base image $BASE_IMAGE exists (tools/image-base.sh --force remakes it)"
  exit 0
fi

# The Debian mirror apt uses on this host (deb822 .sources or one-line .list), else Debian's.
host_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # the URIs of a stanza whose Suites name bookworm (not bookworm-security)
    uri=$(awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
      END { if (u != "" && s) print u }' "$f" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "http://deb.debian.org/debian"
}
MIRROR="${DEBIAN_MIRROR:-$(host_mirror)}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}"

if [ "$(id -u)" != 0 ]; then
  echo "tools/image-base.sh: debootstrap needs root (or pull python:3.11-slim-bookworm and set" \
    "BASE_IMAGE to it)" >&2
  exit 3
fi

started=$(date +%s)
work=$(mktemp -d /var/tmp/chattts-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "debootstrap $SUITE (minbase + python3, python3-venv) from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# Security and point-release updates, as python:3.11-slim-bookworm has them; then what a slim
# image leaves out: apt lists, the .deb cache, docs, man pages, logs.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -q && apt-get upgrade -y -q && apt-get clean' >"$work/upgrade.log" 2>&1 \
  || { tail -n 30 "$work/upgrade.log" >&2; exit 1; }
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/debconf/*-old
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete \
  2>/dev/null || true
: >"$rootfs/etc/resolv.conf"

tar -C "$rootfs" --numeric-owner -c . | podman import -q \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates" \
  - "$BASE_IMAGE" >/dev/null
python_version=$(podman run --rm "$BASE_IMAGE" python3 -c 'import platform
print(platform.python_version())')
size=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
echo "made $BASE_IMAGE (Python $python_version, $((size / 1000000)) MB)" \
  "in $(($(date +%s) - started)) s"
