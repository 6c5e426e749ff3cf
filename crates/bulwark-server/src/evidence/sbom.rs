//! A CycloneDX 1.5 SBOM of the `bulwark` binary's dependencies, from the `Cargo.lock` it was
//! built with: every package reachable from `bulwark-cli`, with its version, package URL and
//! the registry's SHA-256, and the dependency graph. `Cargo.lock` does not say which edges are
//! test-only or for other platforms, so the list errs on the side of more (it includes those):
//! a scanner matching advisories sees every crate that could be in the binary.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Lock {
    package: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

const ROOT: &str = "bulwark-cli";

/// The SBOM as JSON bytes, and how many components it lists.
///
/// # Errors
/// A `Cargo.lock` that does not parse or does not hold `bulwark-cli`.
pub fn cyclonedx(lock: &str, timestamp: &str) -> Result<(Vec<u8>, usize), String> {
    let lock: Lock = toml::from_str(lock).map_err(|e| format!("Cargo.lock: {e}"))?;
    let by_name: BTreeMap<&str, Vec<&Package>> =
        lock.package.iter().fold(BTreeMap::new(), |mut m, p| {
            m.entry(p.name.as_str()).or_insert_with(Vec::new).push(p);
            m
        });
    // A dependency is written `name`, `name version` or `name version (source)`.
    let resolve = |dep: &str| -> Option<&Package> {
        let mut parts = dep.split(' ');
        let name = parts.next()?;
        let version = parts.next();
        let candidates = by_name.get(name)?;
        match version {
            Some(v) => candidates.iter().copied().find(|p| p.version == v),
            None => candidates.first().copied(),
        }
    };
    let reference = |p: &Package| format!("{}@{}", p.name, p.version);
    let root = by_name
        .get(ROOT)
        .and_then(|c| c.first().copied())
        .ok_or("Cargo.lock holds no bulwark-cli")?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut order: Vec<&Package> = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if !seen.insert(reference(p)) {
            continue;
        }
        order.push(p);
        stack.extend(p.dependencies.iter().filter_map(|d| resolve(d)));
    }
    order.sort_by_key(|p| reference(p));
    let components: Vec<Value> = order
        .iter()
        .filter(|p| p.name != ROOT)
        .map(|p| {
            let mut c = json!({
                "type": if p.source.is_some() { "library" } else { "application" },
                "bom-ref": reference(p),
                "name": p.name,
                "version": p.version,
            });
            if let Value::Object(map) = &mut c {
                if p.source.as_deref().is_some_and(|s| s.contains("crates.io")) {
                    map.insert(
                        "purl".into(),
                        json!(format!("pkg:cargo/{}@{}", p.name, p.version)),
                    );
                }
                if let Some(sum) = &p.checksum {
                    map.insert("hashes".into(), json!([{"alg": "SHA-256", "content": sum}]));
                }
            }
            c
        })
        .collect();
    let dependencies: Vec<Value> = order
        .iter()
        .map(|p| {
            let on: BTreeSet<String> = p
                .dependencies
                .iter()
                .filter_map(|d| resolve(d))
                .map(reference)
                .collect();
            json!({"ref": reference(p), "dependsOn": on})
        })
        .collect();
    let count = components.len();
    let lock_sha = bulwark_crypto::to_hex(&bulwark_crypto::sha256(super::CARGO_LOCK.as_bytes()));
    let bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "bulwark evidence export", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "application",
                "bom-ref": reference(root),
                "name": "bulwark",
                "version": root.version,
            },
            "properties": [
                {"name": "bulwark:cargo_lock_sha256", "value": lock_sha},
                {"name": "bulwark:scope", "value": "every package Cargo.lock reaches from bulwark-cli (test-only and other-platform crates included)"},
            ],
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut bytes = serde_json::to_vec_pretty(&bom).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok((bytes, count))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sbom_lists_the_binarys_locked_dependencies_with_their_checksums() {
        let (bytes, count) =
            super::cyclonedx(super::super::CARGO_LOCK, "2026-01-01T00:00:00Z").unwrap();
        let bom: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["specVersion"], "1.5");
        let components = bom["components"].as_array().unwrap();
        assert_eq!(components.len(), count);
        let find = |name: &str| components.iter().find(|c| c["name"] == name);
        // Crates the binary certainly links, with the registry's checksum and a package URL.
        for name in ["axum", "aws-lc-rs", "sqlx-core", "tokio", "bulwark-server"] {
            let c = find(name).unwrap_or_else(|| panic!("{name} is listed"));
            if name != "bulwark-server" {
                assert!(
                    c["purl"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("pkg:cargo/{name}@"))
                );
                assert_eq!(c["hashes"][0]["alg"], "SHA-256");
                assert_eq!(c["hashes"][0]["content"].as_str().unwrap().len(), 64);
            }
        }
        // The graph names only listed components.
        let refs: std::collections::BTreeSet<&str> = components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .chain([bom["metadata"]["component"]["bom-ref"].as_str().unwrap()])
            .collect();
        for d in bom["dependencies"].as_array().unwrap() {
            assert!(refs.contains(d["ref"].as_str().unwrap()));
            for on in d["dependsOn"].as_array().unwrap() {
                assert!(refs.contains(on.as_str().unwrap()), "{on}");
            }
        }
    }
}
