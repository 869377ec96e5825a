"""The device installs the ``edge`` extra only: no module under ``edge/`` may pull in torch."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import edge


def test_importing_every_edge_module_never_loads_torch() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(edge.__path__, prefix="edge."))
    assert {"edge.daemon.daemon", "edge.contract.preprocess", "edge.web.app"} <= set(modules)
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('torch' in sys.modules, 'model_src' in sys.modules, 'export' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["False", "False", "False"], result.stdout
