"""Per-platform adapters behind the small interfaces in :mod:`.base`.

Import rule: adapters know nothing of the wire or the agent; they import only ``errors``,
``childenv`` and their own helpers, and start programs only through :mod:`._process`.
"""

from __future__ import annotations

import sys

from .base import Indicator, Notifier, PlatformAdapter, Speech, SpeechError

__all__ = [
    "Indicator", "Notifier", "PlatformAdapter", "Speech", "SpeechError", "detect_adapter_name", "select_adapter",
]


def detect_adapter_name() -> str:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith("win"):
        return "windows"
    from .pi import is_pi_class_board

    return "pi" if is_pi_class_board() else "linux"


def select_adapter(name: str | None = None) -> PlatformAdapter:
    """Build the adapter bundle for ``name`` (or the detected platform). Imports lazily."""
    name = name or detect_adapter_name()
    if name == "linux":
        from .linux import make_adapter
    elif name == "pi":
        from .pi import make_adapter
    elif name == "macos":
        from .macos import make_adapter
    elif name == "windows":
        from .windows import make_adapter
    else:
        raise ValueError(f"unknown platform adapter {name!r} (linux, pi, macos, windows)")
    return make_adapter()
