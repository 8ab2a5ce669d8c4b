# Sourced by scripts/run and scripts/test: build .venv on first use (and again when pyproject.toml changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "kasparro: creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "kasparro: '$PYTHON -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2
    exit 1
  fi
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "kasparro: installing dependencies into $VENV (first run only)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
  echo "$want" > "$STAMP"
fi
