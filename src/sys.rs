//! Thin, documented wrappers around the few system calls rustix does not cover.
