//! Bulwark's SAML 2.0 service provider core (issue 21): what a `SAMLResponse` posted to an
//! assertion consumer service must be before anyone is signed in, checked here with no I/O.
//!
//! One strict parser (roxmltree: no DTD, no entities beyond the predefined ones) builds the one
//! tree that is both verified and read. Before any signature is looked at, the document must be
//! a `Response` holding exactly one `Assertion` (or `EncryptedAssertion`) as a direct child, with
//! unique IDs and signatures only directly inside those two elements; a signature must reference
//! the very element that holds it, so the element verified is the element read (no signature
//! wrapping). Keys come only from the connection's certificates. See ADR 0018.

mod c14n;
mod decrypt;
mod dsig;
mod request;

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::xml::RsaDecryptionKey;
use roxmltree::{Document, Node, ParsingOptions};

pub use c14n::canonicalize;
pub use dsig::{Algorithms, SigningKey};
pub use request::{AuthnRequest, SpMetadata, deflate_stored, escape};

/// The SAML 2.0 protocol namespace.
pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// The SAML 2.0 assertion namespace.
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The XML signature namespace.
pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The largest decoded `SAMLResponse` read (1 MiB): larger is refused before parsing.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The deepest element nesting accepted (a SAML response needs about ten).
pub const MAX_DEPTH: usize = 64;
/// The most nodes a response may have.
pub const MAX_NODES: u32 = 20_000;

/// Why a response was refused. Each has a stable code (audited, and the `code` of the
/// problem answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not base64, not XML, too large, too deep, or a DTD (`sso_saml_malformed`).
    #[error("the response is not a well-formed SAML response within the limits")]
    Malformed,
    /// Not one assertion in its place, duplicate IDs, or a signature of another shape or over
    /// another element: signature wrapping (`sso_saml_structure`).
    #[error(
        "the response's structure is not allowed (one assertion, unique ids, signatures on their own element)"
    )]
    Structure,
    /// An algorithm, canonicalization or transform outside the allowlist (`sso_saml_algorithm`).
    #[error("an algorithm outside the allowlist")]
    Algorithm,
    /// No valid signature by the connection's certificates where one is required
    /// (`sso_saml_signature`).
    #[error("no valid signature by the identity provider")]
    Signature,
    /// The encrypted assertion does not open (`sso_saml_decrypt`).
    #[error("the encrypted assertion could not be decrypted")]
    Decrypt,
    /// The identity provider answered with a status other than success (`sso_saml_status`).
    #[error("the identity provider did not report success")]
    Status,
    /// Issuer other than the connection's IdP (`sso_saml_issuer`).
    #[error("the issuer is not the connection's identity provider")]
    Issuer,
    /// Audience other than this service provider (`sso_saml_audience`).
    #[error("the audience is not this service provider")]
    Audience,
    /// Destination or Recipient other than this ACS (`sso_saml_destination`).
    #[error("the destination or recipient is not this service provider's ACS")]
    Destination,
    /// `InResponseTo` names no request this browser made (`sso_saml_in_response_to`).
    #[error("the response answers no request this browser made")]
    InResponseTo,
    /// An IdP-initiated response while the connection does not allow them (`sso_saml_unsolicited`).
    #[error("unsolicited responses are not allowed")]
    Unsolicited,
    /// Outside its validity window (`sso_saml_expired`).
    #[error("the assertion is expired or not yet valid")]
    Expired,
    /// No usable subject (`sso_saml_subject`).
    #[error("the assertion names no subject")]
    Subject,
}

impl Refusal {
    /// The stable code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Malformed => "sso_saml_malformed",
            Self::Structure => "sso_saml_structure",
            Self::Algorithm => "sso_saml_algorithm",
            Self::Signature => "sso_saml_signature",
            Self::Decrypt => "sso_saml_decrypt",
            Self::Status => "sso_saml_status",
            Self::Issuer => "sso_saml_issuer",
            Self::Audience => "sso_saml_audience",
            Self::Destination => "sso_saml_destination",
            Self::InResponseTo => "sso_saml_in_response_to",
            Self::Unsolicited => "sso_saml_unsolicited",
            Self::Expired => "sso_saml_expired",
            Self::Subject => "sso_saml_subject",
        }
    }
}

/// Which element the identity provider must sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// The assertion or the response (each signature present must verify).
    Either,
    /// The assertion.
    Assertion,
    /// The response.
    Response,
    /// Both.
    Both,
}

/// What the connection trusts and expects.
pub struct Expected<'a> {
    /// The IdP's entity id.
    pub idp_entity_id: &'a str,
    /// The keys of the IdP's certificates (one, or two during a rollover). Empty: every
    /// response is refused.
    pub keys: &'a [SigningKey],
    /// Which element must be signed.
    pub signed: Signed,
    /// Algorithms.
    pub algorithms: Algorithms,
    /// This SP's entity id (the audience).
    pub sp_entity_id: &'a str,
    /// This connection's ACS URL (destination and recipient).
    pub acs_url: &'a str,
    /// The id of the request this browser made, if it made one.
    pub request_id: Option<&'a str>,
    /// Whether a response to no request is accepted (IdP-initiated sign-in).
    pub allow_unsolicited: bool,
    /// The SP's key for encrypted assertions.
    pub decryption_key: Option<&'a RsaDecryptionKey>,
    /// Now, Unix seconds.
    pub now: i64,
    /// The clock skew allowed, seconds.
    pub skew: i64,
}

/// A verified assertion, read from the element the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Its ID (for the replay cache).
    pub id: String,
    /// The NameID (all its text).
    pub name_id: String,
    /// The NameID's `Format`.
    pub name_id_format: Option<String>,
    /// The `InResponseTo` it answers.
    pub in_response_to: Option<String>,
    /// The `SessionIndex` of its authentication statement.
    pub session_index: Option<String>,
    /// The `AuthnContextClassRef`.
    pub authn_context: Option<String>,
    /// Attribute name → values.
    pub attributes: Vec<(String, Vec<String>)>,
    /// When it stops being valid, Unix seconds (keep its id in the replay cache until then).
    pub expires: i64,
}

impl Assertion {
    /// The values of the attribute named `name`.
    #[must_use]
    pub fn attribute(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

/// The bytes of a posted `SAMLResponse` (base64, whitespace allowed), within the size limit.
///
/// # Errors
/// `Malformed`.
pub fn decode(posted: &str) -> Result<Vec<u8>, Refusal> {
    if posted.len() > MAX_RESPONSE_BYTES / 3 * 4 + 4096 {
        return Err(Refusal::Malformed);
    }
    let compact: String = posted
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD.decode(compact).map_err(|_| Refusal::Malformed)?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(Refusal::Malformed);
    }
    Ok(bytes)
}

/// The document in `text`, parsed strictly: no DTD at all (roxmltree tolerates an empty
/// `<!DOCTYPE x>`; we do not), a node limit, a depth limit.
///
/// # Errors
/// `Malformed`.
pub fn parse(text: &str) -> Result<Document<'_>, Refusal> {
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") || text.contains("<!doctype") {
        return Err(Refusal::Malformed);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|_| Refusal::Malformed)?;
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for node in doc.descendants() {
        let d = node
            .parent()
            .and_then(|p| depth.get(p.id().get_usize()).copied())
            .unwrap_or(0)
            + 1;
        if d > MAX_DEPTH {
            return Err(Refusal::Malformed);
        }
        if let Some(slot) = depth.get_mut(node.id().get_usize()) {
            *slot = d;
        }
    }
    Ok(doc)
}

fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(*c, ns, name))
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, name))
}

/// All the text inside `node` (every text descendant, comments skipped), trimmed: a comment
/// inside a NameID does not cut it short.
fn text_of(node: Node<'_, '_>) -> String {
    let all: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect();
    all.trim().to_owned()
}

/// The document rules checked before any signature: unique IDs, signatures only directly in
/// the response or its one assertion, exactly one assertion (plain or encrypted) anywhere, and
/// it a direct child of the response.
fn check_structure<'a, 'i>(root: Node<'a, 'i>) -> Result<Node<'a, 'i>, Refusal> {
    let mut ids = HashSet::new();
    for node in root.descendants().filter(Node::is_element) {
        for a in node.attributes() {
            if matches!(a.name(), "ID" | "Id" | "id") && !ids.insert(a.value()) {
                return Err(Refusal::Structure);
            }
        }
    }
    let assertions: Vec<Node<'a, 'i>> = root
        .descendants()
        .filter(|n| is(*n, ASSERTION, "Assertion") || is(*n, ASSERTION, "EncryptedAssertion"))
        .collect();
    let [assertion] = assertions.as_slice() else {
        return Err(Refusal::Structure);
    };
    if assertion.parent() != Some(root) {
        return Err(Refusal::Structure);
    }
    for signature in root.descendants().filter(|n| is(*n, DSIG, "Signature")) {
        let parent = signature.parent();
        if parent != Some(root) && parent != Some(*assertion) {
            return Err(Refusal::Structure);
        }
    }
    Ok(*assertion)
}

/// Verifies the signature directly in `element`, if there is one: whether it was signed.
fn signed_by(element: Node<'_, '_>, expected: &Expected<'_>) -> Result<bool, Refusal> {
    match dsig::signature_of(element)? {
        None => Ok(false),
        Some(signature) => {
            if expected.keys.is_empty() {
                return Err(Refusal::Signature);
            }
            dsig::verify(element, signature, expected.keys, expected.algorithms)?;
            Ok(true)
        }
    }
}

fn time_of(raw: Option<&str>) -> Result<Option<i64>, Refusal> {
    raw.map(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|_| Refusal::Malformed)
    })
    .transpose()
}

/// Verifies a decoded `SAMLResponse` against what the connection expects and reads its
/// assertion.
///
/// # Errors
/// The first rule the response breaks.
pub fn verify_response(xml: &[u8], expected: &Expected<'_>) -> Result<Assertion, Refusal> {
    let text = std::str::from_utf8(xml).map_err(|_| Refusal::Malformed)?;
    let doc = parse(text)?;
    let root = doc.root_element();
    if !is(root, PROTOCOL, "Response") || root.attribute("Version") != Some("2.0") {
        return Err(Refusal::Malformed);
    }
    let assertion = check_structure(root)?;
    let status = child(root, PROTOCOL, "Status")
        .and_then(|s| child(s, PROTOCOL, "StatusCode"))
        .and_then(|c| c.attribute("Value"));
    if status != Some("urn:oasis:names:tc:SAML:2.0:status:Success") {
        return Err(Refusal::Status);
    }
    let response_signed = signed_by(root, expected)?;
    if is(assertion, ASSERTION, "EncryptedAssertion") {
        let key = expected.decryption_key.ok_or(Refusal::Decrypt)?;
        let plain = decrypt::decrypt(assertion, key)?;
        let plain = std::str::from_utf8(&plain).map_err(|_| Refusal::Decrypt)?;
        // The plaintext may use prefixes declared above the encrypted element: parse it inside
        // a wrapper declaring them (not rendered by exclusive c14n unless used).
        let mut wrapper = String::from("<w");
        for ns in assertion.namespaces() {
            match ns.name() {
                Some("xml") => {}
                Some(p) => wrapper.push_str(&format!(" xmlns:{p}=\"{}\"", escape(ns.uri()))),
                None => wrapper.push_str(&format!(" xmlns=\"{}\"", escape(ns.uri()))),
            }
        }
        wrapper.push('>');
        wrapper.push_str(plain.trim_start_matches(|c: char| c != '<'));
        wrapper.push_str("</w>");
        let inner = parse(&wrapper).map_err(|_| Refusal::Decrypt)?;
        let holder = inner.root_element();
        let mut elements = holder.children().filter(Node::is_element);
        let (Some(decrypted), None) = (elements.next(), elements.next()) else {
            return Err(Refusal::Structure);
        };
        if !is(decrypted, ASSERTION, "Assertion") {
            return Err(Refusal::Structure);
        }
        let nested = decrypted
            .descendants()
            .skip(1)
            .any(|n| is(n, ASSERTION, "Assertion") || is(n, ASSERTION, "EncryptedAssertion"));
        let stray_signature = decrypted
            .descendants()
            .any(|n| is(n, DSIG, "Signature") && n.parent() != Some(decrypted));
        let mut ids = HashSet::new();
        let duplicate = decrypted
            .descendants()
            .flat_map(|n| n.attributes())
            .filter(|a| matches!(a.name(), "ID" | "Id" | "id"))
            .any(|a| !ids.insert(a.value()));
        if nested || stray_signature || duplicate {
            return Err(Refusal::Structure);
        }
        let assertion_signed = signed_by(decrypted, expected)?;
        return read(root, decrypted, response_signed, assertion_signed, expected);
    }
    let assertion_signed = signed_by(assertion, expected)?;
    read(root, assertion, response_signed, assertion_signed, expected)
}

fn read(
    root: Node<'_, '_>,
    assertion: Node<'_, '_>,
    response_signed: bool,
    assertion_signed: bool,
    expected: &Expected<'_>,
) -> Result<Assertion, Refusal> {
    let enough = match expected.signed {
        Signed::Either => response_signed || assertion_signed,
        Signed::Assertion => assertion_signed,
        Signed::Response => response_signed,
        Signed::Both => response_signed && assertion_signed,
    };
    if !enough {
        return Err(Refusal::Signature);
    }
    // Issuer: the assertion's is required, the response's optional; both the IdP.
    let issuer = child(assertion, ASSERTION, "Issuer").map(text_of);
    let response_issuer = child(root, ASSERTION, "Issuer").map(text_of);
    if issuer.as_deref() != Some(expected.idp_entity_id)
        || response_issuer.is_some_and(|i| i != expected.idp_entity_id)
    {
        return Err(Refusal::Issuer);
    }
    if root
        .attribute("Destination")
        .is_some_and(|d| d != expected.acs_url)
    {
        return Err(Refusal::Destination);
    }
    let now = expected.now;
    let skew = expected.skew;
    let subject = child(assertion, ASSERTION, "Subject").ok_or(Refusal::Subject)?;
    let mut name_ids = children(subject, ASSERTION, "NameID");
    let (Some(name_id), None) = (name_ids.next(), name_ids.next()) else {
        return Err(Refusal::Subject);
    };
    let name = text_of(name_id);
    if name.is_empty() || name.len() > 512 {
        return Err(Refusal::Subject);
    }
    // A bearer confirmation for this ACS, in time, answering this browser's request.
    let bearer: Vec<Node<'_, '_>> = children(subject, ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attribute("Method") == Some("urn:oasis:names:tc:SAML:2.0:cm:bearer"))
        .collect();
    let [confirmation] = bearer.as_slice() else {
        return Err(Refusal::Subject);
    };
    let data =
        child(*confirmation, ASSERTION, "SubjectConfirmationData").ok_or(Refusal::Subject)?;
    if data.attribute("Recipient") != Some(expected.acs_url) {
        return Err(Refusal::Destination);
    }
    let confirmation_until = time_of(data.attribute("NotOnOrAfter"))?.ok_or(Refusal::Expired)?;
    if now - skew >= confirmation_until {
        return Err(Refusal::Expired);
    }
    if time_of(data.attribute("NotBefore"))?.is_some_and(|t| now + skew < t) {
        return Err(Refusal::Expired);
    }
    let answers = [
        root.attribute("InResponseTo"),
        data.attribute("InResponseTo"),
    ];
    match expected.request_id {
        Some(request) => {
            if answers.iter().any(|a| a.is_some_and(|a| a != request))
                || answers.iter().all(Option::is_none)
            {
                return Err(Refusal::InResponseTo);
            }
        }
        None if !expected.allow_unsolicited => {
            return Err(if answers.iter().all(Option::is_none) {
                Refusal::Unsolicited
            } else {
                Refusal::InResponseTo
            });
        }
        // IdP-initiated and allowed: a response to some request is not this browser's.
        None => {
            if answers.iter().any(Option::is_some) {
                return Err(Refusal::InResponseTo);
            }
        }
    }
    let conditions = child(assertion, ASSERTION, "Conditions").ok_or(Refusal::Audience)?;
    if time_of(conditions.attribute("NotBefore"))?.is_some_and(|t| now + skew < t) {
        return Err(Refusal::Expired);
    }
    let conditions_until = time_of(conditions.attribute("NotOnOrAfter"))?;
    if conditions_until.is_some_and(|t| now - skew >= t) {
        return Err(Refusal::Expired);
    }
    let restrictions: Vec<Node<'_, '_>> =
        children(conditions, ASSERTION, "AudienceRestriction").collect();
    if restrictions.is_empty()
        || !restrictions.iter().all(|r| {
            children(*r, ASSERTION, "Audience").any(|a| text_of(a) == expected.sp_entity_id)
        })
    {
        return Err(Refusal::Audience);
    }
    let id = assertion
        .attribute("ID")
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .ok_or(Refusal::Structure)?
        .to_owned();
    let authn = child(assertion, ASSERTION, "AuthnStatement");
    let authn_context = authn
        .and_then(|a| child(a, ASSERTION, "AuthnContext"))
        .and_then(|c| child(c, ASSERTION, "AuthnContextClassRef"))
        .map(text_of);
    let mut attributes: Vec<(String, Vec<String>)> = Vec::new();
    for statement in children(assertion, ASSERTION, "AttributeStatement") {
        for attribute in children(statement, ASSERTION, "Attribute") {
            let Some(name) = attribute.attribute("Name") else {
                continue;
            };
            let values: Vec<String> = children(attribute, ASSERTION, "AttributeValue")
                .map(text_of)
                .collect();
            match attributes.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.extend(values),
                None => attributes.push((name.to_owned(), values)),
            }
        }
    }
    Ok(Assertion {
        id,
        name_id: name,
        name_id_format: name_id.attribute("Format").map(str::to_owned),
        in_response_to: answers.into_iter().flatten().next().map(str::to_owned),
        session_index: authn
            .and_then(|a| a.attribute("SessionIndex"))
            .map(str::to_owned),
        authn_context,
        attributes,
        expires: conditions_until.map_or(confirmation_until, |c| c.min(confirmation_until)),
    })
}

/// Reads an identity provider's metadata: its entity id, its HTTP-Redirect single sign-on URL
/// and its signing certificates (DER).
///
/// # Errors
/// A message naming what is missing or wrong.
pub fn read_idp_metadata(text: &str) -> Result<IdpMetadata, &'static str> {
    let doc = parse(text).map_err(|_| "is not well-formed XML (DTDs are refused)")?;
    const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
    let root = doc.root_element();
    let entity = if is(root, MD, "EntityDescriptor") {
        root
    } else if is(root, MD, "EntitiesDescriptor") {
        let mut it = children(root, MD, "EntityDescriptor");
        match (it.next(), it.next()) {
            (Some(e), None) => e,
            _ => return Err("must describe exactly one entity"),
        }
    } else {
        return Err("is not SAML 2.0 metadata (an EntityDescriptor)");
    };
    let entity_id = entity
        .attribute("entityID")
        .filter(|e| !e.is_empty() && e.len() <= 1024)
        .ok_or("has no entityID")?
        .to_owned();
    let idp = child(entity, MD, "IDPSSODescriptor").ok_or("has no IDPSSODescriptor")?;
    let sso_url = children(idp, MD, "SingleSignOnService")
        .find(|s| {
            s.attribute("Binding") == Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
        })
        .and_then(|s| s.attribute("Location"))
        .ok_or("has no SingleSignOnService with the HTTP-Redirect binding")?
        .to_owned();
    let mut certificates = Vec::new();
    for key in children(idp, MD, "KeyDescriptor") {
        if key.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for cert in key
            .descendants()
            .filter(|n| is(*n, DSIG, "X509Certificate"))
        {
            let b64: String = text_of(cert)
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let der = STANDARD
                .decode(b64)
                .map_err(|_| "has a certificate that is not base64")?;
            SigningKey::from_certificate(&der).map_err(
                |_| "has a signing certificate with an unsupported key (RSA, P-256 or P-384)",
            )?;
            if !certificates.contains(&der) {
                certificates.push(der);
            }
        }
    }
    if certificates.is_empty() {
        return Err("has no signing certificate");
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificates,
    })
}

/// What an identity provider's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// Its entity id.
    pub entity_id: String,
    /// Where AuthnRequests go (HTTP-Redirect).
    pub sso_url: String,
    /// Its signing certificates, DER.
    pub certificates: Vec<Vec<u8>>,
}
