//! Typo suggestions: the known word nearest to one that was not recognised ("did you mean …?").

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
///
/// Case and the `_`/`-` spelling are ignored (`Working_Dir` finds `working-dir`); otherwise
/// candidates are ranked by Damerau–Levenshtein distance (optimal string alignment: insertions,
/// deletions, substitutions and swaps of two neighbours each count one), and one is offered only
/// within `max(1, len/3)` edits of `word`. On a tie the earlier candidate wins.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = normalize(word);
    if wanted.is_empty() {
        return None;
    }
    let limit = (wanted.len() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let d = distance(&wanted, &normalize(candidate));
        if d <= limit && best.is_none_or(|(best_d, _)| d < best_d) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Lower case, with `_` read as `-`: the spellings that do not count as typos.
fn normalize(s: &str) -> Vec<char> {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '_' { '-' } else { c })
        .collect()
}

/// Optimal-string-alignment distance between `a` and `b`, in three rolling rows.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut before_previous = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut d = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before_previous[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before_previous, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "image",
        "rootfs",
        "working-dir",
        "env",
        "env-files",
        "restart",
    ];

    #[test]
    fn typos_find_the_nearest_key() {
        let s = |w| suggest(w, KEYS.iter().copied());
        assert_eq!(s("imgae"), Some("image"));
        assert_eq!(s("imag"), Some("image"));
        assert_eq!(s("images"), Some("image"));
        assert_eq!(s("rootf"), Some("rootfs"));
        assert_eq!(s("env_file"), Some("env-files"));
        assert_eq!(s("restrat"), Some("restart"));
    }

    #[test]
    fn case_and_underscores_are_not_typos() {
        let s = |w| suggest(w, KEYS.iter().copied());
        assert_eq!(s("working_dir"), Some("working-dir"));
        assert_eq!(s("Working_Dir"), Some("working-dir"));
        assert_eq!(s("IMAGE"), Some("image"));
        assert_eq!(s("ENV"), Some("env"));
    }

    #[test]
    fn unrelated_words_get_no_suggestion() {
        let s = |w| suggest(w, KEYS.iter().copied());
        assert_eq!(s(""), None);
        assert_eq!(s("x"), None);
        assert_eq!(s("volumes"), None);
        assert_eq!(s("workdir"), None);
        assert_eq!(suggest("image", []), None);
    }

    #[test]
    fn ties_go_to_the_earlier_candidate() {
        assert_eq!(suggest("ab", ["ac", "ad"]), Some("ac"));
    }

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| {
            distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("ca", "abc"), 3);
        assert_eq!(d("ünï", "üni"), 1);
    }
}
