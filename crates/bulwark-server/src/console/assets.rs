//! The console's static files: a stylesheet and two small scripts, compiled into the binary and
//! served from `/assets/<name>.<hash>.<ext>` with a year-long, immutable cache lifetime. The hash
//! is the first 16 hex digits of the file's SHA-256, so a new build never serves a stale file
//! under an old name, and an old or unknown name is a 404.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One static file.
pub struct Asset {
    /// The name with its content hash, as linked from pages.
    pub path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

fn asset(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    let digest = bulwark_crypto::sha256(bytes);
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Asset {
        path: format!("/assets/{stem}.{hash}.{ext}"),
        content_type,
        bytes,
    }
}

/// The files.
struct Assets {
    css: Asset,
    js: Asset,
    proof: Asset,
}

impl Assets {
    fn all(&self) -> [&Asset; 3] {
        [&self.css, &self.js, &self.proof]
    }
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let [css, js, proof] = [
        asset(
            "console",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("../../assets/console.css"),
        ),
        asset(
            "console",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/console.js"),
        ),
        asset(
            "proof",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/proof.js"),
        ),
    ];
    Assets { css, js, proof }
});

/// The stylesheet's path.
#[must_use]
pub fn css() -> &'static str {
    &ASSETS.css.path
}

/// The console script's path (copy buttons, local times, live filters).
#[must_use]
pub fn js() -> &'static str {
    &ASSETS.js.path
}

/// The inclusion-proof checker's path (WebCrypto SHA-256 and Ed25519).
#[must_use]
pub fn proof_js() -> &'static str {
    &ASSETS.proof.path
}

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let wanted = format!("/assets/{file}");
    let found = ASSETS
        .all()
        .into_iter()
        .find(|a| a.path == wanted)
        .ok_or_else(ApiError::not_found)?;
    let mut res = found.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(found.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}
