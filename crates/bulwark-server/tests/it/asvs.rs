//! `security/asvs.toml` names real requirements and real tests, and has an entry for every
//! Level 1 and Level 2 requirement; the coverage by level and chapter is printed.

use std::path::Path;

pub(crate) fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The repository's root, `security/asvs.toml` and the ASVS list.
fn map_and_list() -> (std::path::PathBuf, toml::Table, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map: toml::Table = std::fs::read_to_string(root.join("security/asvs.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("security/asvs-5.0.0.flat.json")).unwrap(),
    )
    .unwrap();
    (root, map, list)
}

#[test]
fn asvs_map_names_real_tests() {
    let (root, map, list) = map_and_list();
    let reqs = list
        .get("requirements")
        .unwrap_or(&list)
        .as_array()
        .unwrap();
    let ids: Vec<&str> = reqs.iter().filter_map(|r| r["req_id"].as_str()).collect();
    let mut sources = String::new();
    rust_sources(&root.join("crates"), &mut sources);
    assert!(!map.is_empty());
    for (id, entry) in &map {
        let known =
            ids.contains(&id.as_str()) || ids.iter().any(|i| i.starts_with(&format!("{id}.")));
        assert!(known, "{id} is not an ASVS 5.0 requirement or chapter");
        let kinds = ["tests", "na", "gap"]
            .iter()
            .filter(|k| entry.get(**k).is_some())
            .count();
        assert_eq!(kinds, 1, "{id}: exactly one of tests, na or gap");
        for key in ["na", "gap"] {
            if let Some(reason) = entry.get(key) {
                assert!(
                    !reason.as_str().unwrap().trim().is_empty(),
                    "{id}: {key} needs a reason"
                );
            }
        }
        if entry.get("tests").is_none() {
            continue;
        }
        let tests = entry["tests"]
            .as_array()
            .unwrap_or_else(|| panic!("{id}: tests or na"));
        assert!(!tests.is_empty(), "{id}: no tests");
        for t in tests {
            let name = t.as_str().unwrap().rsplit([':', ' ']).next().unwrap();
            let declared = sources.contains(&format!("fn {name}("))
                || sources.contains(&format!("    {name},"));
            assert!(declared, "{id}: test `{name}` does not exist");
        }
    }
}

/// Every Level 1 and 2 requirement has an entry; prints tests / n/a / gap by level and chapter.
#[test]
fn asvs_coverage_by_level_and_chapter() {
    let (_, map, list) = map_and_list();
    // (level, chapter) → [tests, na, gap, unmapped]
    let mut table: std::collections::BTreeMap<(String, u32, String), [usize; 4]> =
        std::collections::BTreeMap::new();
    let mut unmapped = Vec::new();
    for r in list["requirements"].as_array().unwrap() {
        let id = r["req_id"].as_str().unwrap();
        let level = r["L"].as_str().unwrap().to_owned();
        let chapter = r["chapter_id"].as_str().unwrap();
        let number: u32 = chapter.trim_start_matches('V').parse().unwrap();
        let row = table
            .entry((level.clone(), number, chapter.to_owned()))
            .or_default();
        let slot = match map.get(id) {
            Some(e) if e.get("tests").is_some() => 0,
            Some(e) if e.get("na").is_some() => 1,
            Some(_) => 2,
            None => 3,
        };
        row[slot] += 1;
        if slot == 3 && level != "3" {
            unmapped.push(id.to_owned());
        }
    }
    println!("level chapter  tests  n/a  gap  unmapped");
    let mut totals: std::collections::BTreeMap<String, [usize; 4]> = Default::default();
    for ((level, _, chapter), row) in &table {
        println!(
            "L{level}    {chapter:<7} {:>5} {:>4} {:>4} {:>9}",
            row[0], row[1], row[2], row[3]
        );
        let t = totals.entry(level.clone()).or_default();
        for (sum, n) in t.iter_mut().zip(row) {
            *sum += n;
        }
    }
    for (level, t) in &totals {
        println!(
            "L{level} total: {} tested, {} n/a, {} gaps, {} unmapped",
            t[0], t[1], t[2], t[3]
        );
    }
    assert!(
        unmapped.is_empty(),
        "Level 1/2 requirements without an entry in security/asvs.toml: {unmapped:?}"
    );
}
