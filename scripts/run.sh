#!/usr/bin/env bash
# The set-up commands of the README:
#   bash scripts/run.sh demo [ARGS...]   the demo (starts its own redis-server unless --url is given)
#   bash scripts/run.sh test             the whole test suite
#   bash scripts/run.sh bench [ARGS...]  the side-by-side bench (e.g. --quick, or --out docs)
# They need `redis-server` and `redis-cli` (Debian packages `redis-server` and
# `redis-tools`; the cluster tests and bench form local clusters with `redis-cli`) and a
# Rust toolchain with cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

need_redis_server() {
    local packages=""
    if ! command -v redis-server >/dev/null 2>&1 && [ -z "${REDIS_SERVER_BIN:-}" ]; then
        packages="redis-server"
    fi
    if ! command -v redis-cli >/dev/null 2>&1; then
        packages="$packages redis-tools"
    fi
    if [ -z "$packages" ]; then
        return
    fi
    echo "missing:$packages; installing Debian's packages" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "error: not root and no sudo; install them with: apt-get install$packages" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: no apt-get here; install redis-server (>= 6.2) and redis-cli with your" \
            "package manager, or point REDIS_SERVER_BIN at a redis-server binary" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086 # the list is meant to split into package names
    $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
    # The package may start a system service on port 6379; redis-lanes' tests and demo
    # start their own servers on free ports and do not use it.
}

need_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found; install a Rust toolchain (>= 1.88) from rustup.rs" >&2
        exit 1
    fi
}

case "${1:-}" in
    demo)
        shift
        need_cargo
        need_redis_server
        exec cargo run --release --quiet -p redis-lanes-cli -- demo "$@"
        ;;
    test)
        shift
        need_cargo
        need_redis_server
        exec cargo test --workspace "$@"
        ;;
    bench)
        shift
        need_cargo
        need_redis_server
        exec cargo run --release --quiet -p redis-lanes-cli -- bench "$@"
        ;;
    *)
        echo "usage: bash scripts/run.sh demo [--url URL] [--duration SECS] | bash scripts/run.sh test" \
            "| bash scripts/run.sh bench [--quick] [--out DIR]" >&2
        exit 2
        ;;
esac
