#!/usr/bin/env bash
# Makes a small PKI for a FlareDB cluster with openssl: a CA, one certificate
# per node (valid for serving and for dialing peers, so it can be both
# --cert/--peer-cert) and a client certificate.
#
#   scripts/make-certs.sh DIR NODE_HOST [NODE_HOST ...]
#   e.g. scripts/make-certs.sh certs 127.0.0.1 10.0.0.2 db3.internal
#
# writes DIR/ca.pem (+ ca-key.pem: keep it offline), DIR/node-N.pem and
# DIR/node-N-key.pem for each host in order (N from 1; an IP or a DNS name,
# which clients must use to reach that node), and DIR/client.pem,
# DIR/client-key.pem (CN "root"). Re-run to renew: nodes pick up changed
# files without a restart.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NODE_HOST [NODE_HOST ...]" >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
days=825

if [ ! -f ca-key.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.pem \
    -days 3650 -subj "/CN=FlareDB CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# leaf NAME CN SAN EKU
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1-key.pem" -out "$1.csr" \
    -subj "/CN=$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out "$1.pem" -days "$days" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature\n' "$3" "$4") \
    2>/dev/null
  rm -f "$1.csr"
}

n=1
for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
  leaf "node-$n" "node-$n" "$san" "serverAuth,clientAuth"
  echo "node $n: $dir/node-$n.pem ($san)"
  n=$((n + 1))
done
leaf client root "DNS:client" "clientAuth"
echo "CA: $dir/ca.pem; client: $dir/client.pem"
