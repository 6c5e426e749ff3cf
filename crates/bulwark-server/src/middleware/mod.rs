//! The request path, outermost first: request id and access log → problem bodies for bare
//! framework errors → security headers → CORS → timeout → body limit → handler.

pub mod headers;
pub mod observe;
pub mod request_id;
