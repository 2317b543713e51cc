"""Turn parsed command-line flags into a :class:`~node_agent.config.Config`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Config, load_config

_FLAG_FIELDS = {
    "gateway": "gateway_url", "token_file": "token_file", "state_dir": "state_dir", "display_name": "display_name",
    "protocol": "protocol", "adapter": "adapter", "secret_backend": "secret_backend",
    "allow_insecure_ws": "allow_insecure_ws", "tls_ca": "tls_ca_file", "tls_fingerprint": "tls_fingerprint",
    "log_level": "log_level",
}


def config_from_args(args: argparse.Namespace, **overrides: object) -> Config:
    flags = {field: getattr(args, name, None) for name, field in _FLAG_FIELDS.items()}
    for key in ("state_dir", "token_file"):
        if flags.get(key) is not None:
            flags[key] = Path(flags[key]).expanduser()
    flags.update({k: v for k, v in overrides.items() if v is not None})
    config_file = Path(args.config).expanduser() if getattr(args, "config", None) else None
    return load_config(config_file=config_file, flags=flags)
