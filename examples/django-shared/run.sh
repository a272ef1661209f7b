#!/usr/bin/env bash
# Django on http://127.0.0.1:8001 and the Node example (examples/login) on
# http://127.0.0.1:8000, side by side on loopback, sharing one session table and one
# SECRET_KEY. Ctrl-C stops both.
#
# Environment (all optional):
#   SECRET_KEY    shared secret (default: a random one for this run, printed)
#   DATABASE_URL  shared database (default: sqlite:////<this directory>/shared.sqlite3)
#   PYTHON        a Python with Django (default: python3 if it imports django, else /usr/bin/python3)
#   DJANGO_PORT   8001;  NODE_PORT  8000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import django' >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  echo "run.sh: no Python with Django found; install it (apt-get install python3-django, or pip install 'django>=3.2') or set PYTHON" >&2
  exit 1
fi

if [ -z "${SECRET_KEY:-}" ]; then
  SECRET_KEY=$(node -e "console.log(require('crypto').randomBytes(50).toString('base64url'))")
  echo "run.sh: SECRET_KEY not set; using a random one for this run (sessions end when you stop)"
fi
export SECRET_KEY
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the example
export DATABASE_URL="${DATABASE_URL:-sqlite:///$here/shared.sqlite3}"
DJANGO_PORT=${DJANGO_PORT:-8001}
NODE_PORT=${NODE_PORT:-8000}
export NODE_DASHBOARD_URL="http://127.0.0.1:$NODE_PORT/dashboard"

echo "run.sh: Django $("$PYTHON" -c 'import django; print(django.get_version())') via $PYTHON; DATABASE_URL=$DATABASE_URL"
# Creates django_session, or records it as applied when sessionkit created it first.
"$PYTHON" "$here/manage.py" migrate --fake-initial --no-input

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$PYTHON" "$here/manage.py" runserver "127.0.0.1:$DJANGO_PORT" --noreload &
pids+=($!)
(cd "$root" && HOST=127.0.0.1 PORT="$NODE_PORT" exec node --conditions=sessionkit-source --import tsx examples/login/server.ts) &
pids+=($!)

echo "run.sh: log in on Django at http://127.0.0.1:$DJANGO_PORT/login, then see the Node dashboard at $NODE_DASHBOARD_URL"
wait -n
