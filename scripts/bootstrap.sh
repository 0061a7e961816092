#!/usr/bin/env bash
# Creates or reuses the project's virtualenv and links it as .venv/.
#
# The heavy dependencies (torch alone is ~3 GB with its CUDA wheels from PyPI) live in a
# virtualenv cached per machine under $LOFT_CACHE_DIR, keyed by a hash of pyproject.toml
# and the Python version, so a warm machine sets up in seconds and a fresh one still
# gets everything from PyPI. The checkout's .venv/ is a small virtualenv of its own that
# sees the cached site-packages through a .pth file and holds only this checkout's
# editable install (so `.venv/bin/loftmem` always runs *this* checkout's code).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LOFT_CACHE_DIR:-$HOME/.cache/loft}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

key="$( (cat "$root/pyproject.toml"; "$python" -V) | sha256sum | cut -c1-16)"
deps="$cache/deps-$key"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$cache/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -f "$deps/.complete" ]; then
    echo "bootstrap: building the dependency virtualenv $deps (first run on this machine: several minutes)" >&2
    rm -rf "$deps"
    mkdir -p "$cache"
    "$python" -m venv "$deps"
    # install the project's dependencies (not the project itself) from pyproject.toml
    "$deps/bin/python" - "$root/pyproject.toml" > "$deps/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(project["dependencies"])
for extra in project.get("optional-dependencies", {}).values():
    reqs += extra
print("\n".join(reqs + ["setuptools>=68", "wheel"]))
PY
    "$deps/bin/pip" install --progress-bar off -q -r "$deps/requirements.txt"
    touch "$deps/.complete"
fi

venv="$root/.venv"
site_of() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.loft-deps" 2>/dev/null)" != "$deps" ]; then
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    site="$(site_of "$venv")"
    echo "$(site_of "$deps")" > "$site/_loft_deps.pth"
    echo "$deps" > "$venv/.loft-deps"
fi
if [ ! -x "$venv/bin/loftmem" ] || [ "$root/pyproject.toml" -nt "$venv/bin/loftmem" ]; then
    # editable install of this checkout, no dependencies (they come from the cached venv)
    "$venv/bin/python" -m pip --version >/dev/null 2>&1 || true
    "$deps/bin/pip" --python "$venv/bin/python" install -q --no-deps --no-build-isolation -e "$root" >/dev/null
fi
echo "$venv"
