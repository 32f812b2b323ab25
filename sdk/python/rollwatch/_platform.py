"""Platform and architecture, normalised to the server's closed sets (DESIGN §5)."""

import platform as _platform
import sys

PLATFORMS = ("windows", "macos", "linux", "android", "ios", "web", "other")
ARCHES = ("x86_64", "aarch64", "x86", "armv7", "universal", "wasm32", "other")

_ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "em64t": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "arm64e": "aarch64",
    "armv8": "aarch64",
    "armv8l": "aarch64",
    "x86": "x86",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "ia32": "x86",
    "armv7": "armv7",
    "armv7l": "armv7",
    "armv7a": "armv7",
    "armhf": "armv7",
    "universal": "universal",
    "wasm32": "wasm32",
}


def normalise_platform(value):
    """Maps a `sys.platform`-like value (or one of the closed set) to the closed set."""
    v = (value or "").strip().lower()
    if v in PLATFORMS:
        return v
    if v.startswith(("win", "cygwin", "msys")):
        return "windows"
    if v in ("darwin", "mac", "osx", "macosx"):
        return "macos"
    if v.startswith("linux"):
        return "linux"
    if v in ("emscripten", "wasi"):
        return "web"
    return "other"


def normalise_arch(value):
    """Maps a `platform.machine()`-like value (or one of the closed set) to the closed set."""
    v = (value or "").strip().lower()
    if v in _ARCH_ALIASES:
        return _ARCH_ALIASES[v]
    if v.startswith("armv7"):
        return "armv7"
    if v.startswith("wasm"):
        return "wasm32"
    return "other"


def detect_platform():
    plat = sys.platform
    # Android reports "linux" before Python 3.13; its build sets these.
    if plat.startswith("linux") and hasattr(sys, "getandroidapilevel"):
        return "android"
    return normalise_platform(plat)


def detect_arch():
    try:
        machine = _platform.machine()
    except Exception:  # pragma: no cover - exotic interpreters
        machine = ""
    arch = normalise_arch(machine)
    if arch == "x86_64" and sys.maxsize <= 2**32:
        return "x86"  # a 32-bit interpreter on a 64-bit machine
    return arch


def os_version():
    try:
        if sys.platform == "darwin":
            return _platform.mac_ver()[0] or _platform.release()
        if sys.platform.startswith("win"):
            return _platform.version()
        return _platform.release()
    except Exception:  # pragma: no cover
        return ""
