"""A stdio MCP server built on the real SDK, for the tests that need a child process to misbehave.

Run as ``python -m tests.support.mcp_fixture_server [--bad-names] [--stderr TEXT] [--pid-file P]``.

Tools: ``echo``, ``env`` (the names of its environment variables), ``crash`` (``os._exit(3)``
mid-call, as a segfaulting server would), ``hang`` (never answers), ``grow`` (adds a tool and
announces the changed list). ``--bad-names`` adds tools whose names and description the gateway
would refuse as they are.
"""

import argparse
import os
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bad-names", action="store_true")
    parser.add_argument("--stderr", default=None)
    parser.add_argument("--pid-file", default=None)
    args = parser.parse_args()
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write(str(os.getpid()))
    if args.stderr:
        print(args.stderr, file=sys.stderr, flush=True)

    server = MCPServer("fixture")

    async def echo(text: str) -> str:
        return text

    async def env() -> list[str]:
        return sorted(os.environ)

    async def crash() -> str:
        os._exit(3)

    async def hang() -> str:
        await anyio.sleep_forever()
        return "never"

    async def grow(ctx: Context) -> str:
        server.add_tool(echo, name="echo_again", description="Echo, added at run time.")
        await ctx.notify_tools_changed()
        return "grown"

    server.add_tool(echo, name="echo", description="Echo the text back.")
    server.add_tool(env, name="env", description="Names of the server's environment variables.")
    server.add_tool(crash, name="crash", description="Exit the process in the middle of the call.")
    server.add_tool(hang, name="hang", description="Never answer.")
    server.add_tool(grow, name="grow", description="Add a tool and announce the change.")
    if args.bad_names:
        server.add_tool(echo, name="git.status", description="A dotted name.")
        server.add_tool(echo, name="9lives", description="A name starting with a digit.")
        server.add_tool(echo, name="verbose", description="A long description. " * 200)
    server.run("stdio")


if __name__ == "__main__":
    main()
