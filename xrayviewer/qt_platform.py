"""Before Qt starts on Linux: is there a display, and are the platform plug-in's system libraries installed?

Without this, a missing library makes Qt abort the process (`Could not load the Qt platform plugin "xcb"`,
exit 134) with a hint that may name the wrong package. Here the plug-in's libraries are resolved the way the
dynamic loader does (`ldd`), and the user gets the missing names and the one command that installs them.
Nothing here imports Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# What Qt 6's xcb plug-in links to beyond libc (the fallback list when `ldd` is not installed).
XCB_LIBRARIES = (
    "libxcb.so.1", "libX11.so.6", "libX11-xcb.so.1", "libxkbcommon.so.0", "libxkbcommon-x11.so.0",
    "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-image.so.0", "libxcb-keysyms.so.1", "libxcb-randr.so.0",
    "libxcb-render-util.so.0", "libxcb-shape.so.0", "libxcb-shm.so.0", "libxcb-sync.so.1", "libxcb-util.so.1",
    "libxcb-xfixes.so.0", "libxcb-xkb.so.1", "libfontconfig.so.1", "libEGL.so.1", "libGL.so.1",
)
# Library name (soname without .so.N) -> Fedora package, where it is not the library's own name.
FEDORA = {
    "libxcb-cursor": "xcb-util-cursor", "libxcb-icccm": "xcb-util-wm", "libxcb-image": "xcb-util-image",
    "libxcb-keysyms": "xcb-util-keysyms", "libxcb-render-util": "xcb-util-renderutil", "libxcb-util": "xcb-util",
    "libEGL": "libglvnd-egl", "libGL": "libglvnd-glx", "libOpenGL": "libglvnd-opengl", "libfontconfig": "fontconfig",
    "libfreetype": "freetype", "libdbus-1": "dbus-libs", "libglib-2.0": "glib2",
    **{name: name for name in ("libxkbcommon", "libxkbcommon-x11", "libX11", "libX11-xcb", "libSM", "libICE",
                               "libwayland-client", "libwayland-cursor", "libwayland-egl")},
}
DEBIAN_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0"}
EXIT_CODE = 2
_SONAME = re.compile(r"^(?P<name>.+?)\.so\.(?P<major>\d+)")


def debian_package(soname: str) -> str:
    """Debian/Ubuntu package of a shared library, by Debian's naming policy (libxcb-icccm.so.4 -> libxcb-icccm4)."""
    if soname in DEBIAN_EXCEPTIONS:
        return DEBIAN_EXCEPTIONS[soname]
    match = _SONAME.match(soname)
    if not match:
        return soname
    name, major = match["name"].lower(), match["major"]
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def fedora_package(soname: str) -> str:
    """Fedora package of a shared library: the known name, else dnf's exact 'provides' form."""
    match = _SONAME.match(soname)
    name = match["name"] if match else soname
    if name in FEDORA:
        return FEDORA[name]
    if name.startswith("libxcb"):
        return "libxcb"
    return f"'{soname}()(64bit)'"


def install_commands(sonames: list[str]) -> dict[str, str]:
    """The command that installs `sonames`, per distribution family."""
    debian = sorted({debian_package(s) for s in sonames})
    fedora = sorted({fedora_package(s) for s in sonames})
    return {"Debian/Ubuntu": f"sudo apt-get install {' '.join(debian)}", "Fedora": f"sudo dnf install {' '.join(fedora)}"}


def plugin_file(platform: str) -> Path | None:
    """The Qt platform plug-in file of PySide6 for `platform` (xcb, wayland), without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms"
    return next(iter(sorted(folder.glob(f"libq{platform}*.so"))), None)


def missing_libraries(plugin: Path) -> list[str]:
    """Shared libraries that `plugin` needs and the loader cannot find (sonames, in ldd's order)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return [name for name in XCB_LIBRARIES if not _loadable(name)]
    out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30).stdout
    return parse_ldd(out)


def parse_ldd(text: str) -> list[str]:
    """The 'not found' sonames of `ldd` output, each once."""
    found = [line.split("=>")[0].strip() for line in text.splitlines() if "=> not found" in line]
    return list(dict.fromkeys(found))


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def candidate_platforms(env: Mapping[str, str]) -> list[str]:
    """The platform plug-ins Qt will try, in order (QT_QPA_PLATFORM, else what the session type implies)."""
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return [p.split(":")[0].strip() for p in chosen.split(";") if p.strip()]
    if env.get("XDG_SESSION_TYPE") == "wayland" or env.get("WAYLAND_DISPLAY"):
        return ["wayland", "xcb"]
    return ["xcb"]


def platform_problem(env: Mapping[str, str] | None = None) -> str | None:
    """None when Qt can start a window here; otherwise the message that says what is missing and how to fix it."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    problems: list[str] = []
    for platform in candidate_platforms(env):
        display_variable = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY"}.get(platform)
        if display_variable is None:
            return None  # offscreen, minimal, vnc, eglfs...: nothing of the desktop's to check
        plugin = plugin_file(platform)
        if plugin is None:
            return None  # not a PySide6 we know the layout of: let Qt speak for itself
        missing = missing_libraries(plugin)
        if not missing and env.get(display_variable):
            return None
        problems.append(_explain(platform, display_variable, env.get(display_variable, ""), missing))
    return "xrayviewer: the viewer cannot open a window.\n" + "\n".join(problems) + (
        "\nThe command line needs no display: `xrayviewer info|analyze|evaluate|worklist|report ...` and "
        "`xrayviewer FILE --screenshot out.png` (renders offscreen) work as they are. `xrayviewer --self-test`, "
        "`xrayviewer --demo --screenshot out.png` and `xrayviewer bench` need the demo film as well: "
        'pip install "xrayviewer[demo]".'
    )


def _explain(platform: str, variable: str, display: str, missing: list[str]) -> str:
    lines = []
    if missing:
        lines.append(f"Qt's '{platform}' platform plug-in needs system libraries that are not installed: "
                     f"{', '.join(missing)}. Install them with")
        lines += [f"  {family + ':':15}{command}" for family, command in install_commands(missing).items()]
    if not display:
        lines.append(f"No display for '{platform}': {variable} is not set. Start the viewer from a desktop session "
                     "(or `ssh -X`), or render offscreen with --screenshot.")
    return "\n".join(lines)
