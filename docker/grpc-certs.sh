#!/bin/sh
# grpc-certs.sh DIR [DAYS]: makes the certificates for mutual TLS between dispatchers and workers
# (docs/deploy.md) with openssl, into DIR:
#   ca.crt, ca.key            a private CA (keep ca.key offline; it signs both sides)
#   worker.crt, worker.key    the workers' certificate: DNS makam-worker (dispatchers check it with
#                             MAKAM_GRPC_TLS_SERVER_NAME=makam-worker), DNS localhost and IP 127.0.0.1
#                             (the worker's own health check dials 127.0.0.1)
#   dispatcher.crt, dispatcher.key   the dispatchers' client certificate
# Both leaf certificates may serve as client and server: the worker's health check presents the
# worker's own pair. Existing files are kept; delete DIR to start over.
set -eu
dir=${1:?usage: grpc-certs.sh DIR [DAYS]}
days=${2:-825}
mkdir -p "$dir"
cd "$dir"
umask 077
if [ ! -f ca.key ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt -days "$days" \
    -subj "/CN=makam gRPC CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
issue() {
  name=$1 san=$2
  [ -f "$name.crt" ] && return 0
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$name.ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=makam-$name" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days "$days" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue worker "DNS:makam-worker,DNS:localhost,IP:127.0.0.1"
issue dispatcher "DNS:makam-dispatcher"
# the containers run as other users than the one running this (uid 10001, uid 1000): readable keys
chmod 0644 ca.crt worker.crt worker.key dispatcher.crt dispatcher.key
echo "made $(pwd): ca.crt worker.crt worker.key dispatcher.crt dispatcher.key"
