#!/usr/bin/env sh
# Install everything Sluicegate needs into ./.venv, then run it or its tests.
#   scripts/bootstrap.sh run   - install and serve the embedded defaults (mock `demo` model)
#   scripts/bootstrap.sh test  - install dev tools and run lint, type checks and the whole test suite
# Works on a fresh Debian machine with only Python and apt: missing system packages are installed.
set -eu
cd "$(dirname "$0")/.."

need_apt() {
    # $1 = command or python module probe, $2.. = Debian packages
    probe=$1; shift
    if ! sh -c "$probe" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        echo "installing Debian packages: $*" >&2
        $SUDO apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
    fi
}

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    need_apt "$PY -c 'import ensurepip, venv'" python3-venv python3-pip
    $PY -m venv .venv
fi
mode=${1:-run}
if [ "$mode" = test ]; then
    # Tests start private Redis and PostgreSQL servers from these binaries (tests/services.py).
    need_apt "command -v redis-server" redis-server
    need_apt "ls /usr/lib/postgresql/*/bin/initdb" postgresql
fi
stamp=.venv/.sluicegate-installed
extras=""
[ "$mode" = test ] && extras="[dev]"
# Reinstall only when pyproject.toml changed since the last install for this mode.
if [ ! -f "$stamp$extras" ] || [ pyproject.toml -nt "$stamp$extras" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e ".$extras" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import sluicegate" && touch "$stamp$extras"
fi

case "$mode" in
    run)
        shift || true
        exec .venv/bin/sluicegate serve --dev "$@"
        ;;
    test)
        .venv/bin/ruff check src tests
        .venv/bin/ruff format --check src tests
        .venv/bin/mypy
        exec .venv/bin/pytest -q
        ;;
    install)
        ;;
    *)
        echo "usage: $0 run|test|install" >&2
        exit 2
        ;;
esac
