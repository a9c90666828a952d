# The README's two commands: `make demo` and `make test`. Each installs what is missing
# (scripts/setup.sh, Debian packages only), configures with CMake + Ninja, builds and runs.
BUILD ?= build
JOBS ?= $(shell nproc)
SFPO := $(BUILD)/cli/sfpo
DEMO_DIR ?= runs/demo

.PHONY: all setup configure build build-sfpo test demo bench clean format

all: build

setup:
	@scripts/setup.sh

configure: setup
	@test -f $(BUILD)/build.ninja || cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only the binary (no tests or benchmarks): what `make demo` needs on a fresh machine.
build-sfpo: configure
	@cmake --build $(BUILD) --target sfpo -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

demo: build-sfpo
	@scripts/demo.sh $(SFPO) $(DEMO_DIR)

bench: build
	@cmake --build $(BUILD) --target benchmarks -j $(JOBS)

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
