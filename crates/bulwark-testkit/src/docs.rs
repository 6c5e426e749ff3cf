//! The fenced blocks of `README.md` and `docs/`, for the tests that hold the docs to the code:
//! a documented command is a tested command. Each binary's crate checks the synopses that run
//! its binary with [`check_synopses`] (`bulwark` in bulwark-cli, `bulwark-bench` in
//! bulwark-bench), against the `--help` of the binary it has just built.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A fenced block of a doc.
#[derive(Debug, Clone)]
pub struct Block {
    /// Path from the repository root.
    pub file: String,
    /// Line of the doc where its text starts.
    pub line: usize,
    /// The first word of the info string (`sh`, `text`, or empty).
    pub info: String,
    /// Its lines, without the fences.
    pub text: String,
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `README.md` and every `*.md` under `docs/` (the directory is walked, never listed).
pub fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(repo().join(&dir)).unwrap() {
            let path = dir.join(entry.unwrap().file_name());
            if repo().join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path.to_str().unwrap().to_owned());
            }
        }
    }
    files.sort();
    files
}

/// Every fenced block of [`doc_files`].
pub fn blocks() -> Vec<Block> {
    doc_files()
        .into_iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(repo().join(&file)).unwrap();
            blocks_of(&file, &text)
        })
        .collect()
}

/// The fenced blocks of `text`, the content of `file`.
pub fn blocks_of(file: &str, text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let (mut open, mut indent): (Option<Block>, usize) = (None, 0);
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                indent = line.len() - line.trim_start().len();
                open = Some(Block {
                    file: file.to_owned(),
                    line: i + 2,
                    info: info.split_whitespace().next().unwrap_or("").to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), Some(_)) => found.extend(open.take()),
            (Some(block), None) => {
                // A block in a list item is indented like its fence.
                let margin = line.len() - line.trim_start().len();
                block
                    .text
                    .push_str(line.get(margin.min(indent)..).unwrap_or_default());
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is never closed");
    found
}

/// Every line of a non-`sh` block that runs `program` (by that name, or a path ending in
/// `/program`; after `\` continuations) names subcommands and flags the `--help` of `bin` shows
/// for them; panics naming every line that does not. Returns the docs that had such a line.
pub fn check_synopses(program: &str, bin: &Path) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut helps: HashMap<Vec<String>, String> = HashMap::new();
    let mut help = |path: &[String]| {
        helps
            .entry(path.to_vec())
            .or_insert_with(|| {
                let mut cmd = std::process::Command::new(bin);
                cmd.args(path).arg("--help").current_dir(dir.path());
                // What the help shows is the binary's, not the test environment's.
                for (key, _) in std::env::vars_os() {
                    if key.to_string_lossy().starts_with("BULWARK_") {
                        cmd.env_remove(key);
                    }
                }
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "{program} {} --help: {}\n{}",
                    path.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
            .clone()
    };
    let suffix = format!("/{program}");
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for block in blocks().iter().filter(|b| b.info != "sh") {
        let joined = block.text.replace("\\\n", " ");
        for line in joined.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            if first != program && !first.ends_with(&suffix) {
                continue;
            }
            let words: Vec<&str> = words.collect();
            let mut path: Vec<String> = Vec::new();
            let mut text = help(path.as_slice());
            for word in &words {
                if !subcommands(&text).iter().any(|s| s == word) {
                    break;
                }
                path.push((*word).to_owned());
                text = help(path.as_slice());
            }
            if path.is_empty() || !subcommands(&text).is_empty() {
                problems.push(format!(
                    "{}: `{line}` names no command of `{program}`",
                    block.file
                ));
            }
            let known = flags(&text);
            for word in words.iter().flat_map(|w| w.split('|')) {
                let flag = word.trim_start_matches('[').trim_end_matches(']');
                let flag = flag.split('=').next().unwrap_or_default();
                if flag.starts_with("--") && !known.contains(flag) {
                    let command = path.join(" ");
                    problems.push(format!(
                        "{}: `{line}`: `{program} {command} --help` has no `{flag}`",
                        block.file
                    ));
                }
            }
            checked.insert(block.file.clone());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    checked
}

/// The names under `Commands:` of a `--help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `--flag` a `--help` mentions.
fn flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--"))
        .map(|w| {
            w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .to_owned()
        })
        .collect()
}
