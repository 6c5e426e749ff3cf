//! Enveloped XML signatures (XML-DSig 1.1) as SAML uses them, and nothing more: one
//! `Reference` to the element that holds the signature, exclusive canonicalization without
//! comments, the enveloped-signature transform, an algorithm allowlist, and keys only from the
//! connection's certificates (`KeyInfo` is never read).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::xml::{Digest, KeyKind, digest, verify_signature};
use roxmltree::Node;

use crate::c14n::canonicalize;
use crate::{DSIG, Refusal};

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// A key an identity provider signs with, from its certificate.
#[derive(Debug, Clone)]
pub struct SigningKey {
    kind: KeyKind,
    public: Vec<u8>,
}

impl SigningKey {
    /// The key of a DER certificate: RSA (2048 bits or more), or ECDSA on P-256 or P-384.
    ///
    /// # Errors
    /// Not a certificate, or another kind of key.
    pub fn from_certificate(der: &[u8]) -> Result<Self, &'static str> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| "is not an X.509 certificate")?;
        if !rest.is_empty() {
            return Err("has bytes after the certificate");
        }
        let spki = cert.public_key();
        let oid = spki.algorithm.algorithm.to_id_string();
        let kind = match oid.as_str() {
            "1.2.840.113549.1.1.1" => KeyKind::Rsa,
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => KeyKind::P256,
                    Some("1.3.132.0.34") => KeyKind::P384,
                    _ => return Err("has an elliptic curve other than P-256 or P-384"),
                }
            }
            _ => return Err("has a key that is neither RSA nor ECDSA"),
        };
        Ok(Self {
            kind,
            public: spki.subject_public_key.data.to_vec(),
        })
    }
}

/// What the verifier allows.
#[derive(Debug, Clone, Copy)]
pub struct Algorithms {
    /// Whether RSA-SHA1 and SHA-1 digests are accepted (an operator's opt-in for old IdPs).
    pub allow_sha1: bool,
}

fn ds<'a, 'i>(node: Node<'a, 'i>, name: &str) -> impl Iterator<Item = Node<'a, 'i>> {
    let name = name.to_owned();
    node.children().filter(move |c| {
        c.is_element() && c.tag_name().namespace() == Some(DSIG) && c.tag_name().name() == name
    })
}

fn only<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Result<Node<'a, 'i>, Refusal> {
    let mut it = ds(node, name);
    match (it.next(), it.next()) {
        (Some(n), None) => Ok(n),
        _ => Err(Refusal::Structure),
    }
}

fn signature_method(uri: &str, algorithms: Algorithms) -> Result<Digest, Refusal> {
    match uri {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Ok(Digest::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Ok(Digest::Sha384),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Ok(Digest::Sha512),
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" if algorithms.allow_sha1 => Ok(Digest::Sha1),
        _ => Err(Refusal::Algorithm),
    }
}

fn is_ecdsa(uri: &str) -> bool {
    uri.contains("#ecdsa-")
}

fn digest_method(uri: &str, algorithms: Algorithms) -> Result<Digest, Refusal> {
    match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Ok(Digest::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(Digest::Sha384),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Ok(Digest::Sha512),
        "http://www.w3.org/2000/09/xmldsig#sha1" if algorithms.allow_sha1 => Ok(Digest::Sha1),
        _ => Err(Refusal::Algorithm),
    }
}

/// The exclusive-c14n algorithm element's `InclusiveNamespaces PrefixList`.
fn prefix_list<'a>(method: Node<'a, '_>) -> Result<Vec<&'a str>, Refusal> {
    let mut prefixes = Vec::new();
    for child in method.children().filter(Node::is_element) {
        if child.tag_name().namespace() != Some(EXC_NS)
            || child.tag_name().name() != "InclusiveNamespaces"
        {
            return Err(Refusal::Algorithm);
        }
        prefixes.extend(
            child
                .attribute("PrefixList")
                .unwrap_or("")
                .split_ascii_whitespace(),
        );
    }
    Ok(prefixes)
}

fn base64_text(node: Node<'_, '_>) -> Result<Vec<u8>, Refusal> {
    let text: String = node
        .children()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .flat_map(str::chars)
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(text).map_err(|_| Refusal::Signature)
}

/// The signature that is a direct child of `element`, if any.
pub fn signature_of<'a, 'i>(element: Node<'a, 'i>) -> Result<Option<Node<'a, 'i>>, Refusal> {
    let mut it = ds(element, "Signature");
    match (it.next(), it.next()) {
        (s, None) => Ok(s),
        _ => Err(Refusal::Structure),
    }
}

/// Checks that `signature`, a direct child of `element`, signs exactly `element` (its one
/// `Reference` is `#` + the element's `ID`, over the element minus the signature) and verifies
/// with one of `keys`.
///
/// # Errors
/// `Structure` for a signature of another shape or over another element, `Algorithm` for a
/// method outside the allowlist, `Signature` when the digest or the signature does not verify.
pub fn verify(
    element: Node<'_, '_>,
    signature: Node<'_, '_>,
    keys: &[SigningKey],
    algorithms: Algorithms,
) -> Result<(), Refusal> {
    let id = element.attribute("ID").ok_or(Refusal::Structure)?;
    // SignedInfo, SignatureValue, optional KeyInfo; never an Object (what XSW8 hides in).
    for child in signature.children().filter(Node::is_element) {
        let known = child.tag_name().namespace() == Some(DSIG)
            && matches!(
                child.tag_name().name(),
                "SignedInfo" | "SignatureValue" | "KeyInfo"
            );
        if !known {
            return Err(Refusal::Structure);
        }
    }
    let signed_info = only(signature, "SignedInfo")?;
    let c14n_method = only(signed_info, "CanonicalizationMethod")?;
    if c14n_method.attribute("Algorithm") != Some(EXC_C14N) {
        return Err(Refusal::Algorithm);
    }
    let info_prefixes = prefix_list(c14n_method)?;
    let method_uri = only(signed_info, "SignatureMethod")?
        .attribute("Algorithm")
        .unwrap_or("");
    let hash = signature_method(method_uri, algorithms)?;
    let reference = only(signed_info, "Reference")?;
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(Refusal::Structure);
    }
    let transforms = only(reference, "Transforms")?;
    let mut enveloped = false;
    let mut reference_prefixes = None;
    for t in transforms.children().filter(Node::is_element) {
        if t.tag_name().namespace() != Some(DSIG) || t.tag_name().name() != "Transform" {
            return Err(Refusal::Structure);
        }
        match t.attribute("Algorithm") {
            Some(ENVELOPED) if !enveloped && t.children().all(|c| !c.is_element()) => {
                enveloped = true;
            }
            Some(EXC_C14N) if reference_prefixes.is_none() => {
                reference_prefixes = Some(prefix_list(t)?);
            }
            _ => return Err(Refusal::Algorithm),
        }
    }
    // Without the exclusive-c14n transform the default is inclusive c14n: not on the list.
    let reference_prefixes = reference_prefixes.ok_or(Refusal::Algorithm)?;
    if !enveloped {
        return Err(Refusal::Structure);
    }
    let digest_alg = digest_method(
        only(reference, "DigestMethod")?
            .attribute("Algorithm")
            .unwrap_or(""),
        algorithms,
    )?;
    let expected = base64_text(only(reference, "DigestValue")?)?;
    let canonical = canonicalize(element, Some(signature.id()), &reference_prefixes);
    let actual = digest(digest_alg, &canonical);
    if !bulwark_crypto::constant_time_eq(&actual, &expected) {
        return Err(Refusal::Signature);
    }
    let value = base64_text(only(signature, "SignatureValue")?)?;
    let signed = canonicalize(signed_info, None, &info_prefixes);
    let ecdsa = is_ecdsa(method_uri);
    let verified = keys.iter().any(|k| {
        (k.kind != KeyKind::Rsa) == ecdsa
            && verify_signature(k.kind, hash, &k.public, &signed, &value)
    });
    if verified {
        Ok(())
    } else {
        Err(Refusal::Signature)
    }
}
