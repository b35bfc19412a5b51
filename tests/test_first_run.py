"""First run on a Linux desktop: the viewer either starts or names what is missing and the command that fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from xrayviewer import qt_platform

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb/wayland check is Linux only")


def viewer(env_changes: dict[str, str | None], *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def ldd_missing() -> list[str]:
    """What the loader cannot find for PySide6's xcb plug-in, asked of ldd directly."""
    plugin = qt_platform.plugin_file("xcb")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    return sorted({line.split()[0] for line in out.splitlines() if "not found" in line})


def test_no_display_is_explained_instead_of_qt_aborting():
    result = viewer({"QT_QPA_PLATFORM": None, "DISPLAY": None, "WAYLAND_DISPLAY": None, "XDG_SESSION_TYPE": None},
                    "--demo")
    assert result.returncode == qt_platform.EXIT_CODE  # never Qt's abort (134)
    assert "DISPLAY is not set" in result.stderr and "--screenshot" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_no_display_message_says_what_the_demo_commands_need():
    """`--self-test`, `--demo --screenshot` and `bench` need the demo film, which a plain install lacks."""
    problem = qt_platform.platform_problem({})
    assert problem is not None and "--screenshot out.png` (renders offscreen) work as they are" in problem
    assert ("`xrayviewer --self-test`, `xrayviewer --demo --screenshot out.png` and `xrayviewer bench` need the demo "
            'film as well: pip install "xrayviewer[demo]".') in problem


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd to know what this machine lacks")
def test_missing_xcb_libraries_are_named_with_the_install_command():
    missing = ldd_missing()
    problem = qt_platform.platform_problem({"DISPLAY": ":0"})
    if not missing:  # a desktop with every library: nothing to say
        assert problem is None
        return
    assert problem is not None
    for soname in missing:
        assert soname in problem
    apt = "sudo apt-get install " + " ".join(sorted({qt_platform.debian_package(s) for s in missing}))
    assert apt in problem and "sudo dnf install " in problem
    result = viewer({"QT_QPA_PLATFORM": None, "DISPLAY": ":0", "WAYLAND_DISPLAY": None, "XDG_SESSION_TYPE": None})
    assert result.returncode == qt_platform.EXIT_CODE and apt in result.stderr


def test_package_names_follow_each_distribution():
    sonames = ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0", "libxkbcommon-x11.so.0",
               "libxcb-randr.so.0", "libglib-2.0.so.0"]
    commands = qt_platform.install_commands(sonames)
    assert commands["Debian/Ubuntu"] == ("sudo apt-get install libglib2.0-0 libxcb-cursor0 libxcb-icccm4 "
                                         "libxcb-keysyms1 libxcb-randr0 libxkbcommon-x11-0")
    assert commands["Fedora"] == ("sudo dnf install glib2 libxcb libxkbcommon-x11 xcb-util-cursor xcb-util-keysyms "
                                  "xcb-util-wm")
    assert qt_platform.fedora_package("libfoo.so.3") == "'libfoo.so.3()(64bit)'"  # dnf's exact 'provides' form


def test_ldd_output_is_parsed_once_per_library():
    text = ("\tlibxcb-icccm.so.4 => not found\n\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n"
            "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n")
    assert qt_platform.parse_ldd(text) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_offscreen_and_wayland_fallback_are_understood():
    assert qt_platform.platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert qt_platform.candidate_platforms({"XDG_SESSION_TYPE": "wayland"}) == ["wayland", "xcb"]
    assert qt_platform.candidate_platforms({"QT_QPA_PLATFORM": "xcb:dpi=96;offscreen"}) == ["xcb", "offscreen"]
