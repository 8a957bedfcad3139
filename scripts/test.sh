#!/usr/bin/env bash
# Run the whole test suite on a fresh or ready machine: PostgreSQL, Redis and the real Docker engine.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/lifecycle -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh --services

export DATABASE_URL=${DATABASE_URL:-postgres://decnet:decnet@127.0.0.1:5432/decnet}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export DECNET_DATA_DIR=${DECNET_DATA_DIR:-$ROOT/var/test-data}
PY="$ROOT/.venv/bin/python"

echo "==> honeypot images (built once, reused afterwards)"
"$PY" manage.py build_images
echo "==> ruff"
"$ROOT/.venv/bin/ruff" check .
"$ROOT/.venv/bin/ruff" format --check .
echo "==> mypy"
"$ROOT/.venv/bin/mypy" .
echo "==> pytest (PostgreSQL + Redis + Docker engine)"
"$PY" -m pytest "$@"
