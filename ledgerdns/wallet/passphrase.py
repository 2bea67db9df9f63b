"""Where the passphrase comes from: ``LEDGERDNS_PASSPHRASE`` for scripts, else a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping

from ledgerdns.wallet.errors import NoPassphrase, WalletError

ENV_PASSPHRASE = "LEDGERDNS_PASSPHRASE"
ENV_BACKUP_PASSPHRASE = "LEDGERDNS_BACKUP_PASSPHRASE"

Prompt = Callable[[str], str]


class PassphraseSource:
    """Reads the passphrase once per command.

    Args:
        env: the environment (``os.environ``).
        prompt: asks the user without echo (``getpass.getpass``); None when there
            is no terminal to ask on.
    """

    def __init__(self, env: Mapping[str, str], prompt: Prompt | None) -> None:
        self._env = env
        self._prompt = prompt

    @classmethod
    def from_process(cls) -> PassphraseSource:
        """The real environment, and a prompt only when stdin is a terminal."""
        return cls(os.environ, getpass.getpass if sys.stdin.isatty() else None)

    def _ask(self, text: str) -> str:
        if self._prompt is None:
            raise NoPassphrase(
                f"a passphrase is needed: set {ENV_PASSPHRASE} or run the command in a terminal"
            )
        try:
            return self._prompt(text)
        except (EOFError, KeyboardInterrupt):
            raise NoPassphrase("no passphrase given") from None

    def for_unlock(self, key_name: str) -> str:
        """The passphrase to open an existing key."""
        from_env = self._env.get(ENV_PASSPHRASE)
        if from_env is not None:
            return from_env
        return self._ask(f"passphrase for key {key_name!r}: ")

    def for_new(self, key_name: str) -> str:
        """A passphrase for a new key: typed twice when prompted; never empty."""
        from_env = self._env.get(ENV_PASSPHRASE)
        if from_env is not None:
            passphrase = from_env
        else:
            passphrase = self._ask(f"new passphrase for key {key_name!r}: ")
            if passphrase and self._ask("repeat the passphrase: ") != passphrase:
                raise WalletError("the two passphrases differ; nothing was created")
        if not passphrase:
            raise NoPassphrase(
                "the passphrase is empty; pick one, or pass --insecure-no-passphrase to store "
                "the key unencrypted (anyone who can read the file can then use it)"
            )
        return passphrase

    # -- the seed and export files (ledgerdns.wallet.seed, ledgerdns.wallet.backup) --

    def for_seed(self) -> str:
        """The passphrase that opens the wallet's seed (``seed.json``)."""
        from_env = self._env.get(ENV_PASSPHRASE)
        if from_env is not None:
            return from_env
        return self._ask("passphrase of the wallet seed: ")

    def for_export(self, path: str, *, new: bool) -> str:
        """The passphrase of an export file: typed twice for a new one; never empty.

        It comes from ``LEDGERDNS_BACKUP_PASSPHRASE`` when set: a backup kept
        elsewhere deserves its own passphrase, not the one in the wallet's scripts.
        """
        passphrase = self._env.get(ENV_BACKUP_PASSPHRASE)
        if passphrase is None and self._prompt is None:
            passphrase = ""  # refused below, with the variable to set
        if passphrase is None:
            verb = "new passphrase for" if new else "passphrase of"
            passphrase = self._ask(f"{verb} the export file {path}: ")
            if new and passphrase and self._ask("repeat the passphrase: ") != passphrase:
                raise WalletError("the two passphrases differ; nothing was written")
        if not passphrase:
            raise NoPassphrase(
                f"the export file needs a passphrase: set {ENV_BACKUP_PASSPHRASE} or run the "
                "command in a terminal"
            )
        return passphrase
