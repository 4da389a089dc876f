# Build and install cleat. `make install` honours PREFIX (default /usr/local) and DESTDIR.
#   make                      build (release)
#   make install              install into $(DESTDIR)$(PREFIX)
#   make demo                 boot a private systemd and run container@demo in it
#   make check                unit tests and privileged integration tests (root)

PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
UNITDIR      ?= $(PREFIX)/lib/systemd/system
GENERATORDIR ?= $(PREFIX)/lib/systemd/system-generators
PROFILE      ?= release
CARGO        ?= cargo
TARGET_DIR   ?= target

ifeq ($(PROFILE),dev)
PROFILE_DIR := debug
else
PROFILE_DIR := $(PROFILE)
endif
BIN_DIR ?= $(TARGET_DIR)/$(PROFILE_DIR)

.PHONY: all build install uninstall demo check deps clean

all: build

build:
	$(CARGO) build --profile $(PROFILE) --bins

# Installing does not rebuild when the binaries exist (so `make install` works as root
# inside a test namespace or a packaging chroot without a toolchain); run `make` first.
$(BIN_DIR)/cleat $(BIN_DIR)/cleat-generator:
	$(CARGO) build --profile $(PROFILE) --bins

install: $(BIN_DIR)/cleat $(BIN_DIR)/cleat-generator
	install -D -m 0755 $(BIN_DIR)/cleat $(DESTDIR)$(BINDIR)/cleat
	install -D -m 0755 $(BIN_DIR)/cleat-generator $(DESTDIR)$(GENERATORDIR)/cleat-generator
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@bindir@|$(BINDIR)|g' units/container@.service.in >$(DESTDIR)$(UNITDIR)/container@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/container@.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cleat $(DESTDIR)$(GENERATORDIR)/cleat-generator \
		$(DESTDIR)$(UNITDIR)/container@.service

deps:
	tests/testhost/deps.sh

demo: deps
	$(CARGO) build --profile $(PROFILE) --bins
	tests/testhost/demo.sh $(BIN_DIR)

check: deps
	$(CARGO) test

clean:
	$(CARGO) clean
