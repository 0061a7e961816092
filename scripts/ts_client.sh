#!/usr/bin/env bash
# The TypeScript client's packages (clients/typescript): `npm ci` from its package-lock.json,
# again only when the lock changed since the last install. `make lint` (the types check) and
# `make test` (the client's tests on the live service) need them. Node 20+ and npm.
set -euo pipefail

client="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/clients/typescript"
command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 or later" >&2; exit 1; }
installed="$client/node_modules/.package-lock.json"
if [[ ! -f "$installed" || "$client/package-lock.json" -nt "$installed" ]]; then
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
