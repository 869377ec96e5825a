"""``python -m edge.commands.precompile``: write bytecode for exactly the modules the commands import.

The device venv is installed with ``pip install --no-compile``: bytecode for every module of the
dependencies would add ~70 MB, mostly for code the daemon never runs (matplotlib's backends,
MediaPipe's task APIs, test suites). Without any bytecode, though, every start would compile
~600 modules again, because the service cannot write to its read-only venv. So after installing,
the install recipe and the Dockerfile run this: it imports what ``slr-edge run``, ``slr-listen``
and ``slr-health`` import and compiles those files only (~15 MB); where the dashboard's
dependencies are installed too (requirements-web.lock), also what ``slr-web`` imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import py_compile
import sys
from pathlib import Path

#: What the device's commands import; MediaPipe's Holistic is imported lazily by the extractor.
DAEMON_IMPORTS = (
    "edge.commands.edge_cli",
    "edge.commands.health",
    "edge.commands.listen",
    "edge.daemon.lifecycle",
    "edge.util.journal",
    "edge.models.resolve",  # imported by the config when it resolves --model NAME
    "mediapipe.python.solutions.holistic",
    "cv2",
    "zmq",
)
#: What ``slr-web`` imports, where the ``web`` extra is installed (uvicorn loads its HTTP protocol
#: lazily, by name).
WEB_IMPORTS = ("edge.commands.web", "edge.web.app", "uvicorn", "uvicorn.protocols.http.h11_impl")
#: Packages compiled by path instead: importing ONNX Runtime initialises its native runtime, which
#: crashes under qemu-user emulation (an arm64 image built on an x86 host) when /proc is mounted.
#: ``import onnxruntime`` loads its ``__init__`` and ``capi`` modules.
BY_PATH = {"onnxruntime": ("__init__.py", "capi/*.py")}


def daemon_module_files() -> list[str]:
    """Source files in this environment (not the system's) of every module the commands load."""
    web = importlib.util.find_spec("starlette") is not None
    for name in (*DAEMON_IMPORTS, *(WEB_IMPORTS if web else ())):
        importlib.import_module(name)
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    for package, patterns in BY_PATH.items():
        spec = importlib.util.find_spec(package)
        for folder in spec.submodule_search_locations or () if spec else ():
            files.update(str(path) for pattern in patterns for path in Path(folder).glob(pattern))
    return sorted(name for name in files if name and name.endswith(".py") and name.startswith(sys.prefix))


def main() -> int:
    files = daemon_module_files()
    failed = 0
    for name in files:
        try:
            py_compile.compile(name, doraise=True)
        except (py_compile.PyCompileError, OSError) as exc:
            failed += 1
            print(f"precompile: skipped {name}: {exc}", file=sys.stderr)
    print(f"precompiled {len(files) - failed} modules the commands import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
