from node_agent.cli import entry

entry()
