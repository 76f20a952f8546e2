#!/usr/bin/env bash
# Install pilotgw as a system service: a venv in /opt/pilotgw, the systemd
# units, sample configuration in /etc/pilotgw, a "pilot" system user, and
# pilotctl/pilot-daemon/pilot-rendezvous/pilot-gateway links in /usr/local/bin.
#
# It starts and enables nothing: the configuration first has to point at
# your rendezvous (the samples use 127.0.0.1). Existing files in
# /etc/pilotgw are never overwritten, so re-running it upgrades in place.
#
# usage: deploy/install.sh [--wheels DIR] [--prefix DIR] [--root DIR]
#   --wheels DIR  install from wheels in DIR only (pip --no-index), e.g. ones
#                 made with `pip wheel -w DIR .`; default: this source tree
#                 (dependencies from PyPI)
#   --prefix DIR  venv location (default /opt/pilotgw)
#   --root DIR    install into DIR as if it were / (packaging and tests);
#                 skips the user, the links and systemctl
#
# Exit status: 0 installed, 1 failed (message says why), 2 usage error.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/pilotgw
ROOT=""
WHEELS=""
PYTHON="${PYTHON:-python3}"

die() { echo "install.sh: $1" >&2; exit "${2:-1}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) [ $# -ge 2 ] || die "--wheels needs a directory" 2; WHEELS="$(cd "$2" && pwd)"; shift 2 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory" 2; PREFIX="$2"; shift 2 ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory" 2; ROOT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" 2 ;;
    esac
done
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" 2 ;; esac
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (or use --root DIR to stage the files elsewhere)"
fi
"$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "needs Python >= 3.11 with the venv module (Debian: apt-get install python3-venv)"

venv="$ROOT$PREFIX"
echo "==> venv $venv"
"$PYTHON" -m venv "$venv"
if [ -n "$WHEELS" ]; then
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" --upgrade pilotgw
else
    "$venv/bin/python" -m pip install --quiet --upgrade "$SRC"
fi
for exe in pilot-daemon pilot-rendezvous pilot-gateway pilotctl; do
    [ -x "$venv/bin/$exe" ] || die "$venv/bin/$exe is missing after the install"
done

units="$ROOT/etc/systemd/system"
etc="$ROOT/etc/pilotgw"
echo "==> units in $units, configuration in $etc"
install -d -m 0755 "$units" "$etc" "$ROOT/etc/profile.d"
for unit in pilot-daemon pilot-rendezvous pilot-gateway; do
    sed "s#/opt/pilotgw/#$PREFIX/#g" "$SRC/deploy/systemd/$unit.service" > "$units/$unit.service"
    chmod 0644 "$units/$unit.service"
done
for env in daemon rendezvous gateway; do
    if [ -e "$etc/$env.env" ]; then
        echo "    kept existing $etc/$env.env"
    else
        install -m 0640 "$SRC/deploy/systemd/$env.env" "$etc/$env.env"
    fi
done
cat > "$ROOT/etc/profile.d/pilotgw.sh" <<EOF
# pilotctl finds the system pilot-daemon's socket (usable by root and user pilot).
export PILOT_SOCKET=/run/pilotgw/pilot.sock
EOF

if [ -z "$ROOT" ]; then
    if ! getent passwd pilot >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/pilotgw --no-create-home \
            --shell /usr/sbin/nologin --comment "Pilot Protocol daemon" pilot
    fi
    chgrp pilot "$etc"/*.env
    for exe in pilot-daemon pilot-rendezvous pilot-gateway pilotctl; do
        # Never replace another program of the same name (e.g. the Go pilotctl).
        if [ ! -e "/usr/local/bin/$exe" ] || [ -L "/usr/local/bin/$exe" ]; then
            ln -sfn "$PREFIX/bin/$exe" "/usr/local/bin/$exe"
        else
            echo "    kept /usr/local/bin/$exe (not ours); use $PREFIX/bin/$exe"
        fi
    done
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi

cat <<EOF
==> installed pilotgw $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("pilotgw"))')
Nothing was started. Next:
  1. point $etc/daemon.env at your rendezvous (PILOT_REGISTRY, -beacon)
  2. systemctl enable --now pilot-daemon            # the node
     systemctl enable --now pilot-rendezvous        # only if this host is your rendezvous
     systemctl enable --now pilot-gateway           # only on a gateway host (edit gateway.env)
  3. pilotctl talks to the system daemon as root or as user pilot
     (sudo -u pilot env PILOT_SOCKET=/run/pilotgw/pilot.sock pilotctl info)
EOF
