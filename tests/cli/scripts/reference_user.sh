#!/usr/bin/env bash
# Written the way users of the reference pilotctl script it: grep/awk on the
# human output, jq on --json. Must work unchanged against our pilotctl.
# The expected values default to the scripted fake daemon (tests/cli); the
# integration test runs the same script against real daemons and passes
# that network's values in the EXPECT_* variables.
set -euo pipefail

ME=${EXPECT_NODE_ID:-5}
ME_ADDR=${EXPECT_ADDRESS:-0:0000.0000.0005}
ME_HOST=${EXPECT_HOSTNAME:-alice}
PEER=${EXPECT_PEER_ID:-9}
PEER_HOST=${EXPECT_PEER_HOSTNAME:-bob}
PENDING=${EXPECT_PENDING_ID:-12}
ENDPOINTS=" ${EXPECT_PEER_ENDPOINTS:-127.0.0.1:4000} "

NODE_ID=$(pilotctl info | grep 'Node ID:' | awk '{print $3}')
ADDR=$(pilotctl info | grep 'Address:' | awk '{print $2}')
HOST=$(pilotctl info | grep 'Hostname:' | awk '{print $2}')
test "$NODE_ID" = "$ME"
test "$ADDR" = "$ME_ADDR"
test "$HOST" = "$ME_HOST"
test "$(pilotctl --json info | jq -r .status)" = ok
test "$(pilotctl --json info | jq -r .data.node_id)" = "$NODE_ID"
ENDPOINT=$(pilotctl info --json | jq -r '.data.peer_list[0].endpoint')
case "$ENDPOINTS" in *" $ENDPOINT "*) ;; *) echo "unexpected endpoint $ENDPOINT" >&2; exit 1 ;; esac

# trust table: first column after the header
test "$(pilotctl trust | awk 'NR>1 {print $1}')" = "$PEER"
test "$(pilotctl trust | awk 'NR>1 {print $2}')" = yes
test "$(pilotctl --json trust | jq '.data.trusted | length')" = 1

# approve everything pending
test "$(pilotctl pending | awk 'NR>1 {print $1}')" = "$PENDING"
for id in $(pilotctl --json pending | jq -r '.data.pending[].node_id'); do
    pilotctl approve "$id" | grep -q "^trust established with node $id$"
done

# ping lines and JSON
test "$(pilotctl ping "$PEER_HOST" --count 2 2>/dev/null | grep -c '^seq=')" = 2
pilotctl ping "$PEER" --count 1 | grep -Eq '^seq=0 bytes=6 time=[0-9.]+(µs|ms|s)$'
pilotctl --json ping "$PEER" --count 1 | jq -e '.data.results[0].rtt_ms > 0 and .data.timeout == false' >/dev/null

# errors: JSON on stderr, exit 1, stdout empty
if pilotctl --json find nobody >out.txt 2>err.json; then exit 1; fi
test ! -s out.txt
jq -e '.status == "error" and .code == "not_found"' err.json >/dev/null
if PILOT_SOCKET=/nonexistent/pilot.sock pilotctl --json info 2>err.json; then exit 1; fi
jq -e '.code == "not_running" and .hint == "start the daemon with: pilotctl daemon start"' err.json >/dev/null
status=0; pilotctl >/dev/null 2>&1 || status=$?
test "$status" = 2
echo OK
