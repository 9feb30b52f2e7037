//! A small path glob matcher for `risky_paths`.
//!
//! - `?` matches one character except `/`
//! - `*` matches any run of characters except `/`
//! - `**` as a whole segment matches any number of segments, including none:
//!   `**/migrations/**` matches `migrations/1.sql` and `db/migrations/1.sql`
//! - `**` inside a segment (`a**b`) matches anything, `/` included
//! - a pattern without `/` matches the file name in any directory, as in
//!   `.gitignore` and `CODEOWNERS`: `Dockerfile` matches `svc/api/Dockerfile`
//!
//! Matching is a table over (pattern position, path position), so it takes time
//! proportional to pattern length times path length whatever the input — no
//! backtracking blow-up on adversarial paths.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**` not followed by `/`: anything, `/` included.
    Any,
    /// `**/` at the start of a segment: nothing, or anything that ends in `/`.
    Dirs,
}

#[derive(Clone, Debug)]
pub struct Glob {
    source: String,
    toks: Vec<Tok>,
    /// No `/` in the pattern: match against the file name only.
    basename: bool,
    /// The pattern's runs of literal characters: a path that lacks one of
    /// them cannot match, whatever the wildcards do.
    literals: Vec<String>,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    let run = chars[i..].iter().take_while(|c| **c == '*').count();
                    let at_segment_start = i == 0 || chars[i - 1] == '/';
                    i += run;
                    if run == 1 {
                        toks.push(Tok::Star);
                    } else if at_segment_start && chars.get(i) == Some(&'/') {
                        toks.push(Tok::Dirs);
                        i += 1;
                    } else {
                        toks.push(Tok::Any);
                    }
                    continue;
                }
                '?' => toks.push(Tok::One),
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        let mut literals = Vec::new();
        let mut run = String::new();
        for tok in &toks {
            match tok {
                Tok::Lit(c) => run.push(*c),
                _ => literals.push(std::mem::take(&mut run)),
            }
        }
        literals.push(run);
        literals.retain(|l| !l.is_empty());
        Glob {
            source: pattern.to_string(),
            toks,
            basename: !pattern.contains('/'),
            literals,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` (already normalised, see [`normalize`]) matches.
    pub fn matches(&self, path: &str) -> bool {
        let subject = if self.basename {
            path.rsplit('/').next().unwrap_or(path)
        } else {
            path
        };
        // Most paths miss most patterns: a missing literal rules a path out
        // without the table below (and its allocations), which a decision
        // would otherwise fill for every pattern and path.
        self.literals.iter().all(|l| contains(subject, l)) && self.table_matches(subject)
    }

    /// The match itself: a table over (token, position in `subject`).
    fn table_matches(&self, subject: &str) -> bool {
        let text: Vec<char> = subject.chars().collect();
        let n = text.len();
        // `next[j]`: the tokens after the current one match `text[j..]`.
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for tok in self.toks.iter().rev() {
            // Filled right to left so the star-like tokens can reuse `cur[j + 1]`.
            let mut slash_then_rest = false; // for Dirs: some k >= j with text[k] == '/' && next[k+1]
            for j in (0..=n).rev() {
                let here = text.get(j).copied();
                cur[j] = match tok {
                    Tok::Lit(c) => here == Some(*c) && next[j + 1],
                    Tok::One => here.is_some_and(|c| c != '/') && next[j + 1],
                    Tok::Star => next[j] || (here.is_some_and(|c| c != '/') && cur[j + 1]),
                    Tok::Any => next[j] || (here.is_some() && cur[j + 1]),
                    Tok::Dirs => {
                        if here == Some('/') && next[j + 1] {
                            slash_then_rest = true;
                        }
                        next[j] || slash_then_rest
                    }
                };
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }
}

/// Whether `needle` occurs in `haystack`. The needles are a pattern's short
/// literal runs, where a plain scan beats setting up `str::contains`'s
/// two-way searcher.
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.len() <= h.len() && h.windows(n.len()).any(|w| w == n)
}

/// Paths as diff tools print them vary: `./a`, `/a`, `a\b`. Compare one form.
pub fn normalize(path: &str) -> String {
    let p = path.trim().replace('\\', "/");
    let mut s = p.as_str();
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            return s.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).matches(&normalize(path))
    }

    #[test]
    fn globstar_segments() {
        assert!(m("**/migrations/**", "db/migrations/0042.sql"));
        assert!(m("**/migrations/**", "migrations/0001.sql"));
        assert!(m("**/migrations/**", "a/b/c/migrations/x/y.sql"));
        assert!(!m("**/migrations/**", "db/migrations"));
        assert!(!m("**/migrations/**", "db/my-migrations/1.sql"));
        assert!(m(".github/workflows/**", ".github/workflows/ci.yml"));
        assert!(!m(".github/workflows/**", "x/.github/workflows/ci.yml"));
        assert!(m("src/**/auth.rs", "src/auth.rs"));
        assert!(m("src/**/auth.rs", "src/a/b/auth.rs"));
    }

    #[test]
    fn star_and_question_stay_in_one_segment() {
        assert!(m("**/*.sql", "schema.sql"));
        assert!(m("**/*.sql", "db/x/schema.sql"));
        assert!(!m("**/*.sql", "db/schema.sql.bak"));
        assert!(m("db/*.sql", "db/a.sql"));
        assert!(!m("db/*.sql", "db/x/a.sql"));
        assert!(m("src/?.rs", "src/a.rs"));
        assert!(!m("src/?.rs", "src/ab.rs"));
        assert!(!m("a?b", "a/b"));
        assert!(m("a/**b", "a/x/b"));
    }

    #[test]
    fn patterns_without_slash_match_file_names_anywhere() {
        assert!(m("Dockerfile", "Dockerfile"));
        assert!(m("Dockerfile", "svc/api/Dockerfile"));
        assert!(!m("Dockerfile", "svc/Dockerfile.dev"));
        assert!(m("*.tf", "infra/main.tf"));
        assert!(m("**/Dockerfile", "svc/Dockerfile"));
    }

    #[test]
    fn normalisation_and_unicode() {
        assert!(m("**/auth/**", "./src/auth/login.rs"));
        assert!(m("**/auth/**", "/src/auth/login.rs"));
        assert!(m("**/auth/**", "src\\auth\\login.rs"));
        assert!(m("docs/?.md", "docs/é.md"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn adversarial_input_is_linear() {
        let path = "a/".repeat(5_000) + "b";
        let glob = Glob::new("**/*a*a*a*a*a*a*a*a*a*c/**");
        assert!(!glob.matches(&path));
    }

    #[test]
    fn arbitrary_patterns_and_paths_never_panic() {
        let alphabet: Vec<char> = "ab*?/.\\\u{e9}".chars().collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |len: u64| -> String {
            let n = (seed % len) as usize;
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect()
        };
        for _ in 0..5_000 {
            let (pattern, path) = (next(12), next(16));
            let _ = Glob::new(&pattern).matches(&normalize(&path));
        }
    }

    #[test]
    fn the_literal_filter_never_changes_an_answer() {
        // Paths built from the patterns' own pieces, so many nearly match.
        let patterns = [
            "**/migrations/**",
            "**/*.sql",
            "**/Dockerfile",
            ".github/workflows/**",
            "a?c/*.t*",
            "x**y",
            "é/**/ü*",
        ];
        let pieces = ["a", "b/", "migrations", "/", ".sql", "Dockerfile", ".github", "workflows", "é", "ü", "x", "y", "c"];
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let mut path = String::new();
            for _ in 0..(seed % 6) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                path.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            for p in patterns {
                let g = Glob::new(p);
                let subject = if g.basename {
                    path.rsplit('/').next().unwrap_or(&path)
                } else {
                    &path
                };
                assert_eq!(g.matches(&path), g.table_matches(subject), "{p} on {path}");
            }
        }
    }
}
