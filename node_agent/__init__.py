"""node-agent: a device-side node for OpenClaw gateways.

The package is layered (see README "Architecture"): ``protocol`` is a pure, synchronous core;
``transport``/``secrets``/``adapters`` are the I/O edges; ``agent`` is the Trio layer (one
supervised link per role) that ties them together; rooms that ride on the node link (``voice``)
sit above it; ``cli`` and ``service`` are the glue at the edge.

Import rule: an arrow never points up. Modules at the bottom (``errors``, ``secret``, ``config``,
``atomic``, ``childenv``, ``audit``, ``logs``) import nothing of the package above them, and
nothing here imports Trio or ``cryptography`` at import time except the Trio layer itself.
What the read-only commands (``identity``, ``status``, ``service print``) load -- the
configuration, the identity record, the status model, the exec approvals document and the
service definition -- is made of stdlib dataclasses; the rest of the package uses attrs (and
cattrs on the wire), whose import alone is ~40 ms of such a command's 100 ms.
"""

__version__ = "0.1.0"
