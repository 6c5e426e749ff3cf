//! Account addresses as releases before email normalisation stored them, and what each must be
//! after the store's open (SQLite) or `migrate` (PostgreSQL). Each engine's tests insert
//! [`LEGACY_USERS`] with their own SQL, then run [`legacy_addresses_are_rekeyed_or_kept`].

use bulwark_core::ports::{Store, SystemTx};
use bulwark_types::{Email, UserId};

/// `(email, email_key)` as an earlier release stored them (`email_key` its `to_lowercase()`).
pub const LEGACY_USERS: [(&str, &str); 5] = [
    ("memberB@b.example", "memberb@b.example"),
    // A lookalike made before the fix: its normal form is the account above.
    ("\u{FF4D}emberB@b.example", "\u{FF4D}emberb@b.example"),
    ("José@bücher.example", "josé@bücher.example"),
    ("member\u{200B}B@b.example", "member\u{200B}b@b.example"),
    ("Rene\u{301}@r.example", "rene\u{301}@r.example"),
];

/// After re-normalisation, `ids` being the ids of [`LEGACY_USERS`] in order: the Unicode domain
/// and the decomposed accent are found under their normal form and stored in it; the lookalike
/// and the refused address are kept as stored, readable, and no address leads to them.
pub async fn legacy_addresses_are_rekeyed_or_kept(store: &dyn Store, ids: &[UserId; 5]) {
    let mut sys = store.system().await.unwrap();
    let [member, lookalike, idn, invisible, accent] = *ids;
    assert_eq!(by_email(&mut sys, "memberB@b.example").await, Some(member));
    assert_eq!(
        by_email(&mut sys, "\u{FF4D}emberB@b.example").await,
        Some(member)
    );
    assert_eq!(by_email(&mut sys, "JOSÉ@BÜCHER.example").await, Some(idn));
    assert_eq!(
        by_email(&mut sys, "josé@xn--bcher-kva.example").await,
        Some(idn)
    );
    assert_eq!(by_email(&mut sys, "René@r.example").await, Some(accent));
    assert_eq!(email_of(&mut sys, idn).await, "José@xn--bcher-kva.example");
    assert_eq!(email_of(&mut sys, accent).await, "Ren\u{E9}@r.example");
    assert_eq!(
        email_of(&mut sys, lookalike).await,
        LEGACY_USERS[1].0,
        "kept as stored"
    );
    assert_eq!(
        email_of(&mut sys, invisible).await,
        LEGACY_USERS[3].0,
        "kept as stored"
    );
}

async fn by_email(sys: &mut Box<dyn SystemTx>, address: &str) -> Option<UserId> {
    let email: Email = address.parse().unwrap();
    sys.user_by_email(&email).await.unwrap().map(|u| u.id)
}

async fn email_of(sys: &mut Box<dyn SystemTx>, id: UserId) -> String {
    sys.user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .email
        .as_str()
        .to_owned()
}
