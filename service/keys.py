"""The erasure key: the secret every customer identifier is hashed with before it is kept
past the customer (erasure receipts, tombstones, the audit trail), so that what stays
names no one to a reader without the key.

``LOFT_ERASURE_KEY``, or a random key generated once under the data directory (mode
0600; processes starting together agree on one)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from service.settings import Settings

_KEY_FILE = "erasure.key"


def erasure_key(settings: Settings) -> bytes:
    """LOFT_ERASURE_KEY, or a random key generated once under the data dir (mode 0600)."""
    if settings.erasure_key is not None and settings.erasure_key.get_secret_value():
        return settings.erasure_key.get_secret_value().encode()
    path = settings.data_dir / _KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return path.read_text().strip().encode()


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # atomic: processes starting together agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
