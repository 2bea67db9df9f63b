"""The wallet's errors: each says what went wrong and what to do, and maps to an exit code."""

from __future__ import annotations

from chain.errors import ConfigError, LedgerError


class WalletError(LedgerError):
    """The wallet command failed."""

    code = "wallet-error"  # a stable string for --json output


class UsageError(ConfigError):
    """The command line is wrong (exit status 2)."""

    code = "usage"


class UnknownKey(UsageError):
    """No key of that name is in the wallet."""

    code = "unknown-key"


class BadInput(UsageError):
    """A record, name or zone file given on the command line is invalid."""

    code = "bad-input"


class KeyExists(WalletError):
    """A key of that name is already in the wallet."""

    code = "key-exists"


class WrongPassphrase(WalletError):
    """The passphrase does not decrypt the key."""

    code = "wrong-passphrase"


class NoPassphrase(WalletError):
    """No passphrase was given and none can be asked for."""

    code = "no-passphrase"


class CorruptKeyFile(WalletError):
    """A key file cannot be read."""

    code = "corrupt-key-file"


class NotOwner(WalletError):
    """The domain's owner key is not in this wallet."""

    code = "not-owner"


class NodeError(WalletError):
    """The node refused the request or could not be reached."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
