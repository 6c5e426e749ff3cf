//! `security/asvs.toml` names real requirements and real tests.

use std::path::Path;

fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn asvs_map_names_real_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map: toml::Table = std::fs::read_to_string(root.join("security/asvs.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("security/asvs-5.0.0.flat.json")).unwrap(),
    )
    .unwrap();
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
        if let Some(na) = entry.get("na") {
            assert!(!na.as_str().unwrap().is_empty(), "{id}: n/a needs a reason");
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
