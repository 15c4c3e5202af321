#!/usr/bin/env bash
# Builds the libFuzzer drivers (clang 14: -fsanitize=fuzzer,address,undefined) into build/: the one place their build lines live.
# Usage: tests/fuzz/build.sh [pg|http|k8s_stream ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
FLAGS=(-g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -Iinclude)
mkdir -p build
for d in "${@:-pg http k8s_stream}"; do
	for one in $d; do
		case "$one" in
		pg)
			"$CLANG" "${FLAGS[@]}" tests/fuzz/fuzz_pg.c userspace/proto/pg/*.c userspace/lib/buf.c \
				userspace/lib/common.c -lpg_query -lprotobuf-c -ljansson -lcrypto -levent_core -lpthread \
				-o build/fuzz_pg ;;
		http)
			"$CLANG" "${FLAGS[@]}" tests/fuzz/fuzz_http.c userspace/proto/http/http_parse.c \
				userspace/proto/http/http_path.c userspace/proto/http/http_command.c \
				userspace/proto/http/http_k8s.c userspace/proto/http/tls_hello.c userspace/lib/buf.c \
				userspace/lib/common.c -ljansson -lcrypto -levent_core -lpthread -o build/fuzz_http ;;
		k8s_stream)
			"$CLANG" "${FLAGS[@]}" tests/fuzz/fuzz_k8s_stream.c userspace/proto/http/k8s_stream.c -lz \
				-o build/fuzz_k8s_stream ;;
		*)
			echo "fuzz/build.sh: no driver '$one' (pg, http, k8s_stream)" >&2
			exit 2 ;;
		esac
	done
done
