"""The ``secret store`` line: which store the agent would use and why, and whether it works.

The choice is :func:`node_agent.secrets.describe_store`'s, the same rules ``open_store`` follows
on every start, asked read-only: doctor never writes the marker that makes the choice stick.
A chosen file store is also read whole (a torn ``secrets.json`` is found now, not at the next
start) and its mode checked; reading it through the store tightens a loose mode to 0600, as the
agent's next start would, and the line says so.
"""

from __future__ import annotations

import contextlib
import os
import stat

from ..config import Config
from ..errors import SecretStoreError
from ..secrets import FileStore, SecretStore, describe_store
from .check import Check, fail, ok, warn
from .context import Context

NAME = "secret store"


async def check_secret_store(config: Config) -> tuple[Check, SecretStore | None]:
    """The line, and the store later checks read the identity and token through (None when it
    cannot be used)."""
    choice = await describe_store(config.state_dir, backend=config.secret_backend, timeout=config.secret_timeout)
    if choice.backend == "memory":
        return warn(NAME, "memory: the identity and tokens are forgotten when the agent exits",
                    "use --secret-backend auto (or file/keyring) for a device that should stay paired"), choice.store
    if choice.error is not None:
        error = choice.error
        if choice.backend == "keyring" and choice.marker is None:
            return fail(NAME, f"keyring ({choice.reason}): {error.message}",
                        error.hint or "unlock the OS keyring, or use --secret-backend file"), None
        fix = error.hint or (f"write 'keyring' or 'file' into {choice.marker}" if choice.marker
                             else "see the error above")
        return fail(NAME, error.message, _one_line(fix)), None
    store = choice.store
    if isinstance(store, FileStore):
        return await _file_check(store, choice.reason)
    assert store is not None
    service = getattr(store, "service", "?")
    return ok(NAME, f"keyring, service {service} ({choice.reason}; answers within {config.secret_timeout:g} s)"), store


async def _file_check(store: FileStore, why: str) -> tuple[Check, SecretStore | None]:
    path = store.path
    loose = None
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            loose = mode
    try:
        await store.get("doctor-probe")  # parses the whole file; the key need not exist
    except SecretStoreError as exc:
        return fail(NAME, f"file store ({why}): {exc.message}", exc.hint or f"restore {path} from a backup"), None
    detail = f"file store {path}{'' if path.exists() else ', empty'} ({why})"
    if loose is not None:
        return warn(NAME, f"{detail}: it had mode {loose:04o}, readable by others; tightened to 0600",
                    "check who could have read it; rotate the device token if in doubt "
                    "(`openclaw devices rotate`)"), store
    return ok(NAME, detail), store


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def run(ctx: Context) -> Check:
    check, ctx.store = await check_secret_store(ctx.cfg)
    return check
