# cowchain top-level Makefile.
#
#   make                     userspace + dm-cowchain.ko for every installed kernel
#   make modules KDIR=DIR    the module for one kernel tree (e.g. /lib/modules/X/build)
#   make modules KVER=X      the module for one installed kernel
#   make userspace           the library and the tool only
#   make check               userspace unit tests + guest tests on every kernel
#   make vm-check KVER=X     guest tests on one kernel
#   make stress              the long reliability tier (tests/stress/) on every kernel
#   make demo                the demo in a guest, on every kernel
#   make bench [BENCH_KVER=X|all] [QUICK=1]  benchmarks in a guest (build/bench/, docs/BENCHMARKS.md);
#                            QUICK=1: the 5-minute subset on the newest kernel
#   make lint                shellcheck the scripts
#   make clean
#
# Each kernel's module is built in build/kmod/$KVER/, a tree of symlinks to
# Kbuild and every file under kernel/ (old kbuild cannot put its output
# elsewhere).  That directory is also $(src) for Kbuild, and it is per kernel
# and writable, so Kbuild may generate compat headers there from test
# compiles (see Kbuild).  The module is built with W=1; any compiler or
# modpost warning fails the build.

SHELL := /bin/bash
TOP   := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build

ifneq ($(KDIR),)
  # Name the output after the release the tree belongs to:
  # /lib/modules/$KVER/build -> $KVER, else the tree's own kernel.release.
  KDIR := $(abspath $(KDIR))
  KVER := $(or $(patsubst /lib/modules/%/build,%,$(filter /lib/modules/%/build,$(KDIR))),\
               $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null))
  KVERS := $(KVER)
else ifneq ($(KVER),)
  KVERS := $(KVER)
else
  KVERS := $(shell $(TOP)/scripts/kernels.sh)
endif
kdir_of = $(or $(KDIR),/lib/modules/$(1)/build)

.PHONY: all userspace modules check vm-check demo bench lint clean $(addprefix module-,$(KVERS))

all: userspace modules

userspace:
	@if [ -f $(TOP)/userspace/Makefile ]; then \
		$(MAKE) -C $(TOP)/userspace; \
	else \
		echo "userspace: no userspace/Makefile yet, skipped"; \
	fi

modules: $(addprefix module-,$(KVERS))
	@[ -n "$(KVERS)" ] || { echo "modules: no kernel with headers found (scripts/install-deps.sh)" >&2; exit 1; }

# One kernel: refresh the symlink tree (new files appear, removed ones go),
# build, and fail on any warning in the log.
$(addprefix module-,$(KVERS)): module-%:
	@set -o pipefail; d=$(BUILD)/kmod/$*; \
	mkdir -p $$d/kernel; \
	ln -sfn $(TOP)/Kbuild $$d/Kbuild; \
	cp -rsf $(TOP)/kernel/. $$d/kernel/; \
	find $$d/kernel -xtype l -delete; \
	echo "  KMOD    $* ($(call kdir_of,$*))"; \
	$(MAKE) -C $(call kdir_of,$*) M=$$d W=1 modules 2>&1 | tee $$d/build.log; \
	if grep -Eiq 'warning:' $$d/build.log; then \
		echo "modules: $*: the build printed warnings (see $$d/build.log)" >&2; \
		rm -f $$d/dm-cowchain.ko; exit 1; \
	fi; \
	test -f $$d/dm-cowchain.ko

# run-check.sh builds what it tests and counts build failures as failures,
# so the summary line comes out whatever breaks.
check:
	-@$(MAKE) -s crash-tools
	@$(TOP)/tests/run-check.sh $(KVERS)

# The reliability tests' tools (tests/crash/), built here so the TCG guest
# need not run gcc; the guest builds them itself when these are missing.
crash-tools: userspace $(addprefix $(BUILD)/crash/,replay-log crashload mutate memhog tableload torn)
$(BUILD)/crash/%: $(TOP)/tests/crash/%.c
	@mkdir -p $(@D) && $(CC) -O2 -Wall -Wextra -Werror -pthread -o $@ $<
$(BUILD)/crash/tableload: $(TOP)/tests/crash/tableload.c
	@mkdir -p $(@D) && $(CC) -O2 -Wall -Wextra -Werror -o $@ $< $$(pkg-config --libs devmapper)
$(BUILD)/crash/torn: $(TOP)/tests/crash/torn.c $(TOP)/userspace/libcowchain.a
	@mkdir -p $(@D) && $(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -I$(TOP)/kernel \
		-I$(TOP)/userspace/lib -o $@ $^ -Wl,--wrap=pwrite $$(pkg-config --libs json-c devmapper)

vm-check:
	@[ -n "$(KVER)" ] || { echo "vm-check: set KVER= (one of: $$($(TOP)/scripts/kernels.sh | tr '\n' ' '))" >&2; exit 2; }
	@$(TOP)/tests/run-check.sh --no-unit $(KVER)

stress: all crash-tools
	@rc=0; for k in $(KVERS); do $(TOP)/scripts/vm-run.sh --kernel $$k --out $(BUILD)/stress \
		--timeout $${COWCHAIN_STRESS_TIMEOUT:-36000} -- $(TOP)/tests/stress/run.sh || rc=1; done; exit $$rc

demo: all
	@$(TOP)/scripts/vm-run.sh --out $(BUILD)/demo -- $(TOP)/scripts/demo.sh

bench: all
	@$(TOP)/scripts/bench.sh $(if $(BENCH_KVER),--kernel "$(BENCH_KVER)") $(if $(filter 1,$(BENCH_QUICK) $(QUICK)),--quick)

lint:
	shellcheck -x $(TOP)/scripts/*.sh $(TOP)/.ci/run $(TOP)/tests/run-check.sh $(TOP)/tests/guest/*.sh \
		$(TOP)/tests/stress/*.sh $(TOP)/tests/crash/*.sh $(TOP)/tests/bench/*.sh \
		$(TOP)/tests/*.sh $(TOP)/tests/cli/*.sh $(TOP)/tests/fuzz/*.sh

clean:
	@if [ -f $(TOP)/userspace/Makefile ]; then $(MAKE) -C $(TOP)/userspace clean; fi
	rm -rf $(BUILD)
