"""``compose.arm64.yml`` runs the daemon and the dashboard from the one image, both on loopback.

The commands are JSON arrays (valid YAML flow sequences), so they are checked here against the
real command-line parsers without a YAML library.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.commands.edge_cli import build_parser as edge_parser
from edge.commands.web import build_parser as web_parser

COMPOSE = Path(__file__).resolve().parents[1] / "compose.arm64.yml"


def commands() -> dict[str, list[str]]:
    found = {}
    for line in COMPOSE.read_text().splitlines():
        match = re.match(r"\s+command: (\[.*\])\s*$", line)
        if match:
            argv = json.loads(match.group(1))
            found[argv[0]] = argv[1:]
    return found


def test_compose_runs_both_commands_on_loopback() -> None:
    found = commands()
    assert set(found) == {"slr-edge", "slr-web"}
    edge_args = edge_parser().parse_args(found["slr-edge"])
    web_args = web_parser().parse_args(found["slr-web"])
    assert edge_args.endpoint == web_args.endpoint == "tcp://127.0.0.1:5556"
    assert web_args.host == "127.0.0.1" and not web_args.allow_remote
    assert web_args.model == "/models/model.onnx"
    text = COMPOSE.read_text()
    assert text.count("network_mode: host") == 2 and "depends_on: [slovo-edge]" in text


def test_dockerfile_installs_the_web_lock() -> None:
    """The image compose runs slr-web from has the dashboard's pinned dependencies (layer order:
    tests/test_install_recipe.py; running it: tests/test_deploy_arm64.py)."""
    dockerfile = (COMPOSE.parent / "Dockerfile.arm64").read_text()
    assert "-r /tmp/requirements-web.lock" in dockerfile
