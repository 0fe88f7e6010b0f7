#!/usr/bin/env sh
# Install the peer gateways that `sluicegate bench --compare` measures, outside the project's venv:
#   LiteLLM 1.109.1 (proxy extras) -> /opt/sluicegate-peers/litellm/.venv/bin/litellm
#   Portkey gateway (npm)          -> /opt/sluicegate-peers/portkey/node_modules/@portkey-ai/gateway
# LiteLLM 1.109.1 pins `certifi>=2026.10.19` and exact `litellm-proxy-extras` / `litellm-enterprise`
# builds that some registries do not carry; the wheel's metadata is rewritten to take whatever
# release the registry has (a CA bundle and database-migration helpers: irrelevant to a loopback
# benchmark without a database).
# Usage: sh scripts/install-peers.sh [litellm|portkey|all]
set -eu
ROOT=${SLUICEGATE_PEERS:-/opt/sluicegate-peers}
what=${1:-all}

install_litellm() {
    dir="$ROOT/litellm"
    mkdir -p "$dir"
    [ -x "$dir/.venv/bin/python" ] || python3 -m venv "$dir/.venv"
    py="$dir/.venv/bin/python"
    $py -m pip install -q --upgrade pip wheel
    work=$(mktemp -d)
    $py -m pip download -q --no-deps -d "$work" "litellm==1.109.1"
    $py -m wheel unpack -d "$work/unpacked" "$work"/litellm-1.109.1-*.whl
    sed -i -e 's/^Requires-Dist: certifi>=.*/Requires-Dist: certifi/' \
        -e 's/^Requires-Dist: litellm-proxy-extras==[^ ;]*/Requires-Dist: litellm-proxy-extras/' \
        -e 's/^Requires-Dist: litellm-enterprise==[^ ;]*/Requires-Dist: litellm-enterprise/' \
        "$work"/unpacked/litellm-1.109.1/litellm-1.109.1.dist-info/METADATA
    mkdir -p "$work/fixed"
    $py -m wheel pack -d "$work/fixed" "$work/unpacked/litellm-1.109.1"
    wheel=$(ls "$work"/fixed/litellm-1.109.1-*.whl)
    $py -m pip install -q "$wheel[proxy]"
    rm -rf "$work"
    echo "litellm: $dir/.venv/bin/litellm"
}

install_portkey() {
    dir="$ROOT/portkey"
    mkdir -p "$dir"
    command -v npm >/dev/null || { echo "portkey needs node and npm" >&2; return 1; }
    (cd "$dir" && npm install --silent --no-audit --no-fund @portkey-ai/gateway)
    echo "portkey: $dir/node_modules/@portkey-ai/gateway"
}

case "$what" in
    litellm) install_litellm ;;
    portkey) install_portkey ;;
    all) install_litellm; install_portkey ;;
    *) echo "usage: $0 [litellm|portkey|all]" >&2; exit 2 ;;
esac
