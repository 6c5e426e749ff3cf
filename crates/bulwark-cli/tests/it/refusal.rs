//! Fail closed: an unsafe data dir or seed stops `serve` with exit code 3, a message naming the
//! problem, no `listening` line, and the seed file left exactly as it was.

use std::path::Path;

use crate::harness::{Finished, chmod, initialised_data_dir, path_str, serve_expecting_exit};

/// Exit 3, never listened, and stderr has every one of `needles`.
fn assert_refused(out: &Finished, needles: &[&str]) {
    assert_eq!(out.code, Some(3), "refused to start (exit 3):\n{out}");
    assert!(!out.logged("listening"), "never listened:\n{out}");
    for n in needles {
        assert!(out.stderr.contains(n), "stderr names `{n}`:\n{out}");
    }
}

fn seed_of(data: &Path) -> std::path::PathBuf {
    data.join("seed")
}

#[test]
fn a_missing_seed_next_to_existing_data_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "data");
    let seed = seed_of(&data);
    std::fs::remove_file(&seed).unwrap();

    let out = serve_expecting_exit(cwd.path(), &data, &[]);
    assert_refused(&out, &["seed", path_str(&seed), "missing"]);
    assert!(!seed.exists(), "a missing seed is not regenerated");

    // Still refused the second time: nothing was written in between.
    let again = serve_expecting_exit(cwd.path(), &data, &[]);
    assert_refused(&again, &["seed", "missing"]);
    assert!(!seed.exists());
}

#[test]
fn a_corrupt_seed_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "data");
    let seed = seed_of(&data);
    let original = std::fs::read(&seed).unwrap();
    let corruptions: [(&str, Vec<u8>); 4] = [
        ("truncated", original[..40].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"this is not a bulwark seed at all\n".to_vec()),
        (
            "bad hex",
            [&original[..16], &[b'z'; 64][..], b"\n"].concat(),
        ),
    ];
    for (what, content) in corruptions {
        // Rewriting in place keeps the 0600 mode, so only the content is wrong.
        std::fs::write(&seed, &content).unwrap();
        let out = serve_expecting_exit(cwd.path(), &data, &[]);
        assert_refused(&out, &["seed", path_str(&seed), "corrupt"]);
        assert_eq!(
            std::fs::read(&seed).unwrap(),
            content,
            "{what}: a corrupt seed is left as it is, never regenerated"
        );
    }
    // With the original content back, the deployment starts again.
    std::fs::write(&seed, &original).unwrap();
    let server = crate::harness::serve_on(cwd.path(), &data, &[]);
    assert_eq!(server.terminate().code, Some(0));
}

#[test]
fn a_seed_readable_by_others_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "data");
    let seed = seed_of(&data);
    let original = std::fs::read(&seed).unwrap();
    for bits in [0o644, 0o640, 0o604] {
        chmod(&seed, bits);
        let out = serve_expecting_exit(cwd.path(), &data, &[]);
        let fix = format!("chmod 600 {}", seed.display());
        assert_refused(&out, &["seed", path_str(&seed), &fix]);
        assert_eq!(std::fs::read(&seed).unwrap(), original, "content unchanged");
        assert_eq!(
            crate::harness::mode(&seed),
            bits,
            "mode not changed behind our back"
        );
    }
}

#[test]
fn a_world_readable_data_dir_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "data");
    let seed = seed_of(&data);
    let original = std::fs::read(&seed).unwrap();
    chmod(&data, 0o755);
    let out = serve_expecting_exit(cwd.path(), &data, &[]);
    let fix = format!("chmod 700 {}", data.display());
    assert_refused(&out, &["data directory", &fix]);
    assert_eq!(std::fs::read(&seed).unwrap(), original, "seed unchanged");
    assert_eq!(
        crate::harness::mode(&data),
        0o755,
        "mode not changed behind our back"
    );

    // A brand-new deployment in a world-readable directory is refused too, and nothing is
    // created in it.
    let fresh = cwd.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    chmod(&fresh, 0o755);
    let out = serve_expecting_exit(cwd.path(), &fresh, &[]);
    assert_refused(&out, &["data directory", "chmod 700"]);
    assert_eq!(
        std::fs::read_dir(&fresh).unwrap().count(),
        0,
        "nothing created in a refused data dir"
    );
}

#[test]
fn a_seed_from_another_deployment_refuses_to_start() {
    let cwd = tempfile::tempdir().unwrap();
    let a = initialised_data_dir(cwd.path(), "a");
    let b = initialised_data_dir(cwd.path(), "b");
    let seed_b = std::fs::read(seed_of(&b)).unwrap();
    assert_ne!(
        std::fs::read(seed_of(&a)).unwrap(),
        seed_b,
        "two deployments, two seeds"
    );
    std::fs::copy(seed_of(&b), seed_of(&a)).unwrap();
    chmod(&seed_of(&a), 0o600);

    let out = serve_expecting_exit(cwd.path(), &a, &[]);
    assert_refused(&out, &["seed", "does not match"]);
    assert_eq!(
        std::fs::read(seed_of(&a)).unwrap(),
        seed_b,
        "the foreign seed is left in place, not replaced"
    );
    // B itself is untouched and still starts.
    let server = crate::harness::serve_on(cwd.path(), &b, &[]);
    assert_eq!(server.terminate().code, Some(0));
}
