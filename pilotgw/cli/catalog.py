"""The ``pilotctl context`` catalog (services-and-cli.md §A21).

The text of ``shared/protocol/pilotctl-context.json``, embedded so that it
ships inside the package without data-file configuration. One edit: the
default registry named in ``environment`` is ours (127.0.0.1:9000), never
the reference's public address.
"""

CATALOG_JSON = r'''{
  "commands": {
    "approve": {
      "args": [
        "<node_id>"
      ],
      "description": "Grant trust to a node whose handshake request is waiting in the pending list",
      "returns": "status, node_id"
    },
    "bench": {
      "args": [
        "<address|hostname>",
        "[size_mb]",
        "[--timeout <dur>]"
      ],
      "description": "Measure throughput by streaming data through the target's echo service (1 MB unless size_mb is given)",
      "returns": "target, sent_bytes, recv_bytes, send_duration_ms, total_duration_ms, send_mbps, total_mbps"
    },
    "broadcast": {
      "args": [
        "<network_id>",
        "<message>"
      ],
      "description": "Send one message to every member of a network (not available yet: always fails with code unavailable)",
      "returns": "network_id, message"
    },
    "clear-hostname": {
      "args": [],
      "description": "Remove the hostname registered for the local node",
      "returns": "hostname, node_id"
    },
    "clear-tags": {
      "args": [],
      "description": "Remove every capability tag from the local node",
      "returns": "node_id, tags"
    },
    "clear-webhook": {
      "args": [],
      "description": "Delete the configured webhook URL; a running daemon stops posting events at once",
      "returns": "webhook, applied"
    },
    "config": {
      "args": [
        "[--set key=value]"
      ],
      "description": "Print the configuration file contents, or store one key with --set key=value",
      "returns": "configuration object (file contents plus config_path, pid_file, log_file)"
    },
    "connect": {
      "args": [
        "<address|hostname>",
        "[port]",
        "[--message <msg>]",
        "[--timeout <dur>]"
      ],
      "description": "Open a stream to a port (1000 unless given); --message or piped stdin is sent once and the single reply is printed",
      "returns": "target, port, sent, response (one message from --message or piped stdin)"
    },
    "connections": {
      "args": [],
      "description": "Show the daemon's connections with their transport statistics",
      "returns": "connections [{id, local_port, remote_addr, remote_port, state, ...}], total"
    },
    "daemon start": {
      "args": [
        "[--config <path>]",
        "[--registry <addr>]",
        "[--beacon <addr>]",
        "[--listen <addr>]",
        "[--identity <path>]",
        "[--owner <owner>]",
        "[--hostname <name>]",
        "[--log-level <level>]",
        "[--log-format <fmt>]",
        "[--public]",
        "[--foreground]",
        "[--no-encrypt]",
        "[--socket <path>]",
        "[--webhook <url>]"
      ],
      "description": "Launch the daemon in the background, wait until it has registered, print its details and exit",
      "returns": "node_id, address, pid, socket, hostname, log_file"
    },
    "daemon status": {
      "args": [
        "[--check]"
      ],
      "description": "Report whether the daemon is alive and answering; with --check print nothing and exit 0 when it answers, 1 otherwise",
      "returns": "running (bool), responsive (bool), pid, pid_file, socket, node_id, address, hostname, uptime_secs, peers, connections"
    },
    "daemon stop": {
      "args": [],
      "description": "Terminate the running daemon (SIGTERM, then SIGKILL after 10 seconds)",
      "returns": "pid, forced (bool)"
    },
    "deregister": {
      "args": [],
      "description": "Remove the local node from the registry (performed by the daemon)",
      "returns": "status"
    },
    "disable-tasks": {
      "args": [],
      "description": "Stop announcing that the local node accepts tasks",
      "returns": "node_id, task_exec"
    },
    "disconnect": {
      "args": [
        "<conn_id>"
      ],
      "description": "Close one connection identified by its ID",
      "returns": "conn_id"
    },
    "enable-tasks": {
      "args": [],
      "description": "Announce that the local node accepts tasks",
      "returns": "node_id, task_exec"
    },
    "find": {
      "args": [
        "<hostname>"
      ],
      "description": "Resolve a hostname to its node ID and address",
      "returns": "hostname, node_id, address, public"
    },
    "gateway list": {
      "args": [],
      "description": "Show the gateway's local-IP to Pilot-address mappings",
      "returns": "mappings [{local_ip, pilot_addr}], total"
    },
    "gateway map": {
      "args": [
        "<pilot-addr>",
        "[local-ip]"
      ],
      "description": "Expose a Pilot address on a local IP through the gateway",
      "returns": "local_ip, pilot_addr"
    },
    "gateway start": {
      "args": [
        "[--subnet <cidr>]",
        "[--ports <list>]",
        "[<pilot-addr>...]"
      ],
      "description": "Run the IP gateway that bridges local TCP ports to Pilot Protocol; stays in the foreground",
      "returns": "pid, subnet, mappings [{local_ip, pilot_addr}]"
    },
    "gateway stop": {
      "args": [],
      "description": "Shut down the running gateway",
      "returns": "pid"
    },
    "gateway unmap": {
      "args": [
        "<local-ip>"
      ],
      "description": "Drop a gateway mapping and remove its loopback alias",
      "returns": "unmapped"
    },
    "handshake": {
      "args": [
        "<node_id|hostname>",
        "[justification]"
      ],
      "description": "Ask a remote node to establish trust, with an optional justification",
      "returns": "status, node_id"
    },
    "inbox": {
      "args": [
        "[--clear]"
      ],
      "description": "Show messages that arrived on data-exchange port 1001 (kept in ~/.pilot/inbox/); --clear deletes them",
      "returns": "messages [{type, from, data, received_at}], total, dir"
    },
    "info": {
      "args": [],
      "description": "Print the daemon's state: node ID, address, hostname, uptime, peers, connections, encryption and identity",
      "returns": "node_id, address, hostname, uptime_secs, connections, ports, peers, encrypt, bytes_sent, bytes_recv, conn_list, peer_list"
    },
    "init": {
      "args": [
        "--registry <addr>",
        "--beacon <addr>",
        "--hostname <name>",
        "[--socket <path>]"
      ],
      "description": "Create or update ~/.pilot/config.json with registry, beacon, socket and hostname settings",
      "returns": "config_path, registry, beacon, socket, hostname"
    },
    "listen": {
      "args": [
        "<port>",
        "[--count <n>]",
        "[--timeout <dur>]"
      ],
      "description": "Receive datagrams addressed to a port; streams NDJSON until stopped unless --count or --timeout sets a limit",
      "returns": "messages [{src_addr, src_port, data, bytes}], timeout (bool); without --count: one NDJSON object per line"
    },
    "lookup": {
      "args": [
        "<node_id>"
      ],
      "description": "Fetch a node's registry record by node ID",
      "returns": "node_id, address, real_addr, public, hostname"
    },
    "peers": {
      "args": [
        "[--search <query>]"
      ],
      "description": "List tunnel peers, optionally keeping only those whose node ID or endpoint contains the search text",
      "returns": "peers [{node_id, endpoint, encrypted, authenticated}], total"
    },
    "pending": {
      "args": [],
      "description": "List trust requests that are waiting for approval",
      "returns": "pending [{node_id, justification, received_at}]"
    },
    "ping": {
      "args": [
        "<address|hostname>",
        "[--count <n>]",
        "[--timeout <dur>]"
      ],
      "description": "Measure round-trip time to a node through its echo port (4 probes unless --count is given)",
      "returns": "target, results [{seq, bytes, rtt_ms, error}], timeout (bool)"
    },
    "publish": {
      "args": [
        "<address|hostname>",
        "<topic>",
        "--data <message>"
      ],
      "description": "Send one event on a topic to the target's event-stream broker (port 1002)",
      "returns": "target, topic, bytes"
    },
    "received": {
      "args": [
        "[--clear]"
      ],
      "description": "Show files that arrived on data-exchange port 1001 (kept in ~/.pilot/received/); --clear deletes them",
      "returns": "files [{name, bytes, modified, path}], total, dir"
    },
    "recv": {
      "args": [
        "<port>",
        "[--count <n>]",
        "[--timeout <dur>]"
      ],
      "description": "Accept incoming connections on a port and print the first message each one sends",
      "returns": "messages [{seq, port, data, bytes}], timeout (bool)"
    },
    "register": {
      "args": [
        "[listen_addr]"
      ],
      "description": "Register a node directly with the registry",
      "returns": "node_id, address, public_key"
    },
    "reject": {
      "args": [
        "<node_id>",
        "[reason]"
      ],
      "description": "Refuse a trust request that is waiting in the pending list",
      "returns": "status, node_id"
    },
    "rotate-key": {
      "args": [
        "<node_id>",
        "<owner>"
      ],
      "description": "Replace the node's key pair through owner-based recovery",
      "returns": "node_id, new public_key"
    },
    "send": {
      "args": [
        "<address|hostname>",
        "<port>",
        "--data <msg>",
        "[--timeout <dur>]"
      ],
      "description": "Write one message to a port and print the reply",
      "returns": "target, port, sent, response"
    },
    "send-file": {
      "args": [
        "<address|hostname>",
        "<filepath>"
      ],
      "description": "Transfer a file to the target's data-exchange port 1001",
      "returns": "filename, bytes, destination, ack"
    },
    "send-message": {
      "args": [
        "<address|hostname>",
        "--data <text>",
        "[--type text|json|binary]"
      ],
      "description": "Deliver a typed message (text unless --type says otherwise) to the target's data-exchange port 1001",
      "returns": "target, type, bytes, ack"
    },
    "set-hostname": {
      "args": [
        "<hostname>"
      ],
      "description": "Register a hostname for the local node",
      "returns": "hostname, node_id"
    },
    "set-private": {
      "args": [],
      "description": "Hide the local node's network endpoint from other nodes (the default; performed by the daemon)",
      "returns": "status"
    },
    "set-public": {
      "args": [],
      "description": "Publish the local node's network endpoint to every node (performed by the daemon)",
      "returns": "status"
    },
    "set-tags": {
      "args": [
        "<tag1>",
        "[tag2]",
        "..."
      ],
      "description": "Replace the local node's capability tags (at most 3)",
      "returns": "node_id, tags"
    },
    "set-webhook": {
      "args": [
        "<url>"
      ],
      "description": "Configure the URL that receives event notifications; a running daemon uses it at once",
      "returns": "webhook, applied"
    },
    "subscribe": {
      "args": [
        "<address|hostname>",
        "<topic>",
        "[--count <n>]",
        "[--timeout <dur>]"
      ],
      "description": "Receive events for a topic from the target's event-stream broker (port 1002); * matches every topic; streams NDJSON unless --count is given",
      "returns": "events [{topic, data, bytes}], timeout (bool); without --count: one NDJSON object per line"
    },
    "traceroute": {
      "args": [
        "<address>",
        "[--timeout <dur>]"
      ],
      "description": "Report connection-setup time and three round-trip samples to a node",
      "returns": "target, setup_ms, rtt_samples [{rtt_ms, bytes}]"
    },
    "trust": {
      "args": [],
      "description": "List the peers the local node trusts",
      "returns": "trusted [{node_id, mutual, network, approved_at}]"
    },
    "untrust": {
      "args": [
        "<node_id>"
      ],
      "description": "Withdraw trust from a peer",
      "returns": "node_id"
    }
  },
  "config_file": "~/.pilot/config.json",
  "environment": {
    "PILOT_REGISTRY": "Address of the registry server (default: 127.0.0.1:9000)",
    "PILOT_SOCKET": "Path of the daemon's IPC socket (default: /tmp/pilot.sock)"
  },
  "error_codes": {
    "already_exists": "The thing being started already exists or runs (daemon, gateway)",
    "connection_failed": "A dial, network or daemon/registry request failed; retrying may help",
    "internal": "Unexpected local failure (files, processes)",
    "invalid_argument": "The command line is wrong; fix the input instead of retrying",
    "not_found": "A hostname, file or other named item could not be found",
    "not_running": "The daemon or gateway needed for this command is not running",
    "timeout": "No answer within the allowed time; retry with a longer --timeout"
  },
  "global_flags": {
    "--json": "Emit machine-readable JSON. Success: {status:ok, data:{...}}. Failure: {status:error, code:string, message:string}"
  },
  "version": "1.2"
}'''
