#!/usr/bin/env bash
# Installs the locked dependencies (uv.lock) and this checkout (editable) into .venv/.
#
# uv itself comes from PyPI through pip, pinned by version and sha256
# (scripts/uv-requirements.txt, `pip install --require-hashes`), into
# $LOFT_CACHE_DIR/uv-<version>/ the first time; its package cache lives in $LOFT_CACHE_DIR/uv/
# (torch alone is ~3 GB of CUDA wheels from PyPI), so one variable still moves every cache. A machine with a warm cache
# links the packages into .venv/ in seconds; a fresh one downloads them. Nothing here
# depends on a cache existing. uv uses the machine's python3.11 and never downloads one.
set -euo pipefail

# the test extra, and the chat frameworks the suite drives the adapters with
# (loft_memory.integrations); other optional groups are installed on purpose
EXTRAS=(--extra test --extra langchain --extra agents)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
uv_requirements="$root/scripts/uv-requirements.txt"
UV_VERSION="$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' "$uv_requirements")"
[ -n "$UV_VERSION" ] || { echo "bootstrap: no uv==<version> line in $uv_requirements" >&2; exit 1; }
cache="${LOFT_CACHE_DIR:-$HOME/.cache/loft}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || { echo "bootstrap: $python not found (Python 3.11 is needed)" >&2; exit 1; }

uv_home="$cache/uv-$UV_VERSION"
uv="$uv_home/bin/uv"
if [ ! -x "$uv" ]; then
    echo "bootstrap: installing uv $UV_VERSION from PyPI into $uv_home" >&2
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.uv-install.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    # only a wheel whose sha256 is in the requirements file is installed
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip install -q --no-cache-dir --root-user-action=ignore \
        --require-hashes --no-deps --only-binary=:all: --target "$tmp" -r "$uv_requirements"
    # another process may have finished first: keep whichever is in place
    mv -T "$tmp" "$uv_home" 2>/dev/null || rm -rf "$tmp"
    trap - EXIT
fi

export UV_CACHE_DIR="${UV_CACHE_DIR:-$cache/uv}"
export UV_PYTHON_DOWNLOADS=never
export UV_PYTHON_PREFERENCE=only-system
export UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"
# the project environment is always this checkout's .venv/, whatever the caller set
unset UV_PROJECT_ENVIRONMENT VIRTUAL_ENV

venv="$root/.venv"
# a .venv/ made by the old bootstrap (a thin venv pointing at a shared one) is replaced
if [ -e "$venv/.loft-deps" ]; then
    rm -rf "$venv"
fi

"$uv" sync --quiet --frozen "${EXTRAS[@]}" --python "$python" --project "$root"
echo "$venv"
