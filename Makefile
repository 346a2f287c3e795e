# Tributary -- top-level make targets (CMake underneath).
#   make            build build/tributary
#   make demo       the main job: the IoT telemetry demo on the embedded engines
#   make test       every test: unit (ctest), ASan+UBSan, integration (pytest, aws CLI, JS), crash
#   make check-asan unit + integration tests under AddressSanitizer + UBSan
#   make fuzz       every libFuzzer target in tests/fuzz for FUZZ_SECONDS (600) each
#   make bench      benchmarks against kinesalite / kinesis-local, written as a table
#   make soak       the crash-and-corruption soak for SOAK_SECONDS (1800; `make test` runs 75 s)
JOBS ?= 2

SOAK_SECONDS ?= 1800

.PHONY: all deps build demo test check-asan unit fuzz bench soak clean

all: build

deps:
	@scripts/deps.sh build

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTR_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

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
	rm -rf build build-asan build-fuzz
