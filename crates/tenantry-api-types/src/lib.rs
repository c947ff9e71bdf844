//! The REST API's request and response types, shared by the server, its tests and clients.
//! They are the API's contract: the catalog's own records can change shape without changing
//! what clients see.
//!
//! # Layout
//! - [`requests`]: bodies of `POST`/`PUT` requests.
//! - [`responses`]: tenants, operations, events and the topology as the API shows them.
//! - [`admin`]: plans, runtime shards, the warm pool, fleet migrations and tokens.

pub mod admin;
pub mod requests;
pub mod responses;
