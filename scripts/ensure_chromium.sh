#!/usr/bin/env bash
# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright's
# `executable_path`: Playwright never downloads a browser of its own. This installs the
# distribution's package when no Chromium is on the PATH, and does nothing otherwise.
set -euo pipefail

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no chromium on PATH and no apt-get; install Chromium (the browser test needs it)" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "ensure_chromium: installing Debian's chromium (for the browser test)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
