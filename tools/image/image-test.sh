#!/usr/bin/env bash
# `make image-test`: build the image with podman in a throwaway store and prove
# it with tests/image/ (real podman, real image). `image-test.sh measure`
# measures size and start-up of the image and its variants instead
# (tools/image/measure.py; figures in docs/BENCHMARKS.md, "Image size").
#
# No registry can be reached here, so `python:3.11-slim` cannot be pulled: a
# stand-in with the same name is made from Debian bookworm by mmdebstrap
# (cached as a tarball under ${XDG_CACHE_HOME:-~/.cache}/task-pod-webhook/)
# and passed as the Dockerfile's PYTHON_IMAGE. pip in the build reaches the
# package index with the host's CA bundle, given as the `ca-bundle` secret.
# The store (images, containers, layers) is removed whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tools/image
mode=${1:-test}

# --- what it needs from Debian (idempotent, quick when present) ----------------
missing=()
for tool in podman:podman runc:runc mmdebstrap:mmdebstrap; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
    echo "image-test: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- the stand-in base, cached ------------------------------------------------
cache=${XDG_CACHE_HOME:-$HOME/.cache}/task-pod-webhook
base_tar=$cache/python-3.11-slim-standin.tar
ca_bundle=${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [[ ! -s $base_tar ]]; then
    mkdir -p "$cache"
    echo "image-test: making the stand-in base (mmdebstrap, bookworm; cached in $cache)"
    start=$SECONDS
    mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --format=tar bookworm "$base_tar.part" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    mv "$base_tar.part" "$base_tar"
    echo "image-test: stand-in base made in $((SECONDS - start)) s"
fi

# --- the throwaway store ------------------------------------------------------
TPW_PODMAN_STORE=$(mktemp -d -t tpw-podman.XXXXXX)
export TPW_PODMAN_STORE
podman=$here/podman
cleanup() {
    "$podman" rm --all --force --time 0 >/dev/null 2>&1 || true
    "$podman" rmi --all --force >/dev/null 2>&1 || true
    # Overlay mounts left by a killed build would keep the folder busy.
    findmnt -rn -o TARGET | grep -F "$TPW_PODMAN_STORE" | sort -r | xargs -r umount -l || true
    rm -rf "$TPW_PODMAN_STORE"
}
trap cleanup EXIT

"$podman" import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$base_tar" localhost/python:3.11-slim >/dev/null
export TPW_IMAGE=localhost/task-pod-webhook:test
start=$SECONDS
"$podman" build --quiet --build-arg PYTHON_IMAGE=localhost/python:3.11-slim \
    --secret "id=ca-bundle,src=$ca_bundle" --tag "$TPW_IMAGE" . >/dev/null
echo "image-test: image built in $((SECONDS - start)) s: $("$podman" image inspect \
    --format '{{.Size}}' "$TPW_IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

if [[ $mode == measure ]]; then
    git archive --format=tar "${BEFORE:-HEAD}" >"$TPW_PODMAN_STORE/before.tar" 2>/dev/null || true
    .venv/bin/python "$here/measure.py" "$TPW_PODMAN_STORE/before.tar"
else
    .venv/bin/pytest tests/image -m image -p no:cacheprovider "${@:2}"
fi
