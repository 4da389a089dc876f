//! The root file system plan.
