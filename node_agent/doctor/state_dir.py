"""The ``state dir`` line: the directory exists, is a directory, is writable, and nobody else can
write to it (they could replace the identity and tokens). Looking never creates it."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import trio

from .check import Check, fail, ok, warn
from .context import Context


def write_probe(directory: Path) -> None:
    """Create and remove a file in ``directory``; raises OSError if that is not possible.
    Not ``os.access``: it answers for the real uid and knows nothing of read-only mounts."""
    fd, name = tempfile.mkstemp(prefix=".doctor-", dir=directory)
    os.close(fd)
    os.unlink(name)


def check_state_dir(state_dir: Path) -> Check:
    name = "state dir"
    try:
        st = state_dir.stat()
    except FileNotFoundError:
        return warn(name, f"{state_dir} does not exist yet (the first start creates it)",
                    "run `node-agent pair` (a system service keeps its state in /var/lib/node-agent: "
                    "pass --state-dir /var/lib/node-agent to look at that one)")
    except OSError as exc:
        return fail(name, f"cannot look at {state_dir}: {exc.strerror}",
                    f"make {state_dir.parent} accessible to the user the agent runs as")
    if not stat.S_ISDIR(st.st_mode):
        return fail(name, f"{state_dir} exists but is not a directory",
                    f"move {state_dir} aside or pick another --state-dir")
    try:
        write_probe(state_dir)
    except OSError as exc:
        if exc.errno == errno.EROFS:  # no owner or mode change helps here
            return fail(name, f"{state_dir} is on a read-only file system",
                        f"remount the file system holding {state_dir} read-write, or pick a --state-dir on a "
                        "writable one")
        return fail(name, f"{state_dir} is not writable: {exc.strerror or type(exc).__name__}",
                    f"chown it to the user the agent runs as (`sudo chown -R $USER {state_dir}`), "
                    "or pick another --state-dir")
    mode = stat.S_IMODE(st.st_mode)
    if os.name == "posix" and mode & 0o022:
        return fail(name, f"{state_dir} has mode {mode:04o}: others can replace the identity and tokens in it",
                    f"chmod 700 {state_dir}")
    detail = f"{state_dir} (mode {mode:04o}, writable)" if os.name == "posix" else f"{state_dir} (writable)"
    return ok(name, detail)


async def run(ctx: Context) -> Check:
    return await trio.to_thread.run_sync(check_state_dir, ctx.cfg.state_dir)
