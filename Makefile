# pogo: make test | make demo | make asan | make valgrind | make lint | make bench | make fuzz | make docs
#       make rock | make pack | make demo DASHBOARD=1 (the demo's cluster and its web page, until Ctrl-C)
#       make screenshot (examples/service_monitor/dashboard.png, the page in headless Chromium)
SHELL := /bin/bash
.DEFAULT_GOAL := build

DEB_PACKAGES := lua5.4 liblua5.4-dev libuv1-dev lua-luv lua-luv-dev lua-busted prosody lua-cqueues lua-socket \
	libmsgpack-dev libxxhash-dev libssl-dev libc-ares-dev dnsmasq-base openssl lua-check lua-ldoc lua-argparse cmake pkg-config gcc make \
	libhttp-parser-dev lua-cjson lua-penlight lua-readline
# what the specs need beyond the build: a real browser for the web page, promtool for /metrics
TEST_PACKAGES := chromium prometheus
BUILD ?= build
LUA ?= lua5.4
BUSTED ?= busted
# the version is pogo._VERSION; its rockspec is rockspec/pogo-$(VERSION)-1.rockspec
VERSION := $(shell sed -n 's/^M\._VERSION = "\([^"]*\)"$$/\1/p' lua/pogo/init.lua)
PACK_VERSION ?= $(VERSION)
export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/examples/?.lua;$(CURDIR)/?.lua;/usr/local/share/lua/5.4/?.lua;/usr/local/share/lua/5.4/?/init.lua;/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua
export LUA_CPATH = $(CURDIR)/$(BUILD)/?.so;/usr/local/lib/lua/5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/lib/lua/5.4/?.so

.PHONY: deps build test asan valgrind lint bench demo screenshot fuzz docs clean rock pack

# Install missing Debian packages (needs root, as on CI and fresh machines). A
# package removed but not purged is missing ("dpkg -s" would say it is there).
deps:
	@missing=""; for p in $(DEB_PACKAGES) $(EXTRA_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j2

test: build
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(TEST_PACKAGES)"
	@BUILD=$(BUILD) LUA=$(LUA) BUSTED=$(BUSTED) bash spec/support/run_tests.sh $(SPECS)

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_ARGS="-DPOGO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" \
	  POGO_SANITIZE=1

valgrind: build
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="valgrind $(TEST_PACKAGES)"
	@BUILD=$(BUILD) POGO_VALGRIND=1 bash spec/support/run_tests.sh $(SPECS)

lint: deps
	@env -u LUA_PATH -u LUA_CPATH luacheck --no-color lua spec bench examples bin/pogo
	@bash csrc/ctest/layers.sh

bench: build
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES=chromium
	@for b in bench/*.lua; do echo "== $$b"; $(LUA) $$b || exit 1; done

demo: build
	@DASHBOARD=$(DASHBOARD) $(LUA) examples/service_monitor/demo.lua

screenshot: build
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES=chromium
	@SCREENSHOT=examples/service_monitor/dashboard.png $(LUA) examples/service_monitor/demo.lua

fuzz:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="clang libclang-rt-14-dev"
	@bash csrc/fuzz/run.sh $(or $(FUZZ_SECONDS),120)

docs: deps
	@env -u LUA_PATH -u LUA_CPATH ldoc -q -d $(BUILD)/docs lua/pogo && echo "API docs in $(BUILD)/docs/index.html"

# Install pogo from this checkout into ./luarocks-tree (luarocks comes from Debian).
rock:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES=luarocks
	@luarocks --lua-version 5.4 make --tree $(CURDIR)/luarocks-tree rockspec/pogo-$(VERSION)-1.rockspec

# Pack the source rock pogo-$(PACK_VERSION)-1.src.rock (in this directory) from
# the checkout's HEAD: git archive makes the tarball the rockspec names, and
# luarocks pack gets a copy of the rockspec whose url is the tarball's absolute
# path (it fetches into a temporary directory). PACK_VERSION=scm packs the scm one.
pack:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="luarocks git"
	@set -e; d=$(CURDIR)/$(BUILD)/pack; name=pogo-$(PACK_VERSION); \
	  rm -rf "$$d"; mkdir -p "$$d"; \
	  git archive --format=tar.gz --prefix=$$name/ -o "$$d/$$name.tar.gz" HEAD; \
	  sed 's|^  url = ".*",$$|  url = "file://'"$$d/$$name.tar.gz"'",|' rockspec/$$name-1.rockspec > "$$d/$$name-1.rockspec"; \
	  grep -q "file://$$d/$$name.tar.gz" "$$d/$$name-1.rockspec"; \
	  (cd "$$d" && luarocks --lua-version 5.4 pack $$name-1.rockspec); \
	  mv "$$d/$$name-1.src.rock" .; echo "packed $$name-1.src.rock"

clean:
	rm -rf build build-asan luarocks-tree pogo-*.src.rock
