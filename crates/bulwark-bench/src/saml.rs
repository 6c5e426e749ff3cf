//! `bulwark-bench sso --protocol saml`: a SAML sign-in through Bulwark beside the identity
//! provider's own work. An in-process IdP builds each response and signs its assertion
//! (ECDSA P-256, exclusive c14n), as an IdP would. Baseline: building and signing the response
//! alone. Ours: the whole sign-in (start with its `AuthnRequest` and flow cookie, the IdP's
//! response, the ACS: parsing, structure rules, canonicalization, digest and signature checks,
//! conditions, the single-use request and assertion ids, the session and its audit events).
//! The difference is Bulwark's own time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_server::config::Config;
use bulwark_server::startup;
use serde_json::{Value, json};

use crate::sso::{compare, free_port, location};

const IDP: &str = "https://idp.bench.example/metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The bench's identity provider: an ECDSA key and its certificate.
struct Idp {
    signer: bulwark_crypto::Es256Signer,
    cert_b64: String,
    counter: AtomicU64,
}

impl Idp {
    fn new() -> anyhow::Result<Self> {
        let (signer, pkcs8) = bulwark_crypto::Es256Signer::generate()?;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice());
        let pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bench IdP");
        let cert = params.self_signed(&pair)?;
        Ok(Self {
            signer,
            cert_b64: STANDARD.encode(cert.der()),
            counter: AtomicU64::new(0),
        })
    }

    fn metadata(&self) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="{DSIG}"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.bench.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            self.cert_b64
        )
    }

    /// A signed response to `request` for the ACS `acs` and audience `sp`, base64.
    fn respond(&self, request: &str, acs: &str, sp: &str) -> anyhow::Result<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.replace_nanosecond(0)
                .unwrap_or(t)
                .format(&time::format_description::well_known::Rfc3339)
        };
        let (at, later) = (fmt(now)?, fmt(now + time::Duration::minutes(5))?);
        let assertion = |signature: &str| {
            format!(
                concat!(
                    r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a{n}" Version="2.0" IssueInstant="{at}">"#,
                    r#"<saml:Issuer>{idp}</saml:Issuer>{signature}<saml:Subject>"#,
                    r#"<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">ada@bench.example</saml:NameID>"#,
                    r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">"#,
                    r#"<saml:SubjectConfirmationData InResponseTo="{request}" Recipient="{acs}" NotOnOrAfter="{later}"/>"#,
                    r#"</saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{at}" NotOnOrAfter="{later}">"#,
                    r#"<saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"#,
                    r#"<saml:AuthnStatement AuthnInstant="{at}" SessionIndex="_s{n}"><saml:AuthnContext>"#,
                    r#"<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>"#,
                    r#"</saml:AuthnContext></saml:AuthnStatement></saml:Assertion>"#
                ),
                n = n,
                at = at,
                idp = IDP,
                signature = signature,
                request = request,
                acs = acs,
                later = later,
                sp = sp,
            )
        };
        let unsigned = assertion("");
        let doc = bulwark_saml::parse(&unsigned).map_err(|e| anyhow::anyhow!("{e}"))?;
        let digest =
            bulwark_crypto::sha256(&bulwark_saml::canonicalize(doc.root_element(), None, &[]));
        let signed_info = format!(
            concat!(
                r#"<ds:SignedInfo xmlns:ds="{ds}"><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></ds:CanonicalizationMethod>"#,
                r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"></ds:SignatureMethod>"#,
                r##"<ds:Reference URI="#_a{n}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"></ds:Transform>"##,
                r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></ds:Transform></ds:Transforms>"#,
                r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"></ds:DigestMethod>"#,
                r#"<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>"#
            ),
            ds = DSIG,
            n = n,
            digest = STANDARD.encode(digest),
        );
        let value = STANDARD.encode(self.signer.sign(signed_info.as_bytes())?);
        let inner = signed_info.replacen(&format!(r#" xmlns:ds="{DSIG}""#), "", 1);
        let signature = format!(
            r#"<ds:Signature xmlns:ds="{DSIG}">{inner}<ds:SignatureValue>{value}</ds:SignatureValue></ds:Signature>"#
        );
        let response = format!(
            concat!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r{n}" Version="2.0" "#,
                r#"IssueInstant="{at}" Destination="{acs}" InResponseTo="{request}">"#,
                r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{idp}</saml:Issuer>"#,
                r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#,
                "{assertion}</samlp:Response>"
            ),
            n = n,
            at = at,
            acs = acs,
            request = request,
            idp = IDP,
            assertion = assertion(&signature),
        );
        Ok(STANDARD.encode(response))
    }
}

/// The `ID` of the `AuthnRequest` in Bulwark's redirect (stored DEFLATE blocks).
fn request_id(redirect: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(redirect)?;
    let value = url
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .context("SAMLRequest")?
        .1
        .into_owned();
    let deflated = STANDARD.decode(value)?;
    let body = deflated.get(5..).context("a stored block")?;
    let xml = String::from_utf8_lossy(body);
    let at = xml.find(" ID=\"").context("an ID")? + 5;
    let rest = xml.get(at..).context("an ID")?;
    Ok(rest
        .get(..rest.find('"').context("an ID")?)
        .context("an ID")?
        .to_owned())
}

fn flow_cookie(res: &reqwest::Response) -> anyhow::Result<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-bulwark_saml="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("the flow cookie")
}

/// `bulwark-bench sso --protocol saml`.
pub async fn run(secs: u64) -> anyhow::Result<()> {
    let idp = std::sync::Arc::new(Idp::new()?);
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.sso.public_url = Some(format!("http://127.0.0.1:{port}"));
    config.sso.idp_hosts = vec!["idp.bench.example".into()];
    config.throttle.unauthenticated_per_minute = 1_000_000;
    let mut prepared = startup::prepare(config).await?;
    let token = prepared
        .take_setup_token()
        .context("a fresh deployment has a setup token")?
        .expose()
        .to_owned();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (org, cookie, csrf) = crate::console::owner_session(&client, &base, &token).await?;
    let send = |path: String, body: Value| {
        client
            .post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    for (path, body, want) in [
        (
            format!("/v1/orgs/{org}/sso/domains"),
            json!({"domain": "bench.example"}),
            201,
        ),
        (
            "/v1/sso/domains/verify".into(),
            json!({"org": org, "domain": "bench.example"}),
            200,
        ),
    ] {
        let res = send(path.clone(), body).await?;
        anyhow::ensure!(res.status() == want, "{path}: {}", res.status());
    }
    let res = send(
        format!("/v1/orgs/{org}/sso/connections"),
        json!({"name": "bench", "saml": {"metadata_xml": idp.metadata(),
            "encrypted_assertions": false}}),
    )
    .await?;
    anyhow::ensure!(res.status() == 201, "connection: {}", res.status());
    let connection: Value = res.json().await?;
    let text = |p: &str| {
        connection
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| p.to_owned())
    };
    let (start_url, acs, sp) = (
        text("/start_url")?,
        text("/saml/acs_url")?,
        text("/saml/sp_entity_id")?,
    );

    let ours = {
        let (client, idp, start_url, acs, sp) = (
            client.clone(),
            idp.clone(),
            start_url.clone(),
            acs.clone(),
            sp.clone(),
        );
        move || {
            let (client, idp, start_url, acs, sp) = (
                client.clone(),
                idp.clone(),
                start_url.clone(),
                acs.clone(),
                sp.clone(),
            );
            async move {
                let res = client.get(&start_url).send().await?;
                let flow = flow_cookie(&res)?;
                let request = request_id(&location(&res)?)?;
                let posted = idp.respond(&request, &acs, &sp)?;
                let body = format!(
                    "SAMLResponse={}",
                    url::form_urlencoded::byte_serialize(posted.as_bytes()).collect::<String>()
                );
                let done = client
                    .post(&acs)
                    .header("cookie", flow)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(done.status() == 303, "sign-in: {}", done.status());
                Ok(())
            }
        }
    };
    let baseline = {
        let (idp, acs, sp) = (idp.clone(), acs.clone(), sp.clone());
        move || {
            let (idp, acs, sp) = (idp.clone(), acs.clone(), sp.clone());
            async move {
                let posted = idp.respond("_baseline", &acs, &sp)?;
                anyhow::ensure!(!posted.is_empty(), "a response");
                tokio::task::yield_now().await;
                Ok(())
            }
        }
    };
    println!(
        "bench sso --protocol saml: SAML sign-ins one after another, {secs} alternating 1 s \
         rounds, SQLite, IdP and client in-process (ECDSA P-256 signed assertions)"
    );
    compare(secs, "IdP's response alone", ours, baseline).await?;
    let _ = stop_tx.send(());
    Ok(())
}
