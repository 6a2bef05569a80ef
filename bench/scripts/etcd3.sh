#!/usr/bin/env bash
# Starts a 3-member etcd cluster on loopback: clients on 127.0.0.1:{1,2,3}2379,
# peers on 127.0.0.1:{1,2,3}2380, data in a temp dir. Prints the dir; the
# members' pids are in DIR/pids (bench/scripts/etcd3-stop.sh DIR stops them).
set -euo pipefail

dir=$(mktemp -d /tmp/etcd3.XXXXXX)
cluster="m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
for i in 1 2 3; do
  etcd --name "m$i" --data-dir "$dir/m$i" \
    --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
    --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bench-$$" \
    >"$dir/m$i.log" 2>&1 &
  echo $! >>"$dir/pids"
done

endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379
for _ in $(seq 100); do
  if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; then
    echo "$dir"
    exit 0
  fi
  sleep 0.1
done
echo "etcd did not become healthy; logs in $dir" >&2
exit 1
