#!/usr/bin/env bash
# `make test`: install what is needed, then lint, type-check, validate the API schema and
# run the test suite against this machine's PostgreSQL, Redis, RabbitMQ and real
# kube-apiservers. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
step() { echo; echo "==> $*"; }

step "virtualenv and packages"
bash scripts/bootstrap.sh dev

step "Kubernetes binaries (built once from Debian's source package, ~10 min the first time)"
bash scripts/kube-binaries.sh >/dev/null

step "Chromium for browser tests"
if ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "Prometheus for the metrics tests"
if ! command -v prometheus >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq prometheus >/dev/null
fi
prometheus --version 2>&1 | head -1

step "OpenID Connect provider for the single sign-on tests (npm, pinned in tests/oidc)"
if [[ ! -d tests/oidc/node_modules/oidc-provider ]]; then
  (cd tests/oidc && npm ci --no-audit --no-fund >/dev/null)
fi
node --version

step "kubectl for Kustomize rendering (GitOps) and the manifests' dry run"
if ! command -v kubectl >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq kubernetes-client >/dev/null
fi
kubectl version --client 2>&1 | head -1

step "Alertmanager for the notification tests"
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq prometheus-alertmanager >/dev/null
fi
prometheus-alertmanager --version 2>&1 | head -1

mkdir -p var test-artifacts
PY=.venv/bin
step "ruff"
$PY/ruff check .
$PY/ruff format --check .

step "import layers (docs/architecture.md)"
$PY/lint-imports

step "mypy"
DEBUG=true $PY/mypy .  # the django plugin imports settings

step "Django checks, migrations, OpenAPI schema"
# Static checks only: the development fallbacks stand in for real secrets here.
DEBUG=true $PY/python manage.py check --fail-level WARNING
DEBUG=true $PY/python manage.py makemigrations --check --dry-run
DEBUG=true $PY/python manage.py spectacular --validate --fail-on-warn --file var/openapi.yaml

step "pytest"
$PY/pytest "$@"
