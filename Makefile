# Tributary -- top-level make targets (CMake underneath).  `make help` prints the list below.
#   make               build build/tributary (same as make build)
#   make build         build/tributary and everything the tests use (BUILD_TYPE, RelWithDebInfo)
#   make build-asan    build-asan/: Debug with AddressSanitizer + UBSan
#   make build-release build-release/: Release, as a packager builds it (warning-free, -Werror)
#   make install       install the server, tributary-cc and function.h (PREFIX, DESTDIR)
#   make demo          the main job: the IoT telemetry demo on the embedded engines
#   make test          every test: unit (also Release), ASan+UBSan, fuzzing, integration, crash
#   make check-asan    unit + integration tests under AddressSanitizer + UBSan
#   make unit          the unit tests (ctest) of build/
#   make format        apply .clang-format to the C sources (scripts/format.sh)
#   make fuzz          every libFuzzer target in tests/fuzz for FUZZ_SECONDS (600) each
#   make bench         benchmarks against kinesalite / kinesis-local, written as a table
#   make soak          the crash-and-corruption soak for SOAK_SECONDS (1800; make test runs 75 s)
#   make clean         remove the build directories
#   make help          this list
# Variables: JOBS (2) parallel compiles; BUILD_TYPE (RelWithDebInfo) for build and install;
# PREFIX (/usr/local) and DESTDIR (empty) for install.
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
PREFIX ?= /usr/local
DESTDIR ?=

SOAK_SECONDS ?= 1800

.PHONY: all help deps build build-asan build-release install demo test check-asan unit format \
	fuzz bench soak clean

all: build

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))
	@sed -n '/^# Variables:/,/^[^#]/{/^#/s/^# \{0,1\}//p}' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/deps.sh build

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build build -j$(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTR_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

build-release: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-release -j$(JOBS)

# cmake --install honours DESTDIR from the environment: staged installs for packages.
install: build
	@DESTDIR="$(DESTDIR)" cmake --install build --prefix "$(PREFIX)"

demo:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh $(ARGS)

test:
	@scripts/deps.sh test
	@scripts/test.sh

check-asan:
	@scripts/deps.sh test
	@scripts/test.sh --asan-only

unit: build
	@cd build && ctest --output-on-failure

format:
	@scripts/deps.sh test
	@scripts/format.sh

FUZZ_SECONDS ?= 600
fuzz:
	@scripts/deps.sh test
	@scripts/fuzz.sh $(FUZZ_SECONDS)

soak:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build
	@TRIBUTARY_BIN=$(CURDIR)/build/tributary TRIBUTARY_SOAK_SECONDS=$(SOAK_SECONDS) \
		/usr/bin/python3 -m pytest -p no:cacheprovider -s tests/crash/test_soak.py

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh

clean:
	rm -rf build build-asan build-release build-fuzz
