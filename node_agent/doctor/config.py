"""The ``config`` line: does the configuration load (file, environment, flags), and from where."""

from __future__ import annotations

from typing import Callable

from ..config import Config
from ..errors import ConfigError
from .check import Check, fail, ok
from .context import Context


def check_config(load_config: Callable[[], Config]) -> tuple[Check, Config | None]:
    """Load the configuration once; a :class:`ConfigError` is the finding, not a crash."""
    try:
        config = load_config()
    except ConfigError as exc:
        fix = exc.hint or "correct the configuration file, flag or variable named above"
        return fail("config", exc.message, fix), None
    where = f"{config.config_file}" if config.config_file else "no config file (defaults, environment, flags)"
    service = (f"; state dir {config.state_dir} (the system service's)"
               if config.state_dir_source == "system-service" else "")
    return ok("config", f"{where}; gateway {config.gateway_url} (from {config.gateway_url_source}){service}"), config


async def run(ctx: Context) -> Check:
    check, ctx.config = check_config(ctx.load_config)
    return check
