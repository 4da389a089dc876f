//! Namespaces, pivot_root, exec.
