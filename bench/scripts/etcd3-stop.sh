#!/usr/bin/env bash
# Stops the members bench/scripts/etcd3.sh started (their pids in DIR/pids)
# and removes DIR.
set -euo pipefail

dir=${1:?usage: etcd3-stop.sh DIR (as printed by etcd3.sh)}
while read -r pid; do
  kill "$pid" 2>/dev/null || true
done <"$dir/pids"
while read -r pid; do
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
done <"$dir/pids"
rm -rf "$dir"
