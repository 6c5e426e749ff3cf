//! The deployment's security page (`bulwark evidence export`): every claim of
//! `security/controls.toml` with the live checks of `bulwark doctor` that test it here, the
//! tests that verify the control (`security/asvs.toml`), and the build's provenance (version,
//! commit, `Cargo.lock` SHA-256, a CycloneDX SBOM), in Markdown and HTML, with a manifest of
//! every file's SHA-256 signed by the deployment key (`bulwark evidence verify`). A claim with
//! neither a check nor a test is not printed. `docs/security.md` is the same page without a
//! deployment (`project_page`).

mod render;
pub mod sbom;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::doctor::Report;

/// The claims, built in.
pub const CONTROLS: &str = include_str!("../../../../security/controls.toml");
/// The ASVS map, built in.
pub const ASVS: &str = include_str!("../../../../security/asvs.toml");
/// `Cargo.lock` of this build.
pub const CARGO_LOCK: &str = include_str!("../../../../Cargo.lock");

const SIGNING_CONTEXT: &[u8] = b"bulwark-evidence-manifest/v1\n";
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";

/// One claim of the page.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Stable id (the `control` a doctor check names).
    pub id: String,
    /// Identity, Sessions, Authorization, Tenant isolation, Audit, Vault, Webhooks, Licensing,
    /// Operations.
    pub section: String,
    /// What is claimed.
    pub claim: String,
    /// The doctor checks that test it on a deployment.
    #[serde(default)]
    pub checks: Vec<String>,
    /// ASVS 5.0 requirements whose tests verify it.
    #[serde(default)]
    pub asvs: Vec<String>,
    /// Further tests that verify it.
    #[serde(default)]
    pub tests: Vec<String>,
    /// SOC 2 Trust Services Criteria.
    #[serde(default)]
    pub soc2: Vec<String>,
    /// ISO/IEC 27001:2022 Annex A controls.
    #[serde(default)]
    pub iso27001: Vec<String>,
}

#[derive(Deserialize)]
struct Controls {
    claim: Vec<Claim>,
}

/// The sections, in page order.
pub const SECTIONS: &[&str] = &[
    "Identity",
    "Sessions",
    "Authorization",
    "Tenant isolation",
    "Audit",
    "Vault",
    "Webhooks",
    "Licensing",
    "Operations",
];

/// The built-in claims.
///
/// # Errors
/// When `security/controls.toml` does not parse (a build defect; a test catches it).
pub fn claims() -> Result<Vec<Claim>, String> {
    toml::from_str::<Controls>(CONTROLS)
        .map(|c| c.claim)
        .map_err(|e| format!("security/controls.toml: {e}"))
}

/// The tests that verify `claim`: those of its ASVS requirements, then its own, each once.
#[must_use]
pub fn tests_of(claim: &Claim) -> Vec<String> {
    let asvs: toml::Table = ASVS.parse().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    let from_asvs = claim.asvs.iter().flat_map(|id| {
        asvs.get(id)
            .and_then(|e| e.get("tests"))
            .and_then(toml::Value::as_array)
            .map(|tests| {
                tests
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    for t in from_asvs.chain(claim.tests.iter().cloned()) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// What built this binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// The version.
    pub version: String,
    /// The git commit it was built from (`unknown` outside a checkout).
    pub commit: String,
    /// SHA-256 of the `Cargo.lock` it was built with.
    pub cargo_lock_sha256: String,
    /// SHA-256 of `sbom.cdx.json`.
    pub sbom_sha256: String,
    /// Components in the SBOM.
    pub sbom_components: usize,
}

/// This build's provenance, with the SBOM it names.
#[must_use]
pub fn provenance(sbom: &[u8], components: usize) -> Provenance {
    Provenance {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: option_env!("BULWARK_COMMIT").unwrap_or("unknown").into(),
        cargo_lock_sha256: bulwark_crypto::to_hex(&bulwark_crypto::sha256(CARGO_LOCK.as_bytes())),
        sbom_sha256: bulwark_crypto::to_hex(&bulwark_crypto::sha256(sbom)),
        sbom_components: components,
    }
}

/// The project's own page (docs/security.md): the claims, their checks and tests, no
/// deployment.
///
/// # Errors
/// As [`claims`].
pub fn project_page() -> Result<String, String> {
    Ok(render::markdown(&claims()?, None, None))
}

/// One file of the page and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Its name in the directory.
    pub name: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub bulwark_evidence: u32,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The deployment (`dep_…`) whose key signs `manifest.json`.
    pub deployment: String,
    /// The deployment key (standard base64).
    pub deployment_key: String,
    /// Every other file.
    pub files: Vec<FileSum>,
}

/// Writes the page into `out` (created; it must not exist or be empty): `index.html`,
/// `security.md`, `doctor.json`, `provenance.json`, `sbom.cdx.json`, `manifest.json` and
/// `manifest.sig`. Returns the manifest.
///
/// # Errors
/// An `out` that holds files, I/O failures, a malformed built-in mapping.
pub fn export(
    out: &Path,
    report: &Report,
    signer: &bulwark_core::licensing::Deployment,
) -> Result<Manifest, String> {
    let claims = claims()?;
    let (sbom, components) = sbom::cyclonedx(CARGO_LOCK, &report.checked_at)?;
    let prov = provenance(&sbom, components);
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "index.html",
            render::html(&claims, Some(report), Some(&prov)).into_bytes(),
        ),
        (
            "security.md",
            render::markdown(&claims, Some(report), Some(&prov)).into_bytes(),
        ),
        ("doctor.json", pretty(report)),
        ("provenance.json", pretty(&prov)),
        ("sbom.cdx.json", sbom),
    ];
    prepare_dir(out)?;
    let mut sums = Vec::new();
    for (name, data) in &files {
        write_new(&out.join(name), data)?;
        sums.push(FileSum {
            name: (*name).to_owned(),
            sha256: bulwark_crypto::to_hex(&bulwark_crypto::sha256(data)),
            size: data.len() as u64,
        });
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(signer.public_key())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or("the deployment key is malformed")?;
    let manifest = Manifest {
        bulwark_evidence: 1,
        created: report.checked_at.clone(),
        deployment: bulwark_core::backup::archive::deployment_id(&key),
        deployment_key: signer.public_key(),
        files: sums,
    };
    let bytes = pretty(&manifest);
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(&bytes);
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&signed));
    write_new(&out.join(MANIFEST), &bytes)?;
    write_new(&out.join(SIGNATURE), format!("{sig}\n").as_bytes())?;
    Ok(manifest)
}

/// A value as pretty JSON with a final newline (the page's JSON files).
fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_default();
    v.push(b'\n');
    v
}

fn prepare_dir(out: &Path) -> Result<(), String> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "`{}` is not empty: export into a new directory",
                    out.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create `{}`: {e}", out.display())),
        Err(e) => Err(format!("cannot read `{}`: {e}", out.display())),
    }
}

fn write_new(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// What [`verify`] established.
#[derive(Debug)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
}

/// Checks an exported page offline: every listed file present with its digest, nothing else in
/// the directory, the manifest signed by the key of the deployment it names (and, when given,
/// that this is `deployment`).
///
/// # Errors
/// Whether `name` is a plain file name: not empty, no path separator, not `.` or `..`.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// What does not hold, by name.
pub fn verify(dir: &Path, deployment: Option<&str>) -> Result<Verified, String> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| format!("cannot read `{name}`: {e}"))
    };
    let bytes = read(MANIFEST)?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("{MANIFEST}: {e}"))?;
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&manifest.deployment_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the manifest's deployment key is malformed")?;
    if bulwark_core::backup::archive::deployment_id(&key) != manifest.deployment {
        return Err(format!(
            "the manifest's key is not deployment {}'s",
            manifest.deployment
        ));
    }
    if let Some(want) = deployment
        && want != manifest.deployment
    {
        return Err(format!(
            "signed by deployment {}, not {want}",
            manifest.deployment
        ));
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&read(SIGNATURE)?).trim())
        .map_err(|_| format!("{SIGNATURE} is not base64"))?;
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(&bytes);
    if !bulwark_crypto::verify_ed25519(&key, &signed, &sig) {
        return Err(format!(
            "the manifest's signature does not verify with deployment {}'s key (the manifest was changed)",
            manifest.deployment
        ));
    }
    let mut listed: BTreeMap<&str, &FileSum> = BTreeMap::new();
    for f in &manifest.files {
        // A manifest names files of this directory only: never a path out of it, even under a
        // valid signature (whoever holds a deployment key signs what they like).
        if !plain_file_name(&f.name) {
            return Err(format!("`{}` is not a file name of this directory", f.name));
        }
        listed.insert(f.name.as_str(), f);
        let data = read(&f.name).map_err(|_| format!("`{}` is missing (removed)", f.name))?;
        let sha = bulwark_crypto::to_hex(&bulwark_crypto::sha256(&data));
        if sha != f.sha256 || data.len() as u64 != f.size {
            return Err(format!("`{}` differs from the manifest (changed)", f.name));
        }
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && name != SIGNATURE && !listed.contains_key(name.as_str()) {
            return Err(format!("`{name}` is not in the manifest (added)"));
        }
    }
    Ok(Verified { manifest })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use zeroize::Zeroizing;

    use super::{FileSum, MANIFEST, Manifest, SIGNATURE, SIGNING_CONTEXT, verify};

    /// A manifest validly signed by some deployment's key that names a file outside the
    /// directory is refused before anything is read there.
    #[test]
    fn a_signed_manifest_cannot_name_a_path_out_of_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("page");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.path().join("outside"), b"x").unwrap();
        let signer = bulwark_crypto::Ed25519Signer::from_seed(&Zeroizing::new([7u8; 32])).unwrap();
        let key = signer.public_key();
        for name in ["../outside", "/etc/hostname", "..", "a\\b", ""] {
            let manifest = Manifest {
                bulwark_evidence: 1,
                created: "2026-12-07T00:00:00Z".into(),
                deployment: bulwark_core::backup::archive::deployment_id(&key),
                deployment_key: base64::engine::general_purpose::STANDARD.encode(key),
                files: vec![FileSum {
                    name: name.into(),
                    sha256: bulwark_crypto::to_hex(&bulwark_crypto::sha256(b"x")),
                    size: 1,
                }],
            };
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let mut signed = SIGNING_CONTEXT.to_vec();
            signed.extend_from_slice(&bytes);
            std::fs::write(dir.join(MANIFEST), &bytes).unwrap();
            let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&signed));
            std::fs::write(dir.join(SIGNATURE), sig).unwrap();
            let err = verify(&dir, None).unwrap_err();
            assert!(
                err.contains("is not a file name of this directory"),
                "{name}: {err}"
            );
        }
    }
}
