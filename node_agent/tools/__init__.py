"""The node's tools become the agent's tools: MCP servers on the device, published through the gateway.

A device's MCP servers (configured ``[[mcp.servers]]``, started as stdio children with the
official MCP Python SDK) and its own builtin tools (an in-process MCP server) are supervised by
one :class:`~.hub.ToolHub`. Their tools are published to the gateway with
``node.pluginTools.update`` (``pluginId: "node-mcp"``) and served through the node command
``mcp.tools.call.v1``, which a stock OpenClaw gateway forwards to a Linux node once its command
surface is approved.

Import rule: tools ride on the agent (:mod:`.extension` is the only module that knows the wire,
through the agent's connection); the rest knows neither the wire nor the agent's link. Importing
this package is cheap: the MCP SDK (seconds of pydantic model building) is imported only when a
session opens or the builtin server is built, in a worker thread at start-up (the ``tools`` extra).

Modules, one job each:

* :mod:`.descriptors` (pure): listed tools -> the catalog the gateway accepts.
* :mod:`.bounds` (pure): a tool result -> what fits ``node.invoke.result``.
* :mod:`.secrets` (pure): tool arguments -> what the audit log may keep.
* :mod:`.settings` (pure): the ``[mcp]`` table.
* :mod:`.session`: the one edge to the SDK (our exceptions, our small interface).
* :mod:`.stdio`: a server as a child process (stderr kept, end of output observed).
* :mod:`.connectors`: stdio and in-process connectors; loading the slow SDK off the loop.
* :mod:`.supervisor`: one server's start/serve/restart loop and its backoff.
* :mod:`.hub`: all servers, the catalog, tool calls, audit.
* :mod:`.publisher`: the ``node.pluginTools.update`` loop of one gateway connection.
* :mod:`.builtin`: the device's own tools (status, GPIO by configured name).
* :mod:`.assemble`: settings -> hub.
"""
