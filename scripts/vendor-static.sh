#!/usr/bin/env bash
# Vendor front-end libraries from the npm registry into static/vendor/ at pinned versions.
# The files are committed; this script documents where they came from and refreshes them.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=2.0.11

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null && tar -xzf htmx.org-*.tgz)
mkdir -p static/vendor/htmx
cp "$tmp/package/dist/htmx.min.js" static/vendor/htmx/htmx.min.js
cp "$tmp/package/LICENSE" static/vendor/htmx/LICENSE
echo "htmx.org@$HTMX_VERSION" > static/vendor/htmx/VERSION
echo "vendored htmx.org@$HTMX_VERSION"
