//! Encrypted assertions (XML Encryption 1.1): the content key unwrapped with the service
//! provider's RSA key (RSA-OAEP only: no PKCS#1 v1.5 key transport), the content opened with
//! AES-GCM only. CBC modes are refused: unauthenticated, they make the decrypting server an
//! oracle ("How to Break XML Encryption", Jager and Somorovsky, 2011).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::xml::{Oaep, RsaDecryptionKey, aes_gcm_open};
use roxmltree::Node;
use zeroize::Zeroizing;

use crate::{DSIG, Refusal};

/// The XML Encryption namespace.
pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn cipher_value(node: Node<'_, '_>) -> Result<Vec<u8>, Refusal> {
    let value = child(node, XENC, "CipherData")
        .and_then(|d| child(d, XENC, "CipherValue"))
        .ok_or(Refusal::Decrypt)?;
    let text: String = value
        .children()
        .filter_map(|t| t.text())
        .flat_map(str::chars)
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(text).map_err(|_| Refusal::Decrypt)
}

fn key_transport(encrypted_key: Node<'_, '_>) -> Result<Oaep, Refusal> {
    let method = child(encrypted_key, XENC, "EncryptionMethod").ok_or(Refusal::Decrypt)?;
    let digest = child(method, DSIG, "DigestMethod").and_then(|d| d.attribute("Algorithm"));
    let mgf = child(method, XENC11, "MGF").and_then(|d| d.attribute("Algorithm"));
    match (method.attribute("Algorithm"), digest, mgf) {
        (
            Some("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"),
            None | Some("http://www.w3.org/2000/09/xmldsig#sha1"),
            None,
        ) => Ok(Oaep::Sha1),
        (
            Some("http://www.w3.org/2009/xmlenc11#rsa-oaep"),
            Some("http://www.w3.org/2001/04/xmlenc#sha256"),
            Some("http://www.w3.org/2009/xmlenc11#mgf1sha256"),
        ) => Ok(Oaep::Sha256),
        _ => Err(Refusal::Algorithm),
    }
}

/// The plaintext of an `EncryptedAssertion`, opened with `key`.
///
/// # Errors
/// `Algorithm` for an algorithm outside the allowlist, `Decrypt` when anything does not open.
pub fn decrypt(
    encrypted: Node<'_, '_>,
    key: &RsaDecryptionKey,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let data = child(encrypted, XENC, "EncryptedData").ok_or(Refusal::Decrypt)?;
    let content_key_len =
        match child(data, XENC, "EncryptionMethod").and_then(|m| m.attribute("Algorithm")) {
            Some("http://www.w3.org/2009/xmlenc11#aes128-gcm") => 16,
            Some("http://www.w3.org/2009/xmlenc11#aes256-gcm") => 32,
            _ => return Err(Refusal::Algorithm),
        };
    // The wrapped key sits in the data's KeyInfo, or beside the data in the assertion.
    let encrypted_key = child(data, DSIG, "KeyInfo")
        .and_then(|k| child(k, XENC, "EncryptedKey"))
        .or_else(|| child(encrypted, XENC, "EncryptedKey"))
        .ok_or(Refusal::Decrypt)?;
    let oaep = key_transport(encrypted_key)?;
    let content_key = key
        .unwrap_key(oaep, &cipher_value(encrypted_key)?)
        .map_err(|_| Refusal::Decrypt)?;
    if content_key.len() != content_key_len {
        return Err(Refusal::Decrypt);
    }
    aes_gcm_open(&content_key, &cipher_value(data)?).map_err(|_| Refusal::Decrypt)
}
