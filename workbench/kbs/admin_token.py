"""The admin bearer token, shared by the server and the admin CLI.

Sources, first found wins: ``--admin-token-file``, $WORKBENCH_KBS_ADMIN_TOKEN, then the
development token file next to the default store (created 0600 by ``kbs serve`` when
nothing else was configured, so a local ``serve`` + ``resource add`` works out of the box).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from workbench.errors import InputError, about
from workbench.kbs.config import default_state_dir

# Names of where the token lives, not tokens.
ENV_TOKEN = "WORKBENCH_KBS_ADMIN_TOKEN"  # noqa: S105
DEV_TOKEN_NAME = "admin-token"  # noqa: S105
MIN_TOKEN_CHARS = 16

log = logging.getLogger("workbench.kbs")


def _checked(token: str, source: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise InputError(about(source, f"admin token must be at least {MIN_TOKEN_CHARS} "
                                       "characters"))
    return token


def _read(path: str | Path) -> str:
    try:
        return _checked(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as err:
        raise InputError(about(path, f"cannot read admin token ({err.strerror})")) from err
    except UnicodeDecodeError:
        raise InputError(about(path, "admin token file is not UTF-8 text")) from None


def dev_token_path(state_dir: Path | None = None) -> Path:
    return (state_dir or default_state_dir()) / DEV_TOKEN_NAME


def client_token(token_file: str | None) -> str:
    """The token the admin CLI sends."""
    if token_file:
        return _read(token_file)
    if os.environ.get(ENV_TOKEN):
        return _checked(os.environ[ENV_TOKEN], f"${ENV_TOKEN}")
    dev = dev_token_path()
    if dev.exists():
        return _read(dev)
    raise InputError(f"no admin token: give --admin-token-file or set ${ENV_TOKEN}")


def server_token(token_file: str | None, dev_dir: Path | None) -> str:
    """The token the server accepts; generates a development one when allowed."""
    if token_file:
        return _read(token_file)
    if os.environ.get(ENV_TOKEN):
        return _checked(os.environ[ENV_TOKEN], f"${ENV_TOKEN}")
    if dev_dir is None:
        raise InputError(f"no admin token: give --admin-token-file or set ${ENV_TOKEN}")
    dev = dev_token_path(dev_dir)
    if dev.exists():
        return _read(dev)
    dev.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(dev, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another broker process made it first
        return _read(dev)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    log.warning("generated a development admin token at %s (0600)", dev)
    return token


def token_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())
