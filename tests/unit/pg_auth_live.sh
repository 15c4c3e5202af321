#!/usr/bin/env bash
# Runs test_pg_auth against a throwaway PostgreSQL cluster (SCRAM and MD5 users), then removes it.
#
# Needs root (initdb and postgres run as the "postgres" user via runuser) and PostgreSQL's
# server binaries (PGBIN, default the newest /usr/lib/postgresql/*/bin). The cluster listens
# only on a random 127.0.0.x address and port and on a socket in its own temporary directory.

set -eu
cd "$(dirname "$0")/../.."

BIN=${1:-build/tests/test_pg_auth}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "not ok - pg_auth_live: no PostgreSQL server binaries (set PGBIN)"
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "not ok - pg_auth_live: must run as root (runs the server as postgres)"
	exit 1
fi
[ -x "$BIN" ] || make "$BIN" >/dev/null

tmp=$(mktemp -d /tmp/airlock-pgauth.XXXXXX)
started=
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
	if [ -n "$started" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chown postgres: "$tmp"
chmod 700 "$tmp"
as_pg "$PGBIN/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
	>"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log"; exit 1; }

# A free address and port: try a few random ones, the server refuses ones in use.
for try in 1 2 3 4 5 6 7 8; do
	host=127.0.0.$((RANDOM % 200 + 20))
	port=$((20000 + RANDOM % 30000))
	cat >"$tmp/data/pg_hba.conf" <<-EOF
	local all postgres trust
	host all al_md5 $host/32 md5
	host all all $host/32 scram-sha-256
	EOF
	cat >"$tmp/data/postgresql.auto.conf" <<-EOF
	listen_addresses = '$host'
	port = $port
	unix_socket_directories = '$tmp'
	password_encryption = 'scram-sha-256'
	fsync = off
	max_connections = 10
	shared_buffers = 16MB
	EOF
	if as_pg "$PGBIN/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 30 start >/dev/null; then
		started=1
		break
	fi
done
if [ -z "$started" ]; then
	cat "$tmp/server.log" 2>/dev/null || true
	echo "not ok - pg_auth_live: cannot start postgres"
	exit 1
fi

# The users test_pg_auth logs in as (it holds the same passwords).
as_pg "$PGBIN/psql" -h "$tmp" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 <<-'EOF'
	SET client_encoding = 'UTF8';
	CREATE ROLE al_scram LOGIN PASSWORD 'pencil with spaces # and "quotes"';
	CREATE ROLE al_utf8 LOGIN PASSWORD 'pässwörd';
	SET password_encryption = 'md5';
	CREATE ROLE al_md5 LOGIN PASSWORD 'md5 secret';
EOF

AIRLOCK_PG_LIVE="$host:$port" "$BIN"
