#!/usr/bin/env bash
# Cheap CI check of the frozen app: build a Linux one-folder bundle from installer/xrayviewer.spec (the same spec
# as the Windows installer) into a temporary folder and run its --self-test.
#
# It catches what breaks a bundle and not the source tree: a model or demo file left out, a lazily imported
# module or decoder plug-in the analysis missed, a trim that went too far. It needs no Wine and no Windows.
#
# Uses the project's environment (default: .venv of the checkout, as the README sets it up; VENV=... to change)
# for the app's dependencies; PyInstaller goes into a throw-away venv beside it, so .venv stays as it was.
# Set KEEP=1 to keep the temporary folder (its path is printed).
set -euo pipefail
export ORT_DISABLE_TELEMETRY=1  # no ONNX Runtime telemetry from the build (the app sets it itself)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
CACHE="$ROOT/installer/.cache"          # git-ignored: downloaded wheels
WHEELS="$CACHE/wheels-linux"
PYINSTALLER=(pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9)
BUILD_DEPS=("setuptools>=69" wheel)   # pyproject.toml's build-system, cached for offline re-runs

start=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

[[ -x "$VENV/bin/python" ]] || { echo "no Python environment at $VENV: set it up as the README says" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/xrayviewer-smoke.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then echo "keeping $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi

# 1. PyInstaller in a throw-away venv of the same interpreter; a .pth file lets it see the project venv's packages.
#    Wheels are downloaded once into the cache and installed from there (pip download is a no-op when present).
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/pyinstaller-6.22.3-*.whl >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip download -q -d "$WHEELS" "${PYINSTALLER[@]}" "${BUILD_DEPS[@]}"
fi
"$VENV/bin/python" -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q --no-index --find-links "$WHEELS" "${PYINSTALLER[@]}"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site_of "$VENV/bin/python" > "$(site_of "$TMP/venv/bin/python")/project-venv.pth"

# 2. The app itself, installed non-editable into a staging folder: an editable install (pip install -e) has no
#    xrayviewer/models folder on disk (setuptools maps it to models/), which a bundle needs. Built from a copy of
#    the sources so that neither the checkout's build/ nor an old build's leftovers take part.
mkdir -p "$TMP/src" && cp -r "$ROOT"/{pyproject.toml,README.md,xrayviewer,models} "$TMP/src/"
find "$TMP/src" -name __pycache__ -prune -exec rm -rf {} +
"$TMP/venv/bin/pip" install -q --no-deps --no-index --find-links "$WHEELS" --target "$TMP/stage" "$TMP/src"

# 3. Freeze. XRAYVIEWER_PATHEX puts the staged package ahead of the editable one in the project venv.
t0=$(date +%s.%N)
XRAYVIEWER_PATHEX="$TMP/stage" "$TMP/venv/bin/python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$TMP/dist" --workpath "$TMP/work" "$ROOT/installer/xrayviewer.spec"
freeze_s=$(elapsed "$t0")
BUNDLE="$TMP/dist/XRayViewer"

# 4. What must be in the bundle, checked by name (cheap and explicit).
for f in xrayviewer xrayviewer-cli _internal/demo/RG1_J2KR.dcm _internal/demo/RG3_J2KR.dcm \
         _internal/xrayviewer/models/mobilenetv2-pneumonia.onnx; do
    [[ -e "$BUNDLE/$f" ]] || { echo "missing from the bundle: $f" >&2; exit 1; }
done
ls -d "$BUNDLE"/_internal/pylibjpeg_openjpeg-*.dist-info >/dev/null \
    || { echo "missing from the bundle: pylibjpeg-openjpeg's metadata (its decoder would not be found)" >&2; exit 1; }

# 5. Run the frozen app's self-test from a neutral folder, with no access to the project venv or the checkout.
t0=$(date +%s.%N)
out="$(cd "$TMP" && env -u PYTHONPATH QT_QPA_PLATFORM=offscreen "$BUNDLE/xrayviewer" --self-test)" || {
    echo "$out"; echo "self-test of the frozen app failed" >&2; exit 1; }
selftest_s=$(elapsed "$t0")
echo "$out"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["ok"] and r["models"] else 1)' "$out" \
    || { echo "self-test JSON says it did not pass" >&2; exit 1; }
# every shipped model is in the bundle, the consensus card (a .json beside the .onnx files) too
[[ "$out" == *'"consensus": {'* ]] || { echo "the frozen app has no consensus model (models/*.json not bundled?)" >&2; exit 1; }
[[ "$out" == *"_internal/demo/RG1_J2KR.dcm"* ]] || { echo "the frozen app did not use its bundled demo film" >&2; exit 1; }

# 6. The shared review store's driver is in the bundle: a PostgreSQL URL reaches libpq, which finds no server on the
#    closed loopback port 1 ("connection failed"), where a bundle without psycopg would say it is not installed.
pg="$(cd "$TMP" && env -u PYTHONPATH "$BUNDLE/xrayviewer-cli" review status --db postgresql://smoke@127.0.0.1:1/none 2>&1)" \
    && { echo "review status reached no server yet exited 0: $pg" >&2; exit 1; }
[[ "$pg" == *"cannot use the review database: connection failed"* ]] \
    || { echo "the frozen app cannot use a PostgreSQL review store: $pg" >&2; exit 1; }

size_mb=$(du -sm "$BUNDLE" | cut -f1)
files=$(find "$BUNDLE" -type f | wc -l)
echo "linux bundle: ${size_mb} MiB, ${files} files; freeze ${freeze_s} s, self-test ${selftest_s} s, total $(elapsed "$start") s"
