//! systemd: unit properties, D-Bus client, generator.
