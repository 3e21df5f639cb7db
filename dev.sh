#!/usr/bin/env bash
# tagcache developer entry point. On a fresh Debian machine with only the
# Rust toolchain, each command installs the system packages it needs first.
#
#   ./dev.sh run    run the proxy on conf/tagcache.example.yaml (memory store);
#                   when nothing answers on its upstream address, the demo API
#                   (examples/demo_api.rs) is started there, and stopped with it
#   ./dev.sh test   run every test: the Rust unit, integration and fault tests
#                   (real redis-server processes), the load benchmark report's
#                   Python tests, the Node client's tests and the dashboard's
#                   browser test (headless Chromium)
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

# What the tests beyond cargo need: Node and npm (the Node client, the
# browser test's driver) and Chromium (the dashboard's browser test).
test_deps() {
  local need=()
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
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
    config=conf/tagcache.example.yaml
    cargo build --release --bin tagcache --example demo_api
    upstream=$(sed -n 's/^  address: *"\{0,1\}\([^" ]*\)"\{0,1\}.*/\1/p' "$config" | head -n 1)
    if ! (exec 3<>"/dev/tcp/${upstream%:*}/${upstream##*:}") 2>/dev/null; then
      echo "nothing answers on $upstream: starting the demo API there (log: target/demo_api.log)" >&2
      target/release/examples/demo_api --listen "$upstream" >target/demo_api.log 2>&1 &
      demo=$!
      trap 'kill "$demo" 2>/dev/null || true' EXIT
      for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/${upstream%:*}/${upstream##*:}") 2>/dev/null && break
        sleep 0.1
      done
    fi
    target/release/tagcache run -c "$config"
    ;;
  test)
    deps
    test_deps
    cargo test
    echo "==> load benchmark report: python3 -m unittest" >&2
    python3 -m unittest discover -s bench
    echo "==> Node client: node --test" >&2
    (cd examples/express && node --test)
    echo "==> dashboard in headless Chromium: node --test" >&2
    cargo build --quiet --bin tagcache
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test)
    ;;
  deps)
    deps
    ;;
  *)
    echo "usage: ./dev.sh run | test | deps" >&2
    exit 2
    ;;
esac
