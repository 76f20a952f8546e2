# Sourced by the scripts in this folder: installs the Debian packages the
# tests and the demo drive from the outside (nft, conntrack, tc/ip, curl, jq,
# ping, and headless Chromium for the gateway's browser test).
# Only as root and only what is missing; without root the root-only tests
# skip with a reason instead.
need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for extra in ${PILOTGW_EXTRA_PACKAGES:-}; do
    command -v "$extra" >/dev/null 2>&1 || need+=("$extra")
done
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing system packages: ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || true
        apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
            || echo "warning: could not install ${need[*]}; tests that need them will skip" >&2
    else
        echo "note: missing ${need[*]} (not root or no apt-get); tests that need them will skip" >&2
    fi
fi
