//! TOTP second factor (RFC 6238) and single-use backup codes.
//!
//! Enrolment shows a secret once (as an `otpauth://` URI and a QR code) and stores it sealed
//! with AES-256-GCM under a seed-derived key, bound to the user id, so a sealed secret copied
//! to another user's row does not open. The authenticator counts only after a first correct
//! code. Each accepted code records its time step, and the store refuses that step or an
//! earlier one atomically, so a code works once even under concurrent requests. Ten backup
//! codes (120 random bits each) are shown once and stored as SHA-256 hashes.
//!
//! Every step that changes what protects an account replaces the session with a new id.

use bulwark_audit::event::{Context, Payload};
use bulwark_crypto::{
    SecretBox, SecretToken, TokenHash, TotpParams, TotpSecret, otpauth_uri, qr_svg, verify_totp,
};
use bulwark_types::Clock;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::account::{self, Reauth};
use crate::audit::{self, Log};
use crate::model::{Session, TotpRecord, User};
use crate::ports::{Store, SystemTx};
use crate::session::{self, SessionPolicy, SignedIn, failure, rotate, success};
use crate::throttle::{self, Attempt, Keys, ThrottlePolicy};
use crate::{CoreError, StoreError};

/// How many backup codes a user holds.
pub const BACKUP_CODES: usize = 10;
/// Symbols in a backup code (5 bits each).
pub const BACKUP_CODE_CHARS: usize = 24;
/// Steps either side of now whose code is accepted (clock skew).
pub const SKEW_STEPS: u8 = 1;
/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Bulwark";

/// A started enrolment: shown once to the user.
pub struct Enrollment {
    /// The secret in base32, for typing into an authenticator by hand.
    pub secret_base32: Zeroizing<String>,
    /// `otpauth://totp/…`.
    pub otpauth_uri: Zeroizing<String>,
    /// The URI as an SVG QR code.
    pub qr_svg: Zeroizing<String>,
}

/// Backup codes, shown once.
pub struct BackupCodes(pub Vec<Zeroizing<String>>);

/// What a presented code turned out to be.
enum Presented {
    Totp(String),
    Backup(TokenHash),
}

fn classify(code: &str) -> Option<Presented> {
    let compact: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Some(Presented::Totp(compact))
    } else if compact.len() == BACKUP_CODE_CHARS
        && compact.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        let normal = compact.to_ascii_uppercase();
        Some(Presented::Backup(
            SecretToken::from_presented(&normal).hash(),
        ))
    } else {
        None
    }
}

fn unix(now: time::OffsetDateTime) -> u64 {
    u64::try_from(now.unix_timestamp()).unwrap_or(0)
}

fn aad(user: &User) -> Vec<u8> {
    user.id.to_string().into_bytes()
}

async fn user_of(tx: &mut dyn SystemTx, session: &Session) -> Result<User, CoreError> {
    tx.user_by_id(session.user_id)
        .await?
        .ok_or(CoreError::NotFound)
}

/// Starts TOTP enrolment after re-checking the password (throttled, see
/// [`account::reauthenticate`]); replaces any unconfirmed enrolment.
///
/// # Errors
/// `Throttled`; `InvalidCredentials` for a wrong password; `State` when an authenticator is
/// already enabled; storage and crypto failures.
pub async fn start_enrollment(
    services: Reauth<'_>,
    sealer: &SecretBox,
    session: &Session,
    password: SecretString,
    context: &Context,
) -> Result<Enrollment, CoreError> {
    let user = account::reauthenticate(services, session, password, context).await?;
    let clock = services.clock;
    let mut tx = services.store.system().await?;
    if tx.totp(user.id).await?.is_some_and(|t| t.is_enabled()) {
        return Err(CoreError::State(
            "a TOTP authenticator is already enrolled; remove it first",
        ));
    }
    let secret = TotpSecret::generate().map_err(|_| CoreError::Crypto)?;
    let params = TotpParams::default();
    let record = TotpRecord {
        user_id: user.id,
        secret_sealed: sealer
            .seal(secret.expose_bytes(), &aad(&user))
            .map_err(|_| CoreError::Crypto)?,
        created_at: clock.now(),
        enabled_at: None,
        last_step: None,
    };
    tx.replace_totp(user.id, Some(&record)).await?;
    tx.commit().await?;
    let uri = otpauth_uri(&secret, params, ISSUER, user.email.as_str());
    let qr = qr_svg(&uri).map_err(|_| CoreError::Crypto)?;
    Ok(Enrollment {
        secret_base32: secret.to_base32(),
        otpauth_uri: uri,
        qr_svg: qr,
    })
}

fn backup_codes() -> Result<(BackupCodes, Vec<TokenHash>), CoreError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut shown = Vec::with_capacity(BACKUP_CODES);
    let mut hashes = Vec::with_capacity(BACKUP_CODES);
    for _ in 0..BACKUP_CODES {
        let random =
            bulwark_crypto::random_bytes::<BACKUP_CODE_CHARS>().map_err(|_| CoreError::Crypto)?;
        // 24 symbols of 5 bits: 120 bits, so a plain SHA-256 is a sound way to store it (ASVS
        // 5.0 V6.5.2 asks for a salted slow hash only below 112 bits). `b & 31` is always a
        // valid index.
        let code: String = random
            .iter()
            .filter_map(|b| ALPHABET.get(usize::from(b & 31)).map(|&c| char::from(c)))
            .collect();
        hashes.push(SecretToken::from_presented(&code).hash());
        let groups: Vec<&str> = (0..BACKUP_CODE_CHARS / 4)
            .filter_map(|i| code.get(i * 4..i * 4 + 4))
            .collect();
        shown.push(Zeroizing::new(groups.join("-")));
    }
    Ok((BackupCodes(shown), hashes))
}

/// Checks a TOTP `code` against the user's authenticator and spends its time step.
async fn spend_totp(
    tx: &mut dyn SystemTx,
    sealer: &SecretBox,
    user: &User,
    code: &str,
    now: time::OffsetDateTime,
) -> Result<Result<(), &'static str>, CoreError> {
    let Some(record) = tx.totp(user.id).await? else {
        return Ok(Err("no_authenticator"));
    };
    let secret = sealer
        .open(&record.secret_sealed, &aad(user))
        .map_err(|_| CoreError::Store(StoreError::Corrupt("sealed TOTP secret".into())))?;
    let secret = TotpSecret::from_bytes(&secret)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("TOTP secret length".into())))?;
    let Some(step) = verify_totp(
        &secret,
        TotpParams::default(),
        code,
        unix(now),
        SKEW_STEPS,
        None,
    ) else {
        return Ok(Err("invalid_code"));
    };
    // A correct code for a step already spent is a replay: refused like a wrong one.
    if record.last_step.is_some_and(|last| step <= last) {
        return Ok(Err("code_replayed"));
    }
    if tx.use_totp_step(user.id, step, now).await? {
        Ok(Ok(()))
    } else {
        Ok(Err("code_replayed"))
    }
}

/// Spends a TOTP `code` (nothing else is accepted here) and replaces the backup codes; a
/// refused code gives its reason.
async fn spend_and_reissue(
    tx: &mut dyn SystemTx,
    sealer: &SecretBox,
    user: &User,
    code: &str,
    now: time::OffsetDateTime,
) -> Result<Result<BackupCodes, &'static str>, CoreError> {
    let Some(Presented::Totp(code)) = classify(code) else {
        return Ok(Err("invalid_code"));
    };
    if let Err(reason) = spend_totp(tx, sealer, user, &code, now).await? {
        return Ok(Err(reason));
    }
    let (codes, hashes) = backup_codes()?;
    tx.replace_backup_codes(user.id, &hashes, now).await?;
    Ok(Ok(codes))
}

/// Records a refused code (`method`, `reason`) in its own transaction and answers
/// `InvalidCode`.
async fn refused(
    store: &dyn Store,
    clock: &dyn Clock,
    method: &str,
    reason: &str,
    user: &User,
    context: Context,
) -> CoreError {
    let recorded = async {
        let mut tx = store.system().await?;
        let draft = failure(method, reason, user.id.to_string(), context);
        audit::append(&mut *tx, Log::System, draft, clock).await?;
        tx.commit().await?;
        Ok::<_, CoreError>(())
    };
    match recorded.await {
        Ok(()) => CoreError::InvalidCode,
        Err(e) => e,
    }
}

/// Confirms enrolment with a first correct code: the authenticator is enabled, ten backup codes
/// are issued, and the session is replaced by a new one that counts as having passed MFA. The
/// code is checked under the throttle, like every secret.
///
/// # Errors
/// `Throttled`; `InvalidCode`; `State` when there is nothing to confirm; storage and crypto
/// failures.
pub async fn confirm_enrollment(
    services: Reauth<'_>,
    sealer: &SecretBox,
    policy: SessionPolicy,
    current: &Session,
    code: &str,
    context: Context,
) -> Result<(SignedIn, BackupCodes), CoreError> {
    let attempt = code_attempt(current, &context);
    let (store, clock) = (services.store, services.clock);
    let check = confirm_code(store, clock, sealer, policy, current, code, context);
    throttle::guard(store, clock, services.throttle, attempt, check).await
}

/// A TOTP code checked inside `session`.
fn code_attempt<'a>(session: &'a Session, context: &Context) -> Attempt<'a> {
    Attempt {
        keys: Keys::in_session(session, context.source_ip.as_deref()),
        session: Some(session),
        method: "totp",
        subject: session.user_id.to_string(),
        context: context.clone(),
    }
}

async fn confirm_code(
    store: &dyn Store,
    clock: &dyn Clock,
    sealer: &SecretBox,
    policy: SessionPolicy,
    current: &Session,
    code: &str,
    context: Context,
) -> Result<(SignedIn, BackupCodes), CoreError> {
    let mut tx = store.system().await?;
    let user = user_of(&mut *tx, current).await?;
    match tx.totp(user.id).await? {
        None => return Err(CoreError::State("start TOTP enrolment first")),
        Some(t) if t.enabled_at.is_some() => {
            return Err(CoreError::State("a TOTP authenticator is already enrolled"));
        }
        Some(_) => {}
    }
    let now = clock.now();
    let codes = match spend_and_reissue(&mut *tx, sealer, &user, code, now).await? {
        Ok(codes) => codes,
        Err(reason) => {
            drop(tx);
            return Err(refused(store, clock, "totp_enrollment", reason, &user, context).await);
        }
    };
    let signed = rotate(&mut *tx, clock, policy, current, &user, Some(now), &context).await?;
    let enrolled = Payload::AuthMfaEnrolled {
        method: "totp".into(),
    };
    let generated = Payload::AuthBackupCodesGenerated {
        count: u32::try_from(BACKUP_CODES).unwrap_or(u32::MAX),
    };
    for payload in [enrolled, generated] {
        let draft = success(payload, &signed.session, context.clone());
        audit::append(&mut *tx, Log::System, draft, clock).await?;
    }
    tx.commit().await?;
    Ok((signed, codes))
}

/// Completes a sign-in that owes its second factor: `code` is a TOTP code or a backup code.
/// On success the pending session is replaced by a new active one.
///
/// # Errors
/// `Throttled`, `InvalidCode`, storage and crypto failures.
#[expect(
    clippy::too_many_arguments,
    reason = "the services and request parts a sign-in step needs, each used"
)]
pub async fn verify_login(
    store: &dyn Store,
    clock: &dyn Clock,
    sealer: &SecretBox,
    policy: SessionPolicy,
    throttle: &ThrottlePolicy,
    pending: &Session,
    code: &str,
    context: Context,
) -> Result<SignedIn, CoreError> {
    let attempt = Attempt {
        keys: Keys::in_session(pending, context.source_ip.as_deref()),
        session: Some(pending),
        method: "totp",
        subject: pending.user_id.to_string(),
        context: context.clone(),
    };
    let checked = spend_login_code(store, clock, sealer, policy, pending, code, context);
    throttle::guard(store, clock, throttle, attempt, checked).await
}

/// Checks the second factor of a pending sign-in and, when right, replaces the session.
async fn spend_login_code(
    store: &dyn Store,
    clock: &dyn Clock,
    sealer: &SecretBox,
    policy: SessionPolicy,
    pending: &Session,
    code: &str,
    context: Context,
) -> Result<SignedIn, CoreError> {
    let mut tx = store.system().await?;
    let user = user_of(&mut *tx, pending).await?;
    let now = clock.now();
    let (method, outcome) = match classify(code) {
        Some(Presented::Totp(code)) => (
            "totp",
            spend_totp(&mut *tx, sealer, &user, &code, now).await?,
        ),
        Some(Presented::Backup(hash)) => (
            "backup_code",
            if tx.use_backup_code(user.id, &hash, now).await? {
                Ok(())
            } else {
                Err("invalid_code")
            },
        ),
        None => ("totp", Err("invalid_code")),
    };
    if let Err(reason) = outcome {
        drop(tx);
        crate::metrics::signin(method, "failure");
        let draft = failure(method, reason, user.id.to_string(), context.clone());
        audit::to_member_orgs(store, clock, user.id, draft).await?;
        return Err(refused(store, clock, method, reason, &user, context).await);
    }
    let signed = rotate(&mut *tx, clock, policy, pending, &user, Some(now), &context).await?;
    if method == "backup_code" {
        let remaining = tx.backup_codes_left(user.id).await?;
        let draft = success(
            Payload::AuthBackupCodeUsed { remaining },
            &signed.session,
            context.clone(),
        );
        audit::append(&mut *tx, Log::System, draft, clock).await?;
    }
    crate::metrics::signin(method, "success");
    let draft = success(
        Payload::AuthLoginSucceeded {
            method: "password".into(),
            mfa: true,
        },
        &signed.session,
        context,
    );
    audit::append(&mut *tx, Log::System, draft.clone(), clock).await?;
    tx.commit().await?;
    audit::to_member_orgs(store, clock, user.id, draft).await?;
    Ok(signed)
}

/// Replaces the user's backup codes; needs a current TOTP code, checked under the throttle like
/// every secret.
///
/// # Errors
/// `Throttled`, `InvalidCode`, `State` without an enabled authenticator, storage and crypto
/// failures.
pub async fn regenerate_backup_codes(
    services: Reauth<'_>,
    sealer: &SecretBox,
    current: &Session,
    code: &str,
    context: Context,
) -> Result<BackupCodes, CoreError> {
    let attempt = code_attempt(current, &context);
    let (store, clock) = (services.store, services.clock);
    let check = reissue(store, clock, sealer, current, code, context);
    throttle::guard(store, clock, services.throttle, attempt, check).await
}

async fn reissue(
    store: &dyn Store,
    clock: &dyn Clock,
    sealer: &SecretBox,
    current: &Session,
    code: &str,
    context: Context,
) -> Result<BackupCodes, CoreError> {
    let mut tx = store.system().await?;
    let user = user_of(&mut *tx, current).await?;
    if tx.totp(user.id).await?.is_none_or(|t| !t.is_enabled()) {
        return Err(CoreError::State("no TOTP authenticator is enrolled"));
    }
    let now = clock.now();
    let codes = match spend_and_reissue(&mut *tx, sealer, &user, code, now).await? {
        Ok(codes) => codes,
        Err(reason) => {
            drop(tx);
            return Err(refused(store, clock, "totp", reason, &user, context).await);
        }
    };
    let payload = Payload::AuthBackupCodesGenerated {
        count: u32::try_from(BACKUP_CODES).unwrap_or(u32::MAX),
    };
    audit::append(
        &mut *tx,
        Log::System,
        success(payload, current, context),
        clock,
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// An owner's or admin's reset of a member's second factor, under a `MembersMfaReset` decision
/// on that member (see [`reset`]; recorded with cause `admin_reset`).
///
/// # Errors
/// A decision for another action (a bug); as [`reset`].
pub async fn reset_member(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &crate::authz::Authorized,
    member: bulwark_types::UserId,
) -> Result<(), CoreError> {
    authorized.org_for(bulwark_authz::Action::MembersMfaReset)?;
    reset(store, clock, member, "admin_reset", authorized.context()).await
}

/// Removes `user`'s authenticator and backup codes and revokes all their sessions, recording
/// `cause` (`self`, `admin_reset`, `host_reset`). The caller has checked who may do this.
///
/// # Errors
/// `NotFound` for an unknown user; storage failures.
pub async fn reset(
    store: &dyn Store,
    clock: &dyn Clock,
    user: bulwark_types::UserId,
    cause: &str,
    context: Context,
) -> Result<(), CoreError> {
    let mut tx = store.system().await?;
    if tx.user_by_id(user).await?.is_none() {
        return Err(CoreError::NotFound);
    }
    tx.replace_totp(user, None).await?;
    let payload = Payload::AuthMfaRemoved {
        user_id: user.to_string(),
        method: "totp".into(),
        cause: cause.into(),
    };
    let draft = crate::audit::Draft::success(payload, "user", user.to_string(), context.clone());
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    session::revoke_all(&mut *tx, clock, user, None, cause, context).await?;
    tx.commit().await?;
    Ok(())
}

/// The user's MFA state: whether an authenticator is enabled, and unused backup codes. A plain
/// read: it takes no write lock.
///
/// # Errors
/// Storage failures.
pub async fn state(
    store: &dyn Store,
    user: bulwark_types::UserId,
) -> Result<(bool, u32), CoreError> {
    Ok(store.mfa_status(user).await?)
}

/// Whether `password` is right for the signed-in user (re-authentication before removing MFA),
/// checked under the throttle (see [`account::reauthenticate`]).
///
/// # Errors
/// `Throttled`, `InvalidCredentials`, storage and crypto failures.
pub async fn check_password(
    services: Reauth<'_>,
    session: &Session,
    password: SecretString,
    context: &Context,
) -> Result<(), CoreError> {
    account::reauthenticate(services, session, password, context)
        .await
        .map(drop)
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment(..)")
    }
}

impl std::fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupCodes({} codes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_by_shape() {
        assert!(matches!(classify("123456"), Some(Presented::Totp(_))));
        assert!(matches!(classify(" 123 456 "), Some(Presented::Totp(_))));
        assert!(matches!(
            classify("ABCD-EFGH-JKLM-NPQR-STUV-WXYZ"),
            Some(Presented::Backup(_))
        ));
        assert!(classify("ABCD-EFGH-JKLM-NPQR").is_none(), "too short");
        assert!(classify("12345").is_none());
        assert!(classify("١٢٣٤٥٦").is_none());
        assert!(classify("").is_none());
        let (BackupCodes(shown), hashes) = backup_codes().unwrap();
        assert_eq!(shown.len(), BACKUP_CODES);
        for (code, hash) in shown.iter().zip(&hashes) {
            assert_eq!(code.len(), 29);
            let Some(Presented::Backup(h)) = classify(&code.to_lowercase()) else {
                panic!("backup code not recognised");
            };
            assert_eq!(&h, hash, "lower case and dashes do not matter");
        }
    }
}
