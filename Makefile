# awaitd — plain GNU Makefile. `make run` and `make test` are the two commands
# a fresh Debian machine needs: both install missing packages first (make deps).

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/awaitd
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
# The state directory of the installed configuration: the systemd unit's
# StateDirectory=awaitd.
STATEDIR   ?= /var/lib/awaitd
DESTDIR    ?=
CC         ?= cc
VERSION    := 0.1.0

# SANITIZER=address,undefined builds into its own folder so that a sanitized
# and a plain build can live side by side (make test runs both).
SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD := build
SANFLAGS :=
else
BUILD := build-san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKGS       := libmicrohttpd jansson libevent inih libsystemd sqlite3 gnutls libcurl libcrypto
TEST_PKGS  := cmocka
DEB_PKGS   := build-essential pkg-config libmicrohttpd-dev libjansson-dev \
              libevent-dev libinih-dev libsystemd-dev libsqlite3-dev libgnutls28-dev \
              libcurl4-openssl-dev libssl-dev \
              sqlite3 curl jq procps
# What only the tests need: cmocka; clang and its runtime for the libFuzzer
# targets; valgrind (the request path under valgrind, where ASan cannot see
# into libmicrohttpd); openssl (test certificates); Chromium (the browser
# attack and the /ui page, headless); python3 (the tests' HTTPS target and
# webhook receiver, standard library only).
# chromium-driver and python3-selenium drive the dashboard test in a real
# browser; they use Debian's /usr/bin/python3, whatever python3 is first in PATH.
TEST_DEB_PKGS := libcmocka-dev clang libclang-rt-14-dev valgrind openssl chromium python3 \
                 chromium-driver python3-selenium

WARN    := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -DAWAITD_VERSION='"$(VERSION)"' \
              -DAWAITD_SYSCONFDIR='"$(SYSCONFDIR)"' $(WARN) $(CFLAGS) $(SANFLAGS) \
              -pthread -Ilib -Idaemon $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS) -pthread
LIBS        = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

LIB_SRCS := lib/buf.c lib/clock.c lib/errors.c lib/task_id.c lib/deadline_heap.c \
            lib/task.c lib/task_table.c lib/queue.c lib/waiter.c lib/engine.c \
            lib/task_json.c lib/restore.c lib/kind_sleep.c lib/kind_http.c lib/kind_exec.c \
            lib/child.c lib/utf8.c lib/task_record.c lib/store.c lib/task_list.c \
            lib/siphash.c lib/json_text.c lib/net_allow.c lib/curl_loop.c \
            lib/notify.c lib/task_fields.c lib/rfc3339.c lib/retry.c lib/task_links.c \
            lib/task_spec.c lib/kind_group.c
DAEMON_SRCS := daemon/main.c daemon/config.c daemon/log.c daemon/http.c daemon/edge.c daemon/ui.c \
               daemon/http_error.c daemon/api.c daemon/metrics.c daemon/service.c daemon/events.c \
               daemon/tls.c daemon/unix_socket.c
# awaitctl, the command-line client: only libcurl and jansson, no lib/ code
# (it speaks the public API like any other client).
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
CLI_PKGS := libcurl jansson
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/%.o)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/daemon/ui_page.o

.PHONY: all deps test-deps run test check unit blackbox blackbox-memory test-san test-units bench clean \
        install uninstall distclean fuzz fuzz-short fuzz-build

all: $(BUILD)/awaitd $(BUILD)/awaitctl

$(BUILD)/awaitctl: $(CLI_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(shell pkg-config --libs $(CLI_PKGS) 2>/dev/null)

$(BUILD)/awaitd: $(DAEMON_OBJS) $(BUILD)/libaw.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(DAEMON_OBJS) $(BUILD)/libaw.a $(LIBS)

# The dashboard page as a C array (od is in coreutils: no xxd needed).
$(BUILD)/daemon/ui_page.c: daemon/ui/index.html Makefile
	@mkdir -p $(dir $@)
	{ printf '/* Generated from daemon/ui/index.html by the Makefile. */\n'; \
	  printf '#include "ui.h"\nconst unsigned char ui_page[] = {\n'; \
	  od -An -v -tx1 daemon/ui/index.html | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '};\nconst size_t ui_page_len = sizeof ui_page;\n'; } >$@.tmp && mv $@.tmp $@

$(BUILD)/daemon/ui_page.o: $(BUILD)/daemon/ui_page.c daemon/ui.h daemon/http.h
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libaw.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard lib/*.h daemon/*.h cli/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/libaw.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags $(TEST_PKGS)) -o $@ $< \
	    $(BUILD)/libaw.a $(ALL_LDFLAGS) $(LIBS) $(shell pkg-config --libs $(TEST_PKGS))

# Installs only what is missing, with sudo when not root. CI runs as root.
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

test-deps:
	$(call install_missing,$(DEB_PKGS) $(TEST_DEB_PKGS))

run: deps
	$(MAKE) all
	./$(BUILD)/awaitd --config config/awaitd.conf

# Sanitizer reports must fail the run, and leaks count (LeakSanitizer).
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export SANITIZER AW_RESULTS
# Black-box files run three at a time: the suite waits on timers and
# children far more than it computes (tests/blackbox/run). AW_JOBS=1 runs
# them one by one.
export AW_JOBS ?= 3

unit: $(UNIT_TESTS)
	@tests/run-unit $(UNIT_TESTS)

blackbox: $(BUILD)/awaitd
	@AWAITD=$(BUILD)/awaitd tests/blackbox/run

# The same cases against a memory-only daemon ([storage] state_dir empty).
blackbox-memory: $(BUILD)/awaitd
	@AW_MEMORY=1 AWAITD=$(BUILD)/awaitd tests/blackbox/run

# One pass: unit tests and black-box tests against this build (the quick
# target for iterating: `make check`, or one file with
# `AWAITD=build/awaitd tests/blackbox/run test_wait`).
check: all unit blackbox

# Everything: plain (durable, then memory-only), under ASan+UBSan, the
# units, and a short fuzzing budget; counts add up in one file.
test: test-deps
	@mkdir -p build && rm -f build/results
	$(MAKE) check AW_RESULTS=$(CURDIR)/build/results
	$(MAKE) blackbox-memory AW_RESULTS=$(CURDIR)/build/results
	$(MAKE) check SANITIZER=address,undefined AW_RESULTS=$(CURDIR)/build/results
	$(MAKE) test-units AW_RESULTS=$(CURDIR)/build/results
	$(MAKE) fuzz-short AW_RESULTS=$(CURDIR)/build/results
	@tests/summary build/results

test-san: test-deps
	$(MAKE) check SANITIZER=address,undefined

bench: deps
	$(MAKE) all
	bench/run

# ---- fuzzing: libFuzzer targets (tests/fuzz/README) ----
# `make fuzz` runs each target for FUZZ_SECONDS on a working corpus in
# build-fuzz/corpus/ (seeded from tests/fuzz/corpus/, which stays small);
# `make fuzz-short` is the fixed budget of `make test`, and appends
# "fuzz-NAME passed failed" to $(AW_RESULTS) like the other passes.
FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 300
FUZZ_SHORT_SECONDS ?= 15
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
# clang, unlike gcc, warns about vsnprintf(fmt) inside log.c's va_list helper.
FUZZ_CFLAGS    = -std=c11 -D_GNU_SOURCE -DAWAITD_VERSION='"$(VERSION)"' \
                 -DAWAITD_SYSCONFDIR='"$(SYSCONFDIR)"' $(WARN) -Wno-format-nonliteral \
                 -O1 -g $(FUZZ_SAN) \
                 -pthread -Ilib -Idaemon -Itests/fuzz \
                 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_DAEMON_SRCS := daemon/api.c daemon/events.c daemon/metrics.c daemon/http_error.c \
                    daemon/config.c daemon/log.c daemon/edge.c daemon/ui.c \
                    $(BUILD)/daemon/ui_page.c tests/fuzz/fake_http.c
FUZZ_LIB_OBJS    := $(LIB_SRCS:%.c=build-fuzz/%.o)
FUZZ_DAEMON_OBJS := $(FUZZ_DAEMON_SRCS:%.c=build-fuzz/%.o)
FUZZ_TARGETS     := build-fuzz/fuzz_request build-fuzz/fuzz_config

build-fuzz/%.o: %.c $(wildcard lib/*.h daemon/*.h tests/fuzz/*.h) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build-fuzz/libaw.a: $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

build-fuzz/fuzz_request: build-fuzz/tests/fuzz/fuzz_request.o $(FUZZ_DAEMON_OBJS) \
                         build-fuzz/libaw.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LIBS)

build-fuzz/fuzz_config: build-fuzz/tests/fuzz/fuzz_config.o build-fuzz/daemon/config.o
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LIBS)

# The targets without libFuzzer or sanitizers, for valgrind:
# build-fuzz/plain/fuzz_request FILE|DIR... runs each input once.
build-fuzz/plain/fuzz_request: tests/fuzz/fuzz_request.c tests/fuzz/run_inputs.c \
                               $(FUZZ_DAEMON_SRCS) $(LIB_SRCS) $(wildcard lib/*.h daemon/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(subst $(FUZZ_SAN),,$(FUZZ_CFLAGS)) -o $@ tests/fuzz/fuzz_request.c \
	    tests/fuzz/run_inputs.c $(FUZZ_DAEMON_SRCS) $(LIB_SRCS) -pthread $(LIBS)

build-fuzz/plain/fuzz_config: tests/fuzz/fuzz_config.c tests/fuzz/run_inputs.c \
                              daemon/config.c daemon/config.h
	@mkdir -p $(dir $@)
	$(CC) $(subst $(FUZZ_SAN),,$(FUZZ_CFLAGS)) -o $@ tests/fuzz/fuzz_config.c \
	    tests/fuzz/run_inputs.c daemon/config.c -pthread $(LIBS)

fuzz-build: test-deps
	$(MAKE) $(FUZZ_TARGETS)

fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_SECONDS) build-fuzz/corpus request config

fuzz-short: fuzz-build
	@tests/fuzz/run $(FUZZ_SHORT_SECONDS) "" request config

# systemd-analyze verify on the units, when the tool is there (it is not
# required): ExecStart points at this build so no install is needed, and
# --man=no because awaitd(8) is not installed yet.
test-units: $(BUILD)/awaitd
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
	    echo "units: skipped (no systemd-analyze on this machine)"; exit 0; fi; \
	d=$$(mktemp -d) && \
	sed 's|/usr/local/bin/awaitd|$(CURDIR)/$(BUILD)/awaitd|' systemd/awaitd.service \
	    >$$d/awaitd.service && cp systemd/awaitd.socket $$d/ && \
	systemd-analyze verify --man=no $$d/awaitd.service $$d/awaitd.socket; rc=$$?; \
	rm -rf $$d; \
	if [ $$rc -eq 0 ]; then echo "units: systemd-analyze verify passed"; p=1 f=0; \
	else echo "units: systemd-analyze verify FAILED"; p=0 f=1; fi; \
	if [ -n "$(AW_RESULTS)" ]; then echo "units $$p $$f" >>"$(AW_RESULTS)"; fi; \
	exit $$rc

# The units get this PREFIX and SYSCONFDIR written into them. An existing
# configuration file is never overwritten.
install: all
	install -D -m 0755 $(BUILD)/awaitd $(DESTDIR)$(PREFIX)/bin/awaitd
	install -D -m 0755 $(BUILD)/awaitctl $(DESTDIR)$(PREFIX)/bin/awaitctl
	install -D -m 0644 cli/awaitctl.1 $(DESTDIR)$(MANDIR)/man1/awaitctl.1
	install -D -m 0644 cli/awaitctl.bash $(DESTDIR)$(COMPLETIONDIR)/awaitctl
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/awaitd/awaitd.conf ]; then \
	    echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/awaitd/awaitd.conf"; \
	else install -d $(DESTDIR)$(SYSCONFDIR)/awaitd && \
	    sed 's|^state_dir = .*|state_dir = $(STATEDIR)|' config/awaitd.conf \
	        >$(DESTDIR)$(SYSCONFDIR)/awaitd/awaitd.conf && \
	    chmod 0644 $(DESTDIR)$(SYSCONFDIR)/awaitd/awaitd.conf; fi
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/awaitd|$(PREFIX)/bin/awaitd|' \
	    -e 's|/etc/awaitd/|$(SYSCONFDIR)/awaitd/|' \
	    systemd/awaitd.service >$(DESTDIR)$(UNITDIR)/awaitd.service
	install -m 0644 systemd/awaitd.socket $(DESTDIR)$(UNITDIR)/awaitd.socket
	chmod 0644 $(DESTDIR)$(UNITDIR)/awaitd.service
	install -D -m 0644 daemon/awaitd.8 $(DESTDIR)$(MANDIR)/man8/awaitd.8
	install -D -m 0644 docs/api.md $(DESTDIR)$(DOCDIR)/api.md

# Removes what install put there. The configuration file goes only if it is
# still the one shipped: an edited one is the operator's.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/awaitd $(DESTDIR)$(PREFIX)/bin/awaitctl
	rm -f $(DESTDIR)$(MANDIR)/man1/awaitctl.1 $(DESTDIR)$(COMPLETIONDIR)/awaitctl
	rm -f $(DESTDIR)$(UNITDIR)/awaitd.service $(DESTDIR)$(UNITDIR)/awaitd.socket
	rm -f $(DESTDIR)$(MANDIR)/man8/awaitd.8 $(DESTDIR)$(DOCDIR)/api.md
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@f=$(DESTDIR)$(SYSCONFDIR)/awaitd/awaitd.conf; \
	if [ -e $$f ] && ! sed 's|^state_dir = .*|state_dir = $(STATEDIR)|' config/awaitd.conf | cmp -s $$f -; then \
	    echo "keeping $$f: it was edited"; \
	else rm -f $$f; rmdir $(DESTDIR)$(SYSCONFDIR)/awaitd 2>/dev/null || true; fi

# build/state is the task store of `make run` (config/awaitd.conf): clean
# keeps it, distclean removes it too.
clean:
	rm -rf build-san build-fuzz
	@if [ -d build ]; then find build -mindepth 1 -maxdepth 1 ! -name state -exec rm -rf {} +; fi

distclean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
