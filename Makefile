# Build and install cleat. `make install` honours PREFIX (default /usr/local) and DESTDIR.
#   make                      build (release)
#   make install              install into $(DESTDIR)$(PREFIX), and /etc/cleat, /var/lib/cleat
#   make uninstall            remove what `make install` put under $(PREFIX) (not /etc, /var)
#   make demo                 boot a private systemd and run container@demo in it
#   make check                unit tests and privileged integration tests (root)
#   make deb                  the Debian package, built in a copy of the tree: target/deb/*.deb
#
# The Debian package: `dpkg-buildpackage -us -uc -b` at the top of the tree builds it into ..
# (`make deb` runs it in a copy, so nothing is written beside the tree); an RPM spec is in
# packaging/cleat.spec. See packaging/README.md.
#
# Installing does not rebuild when the binaries exist (so `make install` works as root inside a
# test namespace or a packaging chroot without a toolchain); run `make` first. The manual pages
# and shell completions are made at install time by the built cleat itself, from the same
# definitions as its --help.

PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
UNITDIR      ?= $(PREFIX)/lib/systemd/system
GENERATORDIR ?= $(PREFIX)/lib/systemd/system-generators
TMPFILESDIR  ?= $(PREFIX)/lib/tmpfiles.d
MANDIR       ?= $(PREFIX)/share/man
BASHCOMPDIR  ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR  ?= $(PREFIX)/share/fish/vendor_completions.d
# cleat's configuration and state are where the code looks for them, whatever PREFIX is.
CONFDIR      := /etc/cleat
STATEDIR     := /var/lib/cleat
PROFILE      ?= release
CARGO        ?= cargo
CARGO_FLAGS  ?=
TARGET_DIR   ?= target

ifeq ($(PROFILE),dev)
PROFILE_DIR := debug
else
PROFILE_DIR := $(PROFILE)
endif
BIN_DIR ?= $(TARGET_DIR)/$(PROFILE_DIR)

.PHONY: all build install uninstall demo check deps deb clean

all: build

build:
	$(CARGO) build $(CARGO_FLAGS) --profile $(PROFILE) --bins

$(BIN_DIR)/cleat $(BIN_DIR)/cleat-generator:
	$(CARGO) build $(CARGO_FLAGS) --profile $(PROFILE) --bins

install: $(BIN_DIR)/cleat $(BIN_DIR)/cleat-generator
	install -D -m 0755 $(BIN_DIR)/cleat $(DESTDIR)$(BINDIR)/cleat
	install -D -m 0755 $(BIN_DIR)/cleat-generator $(DESTDIR)$(GENERATORDIR)/cleat-generator
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@bindir@|$(BINDIR)|g' units/container@.service.in >$(DESTDIR)$(UNITDIR)/container@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/container@.service
	install -D -m 0644 packaging/tmpfiles.d/cleat.conf $(DESTDIR)$(TMPFILESDIR)/cleat.conf
	set -e; pages=$$(mktemp -d); trap 'rm -rf "$$pages"' EXIT; \
	$(BIN_DIR)/cleat internal man "$$pages"; \
	for section in 1 5 8; do \
		install -d $(DESTDIR)$(MANDIR)/man$$section; \
		for page in "$$pages"/man$$section/*; do \
			gzip -9n <"$$page" >$(DESTDIR)$(MANDIR)/man$$section/$${page##*/}.gz; \
			chmod 0644 $(DESTDIR)$(MANDIR)/man$$section/$${page##*/}.gz; \
		done; \
	done
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(BIN_DIR)/cleat internal completions bash >$(DESTDIR)$(BASHCOMPDIR)/cleat
	$(BIN_DIR)/cleat internal completions zsh >$(DESTDIR)$(ZSHCOMPDIR)/_cleat
	$(BIN_DIR)/cleat internal completions fish >$(DESTDIR)$(FISHCOMPDIR)/cleat.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/cleat $(DESTDIR)$(ZSHCOMPDIR)/_cleat $(DESTDIR)$(FISHCOMPDIR)/cleat.fish
	install -d -m 0755 $(DESTDIR)$(CONFDIR) $(DESTDIR)$(CONFDIR)/containers
	@# The commented default; an administrator's file is never replaced.
	test -e $(DESTDIR)$(CONFDIR)/registries.toml || \
		install -m 0644 packaging/registries.toml $(DESTDIR)$(CONFDIR)/registries.toml
	install -d -m 0700 $(DESTDIR)$(STATEDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cleat $(DESTDIR)$(GENERATORDIR)/cleat-generator \
		$(DESTDIR)$(UNITDIR)/container@.service $(DESTDIR)$(TMPFILESDIR)/cleat.conf \
		$(DESTDIR)$(MANDIR)/man1/cleat.1.gz $(DESTDIR)$(MANDIR)/man1/cleat-*.1.gz \
		$(DESTDIR)$(MANDIR)/man5/cleat.toml.5.gz $(DESTDIR)$(MANDIR)/man5/cleat-registries.toml.5.gz \
		$(DESTDIR)$(MANDIR)/man8/container@.service.8.gz \
		$(DESTDIR)$(BASHCOMPDIR)/cleat $(DESTDIR)$(ZSHCOMPDIR)/_cleat $(DESTDIR)$(FISHCOMPDIR)/cleat.fish

deps:
	tests/testhost/deps.sh

demo: deps
	$(CARGO) build --profile $(PROFILE) --bins
	tests/testhost/demo.sh $(BIN_DIR)

check: deps
	$(CARGO) test

deb:
	packaging/build-deb.sh $(TARGET_DIR)/deb

clean:
	$(CARGO) clean
