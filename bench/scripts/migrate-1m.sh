#!/bin/bash
# 1M keys of 256 B from jsonl into a fresh 3-node cluster with `flaredb migrate`.
set -u
# The directory holding flaredb-server and flaredb.
B=${BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release}
D=$(mktemp -d /tmp/migbench.XXXX)
N=${N:-1000000}
python3 - "$D/in.jsonl" "$N" <<'PY'
import base64, sys, os
path, n = sys.argv[1], int(sys.argv[2])
val = base64.b64encode(os.urandom(192)).decode()  # 256 chars
with open(path, 'w') as f:
    for i in range(n):
        k = base64.b64encode(b"bench/%08d" % i).decode()
        v = base64.b64encode((val[:248] + "%08d" % i).encode()).decode()
        f.write('{"key":"%s","value":"%s","version":0}\n' % (k, v))
PY
ls -la $D/in.jsonl
C="1=127.0.0.1:3479,2=127.0.0.1:3480,3=127.0.0.1:3481"
PIDS=""
for i in 1 2 3; do
  $B/flaredb-server --id $i --listen 127.0.0.1:$((3478+i)) --data-dir $D/d$i --initial-cluster "$C" > $D/n$i.log 2>&1 &
  PIDS="$PIDS $!"
done
for t in $(seq 1 100); do $B/flaredb -e 127.0.0.1:3479 status >/dev/null 2>&1 && break; sleep 0.2; done
E=127.0.0.1:3479,127.0.0.1:3480,127.0.0.1:3481
/usr/bin/time -f "elapsed %e s, max RSS %M KB" $B/flaredb migrate --from jsonl:$D/in.jsonl --to flaredb://$E/mig --in-flight ${INFLIGHT:-16} 2>&1 | tail -3
kill $PIDS; wait 2>/dev/null
du -sh $D; rm -rf $D
