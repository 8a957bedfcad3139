#!/usr/bin/env bash
# Set up everything the main job needs and start it on the embedded defaults (SQLite + the ORM task broker):
# migrations, an operator account, the honeypot images, the worker cluster and the web server (Ctrl-C stops both).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh --engine
# Plain HTTP on localhost: secure-only cookies would make the admin login impossible. Behind TLS, set DECNET_TLS=1.
export DECNET_TLS=${DECNET_TLS:-0}
exec "$ROOT/.venv/bin/python" manage.py quickstart "$@"
