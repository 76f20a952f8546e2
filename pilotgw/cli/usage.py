"""The usage text printed on stderr (exit 2) when no command is given.

The command lines are the contract (services-and-cli.md §A20); we list every
flag the commands accept and name our defaults (no public addresses).
"""

USAGE = """pilotctl — command-line client for the Pilot Protocol daemon

Global flags:
  --json                        Machine-readable JSON output

Bootstrap:
  pilotctl init [--registry <addr>] [--hostname <name>] [--beacon <addr>] [--socket <path>]
  pilotctl config [--set key=value]

Daemon lifecycle:
  pilotctl daemon start [--config <path>] [--registry <addr>] [--beacon <addr>] [--listen <addr>]
                       [--identity <path>] [--owner <owner>] [--hostname <name>] [--socket <path>]
                       [--webhook <url>] [--log-level <level>] [--log-format <fmt>] [--public]
                       [--foreground] [--no-encrypt]
  pilotctl daemon stop
  pilotctl daemon status [--check]

Registry commands:
  pilotctl register [listen_addr]
  pilotctl lookup <node_id>
  pilotctl rotate-key <node_id> <owner>
  pilotctl set-public
  pilotctl set-private
  pilotctl deregister

Discovery commands:
  pilotctl find <hostname>
  pilotctl set-hostname <hostname>
  pilotctl clear-hostname
  pilotctl set-tags <tag1> [tag2] ...
  pilotctl clear-tags
  pilotctl enable-tasks
  pilotctl disable-tasks

Communication commands:
  pilotctl connect <address|hostname> [port] [--message <msg>] [--timeout <dur>]
  pilotctl send <address|hostname> <port> --data <msg> [--timeout <dur>]
  pilotctl recv <port> [--count <n>] [--timeout <dur>]
  pilotctl send-file <address|hostname> <filepath>
  pilotctl send-message <address|hostname> --data <text> [--type text|json|binary]
  pilotctl subscribe <address|hostname> <topic> [--count <n>] [--timeout <dur>]
  pilotctl publish <address|hostname> <topic> --data <message>

Task commands:
  pilotctl task submit <address|hostname> --task <description>
  pilotctl task accept --id <task_id>
  pilotctl task decline --id <task_id> --justification <reason>
  pilotctl task execute
  pilotctl task send-results --id <task_id> --results <text> | --file <filepath>
  pilotctl task list [--type received|submitted]
  pilotctl task queue

Trust commands:
  pilotctl handshake <node_id|address|hostname> [justification]
  pilotctl approve <node_id>
  pilotctl reject <node_id> [reason]
  pilotctl untrust <node_id>
  pilotctl pending
  pilotctl trust

Management commands:
  pilotctl connections
  pilotctl disconnect <conn_id>

Mailbox:
  pilotctl received [--clear]
  pilotctl inbox [--clear]

Diagnostic commands:
  pilotctl info
  pilotctl peers [--search <query>]
  pilotctl ping <address|hostname> [--count <n>] [--timeout <dur>]
  pilotctl traceroute <address> [--timeout <dur>]
  pilotctl bench <address|hostname> [size_mb] [--timeout <dur>]
  pilotctl listen <port> [--count <n>] [--timeout <dur>]
  pilotctl broadcast <network_id> <message>

Agent tool discovery:
  pilotctl context

Environment:
  PILOT_REGISTRY     registry address (default: 127.0.0.1:9000)
  PILOT_SOCKET       daemon IPC socket (default: /tmp/pilot.sock)

Config file: ~/.pilot/config.json
"""
