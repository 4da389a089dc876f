//! Image references and (from the next issue on) the registry client and layer store.
