//! State cleat keeps between commands.
