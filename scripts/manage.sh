#!/usr/bin/env bash
# `make manage CMD="..."`: manage.py with the settings of the instance `make run` started
# (var/secrets.env and var/run.env, both written by the launcher).
set -euo pipefail
cd "$(dirname "$0")/.."
var=${KEELSON_VAR_DIR:-var}
if [[ ! -f "$var/run.env" ]]; then
  echo "no $var/run.env: start Keelson with 'make run' first" >&2
  exit 1
fi
set -a
# shellcheck disable=SC1091
source "$var/secrets.env"
# shellcheck disable=SC1091
source "$var/run.env"
set +a
exec .venv/bin/python manage.py "$@"
