#!/usr/bin/env bash
# Create ./.venv and install Keelson into it (with the dev tools when given "dev").
# Safe to run again: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${KEELSON_VENV:-.venv}
EXTRAS=${1:-}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bootstrap] creating $VENV with $($PYTHON --version 2>&1)" >&2
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian/Ubuntu ship venv separately.
    rm -rf "$VENV"
    pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "python${pyver}-venv" >&2 \
      || DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >&2
    "$PYTHON" -m venv "$VENV"
  fi
fi

spec="."
[[ -n "$EXTRAS" ]] && spec=".[$EXTRAS]"
hash=$(sha256sum pyproject.toml | cut -c1-16)
stamp="$VENV/.installed-$hash-${EXTRAS:-base}"
# The dev extras include everything the base install has.
if [[ ! -f "$stamp" && ! ( -z "$EXTRAS" && -f "$VENV/.installed-$hash-dev" ) ]]; then
  echo "[bootstrap] installing $spec into $VENV" >&2
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip && \
         "$VENV/bin/python" -m pip install -q -e "$spec"; } >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "[bootstrap] pip install failed; full log in $log" >&2
    exit 1
  fi
  find "$VENV" -maxdepth 1 -name '.installed-*' ! -name ".installed-$hash-*" -delete
  touch "$stamp"
fi
