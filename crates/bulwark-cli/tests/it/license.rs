//! `bulwark license keygen|issue|inspect`: a key is made once (0600, never overwritten), claims
//! are signed into a license file, `inspect` verifies it with the public key and refuses (exit 4)
//! a tampered file, a file with a duplicate key, and a license signed by another key.

use crate::harness::{mode, path_str, run};

#[test]
fn keygen_issue_and_inspect_a_license() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(mode(&key), 0o600);
    let public = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_owned();
    let again = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(again.code, Some(2), "never overwrites a key:\n{again}");
    let seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let seed = seed["seed"].as_str().unwrap().to_owned();
    assert!(
        !out.all_output().contains(&seed),
        "the private key is not printed"
    );

    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        r#"{"format": 1, "license_id": "lic_acme", "licensee": "Acme Corp", "serial": 1,
            "issued_at": "2026-12-01T00:00:00Z", "not_before": "2026-12-01T00:00:00Z",
            "expires_at": "2099-12-01T00:00:00Z", "grace_days": 14,
            "limits": {"orgs": 5, "seats": 200}, "features": ["sso"]}"#,
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = run(
        cwd,
        &[
            "license",
            "issue",
            "--key",
            path_str(&key),
            "--in",
            path_str(&claims),
            "--out",
            path_str(&license),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let inspect = |file: &std::path::Path, key: &str| {
        run(
            cwd,
            &["license", "inspect", path_str(file), "--public-key", key],
        )
    };
    let ok = inspect(&license, &public);
    assert_eq!(ok.code, Some(0), "{ok}");
    assert!(
        ok.stdout.contains("signature: valid") && ok.stdout.contains("today:     valid"),
        "{ok}"
    );

    let text = std::fs::read_to_string(&license).unwrap();
    let write = |name: &str, body: String| {
        let p = cwd.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let tampered = write(
        "tampered.json",
        text.replace("\"seats\": 200", "\"seats\": 20000"),
    );
    let out = inspect(&tampered, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("does not match"), "{out}");
    let duplicate = write(
        "duplicate.json",
        text.replacen(
            "\"licensee\":",
            "\"licensee\": \"Evil Corp\",\n    \"licensee\":",
            1,
        ),
    );
    let out = inspect(&duplicate, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("appears twice"), "{out}");
    // Signed by another key: refused with that key's id unknown.
    let other = cwd.join("other.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&other)]);
    assert_eq!(out.code, Some(0));
    let foreign = cwd.join("foreign.json");
    let out = run(
        cwd,
        &[
            "license",
            "issue",
            "--key",
            path_str(&other),
            "--in",
            path_str(&claims),
            "--out",
            path_str(&foreign),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = inspect(&foreign, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("does not trust"), "{out}");
    // Claims that break a rule are not signed.
    let bad = write(
        "bad-claims.json",
        std::fs::read_to_string(&claims)
            .unwrap()
            .replace("\"grace_days\": 14", "\"grace_days\": 400"),
    );
    let out = run(
        cwd,
        &[
            "license",
            "issue",
            "--key",
            path_str(&key),
            "--in",
            path_str(&bad),
            "--out",
            path_str(&cwd.join("x.json")),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
}
