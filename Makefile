# Airlock: build, test, run.
CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= bpftool
B        := build
ARCH_INC := /usr/include/$(shell gcc -dumpmachine)

PKGS     := libbpf libelf zlib openssl libevent_core libevent_extra libevent_openssl sqlite3 jansson libnftnl libmnl libmicrohttpd
CFLAGS   ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
            -D_GNU_SOURCE -Iinclude -I$(B) $(shell pkg-config --cflags $(PKGS))
override LDLIBS += $(shell pkg-config --libs $(PKGS)) -lpg_query -lprotobuf-c -lpthread
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

BPF_SRC  := $(wildcard bpf/*.bpf.c)
BPF_OBJ  := $(patsubst bpf/%.bpf.c,$(B)/%.bpf.o,$(BPF_SRC))
SKELS    := $(patsubst bpf/%.bpf.c,$(B)/%.skel.h,$(BPF_SRC))

LIB_SRC  := $(wildcard userspace/lib/*.c userspace/config/*.c userspace/store/*.c userspace/kernel/*.c userspace/control/*.c userspace/tls/*.c \
              userspace/approval/*.c \
              userspace/proto/*/*.c)
LIB_OBJ  := $(patsubst %.c,$(B)/%.o,$(LIB_SRC)) $(B)/default_conf.o
D_SRC    := $(wildcard userspace/airlockd/*.c userspace/net/*.c userspace/console/*.c)
# The console's static UI, embedded (scripts/embed.sh): web/index.html -> al_web_index_html.
WEB_OBJ  := $(B)/web/index_html.o $(B)/web/app_js.o $(B)/web/app_css.o
D_OBJ    := $(patsubst %.c,$(B)/%.o,$(D_SRC)) $(WEB_OBJ)
CTL_SRC  := $(wildcard userspace/cli/*.c)
CTL_OBJ  := $(patsubst %.c,$(B)/%.o,$(CTL_SRC))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
SAN_LIB  := $(patsubst %.c,$(B)/san/%.o,$(LIB_SRC)) $(B)/san/default_conf.o
# The tests that drive the store's threads (the first count of /metrics) run under ThreadSanitizer too.
TSAN     := -fsanitize=thread
TSAN_LIB := $(patsubst %.c,$(B)/tsan/%.o,$(LIB_SRC)) $(B)/tsan/default_conf.o
TSAN_BIN := $(B)/tests/tsan/test_audit $(B)/tests/tsan/test_store

.PHONY: all run test unit bench clean deps install deb
.SECONDARY:
all: $(B)/airlockd $(B)/airlockctl

deps:
	@bash scripts/deps.sh

$(B)/%.bpf.o: bpf/%.bpf.c include/airlock/*.h bpf/lib/*.h
	@mkdir -p $(@D)
	$(CLANG) -g -O2 -target bpf -D__bpf__ -Wall -Werror -Iinclude -Ibpf -I$(ARCH_INC) -c $< -o $@

$(B)/%.skel.h: $(B)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $* > $@

$(B)/default_conf.c: policy/airlock.conf scripts/embed.sh
	@mkdir -p $(@D)
	sh scripts/embed.sh al_default_conf $< > $@

$(B)/%.o: %.c include/airlock/*.h $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/web/index_html.c: web/index.html scripts/embed.sh
	@mkdir -p $(@D)
	sh scripts/embed.sh al_web_index_html $< > $@
$(B)/web/app_js.c: web/app.js scripts/embed.sh
	@mkdir -p $(@D)
	sh scripts/embed.sh al_web_app_js $< > $@
$(B)/web/app_css.c: web/app.css scripts/embed.sh
	@mkdir -p $(@D)
	sh scripts/embed.sh al_web_app_css $< > $@
$(B)/web/%.o: $(B)/web/%.c
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/default_conf.o: $(B)/default_conf.c
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/airlockd: $(D_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/airlockctl: $(CTL_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the library modules built with sanitizers.
$(B)/san/%.o: %.c include/airlock/*.h $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -O1 -MMD -MP -c $< -o $@

$(B)/san/default_conf.o: $(B)/default_conf.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -O1 -c $< -o $@

$(B)/tests/%: tests/unit/%.c tests/unit/harness.h $(SAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -O1 -Ibpf -o $@ $< $(SAN_LIB) $(LDLIBS)

$(B)/tsan/%.o: %.c include/airlock/*.h $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TSAN) -O1 -MMD -MP -c $< -o $@

$(B)/tsan/default_conf.o: $(B)/default_conf.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TSAN) -O1 -c $< -o $@

$(B)/tests/tsan/%: tests/unit/%.c tests/unit/harness.h $(TSAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TSAN) -O1 -Ibpf -o $@ $< $(TSAN_LIB) $(LDLIBS)

# A unit test that builds a daemon file in (not part of the library) depends on it too.
$(B)/tests/test_sock_out: userspace/net/sock_out.c userspace/net/sock_out.h tests/unit/evtest.h
$(B)/tests/test_tls_stream: userspace/net/sock_out.c userspace/net/sock_out.h userspace/net/tls_stream.c userspace/net/tls_stream.h tests/unit/evtest.h
$(B)/tests/test_host_name: userspace/net/host_name.c userspace/net/host_name.h
# ... or an airlockctl file.
$(B)/tests/test_term: userspace/cli/term.c userspace/cli/term.h

# Tools the tests run (tests/tools/): built like the daemon, without sanitizers.
$(B)/tests/fill_store: tests/tools/fill_store.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN) $(TSAN_BIN) $(B)/tests/fill_store

test: all unit
	@bash tests/run.sh

run: deps all
	@bash scripts/run.sh

# Installs under DESTDIR (packaging/install.sh); the Debian package (packaging/mkdeb.sh).
PREFIX ?= /usr
install: all
	@sh packaging/install.sh "$(DESTDIR)" "$(PREFIX)" "$(B)"

deb: all
	@sh packaging/mkdeb.sh "$(B)"

# The store's cost per command, alone (bench/store_bench.c).
$(B)/bench/store_bench: bench/store_bench.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

bench: all $(B)/bench/store_bench
	@$(B)/bench/store_bench
	@bash bench/run.sh
	@bash bench/pg_bench.sh
	@bash bench/https_bench.sh
	@/usr/bin/python3 bench/review_bench.py
	@bash bench/xdp_vs_nft.sh

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' -type f 2>/dev/null)
