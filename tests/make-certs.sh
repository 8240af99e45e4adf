#!/usr/bin/env bash
# Makes the certificates the TLS tests use, with the openssl CLI, in DIR:
#   ca.crt/ca.key          the test CA
#   other-ca.crt           a CA nobody's certificate chains to
#   server.crt/server.key  CN=localhost, SAN DNS:localhost and IP:127.0.0.1
#   wrong-host.crt/.key    signed by the CA, for broker.invalid only
#   NAME.crt/NAME.key      client certificates CN=NAME for each NAME given
#   expired.crt/.key       a client certificate CN=expired, already expired
# Keys are P-256 and mode 0600. Usage: make-certs.sh DIR [NAME...]
set -euo pipefail
dir=$1
shift
cd "$dir"
umask 077
q() { "$@" >/dev/null 2>&1 || { echo "make-certs: failed: $*" >&2; exit 1; }; }
key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1.key"; }
# sign NAME DAYS [EXTENSIONS]: a certificate CN=NAME signed by the CA.
sign() {
	local name=$1 days=$2 ext=${3:-}
	key "$name"
	q openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
	if [ -n "$ext" ]; then
		printf '%s\n' "$ext" > "$name.ext"
		q openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key \
		    -CAcreateserial -days "$days" -extfile "$name.ext" \
		    -out "$name.crt"
	else
		q openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key \
		    -CAcreateserial -days "$days" -out "$name.crt"
	fi
	rm -f "$name.csr" "$name.ext"
}
key ca
q openssl req -x509 -new -key ca.key -subj "/CN=patchbay test CA" -days 2 \
    -out ca.crt
key other-ca
q openssl req -x509 -new -key other-ca.key -subj "/CN=another CA" -days 2 \
    -out other-ca.crt
sign server 2 "subjectAltName=DNS:localhost,IP:127.0.0.1"
sign wrong-host 2 "subjectAltName=DNS:broker.invalid"
for name in "$@"; do
	sign "$name" 2
done
# notAfter a day before notBefore: expired from the start.
sign expired -1
