//! `cleat run`/`create` flags as a Spec.
