#!/usr/bin/env bash
# The benchmark (issue 5): `make bench`, or `bash bench/run.sh [--label NAME] [--quick]`.
# Needs the project's venv (`make bench` creates it). Installs what it needs when
# missing: wrk and taskset (Debian: wrk, util-linux) and py-spy (PyPI, into the venv).
# Servers run on core 0, load on core 1, all on 127.0.0.1; writes docs/BENCHMARKS.md.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [[ ! -x $PY ]]; then
    echo "error: no .venv: run 'make bench' (it creates the venv first)" >&2
    exit 2
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "error: need root (or sudo) to install $*" >&2
        return 1
    fi
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]} (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ ! -x .venv/bin/py-spy ]]; then
    echo "bench: installing py-spy into the venv (PyPI)"
    $PY -m pip install --quiet py-spy || echo "bench: py-spy unavailable; the profile is skipped"
fi
if (($(nproc) < 2)); then
    echo "error: the benchmark pins servers to core 0 and load to core 1: needs 2 cores" >&2
    exit 2
fi

exec $PY bench/bench.py "$@"
