#!/usr/bin/env bash
# Executes every notebook headless (nbclient) with a small configuration and saves the
# executed copies under target/notebooks/executed/. Exits non-zero if any notebook fails.
#
#   notebooks/run_all.sh                      # all notebooks
#   notebooks/run_all.sh 02_phase_diagram     # selected ones (names without .ipynb)
#
# The notebooks use the Python package (`pip install ./python`), not the command line.
# Environment: NOTEBOOK_SMALL (default 1: small sizes), NOTEBOOK_TIMEOUT seconds per cell
# (default 600), NOTEBOOK_SKIP (space-separated names not to run; each is reported as
# SKIPPED, never as passed).
set -euo pipefail
cd "$(dirname "$0")/.."
export NOTEBOOK_SMALL="${NOTEBOOK_SMALL:-1}"
if ! python3 -c "import pruning_game" 2>/dev/null; then
  echo "run_all.sh: the pruning_game package is not installed; run: pip install ./python" >&2
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
skip = set(os.environ.get("NOTEBOOK_SKIP", "").split())
skipped = [n for n in names if n in skip]
names = [n for n in names if n not in skip]
for name in skipped:
    print(f"{name}: SKIPPED (listed in NOTEBOOK_SKIP)", flush=True)
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
print(f"notebooks: {passed} passed, {len(failed)} failed, {len(skipped)} skipped")
sys.exit(1 if failed else 0)
PY
