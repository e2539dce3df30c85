# wapi — build, run, test, bench.
#   make                      binaries into build/
#   make SANITIZE=address,undefined   the same, instrumented, into build/san/
#   make run | test | bench | fuzz | clean
.SUFFIXES:
SHELL := /bin/bash

CC      ?= gcc
ifeq ($(CC),cc)
CC      := gcc
endif
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARN    += -Werror
endif
CFLAGS  ?= -O2 -g
# $(B)/gen/supervisor/wa: supervisor/wa/ names its generated protobuf headers
# "proto/x.pb-c.h", as if they stood beside the .proto files.
CPPFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -I. -Icommon -I/usr/include/postgresql -I$(B)/gen \
               -I$(B)/gen/supervisor/wa -I/usr/include/opus $(CPPFLAGS)
LIBS    := -lh2o-evloop -lpq -lssl -lcrypto -lyajl -levent -levent_openssl -levent_pthreads -lconfig \
           -lsignal-protocol-c -lprotobuf-c -lwslay -lqrencode -lz -lunistring -lcurl -lopusfile -ljpeg -lpng16 -lwebp -lmagic -lpthread -lm

ifneq ($(SANITIZE),)
B       := build/san
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
else
B       := build
endif

COMMON_SRC := $(wildcard common/*.c)
# The WhatsApp protocol library (supervisor/wa/) is an archive of its own:
# it needs nothing of the supervisor, and its unit tests link without it.
WA_SRC     := $(wildcard supervisor/wa/*.c)
SUP_SRC    := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
WRK_SRC    := $(filter-out workers/main.c,$(wildcard workers/*.c))
CTL_SRC    := $(wildcard supervisor/ctl/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
SQL        := $(sort $(wildcard common/sql/*.sql))
SQL_DEFS   := $(sort $(wildcard common/sql/defs/*.sql))
PROTO      := $(wildcard supervisor/wa/proto/*.proto)
PROTO_C    := $(patsubst %.proto,$(B)/gen/%.pb-c.c,$(PROTO))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

BINS  := $(B)/wapi $(B)/wapi-worker $(B)/wapictl
UNITS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
# Small C programs the harnesses drive (e.g. a codec CLI for cross-checks).
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOLS := $(patsubst tests/tools/%.c,$(B)/tests/tools/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

all: $(BINS) $(UNITS) $(TOOLS) $(B)/tests/hello-h2o

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(B)/libcommon.a: $(call obj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^
# Our own .proto files, compiled by protoc-c into build/gen (never committed).
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: %.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=$(dir $<) --c_out=$(dir $@) $<
$(B)/obj/$(B)/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) -w -c -o $@ $<
$(call obj,$(WA_SRC) $(SUP_SRC) $(UNIT_SRC)): | $(PROTO_C)

# The schema travels inside the binary: no migration files to ship or lose.
$(B)/gen/migrations.c: $(SQL) $(SQL_DEFS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $@ $(SQL) -- $(SQL_DEFS)

$(B)/libwa.a: $(call obj,$(WA_SRC)) $(patsubst %.c,$(B)/obj/%.o,$(PROTO_C))
	@rm -f $@; ar rcs $@ $^
$(B)/libsup.a: $(call obj,$(SUP_SRC)) $(B)/obj/$(B)/gen/migrations.o
	@rm -f $@; ar rcs $@ $^
# The dashboard's files travel inside the worker binary too, and so does the
# API's OpenAPI document (served as /openapi.json among them).
ASSETS     := $(sort $(shell find workers/dashboard -type f 2>/dev/null)) docs/openapi.json
$(B)/gen/dashboard_assets.c: $(ASSETS) scripts/embed-assets.sh
	@mkdir -p $(dir $@)
	scripts/embed-assets.sh $@ workers/dashboard $(ASSETS)

$(B)/libwrk.a: $(call obj,$(WRK_SRC)) $(B)/obj/$(B)/gen/dashboard_assets.o
	@rm -f $@; ar rcs $@ $^

$(B)/wapi: $(call obj,supervisor/main.c) $(B)/libsup.a $(B)/libwa.a $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(B)/wapi-worker: $(call obj,workers/main.c) $(B)/libwrk.a $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
# The version a backup's manifest names (the image passes its own).
WAPI_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
$(B)/obj/supervisor/ctl/backup.o: CPPFLAGS += -DWAPI_VERSION='"$(WAPI_VERSION)"'
$(B)/wapictl: $(call obj,$(CTL_SRC)) $(B)/obj/$(B)/gen/migrations.o $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests may #include the module under test; the archives fill in the rest.
# Those of the protocol library get only it and common/: a test that needed
# the supervisor (its database, its globals) would not link.
$(B)/tests/test_wa_%: $(call obj,tests/unit/test_wa_%.c) $(B)/libwa.a $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(B)/tests/%: $(call obj,tests/unit/%.c) $(B)/libsup.a $(B)/libwa.a $(B)/libwrk.a $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/tools/%: $(call obj,tests/tools/%.c) $(B)/libsup.a $(B)/libwa.a $(B)/libwrk.a $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# libFuzzer targets: each fuzz_*.c #includes the module sources it exercises.
# Their .d files name the included sources, so a change there rebuilds them.
build/fuzz/%: tests/fuzz/%.c $(PROTO_C)
	@mkdir -p $(dir $@)
	@mkdir -p build/fuzz-deps
	clang $(CPPFLAGS_ALL) -MMD -MP -MF build/fuzz-deps/$(notdir $@).d -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ $< $(LIBS)
fuzzers: $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
-include $(wildcard build/fuzz-deps/*.d)

# The baseline for `make bench`: a bare libh2o hello-world from the same libraries.
$(B)/tests/hello-h2o: $(call obj,tests/bench/hello_h2o.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

test: bootstrap
	@scripts/test.sh

bench: bootstrap
	@$(MAKE) --no-print-directory all
	@tests/bench/bench.sh

fuzz: bootstrap
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# The container image (buildah; a debootstrap base when none is present) and
# its run as the pod would run it.
image:
	@scripts/image.sh
test-image: image
	@scripts/test-image.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

.PHONY: all fuzzers bootstrap run test bench fuzz format clean image test-image
