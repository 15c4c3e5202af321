#!/usr/bin/env bash
# Installs what Airlock needs to build, run and test on Debian 12 (apt only).
set -euo pipefail

pkgs=(
  # build
  make gcc pkg-config clang llvm bpftool
  dpkg-dev   # make deb: dpkg-shlibdeps
  libbpf-dev libelf-dev zlib1g-dev
  libssl-dev libevent-dev libsqlite3-dev
  libnftnl-dev libmnl-dev libmicrohttpd-dev
  libpg-query-dev libprotobuf-c-dev libssh-dev libjansson-dev
  # run
  iproute2 sqlite3 ca-certificates
  # test
  curl python3 python3-psycopg2 postgresql postgresql-contrib procps psmisc asciinema
  systemd    # tests/integration/test_package.py: systemd-analyze verify of the unit
  chromium   # tests/console: headless, driven over the DevTools protocol
  nodejs     # tests/integration/test_https.py: node fetch as an agent
  default-jdk-headless libpostgresql-jdbc-java  # test_pg.py: the JDBC driver as an agent
  qemu-system-x86 busybox-static kmod  # tests/vm: the kernel suites on Debian 12's own kernel
  # bench (peers measured in the same run)
  pgbouncer haproxy wrk
)

# kubectl for the kubectl exec test: Debian's kubernetes-client, unless the
# machine already has a kubectl (some images ship Google's).
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster on 5432; tests start their own
# on a private port and need nothing from it.
