//! HTTP resources. Each module ends in a `router()` that registers its routes with their OpenAPI
//! descriptions.

pub mod probes;
pub mod v1;
pub mod well_known;
