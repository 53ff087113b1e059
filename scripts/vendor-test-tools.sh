#!/usr/bin/env bash
# Vendor tools the browser tests use (never served to users) from the npm registry at pinned
# versions into tests/browser/vendor/. The files are committed; this script documents where
# they came from and refreshes them.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.14.1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# axe-core: the accessibility checker the browser tests run on every main page.
(cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && mkdir axe && tar -xzf axe-core-*.tgz -C axe)
mkdir -p tests/browser/vendor/axe-core
cp "$tmp/axe/package/axe.min.js" tests/browser/vendor/axe-core/axe.min.js
cp "$tmp/axe/package/LICENSE" tests/browser/vendor/axe-core/LICENSE
echo "axe-core@$AXE_VERSION" > tests/browser/vendor/axe-core/VERSION
echo "vendored axe-core@$AXE_VERSION"
