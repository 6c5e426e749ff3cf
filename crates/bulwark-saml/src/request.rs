//! What the service provider sends: an `AuthnRequest` for the HTTP-Redirect binding (raw
//! DEFLATE, base64, URL-encoded by the caller) and its own metadata.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// `s` escaped for XML text and double-quoted attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `data` as raw DEFLATE (RFC 1951) in stored blocks: no compression, which every inflater
/// reads, and not worth a compression library for a request of a few hundred bytes.
#[must_use]
pub fn deflate_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / 65_535 + 1));
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        return vec![1, 0, 0, 0xff, 0xff];
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// An `AuthnRequest`.
#[derive(Debug, Clone)]
pub struct AuthnRequest<'a> {
    /// Its ID (an NCName: starts with a letter or `_`).
    pub id: &'a str,
    /// When issued (RFC 3339, UTC).
    pub issue_instant: &'a str,
    /// The IdP's single sign-on URL.
    pub destination: &'a str,
    /// This SP's ACS URL.
    pub acs_url: &'a str,
    /// This SP's entity id.
    pub sp_entity_id: &'a str,
}

impl AuthnRequest<'_> {
    /// The request's XML.
    #[must_use]
    pub fn xml(&self) -> String {
        format!(
            concat!(
                r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" "#,
                r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" "#,
                r#"IssueInstant="{}" Destination="{}" AssertionConsumerServiceURL="{}" "#,
                r#"ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">"#,
                r#"<saml:Issuer>{}</saml:Issuer>"#,
                r#"<samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#
            ),
            escape(self.id),
            escape(self.issue_instant),
            escape(self.destination),
            escape(self.acs_url),
            escape(self.sp_entity_id),
        )
    }

    /// The `SAMLRequest` value of the HTTP-Redirect binding (before URL encoding).
    #[must_use]
    pub fn redirect_value(&self) -> String {
        STANDARD.encode(deflate_stored(self.xml().as_bytes()))
    }
}

/// This service provider's metadata for one connection.
#[derive(Debug, Clone)]
pub struct SpMetadata<'a> {
    /// The SP's entity id.
    pub entity_id: &'a str,
    /// The ACS URL (HTTP-POST).
    pub acs_url: &'a str,
    /// The certificate (DER) identity providers encrypt assertions to, if any.
    pub encryption_certificate: Option<&'a [u8]>,
    /// Whether assertions must be signed.
    pub want_assertions_signed: bool,
}

impl SpMetadata<'_> {
    /// The metadata XML.
    #[must_use]
    pub fn xml(&self) -> String {
        let key = self.encryption_certificate.map_or_else(String::new, |der| {
            format!(
                concat!(
                    r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">"#,
                    r#"<ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"#,
                    r#"<md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>"#,
                    r#"<md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>"#,
                    r#"<md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>"#,
                    r#"</md:KeyDescriptor>"#
                ),
                STANDARD.encode(der)
            )
        });
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                "\n",
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}">"#,
                r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="{}" "#,
                r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{}"#,
                r#"<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"#,
                r#"<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" "#,
                r#"Location="{}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#,
                "\n"
            ),
            escape(self.entity_id),
            self.want_assertions_signed,
            key,
            escape(self.acs_url),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_deflate_blocks_frame_the_data() {
        assert_eq!(deflate_stored(b"ab"), vec![1, 2, 0, 0xfd, 0xff, b'a', b'b']);
        let big = vec![7u8; 70_000];
        let out = deflate_stored(&big);
        assert_eq!(out.first(), Some(&0));
        assert_eq!(out.len(), 70_000 + 10);
        assert_eq!(out.get(65_540), Some(&1));
    }

    #[test]
    fn request_values_are_escaped() {
        let r = AuthnRequest {
            id: "_a",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp.example/sso?a=1&b=\"2\"",
            acs_url: "https://sp.example/acs",
            sp_entity_id: "https://sp.example/<md>",
        };
        let xml = r.xml();
        assert!(xml.contains("a=1&amp;b=&quot;2&quot;"));
        assert!(xml.contains("https://sp.example/&lt;md&gt;"));
        assert!(crate::parse(&xml).is_ok());
    }
}
