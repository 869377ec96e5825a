"""CURVE key files: read and checked in one place for the daemon and every subscriber.

A key file that is missing, is not a ZeroMQ certificate or holds no valid Z85 key is a one-line
:class:`KeyFileError` at start-up, never a socket that silently refuses every peer.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

log = logging.getLogger(__name__)


class KeyFileError(ValueError):
    """A CURVE key file or directory is missing or unusable; the message is one readable line."""


def _is_z85_key(key: bytes | None) -> bool:
    """A CURVE key as certificate files hold it: 40 Z85 characters (32 bytes)."""
    if key is None or len(key) != 40:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def load_key(path: Path | str, *, secret: bool, role: str) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise KeyFileError(f"{role} key file not found: {path}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KeyFileError(f"{role} key file {path} is not a ZeroMQ certificate: {reason}") from None
    if not public:
        raise KeyFileError(f"{role} key file {path} has no public-key")
    if not _is_z85_key(public):
        raise KeyFileError(f"{role} key file {path}: public-key is not a 40-character Z85 CURVE key")
    if secret and not secret_key:
        raise KeyFileError(f"{role} key file {path} has no secret-key (use the .key_secret file)")
    if secret and not _is_z85_key(secret_key):
        raise KeyFileError(f"{role} key file {path}: secret-key is not a 40-character Z85 CURVE key")
    return public, secret_key


def others_can_read(path: Path | str) -> bool:
    """Whether users other than the owner and its group may read ``path`` (mode ``o+r``)."""
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def authorized_location(authorized_dir: Path | str | None) -> str:
    """ZAP location for ``configure_curve``: a directory of client keys, or allow any client.

    Each ``*.key`` file is parsed here, so a bad one is a one-line error naming it rather than a
    ZAP handler that silently refuses every client.
    """
    if authorized_dir is None:
        return zmq.auth.CURVE_ALLOW_ANY
    path = Path(authorized_dir)
    if not path.is_dir():
        raise KeyFileError(f"CURVE authorized clients directory not found: {path}")
    keys = sorted(path.glob("*.key"))
    if not keys:
        raise KeyFileError(f"CURVE authorized clients directory has no *.key files: {path}")
    for key in keys:
        load_key(key, secret=False, role="CURVE authorized client")
    return str(path)


def client_keys(
    server_key: Path | str | None, client_key: Path | str | None
) -> tuple[bytes, bytes, bytes] | None:
    """A subscriber's CURVE keys: (server public, client public, client secret), or None without CURVE.

    Every subscriber (``slr-listen``, ``slr-web``, ``slr-mqtt``, ``slr-speak``, ``slr-health``) reads
    its two key files here, so they are checked alike and a world-readable secret is warned about.
    """
    if (server_key is None) != (client_key is None):
        raise KeyFileError("CURVE needs both the server public key and the client secret key")
    if server_key is None or client_key is None:
        return None
    server_public, _ = load_key(server_key, secret=False, role="CURVE server public")
    client_public, client_secret = load_key(client_key, secret=True, role="CURVE client secret")
    assert client_secret is not None  # load_key(secret=True) refuses a file without one
    if others_can_read(client_key):
        log.warning("CURVE client secret key %s is readable by other users; chmod 600 it", client_key)
    return server_public, client_public, client_secret
