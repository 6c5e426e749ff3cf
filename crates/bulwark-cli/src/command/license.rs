//! `bulwark license keygen|issue|inspect`: the vendor's side of offline licenses, and a way for
//! anyone to read and check a license file; `bulwark license status|activate`: the host
//! operator's side, on a deployment's store.

use std::path::Path;

use base64::Engine as _;
use bulwark_crypto::Ed25519Signer;
use bulwark_license::{self as license, Claims, LicenseFile, Standing};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Exit, secret_file};

/// A signing key file (0600): the 32-byte Ed25519 seed, base64.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    alg: String,
    key_id: String,
    public_key: String,
    seed: String,
}

fn fail(code: Exit, message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    code
}

/// `keygen --out FILE`: a new signing key (never overwrites); prints its public key and id.
pub fn keygen(out: &Path) -> Exit {
    if let Err(e) = secret_file::refuse_existing(out) {
        return fail(e.exit(), e);
    }
    let seed = match bulwark_crypto::random_bytes::<32>() {
        Ok(s) => Zeroizing::new(s),
        Err(e) => return fail(Exit::Failure, e),
    };
    let signer = match Ed25519Signer::from_seed(&seed) {
        Ok(s) => s,
        Err(e) => return fail(Exit::Failure, e),
    };
    let public = signer.public_key();
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = KeyFile {
        alg: "Ed25519".into(),
        key_id: license::key_id(&public),
        public_key: b64.encode(public),
        seed: b64.encode(&seed[..]),
    };
    let text = match serde_json::to_string_pretty(&file) {
        Ok(t) => Zeroizing::new(t + "\n"),
        Err(e) => return fail(Exit::Failure, e),
    };
    if let Err(e) = secret_file::write_new(out, text.as_bytes()) {
        return fail(e.exit(), e);
    }
    println!("key id:     {}", file.key_id);
    println!("public key: {}", file.public_key);
    println!(
        "The private key is in {} (0600): keep it offline.",
        out.display()
    );
    Exit::Ok
}

fn load_key(path: &Path) -> Result<Ed25519Signer, Exit> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| fail(Exit::Config, format!("{}: {e}", path.display())))?,
    );
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| {
        fail(
            Exit::Config,
            format!("{}: not a license key file", path.display()),
        )
    })?;
    let seed = base64::engine::general_purpose::STANDARD
        .decode(&file.seed)
        .ok()
        .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| {
            fail(
                Exit::Config,
                format!("{}: the seed is not 32 bytes of base64", path.display()),
            )
        })?;
    Ed25519Signer::from_seed(&seed).map_err(|e| fail(Exit::Failure, e))
}

/// `issue --key KEY --in claims.json --out license.json`.
pub fn issue(key: &Path, input: &Path, out: &Path) -> Exit {
    if let Err(e) = secret_file::refuse_existing(out) {
        return fail(e.exit(), e);
    }
    let signer = match load_key(key) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let text = match std::fs::read(input) {
        Ok(t) => t,
        Err(e) => return fail(Exit::Config, format!("{}: {e}", input.display())),
    };
    let claims: Claims = match serde_json::from_slice(&text) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                Exit::Config,
                format!("{}: not license claims ({e})", input.display()),
            );
        }
    };
    let file = match license::issue(claims, &signer) {
        Ok(f) => f,
        Err(e) => return fail(Exit::Config, e),
    };
    let Ok(text) = serde_json::to_string_pretty(&file) else {
        return fail(Exit::Failure, "the license cannot be written");
    };
    match secret_file::write_new(out, format!("{text}\n").as_bytes()) {
        Ok(()) => {
            println!(
                "issued {} (serial {}) for {}, signed by {}",
                file.license.license_id,
                file.license.serial,
                file.license.licensee,
                file.signature.key_id
            );
            Exit::Ok
        }
        Err(e) => fail(e.exit(), e),
    }
}

/// `inspect FILE [--public-key B64]… [--config FILE]`: parses strictly, prints the claims,
/// checks the signature (exit 4 when it does not verify) and says where it stands today. The
/// keys are the given `--public-key`s, or else the ones `serve` trusts: the compiled-in vendor
/// keys and `license.extra_public_keys` of the configuration (file and environment).
pub fn inspect(path: &Path, keys: &[String], config: Option<&Path>) -> Exit {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => return fail(Exit::Config, format!("{}: {e}", path.display())),
    };
    let file: LicenseFile = match license::parse(&text) {
        Ok(f) => f,
        Err(e) => return fail(Exit::Invalid, e),
    };
    let (trusted, source) = match inspect_keys(keys, config) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let c = &file.license;
    println!("license:   {} (serial {})", c.license_id, c.serial);
    println!("licensee:  {}", c.licensee);
    println!(
        "valid:     {} → {} (+{} days grace)",
        c.not_before, c.expires_at, c.grace_days
    );
    println!(
        "limits:    orgs {}, seats {}",
        c.limits.orgs.map_or("unlimited".into(), |n| n.to_string()),
        c.limits.seats.map_or("unlimited".into(), |n| n.to_string())
    );
    println!("features:  {}", c.features.join(", "));
    if let Some(d) = &c.deployment {
        println!("for:       {d}");
    }
    println!("signed by: {}", file.signature.key_id);
    let standing = match c.standing(time::OffsetDateTime::now_utc()) {
        Standing::NotYetValid => "not yet valid".to_owned(),
        Standing::Valid => "valid".to_owned(),
        Standing::Grace(until) => format!("expired, in its grace period until {until}"),
        Standing::Expired => "expired (read-only)".to_owned(),
    };
    println!("today:     {standing}");
    match license::verify(&file, &trusted) {
        Ok(_) => {
            println!("signature: valid ({source})");
            Exit::Ok
        }
        Err(license::LicenseError::UnknownKey) => fail(
            Exit::Invalid,
            format!(
                "the license is signed by key `{}`, which `inspect` does not trust: it is not \
                 among {source}",
                file.signature.key_id
            ),
        ),
        Err(e) => fail(Exit::Invalid, e),
    }
}

/// The keys `inspect` checks against, and how to name them.
fn inspect_keys(
    keys: &[String],
    config: Option<&Path>,
) -> Result<(Vec<[u8; 32]>, &'static str), Exit> {
    if keys.is_empty() {
        let args = crate::StoreArgs {
            config: config.map(Path::to_owned),
            data_dir: None,
            database_url: None,
        };
        let config = crate::command::load_config(&args, None)?;
        let trusted =
            bulwark_server::startup::trusted_keys(&config).map_err(|e| fail(Exit::Config, e))?;
        return Ok((
            trusted,
            "the compiled-in vendor keys and `license.extra_public_keys`",
        ));
    }
    let mut trusted = Vec::new();
    for k in keys {
        match base64::engine::general_purpose::STANDARD
            .decode(k)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        {
            Some(key) => trusted.push(key),
            None => {
                return Err(fail(
                    Exit::Config,
                    "--public-key must be 32 bytes of base64",
                ));
            }
        }
    }
    Ok((trusted, "the keys given with --public-key"))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `license status`: this deployment's id, where it stands, the license in force, limits and
/// usage. Exit 4 when the stored activation does not verify (`serve` would refuse to start).
pub async fn status(args: crate::StoreArgs, format: crate::command::Format) -> Exit {
    let config = match crate::command::load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, licensing, problem) =
        match bulwark_server::startup::open_licensing_for_tools(&config).await {
            Ok(v) => v,
            Err(e) => return crate::command::start_failed(&e),
        };
    let clock = bulwark_types::SystemClock;
    let status = match licensing.status(&*store, &clock).await {
        Ok(s) => s,
        Err(e) => return fail(Exit::Failure, e),
    };
    let license = status.license.as_ref().map(|l| {
        serde_json::json!({
            "license_id": l.claims.license_id,
            "licensee": l.claims.licensee,
            "serial": l.claims.serial,
            "key_id": l.key_id,
            "expires_at": rfc3339(l.claims.expires_at),
            "grace_days": l.claims.grace_days,
            "features": l.claims.features,
            "activated_at": rfc3339(l.activated_at),
        })
    });
    match format {
        crate::command::Format::Json => {
            let doc = serde_json::json!({
                "deployment_id": status.deployment_id,
                "deployment_public_key": status.deployment_public_key,
                "state": status.state.as_str(),
                "judged_at": rfc3339(status.judged_at),
                "license": license,
                "usage": {
                    "orgs": status.usage.orgs, "orgs_limit": status.limits.orgs,
                    "seats": status.usage.seats, "seats_limit": status.limits.seats,
                },
                "problem": problem,
            });
            println!("{doc}");
        }
        crate::command::Format::Text => {
            let limit = |l: Option<u32>| l.map_or_else(|| "unlimited".into(), |n| n.to_string());
            println!("deployment id: {}", status.deployment_id);
            println!("state:         {}", status.state.as_str());
            if let Some(l) = &status.license {
                println!(
                    "license:       {} serial {} for {}",
                    l.claims.license_id, l.claims.serial, l.claims.licensee
                );
                println!(
                    "expires:       {} (+{} days grace)",
                    rfc3339(l.claims.expires_at),
                    l.claims.grace_days
                );
                println!("features:      {}", l.claims.features.join(", "));
            }
            println!(
                "orgs:          {} of {}",
                status.usage.orgs,
                limit(status.limits.orgs)
            );
            println!(
                "seats:         {} of {}",
                status.usage.seats,
                limit(status.limits.seats)
            );
        }
    }
    match problem {
        Some(p) => fail(
            Exit::Invalid,
            format!("{p}; `bulwark serve` will refuse to start"),
        ),
        None => Exit::Ok,
    }
}

/// `license activate FILE`: activates a license file on this deployment (the server may be
/// running; it picks the activation up within a minute). Exit 4 when refused.
pub async fn activate(args: crate::StoreArgs, file: &Path) -> Exit {
    let config = match crate::command::load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) => return fail(Exit::Config, format!("{}: {e}", file.display())),
    };
    let (store, licensing, _) =
        match bulwark_server::startup::open_licensing_for_tools(&config).await {
            Ok(v) => v,
            Err(e) => return crate::command::start_failed(&e),
        };
    let context =
        bulwark_audit::event::Context::system(Some("bulwark license activate (host operator)"));
    match licensing
        .activate(&*store, &bulwark_types::SystemClock, &text, context)
        .await
    {
        Ok(l) => {
            println!(
                "activated {} serial {} for {} on {}; valid until {}",
                l.claims.license_id,
                l.claims.serial,
                l.claims.licensee,
                licensing.deployment().id(),
                rfc3339(l.claims.expires_at)
            );
            Exit::Ok
        }
        Err(bulwark_core::CoreError::LicenseRefused { code, message }) => fail(
            Exit::Invalid,
            format!("{message} ({code}); nothing changed"),
        ),
        Err(e) => fail(Exit::Failure, e),
    }
}

/// `license clock-reset`: sets the license clock's latest time seen back to the system clock's
/// time and lifts the floor of earlier activations, after the clock ran ahead. Audited.
pub async fn clock_reset(args: crate::StoreArgs) -> Exit {
    let config = match crate::command::load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, licensing, _) =
        match bulwark_server::startup::open_licensing_for_tools(&config).await {
            Ok(v) => v,
            Err(e) => return crate::command::start_failed(&e),
        };
    let context =
        bulwark_audit::event::Context::system(Some("bulwark license clock-reset (host operator)"));
    match licensing
        .reset_clock(&*store, &bulwark_types::SystemClock, context)
        .await
    {
        Ok((from, to)) => {
            println!(
                "latest time seen: {} -> {} (running servers take it within a minute)",
                rfc3339(from),
                rfc3339(to)
            );
            Exit::Ok
        }
        Err(e) => fail(Exit::Failure, e),
    }
}
