//! The REST API's request and response types, shared by the server, its tests and clients.
//! Domain records (tenants, operations, events) are the catalog's own types, shown as they are;
//! this crate holds what only the API has: requests, pages and acknowledgements.
//!
//! # Layout
//! - [`requests`]: bodies of `POST`/`PUT` requests.
//! - [`responses`]: envelopes around domain records.

pub mod requests;
pub mod responses;
