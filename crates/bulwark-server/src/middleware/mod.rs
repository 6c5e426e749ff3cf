//! The request path, outermost first: request id, access log, security headers and problem
//! bodies for bare framework errors → CORS → timeout → body limit → handler.

pub mod headers;
pub mod observe;
pub mod request_id;
