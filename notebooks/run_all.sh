#!/usr/bin/env bash
# Executes every notebook headless (nbclient) with a small configuration and saves the
# executed copies under target/notebooks/executed/. Exits non-zero if any notebook fails.
#
#   notebooks/run_all.sh                      # all notebooks
#   notebooks/run_all.sh 02_phase_diagram     # selected ones (names without .ipynb)
#
# Environment: PRUNING_GAME_BIN (default target/release/pruning-game), NOTEBOOK_SMALL
# (default 1: small sizes), NOTEBOOK_TIMEOUT seconds per cell (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
export PRUNING_GAME_BIN="${PRUNING_GAME_BIN:-$PWD/target/release/pruning-game}"
export NOTEBOOK_SMALL="${NOTEBOOK_SMALL:-1}"
if [ ! -x "$PRUNING_GAME_BIN" ]; then
  echo "run_all.sh: $PRUNING_GAME_BIN not found; run: cargo build --release --bin pruning-game" >&2
  exit 1
fi
exec python3 - "$@" <<'PY'
import os, pathlib, re, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

here = pathlib.Path("notebooks")
names = sys.argv[1:] or sorted(p.stem for p in here.glob("*.ipynb"))
out = pathlib.Path("target/notebooks/executed")
out.mkdir(parents=True, exist_ok=True)
failed = []
for name in names:
    path = here / f"{name}.ipynb"
    book = nbformat.read(path, as_version=4)
    start = time.time()
    client = NotebookClient(book, timeout=int(os.environ.get("NOTEBOOK_TIMEOUT", "600")),
                            kernel_name="python3", resources={"metadata": {"path": str(here)}})
    try:
        client.execute()
        status = "ok"
    except CellExecutionError as e:
        failed.append(name)
        lines = [l for l in str(e).splitlines() if l.strip()]
        last = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]) if lines else "cell error"
        status = "FAILED: " + last
    except Exception as e:  # kernel died, timeout, missing file
        failed.append(name)
        status = f"FAILED: {type(e).__name__}: {e}"
    nbformat.write(book, out / f"{name}.ipynb")
    print(f"{name}: {status} ({time.time() - start:.1f} s)", flush=True)
passed = len(names) - len(failed)
print(f"notebooks: {passed} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
