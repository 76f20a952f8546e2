# Sourced by the scripts in this folder: makes sure .venv exists and holds
# pilotgw (editable) with the test extras, reinstalling only when
# pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.pilotgw-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "==> installing pilotgw and its dependencies into .venv" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" >&2
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
source "$ROOT/scripts/_system.sh"
