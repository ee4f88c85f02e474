//! The docs check of `cargo xtask test`: the README names the two commands, and every relative link
//! in `README.md` and `docs/*.md` points at a file (and, for a `#fragment` into Markdown, a heading)
//! that exists. `cargo doc` with `-D warnings` is the other half of the step (in `main.rs`).
//!
//! It exists because a commit once replaced the 152-line README with nothing and no check noticed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The commands a newcomer must find in the README: each entry is satisfied by any of its spellings.
pub const REQUIRED_COMMANDS: &[&[&str]] = &[&["cargo xtask run", "just run"], &["cargo xtask test", "just test"]];

/// What is wrong with the docs, each naming the file and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocsProblem {
    /// README.md is missing or empty.
    NoReadme,
    /// README.md does not name one of the two commands.
    MissingCommand { spellings: Vec<String> },
    /// A relative link whose file does not exist.
    BrokenLink { file: PathBuf, line: usize, target: String },
    /// A link to a heading that the target file does not have.
    BrokenAnchor { file: PathBuf, line: usize, target: String },
}

impl fmt::Display for DocsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoReadme => {
                f.write_str("README.md is missing or empty: it must say what Tabswarm is and give the two commands")
            }
            Self::MissingCommand { spellings } => {
                write!(f, "README.md does not give the command `{}`", spellings.join("` (or `"))?;
                if spellings.len() > 1 { f.write_str(")") } else { Ok(()) }
            }
            Self::BrokenLink { file, line, target } => {
                write!(f, "{}:{line}: link to `{target}`, which does not exist", file.display())
            }
            Self::BrokenAnchor { file, line, target } => {
                write!(f, "{}:{line}: link to `{target}`, whose file has no such heading", file.display())
            }
        }
    }
}

/// Checks `README.md` and `docs/*.md` under `root`; returns every problem found (empty: all good).
pub fn check(root: &Path) -> Result<Vec<DocsProblem>, std::io::Error> {
    let mut problems = Vec::new();
    let readme = root.join("README.md");
    let text = match std::fs::read_to_string(&readme) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    problems.extend(readme_commands(&text));
    let mut files = vec![PathBuf::from("README.md")];
    let docs = root.join("docs");
    if docs.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&docs)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "md"))
            .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
            .collect();
        found.sort();
        files.extend(found);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else { continue };
        problems.extend(broken_links(root, &file, &text));
    }
    Ok(problems)
}

/// The commands the README lacks (or [`DocsProblem::NoReadme`] when there is nothing to read).
pub fn readme_commands(text: &str) -> Vec<DocsProblem> {
    if text.trim().is_empty() {
        return vec![DocsProblem::NoReadme];
    }
    REQUIRED_COMMANDS
        .iter()
        .filter(|spellings| !spellings.iter().any(|s| text.contains(s)))
        .map(|spellings| DocsProblem::MissingCommand { spellings: spellings.iter().map(|s| s.to_string()).collect() })
        .collect()
}

/// Relative links of `text` (the file `file`, relative to `root`) that do not resolve.
pub fn broken_links(root: &Path, file: &Path, text: &str) -> Vec<DocsProblem> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for (line, target) in links(text) {
        if is_external(&target) {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() { file.to_path_buf() } else { normalise(&dir.join(path)) };
        let on_disk = root.join(&resolved);
        if !on_disk.exists() {
            problems.push(DocsProblem::BrokenLink { file: file.to_path_buf(), line, target: target.clone() });
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if on_disk.extension().is_some_and(|e| e == "md") {
            let heading_text = std::fs::read_to_string(&on_disk).unwrap_or_default();
            if !anchors(&heading_text).contains(fragment) {
                problems.push(DocsProblem::BrokenAnchor { file: file.to_path_buf(), line, target: target.clone() });
            }
        }
    }
    problems
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// `a/../b/./c` → `b/c`, without touching the disk.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `(line number, target)` of every inline Markdown link `[text](target)` outside code blocks and
/// code spans.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose = without_code_spans(line);
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let inside = after[..end].trim();
            // `[text](<path with spaces>)` and `[text](path "title")`.
            let target = match inside.strip_prefix('<') {
                Some(bracketed) => bracketed.split('>').next().unwrap_or(""),
                None => inside.split_whitespace().next().unwrap_or(""),
            };
            if !target.is_empty() {
                found.push((index + 1, target.to_owned()));
            }
            rest = &after[end..];
        }
    }
    found
}

fn without_code_spans(line: &str) -> String {
    line.split('`').enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, part)| part).collect::<Vec<_>>().join(" ")
}

/// The anchors GitHub makes of a Markdown file's headings: lower case, punctuation dropped except
/// `-` and `_`, spaces to `-`; a repeated heading gets `-1`, `-2`, ….
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c.to_lowercase().next().unwrap_or(c)),
                _ => None,
            })
            .collect();
        let mut unique = slug.clone();
        let mut n = 1;
        while seen.contains(&unique) {
            unique = format!("{slug}-{n}");
            n += 1;
        }
        seen.insert(unique);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_readme_fails_and_one_lacking_a_command_names_it() {
        assert_eq!(readme_commands(""), vec![DocsProblem::NoReadme]);
        assert_eq!(readme_commands("  \n\n"), vec![DocsProblem::NoReadme]);
        let only_run = readme_commands("# Tabswarm\n\n    just run\n");
        assert_eq!(
            only_run,
            vec![DocsProblem::MissingCommand { spellings: vec!["cargo xtask test".into(), "just test".into()] }]
        );
        assert_eq!(only_run[0].to_string(), "README.md does not give the command `cargo xtask test` (or `just test`)");
        assert!(readme_commands("cargo xtask run\ncargo xtask test\n").is_empty());
    }

    #[test]
    fn links_skip_code_and_keep_targets_and_lines() {
        let text = "See [a](docs/a.md) and [b](<b c.md> \"title\").\n```\n[no](x.md)\n```\n`[no](y.md)` [web](https://x.org)\n";
        assert_eq!(links(text), vec![(1, "docs/a.md".into()), (1, "b c.md".into()), (5, "https://x.org".into())]);
    }

    #[test]
    fn anchors_follow_github() {
        let text = "# Tabswarm architecture\n## Gossip (`protocol/src/wire.rs`)\n## Relay under load (gossip), 2026-11-26\n## Gossip (`protocol/src/wire.rs`)\n```\n# not a heading\n```\n#not\n";
        let found = anchors(text);
        assert!(found.contains("tabswarm-architecture"));
        assert!(found.contains("gossip-protocolsrcwirers"));
        assert!(found.contains("gossip-protocolsrcwirers-1"));
        assert!(found.contains("relay-under-load-gossip-2026-11-26"));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn broken_files_and_headings_are_named_with_their_line() {
        let root = std::env::temp_dir().join(format!("xtask-docs-{}", std::process::id()));
        std::fs::create_dir_all(root.join("docs")).expect("temp dir");
        std::fs::write(root.join("docs/a.md"), "# Alpha\n## Beta gamma\n").expect("write");
        std::fs::write(
            root.join("README.md"),
            "cargo xtask run\ncargo xtask test\n[ok](docs/a.md#beta-gamma) [self](#x)\n[gone](docs/b.md)\n[no heading](docs/a.md#delta)\n",
        )
        .expect("write");
        std::fs::write(root.join("docs/c.md"), "# X\n[up](../README.md) [sibling](a.md#alpha)\n").expect("write");
        let problems = check(&root).expect("check");
        std::fs::remove_dir_all(&root).expect("clean up");
        assert_eq!(
            problems,
            vec![
                DocsProblem::BrokenAnchor { file: "README.md".into(), line: 3, target: "#x".into() },
                DocsProblem::BrokenLink { file: "README.md".into(), line: 4, target: "docs/b.md".into() },
                DocsProblem::BrokenAnchor { file: "README.md".into(), line: 5, target: "docs/a.md#delta".into() },
            ]
        );
    }

    #[test]
    fn this_repository_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let problems = check(root).expect("check");
        assert!(problems.is_empty(), "{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
    }
}
