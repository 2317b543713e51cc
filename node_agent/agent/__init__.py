"""The Trio layer: one supervised link per role, the connection that serves it, and the typed
status the daemon publishes.

:mod:`.link` is the supervised reconnect loop every role shares; :mod:`.node` (commands,
presence, extensions) and :mod:`.operator_link` configure it; :mod:`.connection` runs one
WebSocket's tasks over a sans-io :class:`~node_agent.protocol.Session`; :mod:`.status` is the
status model (importable without Trio: ``node-agent status`` reads through it).

Import rule: below this package are ``protocol``, ``transport``, ``secrets``, ``identity``,
``config`` and ``adapters``; above it are the rooms that ride on the node link (``voice``) and
the CLI. Nothing here imports a room, and nothing here branches on a dialect or an error class:
dialects are codecs, and errors carry their retry category.
"""
