#!/usr/bin/env bash
# Idempotent set-up for DECNET's control plane on Debian 12 (root, no systemd needed).
#
#   scripts/setup.sh              Python >= 3.12 virtualenv in .venv with the pinned dependencies
#   scripts/setup.sh --engine     ... plus the Docker engine (installed and started if absent)
#   scripts/setup.sh --services   ... plus the engine, PostgreSQL 15 and Redis (for the test suite)
#
# Every step checks before it acts, so a re-run on a ready machine costs about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
LOG_DIR="$ROOT/var/log"
WANT_ENGINE=0
WANT_SERVICES=0
for arg in "$@"; do
  case "$arg" in
    --engine) WANT_ENGINE=1 ;;
    --services) WANT_ENGINE=1; WANT_SERVICES=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31msetup: %s\033[0m\n' "$*" >&2; exit 1; }
mkdir -p "$LOG_DIR"

# --- Python >= 3.12 (Django 6.1 refuses older interpreters; Debian 12's python3 is 3.11) ---------
python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
find_python() {
  local pyenv_root candidates=()
  [ -n "${DECNET_PYTHON:-}" ] && candidates+=("$DECNET_PYTHON")
  pyenv_root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
  candidates+=(python3.13 python3.12)
  for d in $(ls -d "$pyenv_root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do candidates+=("$d/bin/python"); done
  candidates+=(python3)
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then command -v "$c"; return 0; fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
  PY=$(find_python) || die "no Python >= 3.12 found. Django 6.1 needs it; Debian 12 ships 3.11.
  Install one with pyenv (pyenv install 3.12) or point DECNET_PYTHON at an interpreter, then re-run."
  say "creating virtualenv with $PY ($("$PY" -V 2>&1))"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing the project and its pinned dependencies into .venv (about 20 s the first time)"
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip >/dev/null
  { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e "$ROOT[dev]"; } \
    >"$LOG_DIR/pip.log" 2>&1 || { tail -20 "$LOG_DIR/pip.log" >&2; die "pip install failed, see $LOG_DIR/pip.log"; }
  rm -f "$VENV"/.installed-*
  touch "$stamp"
else
  say "virtualenv up to date ($("$VENV/bin/python" -V))"
fi

[ "$WANT_ENGINE" = 1 ] || exit 0
[ "$(id -u)" = 0 ] || die "installing and starting system services needs root"

# --- Debian packages ---------------------------------------------------------------------------
pkgs=(docker.io debootstrap iproute2)
[ "$WANT_SERVICES" = 1 ] && pkgs+=(postgresql redis-server nmap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]} (about 45 s on a fresh machine)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install failed, see $LOG_DIR/apt.log"
fi

# --- Docker engine (without systemd the package does not start it) -----------------------------
if docker info >/dev/null 2>&1; then
  say "Docker engine is running"
else
  say "starting dockerd (log: var/log/dockerd.log)"
  setsid nohup dockerd >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || die "dockerd did not come up, see $LOG_DIR/dockerd.log"
fi

[ "$WANT_SERVICES" = 1 ] || exit 0

# --- PostgreSQL 15 -----------------------------------------------------------------------------
PG_VER=${PG_VER:-15}
DB_NAME=${DECNET_DB_NAME:-decnet}; DB_USER=${DECNET_DB_USER:-decnet}; DB_PASS=${DECNET_DB_PASSWORD:-decnet}
if pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VER" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  say "PostgreSQL $PG_VER is running"
else
  say "starting PostgreSQL $PG_VER"
  pg_ctlcluster "$PG_VER" main start
fi
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 && break; sleep 0.1; done
pg_isready -q -h 127.0.0.1 || die "PostgreSQL is not accepting connections"
psql_q() { su postgres -c "psql -tAq -c \"$1\""; }
# CREATEDB lets pytest-django create and drop its test database.
[ "$(psql_q "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'")" = 1 ] \
  || { say "creating PostgreSQL role $DB_USER"; psql_q "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS'"; }
[ "$(psql_q "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" = 1 ] \
  || { say "creating database $DB_NAME"; su postgres -c "createdb -O $DB_USER $DB_NAME"; }

# --- Redis -------------------------------------------------------------------------------------
if redis-cli -p 6379 ping >/dev/null 2>&1; then
  say "Redis is running"
else
  say "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
    --pidfile "$ROOT/var/redis.pid" --logfile "$LOG_DIR/redis.log"
  for _ in $(seq 1 100); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis-cli -p 6379 ping >/dev/null 2>&1 || die "Redis did not start, see $LOG_DIR/redis.log"
fi
say "services ready: DATABASE_URL=postgres://$DB_USER:***@127.0.0.1:5432/$DB_NAME REDIS_URL=redis://127.0.0.1:6379/0"
