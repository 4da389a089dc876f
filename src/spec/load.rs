//! Loading TOML definitions (placeholder; being written).

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let _ = word;
    candidates.into_iter().next().filter(|_| false)
}
