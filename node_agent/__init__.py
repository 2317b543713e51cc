"""node-agent: a device-side node for OpenClaw gateways.

The package is layered (see README "Architecture"): ``protocol`` is a pure, synchronous core;
``transport``/``secrets``/``adapters`` are the I/O edges; ``agent`` is the Trio supervisor that
ties them together; ``cli`` and ``service`` are the glue at the edge.
"""

__version__ = "0.1.0"
