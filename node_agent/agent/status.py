"""What the agent is doing right now, for people and supervisors.

The running daemon keeps one :class:`StatusBoard`. Each change is written atomically to
``status.json`` in the state directory (read by ``node-agent status``) and pushed to listeners
(systemd ``STATUS=``, the ``pair`` command's terminal). Writing status is best effort: a full
disk must never stop the agent, so a failed write is logged once and retried on the next change.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("node_agent.status")

STATUS_FILE = "status.json"


class StatusBoard:
    def __init__(self, state_dir: Path | None, **initial: Any):
        self._path = state_dir / STATUS_FILE if state_dir is not None else None
        self._fields: dict[str, Any] = {"pid": os.getpid(), "startedAtMs": int(time.time() * 1000), **initial}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._write_failed = False

    def __repr__(self) -> str:
        return f"<StatusBoard state={self._fields.get('state')}>"

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def snapshot(self) -> dict[str, Any]:
        return dict(self._fields)

    def get(self, key: str) -> Any:
        return self._fields.get(key)

    def update(self, **fields: Any) -> None:
        changed = {k: v for k, v in fields.items() if self._fields.get(k) != v}
        if not changed:
            return
        self._fields.update(changed)
        self._fields["updatedAtMs"] = int(time.time() * 1000)
        self._write()
        for listener in self._listeners:
            try:
                listener(self.snapshot())
            except Exception:
                log.exception("status listener failed")

    def close(self, **fields: Any) -> None:
        """Final state on exit (``state: "stopped"``), so ``status`` does not show a ghost."""
        self.update(pid=None, **fields)

    def _write(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._fields, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
            os.replace(tmp, self._path)
            self._write_failed = False
        except OSError as exc:
            if not self._write_failed:
                log.warning("cannot write %s (%s); status will be stale until it can", self._path, exc.strerror)
            self._write_failed = True
            try:
                tmp.unlink()
            except OSError:
                pass


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        data["state"] = "stopped"
        data["stale"] = True
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
