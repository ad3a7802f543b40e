#!/usr/bin/env bats
# A rediss:// store: TLS to a real redis-server --tls-port with a CA and
# certificates made here with openssl. The server's certificate is checked
# against -o redis_tls_ca, its dates and the expected name (the URL's host
# or -o redis_tls_sni); a refusal fails the mount with exit 1 and the
# verdict, and nothing is created. A server that wants client certificates
# gets -o redis_tls_cert/redis_tls_key. Bad files are usage errors (exit 2).
# Each redis-server also listens on a plain loopback port, only for the
# test to see that it is up and what it holds.

load helpers

# the build refuses rediss:// when it has no TLS (hiredis 0.14)
tls_built() {
	run "$SEMCACHEFS" -f -o store=rediss://127.0.0.1:1/0,redis_tls_ca=/nonexistent "$MNT"
	[ "$status" -eq 2 ] || { echo "unexpected probe exit $status: $output" >&2; return 1; }
	[[ "$output" != *"built without TLS"* ]]
}

require_tls() {
	tls_built || skip "this build has no TLS (hiredis 0.14): build with -Dhiredis_prefix from tools/build-hiredis.sh"
}

# cert NAME CA DAYS [SAN]: NAME.key and NAME.crt signed by CA (CA.crt,
# CA.key) for DAYS days (negative: expired already), with the subject
# alternative names SAN
cert() {
	local d=$BATS_FILE_TMPDIR
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/$1.key" -out "$d/$1.csr" -subj "/CN=$1" 2>/dev/null
	printf 'subjectAltName=%s\n' "${4:-DNS:localhost,IP:127.0.0.1}" >"$d/$1.ext"
	openssl x509 -req -in "$d/$1.csr" -CA "$d/$2.crt" -CAkey "$d/$2.key" \
		-set_serial "$((RANDOM + 2))" -days "$3" -extfile "$d/$1.ext" \
		-out "$d/$1.crt" 2>/dev/null
	chmod 600 "$d/$1.key"
}

setup_file() {
	command -v openssl >/dev/null || return 0
	local d=$BATS_FILE_TMPDIR ca
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$d/$ca.key" -out "$d/$ca.crt" -days 30 -subj "/CN=semcache test $ca" 2>/dev/null
	done
	cert server ca 30
	# -days -1: not after is a day before not before (now), so expired
	cert expired ca -1
	cert client ca 30 DNS:semcache-client
}

setup() {
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	command -v openssl >/dev/null || skip "needs openssl (package openssl)"
	setup_work
	mkdir -p "$WORK/redis" "$WORK/state"
	export XDG_DATA_HOME=$WORK/state
	RPORT=$((23000 + RANDOM % 4000))
	TPORT=$((RPORT + 4000))
	STORE=rediss://127.0.0.1:$TPORT/0
	C=$BATS_FILE_TMPDIR
}

teardown() {
	# teardown_mount removes WORK, the pid file with it
	local pid
	pid=$(cat "${WORK:-}/redis.pid" 2>/dev/null) || pid=
	teardown_mount
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
}

# start_redis CERT ARGS...: a private redis-server, TLS on $TPORT with
# CERT.crt and CERT.key, clients' certificates checked against ca.crt when
# asked for (ARGS: --tls-auth-clients yes)
start_redis() {
	local cert=$1
	shift
	redis-server --port "$RPORT" --tls-port "$TPORT" --bind 127.0.0.1 --save '' \
		--tls-cert-file "$C/$cert.crt" --tls-key-file "$C/$cert.key" \
		--tls-ca-cert-file "$C/ca.crt" --tls-auth-clients no \
		--dir "$WORK/redis" --daemonize yes --logfile "$WORK/redis.log" \
		--pidfile "$WORK/redis.pid" "$@" >/dev/null
	redis_pinged() { redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG; }
	wait_until 10 redis_pinged
}

# mount_fails STATUS ARGS...: the daemon exits STATUS without mounting; its
# stderr in $output (a mount that works is stopped after 30 s: exit 124)
mount_fails() {
	local want=$1
	shift
	run timeout 30 "$SEMCACHEFS" -f "$@" "$MNT"
	[ "$status" -eq "$want" ] || { echo "exit $status, not $want: $output" >&2; return 1; }
	! is_mounted
}

# nothing_created: no key in Redis, no local state directory
nothing_created() {
	run redis-cli -p "$RPORT" dbsize
	assert_output 0
	run find "$WORK/state" -mindepth 1
	assert_output ""
}

@test "fill and hit over TLS, the server's certificate checked against the CA file" {
	require_tls
	start_redis server
	start_daemon -o redis_tls_ca="$C/ca.crt"
	mkdir "$MNT/code"
	run ask code q1 "how do I sort a list in python"
	assert_output "miss"
	fill code q1 "sorted(xs)"
	run ask code q2 "how do I sort a list in python"
	assert_output --regexp '^hit score=1\.000 entry=[0-9]+ '
	run cat "$MNT/code/q2.response"
	assert_output "sorted(xs)"
	stop_daemon
	# the entry is in the server behind the TLS port
	run redis-cli -p "$RPORT" --scan --pattern '{c*}:e:*'
	assert_output --regexp '^\{c[0-9]+\}:e:[0-9]+$'
	# and that port speaks only TLS: plain redis:// to it gets no answer
	mount_fails 1 -o store=redis://127.0.0.1:$TPORT/0
}

@test "a server certificate from another CA is refused: exit 1, the verdict, nothing created" {
	require_tls
	start_redis server
	mount_fails 1 -o store="$STORE",redis_tls_ca="$C/other-ca.crt"
	# redis-server sends its CA along: that root is not one of ours
	assert_output --regexp "tls: the server's certificate is refused: (self-signed certificate in certificate chain|unable to get local issuer certificate)"
	nothing_created
}

@test "an expired server certificate is refused: exit 1, the verdict, nothing created" {
	require_tls
	start_redis expired
	mount_fails 1 -o store="$STORE",redis_tls_ca="$C/ca.crt"
	assert_output --partial "tls: the server's certificate is refused: certificate has expired"
	nothing_created
}

@test "a certificate for another name is refused; -o redis_tls_sni names the one expected" {
	require_tls
	start_redis server
	mount_fails 1 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_sni=wrong.example
	assert_output --partial "hostname mismatch (expected name 'wrong.example')"
	nothing_created
	# an address is checked against the certificate's IP addresses
	mount_fails 1 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_sni=127.0.0.2
	assert_output --partial "IP address mismatch (expected name '127.0.0.2')"
	nothing_created
	start_daemon -o redis_tls_ca="$C/ca.crt",redis_tls_sni=localhost
	run ask . q "a question"
	assert_output "miss"
	stop_daemon
	# without the option, the URL's host (by name here) is the name
	STORE=rediss://localhost:$TPORT/0
	start_daemon -o redis_tls_ca="$C/ca.crt"
	run ask . q "a question"
	assert_output "miss"
}

@test "a server that wants client certificates: refused without one, works with cert and key" {
	require_tls
	start_redis server --tls-auth-clients yes
	mount_fails 1 -o store="$STORE",redis_tls_ca="$C/ca.crt"
	assert_output --partial "the server ended the session after the handshake"
	assert_output --partial "-o redis_tls_cert and redis_tls_key"
	nothing_created
	start_daemon -o redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt",redis_tls_key="$C/client.key"
	mkdir "$MNT/docs"
	run ask docs q1 "what is a semantic cache"
	assert_output "miss"
	fill docs q1 "a cache keyed by meaning"
	run ask docs q2 "what is a semantic cache"
	assert_output --regexp '^hit '
	run cat "$MNT/docs/q2.response"
	assert_output "a cache keyed by meaning"
}

@test "bad TLS files and options are usage errors (exit 2) before anything is touched" {
	require_tls
	start_redis server
	mount_fails 2 -o store="$STORE",redis_tls_ca="$WORK/missing.crt"
	assert_output "semcachefs: -o redis_tls_ca='$WORK/missing.crt': No such file or directory"
	printf 'not a certificate\n' >"$WORK/junk.pem"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$WORK/junk.pem"
	assert_output --partial "redis_tls_ca='$WORK/junk.pem' holds no PEM CA certificate"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt"
	assert_output --partial "redis_tls_cert and redis_tls_key go together"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$WORK/junk.pem",redis_tls_key="$C/client.key"
	assert_output --partial "redis_tls_cert='$WORK/junk.pem' holds no PEM certificate"
	# the key: private to the user, no symlink, a key, the certificate's
	cp "$C/client.key" "$WORK/open.key"
	chmod 644 "$WORK/open.key"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt",redis_tls_key="$WORK/open.key"
	assert_output --partial "readable by no one else (chmod 600"
	ln -s "$C/client.key" "$WORK/link.key"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt",redis_tls_key="$WORK/link.key"
	assert_output --partial "redis_tls_key='$WORK/link.key': Too many levels of symbolic links"
	cp "$WORK/junk.pem" "$WORK/junk.key"
	chmod 600 "$WORK/junk.key"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt",redis_tls_key="$WORK/junk.key"
	assert_output --partial "holds no unencrypted PEM private key"
	mount_fails 2 -o store="$STORE",redis_tls_ca="$C/ca.crt",redis_tls_cert="$C/client.crt",redis_tls_key="$C/server.key"
	assert_output --partial "does not go with the certificate of redis_tls_cert"
	mount_fails 2 -o store="$STORE",redis_tls_sni="bad name"
	assert_output --partial "is not a host name"
	# TLS options on a plain store
	mount_fails 2 -o store=redis://127.0.0.1:$RPORT/0,redis_tls_ca="$C/ca.crt"
	assert_output --partial "need a rediss:// store"
	nothing_created
}

@test "a build without TLS refuses rediss:// as a usage error (exit 2)" {
	! tls_built || skip "this build has TLS (the refusal is for builds against hiredis 0.14)"
	mount_fails 2 -o store="$STORE"
	assert_output --partial "rediss://: this semcachefs is built without TLS"
	assert_output --partial "tools/build-hiredis.sh"
	run find "$WORK/state" -mindepth 1
	assert_output ""
}
