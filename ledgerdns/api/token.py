"""The RPC bearer token: a secret file only the node's user can read.

The node creates ``<data_dir>/rpc.token`` (mode 0600, 32 random bytes as hex)
on first start; the wallet and explorer read it from there. A token file that
group or others can read is refused rather than trusted: anyone who can read
it can move every name this node's wallet owns.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from chain.errors import ConfigError

TOKEN_FILE = "rpc.token"
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[0-9a-f]{64}")


class TokenError(ConfigError):
    """The RPC token file is missing, unsafe or not a token."""


def read_token(path: Path) -> str:
    """Read a token file written by `load_or_create_token`.

    Raises:
        TokenError: the file is missing, a group/other permission bit is set,
            or it does not hold exactly one 64-hex-digit token.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise TokenError(
                f"{path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o});"
                f" refusing it: run `chmod 600 {path}`"
            )
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise TokenError(
            f"no RPC token at {path}: has a node run with this data directory?"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read the RPC token {path}: {exc}") from None
    if not _TOKEN.fullmatch(text):
        raise TokenError(f"{path} does not hold an RPC token (64 lower-case hex digits)")
    return text


def load_or_create_token(data_dir: Path) -> str:
    """The token in ``<data_dir>/rpc.token``, created (0600) if there is none.

    Raises:
        TokenError: an existing file is unsafe or unreadable (see `read_token`),
            or a new one cannot be written.
    """
    path = data_dir / TOKEN_FILE
    if path.exists():
        return read_token(path)
    token = secrets.token_hex(TOKEN_BYTES)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)  # another process created it first: use theirs
    except OSError as exc:
        raise TokenError(f"cannot create the RPC token {path}: {exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    return token
