# mer -- build, test, bench, fuzz. GNU make; C11.
#   make            build/libmer.a and the CLI build/mer
#   make test       everything CI runs: unit + CLI tests, the same under ASan+UBSan, fuzzers
#   make bench      benchmarks against peers (prints ratios)
#   make fuzz       libFuzzer targets (clang)
#   make parity     full-size exactness checks against PyTorch references (slow; needs torch)
# Variables: GEMM=dnnl|openblas (default backend), MARCH=x86-64-v3, O=2.
# Portable by default: everything is compiled for AVX2 + FMA (x86-64-v3: Haswell, Zen 1 and
# later), and the AVX-512 kernels carry their own target attribute (MER_AVX512 in
# src/core/internal.h) and are chosen at run time from cpuid (src/core/cpu.c), so one binary
# runs on any AVX2 machine and uses AVX-512 where present. MARCH=native builds for this CPU only.

CC      ?= cc
MARCH   ?= x86-64-v3
O       ?= 2
BUILD   ?= build
GEMM    ?= auto

PKGS    := libavformat libavcodec libswresample libswscale libavutil libcjson libpng libjpeg
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

HAVE_DNNL     := $(shell test -f /usr/include/dnnl.h && echo 1)
HAVE_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1)
BLAS_CFLAGS :=
BLAS_LIBS   :=
ifeq ($(HAVE_DNNL),1)
  BLAS_CFLAGS += -DMER_HAVE_DNNL
  BLAS_LIBS   += -ldnnl
endif
ifeq ($(HAVE_OPENBLAS),1)
  BLAS_CFLAGS += -DMER_HAVE_OPENBLAS $(shell pkg-config --cflags openblas)
  BLAS_LIBS   += $(shell pkg-config --libs openblas)
endif
ifeq ($(GEMM),openblas)
  BLAS_CFLAGS += -DMER_GEMM_FORCE_OPENBLAS
endif

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-sign-compare
CFLAGS  ?= -O$(O) -g -march=$(MARCH)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -fopenmp $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude -Isrc -Isrc/core \
             -DMER_SOURCE_DIR='"$(CURDIR)"' \
             $(BLAS_CFLAGS) $(PKG_CFLAGS)
LDLIBS  := $(BLAS_LIBS) $(PKG_LIBS) -lpthread -lm

LIB_SRC   := $(sort $(wildcard src/*/*.c))
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TEST_SRC  := $(sort $(wildcard tests/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))

EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all lib shared install test unit asan fuzz bench parity clean deps demo
all: $(BUILD)/libmer.a $(BUILD)/mer $(BUILD)/mer_tests $(BUILD)/libmer.so $(EXAMPLE_BIN)

lib: $(BUILD)/libmer.a

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmer.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mer: $(TOOL_OBJ) $(BUILD)/libmer.a
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libmer.a $(LDLIBS)

$(BUILD)/mer_tests: $(TEST_OBJ) $(BUILD)/libmer.a
	$(CC) $(ALL_CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libmer.a $(LDLIBS)

# examples/: programs that use only the public header, linked against the static library
# (the tests run them and compare with the CLI).
$(BUILD)/examples/%: examples/%.c include/mer.h $(BUILD)/libmer.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -fopenmp $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude -o $@ $< $(BUILD)/libmer.a $(LDLIBS)

# The shared library: versioned file, soname libmer.so.MAJOR, dev symlink libmer.so.
VERSION   := $(shell sed -n 's/^\#define MER_VERSION "\(.*\)"/\1/p' include/mer.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
shared: $(BUILD)/libmer.so
$(BUILD)/libmer.so.$(VERSION): $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libmer.so.$(SOVERSION) -o $@ $(LIB_OBJ) $(LDLIBS)
$(BUILD)/libmer.so: $(BUILD)/libmer.so.$(VERSION)
	ln -sf libmer.so.$(VERSION) $(BUILD)/libmer.so.$(SOVERSION)
	ln -sf libmer.so.$(VERSION) $@

# make install PREFIX=... [DESTDIR=...]: the CLI, libmer.so + libmer.a, mer.h, mer.pc, and the
# bundled models and data under PREFIX/share/mer, where mer_data_path finds them at run time.
PREFIX ?= /usr/local
INSTALL_DIR = $(DESTDIR)$(PREFIX)
install: $(BUILD)/libmer.a $(BUILD)/mer $(BUILD)/libmer.so
	install -d $(INSTALL_DIR)/bin $(INSTALL_DIR)/lib/pkgconfig $(INSTALL_DIR)/include \
	  $(INSTALL_DIR)/share/mer/models $(INSTALL_DIR)/share/mer/data
	install -m 755 $(BUILD)/mer $(INSTALL_DIR)/bin/mer
	install -m 644 $(BUILD)/libmer.a $(INSTALL_DIR)/lib/libmer.a
	install -m 755 $(BUILD)/libmer.so.$(VERSION) $(INSTALL_DIR)/lib/libmer.so.$(VERSION)
	ln -sf libmer.so.$(VERSION) $(INSTALL_DIR)/lib/libmer.so.$(SOVERSION)
	ln -sf libmer.so.$(VERSION) $(INSTALL_DIR)/lib/libmer.so
	install -m 644 include/mer.h $(INSTALL_DIR)/include/mer.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(BLAS_LIBS) -lpthread -lm -fopenmp|' \
	  scripts/mer.pc.in > $(INSTALL_DIR)/lib/pkgconfig/mer.pc
	cp -R models/face-api models/emodb-acoustic $(INSTALL_DIR)/share/mer/models/
	cp -R data/emodb $(INSTALL_DIR)/share/mer/data/

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

# The whole suite: what CI runs. Prints "N passed, N failed" last.
test:
	bash scripts/run-tests.sh

# Unit + CLI tests of the normal build only.
unit: all
	MER_BIN=$(BUILD)/mer $(BUILD)/mer_tests

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build/asan O=1 EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS_EXTRA= all

FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
fuzz: $(FUZZ_BIN)
# Each target links the parsers and the core pieces they use, not the whole library (no BLAS,
# OpenMP or models); a new fuzz target for another parser adds its file here.
FUZZ_LIB_SRC := src/core/status.c src/core/tensor.c src/core/arena.c src/core/strbuf.c src/core/fs.c \
                src/io/safetensors.c src/io/npy.c src/io/csv.c src/io/json.c \
                src/io/tfjs.c src/io/zip.c src/io/pickle.c src/io/torch.c src/models/text_lexicon.c \
                $(wildcard src/text/*.c)
# The parsers are compiled once (instrumented for coverage and the sanitizers) and linked into
# every target: the same code and instrumentation as compiling them into each, a tenth of the time.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -Isrc/core $(PKG_CFLAGS)
FUZZ_OBJ := $(FUZZ_LIB_SRC:%.c=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
-include $(FUZZ_OBJ:.o=.d)
.SECONDARY: $(FUZZ_OBJ)
build/fuzz/%: fuzz/%.c $(FUZZ_OBJ) src/io/io_internal.h src/text/text_internal.h include/mer.h
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS) -lpthread -lm

bench: all
	bash bench/run.sh

parity: all
	bash tests/parity/run.sh

deps:
	bash scripts/install-deps.sh

clean:
	rm -rf build

# The main job on the bundled data (see README).
demo: $(BUILD)/mer
	$(BUILD)/mer demo --data data/emodb --out out/demo
