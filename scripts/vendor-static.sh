#!/usr/bin/env bash
# Vendor front-end libraries from the npm registry into static/vendor/ at pinned versions.
# The files are committed; this script documents where they came from and refreshes them.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=2.0.11
UPLOT_VERSION=1.6.32

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null && tar -xzf htmx.org-*.tgz)
mkdir -p static/vendor/htmx
cp "$tmp/package/dist/htmx.min.js" static/vendor/htmx/htmx.min.js
cp "$tmp/package/LICENSE" static/vendor/htmx/LICENSE
echo "htmx.org@$HTMX_VERSION" > static/vendor/htmx/VERSION
echo "vendored htmx.org@$HTMX_VERSION"

# uPlot: small, fast time-series charts (health history, cost over time).
(cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && mkdir uplot && tar -xzf uplot-*.tgz -C uplot)
mkdir -p static/vendor/uplot
cp "$tmp/uplot/package/dist/uPlot.iife.min.js" static/vendor/uplot/uPlot.iife.min.js
cp "$tmp/uplot/package/dist/uPlot.min.css" static/vendor/uplot/uPlot.min.css
cp "$tmp/uplot/package/LICENSE" static/vendor/uplot/LICENSE
echo "uplot@$UPLOT_VERSION" > static/vendor/uplot/VERSION
echo "vendored uplot@$UPLOT_VERSION"
