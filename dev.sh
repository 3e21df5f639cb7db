#!/usr/bin/env bash
# tagcache developer entry point. On a fresh Debian machine with only the
# Rust toolchain, each command installs the system packages it needs first.
#
#   ./dev.sh run    run the proxy on conf/tagcache.example.yaml (memory store)
#   ./dev.sh test   run every test (unit + integration; needs redis-server)
#   ./dev.sh deps   only install the system packages
set -euo pipefail
cd "$(dirname "$0")"

deps() {
  local need=()
  command -v cmake >/dev/null 2>&1 || need+=(cmake)            # pingora's zlib-ng build
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server) # Redis tier tests
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing ${need[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
}

case "${1:-}" in
  run)
    deps
    # The example config reads the admin token from the environment.
    export TAGCACHE_ADMIN_TOKEN="${TAGCACHE_ADMIN_TOKEN:-dev-admin-token}"
    exec cargo run --release --bin tagcache -- run -c conf/tagcache.example.yaml
    ;;
  test)
    deps
    exec cargo test
    ;;
  deps)
    deps
    ;;
  *)
    echo "usage: ./dev.sh run | test | deps" >&2
    exit 2
    ;;
esac
