//! Vault (and OpenBao): the typed HTTP client; the unseal-key store and the ordered bootstrap
//! build on it.

pub mod bootstrap;
pub mod ca;
pub mod client;
pub mod cluster;
pub mod config;
pub mod secret;
pub mod spec;
pub mod store;
pub mod tls;

pub use client::{Client, Health, RaftServer, SealStatus, TlsSettings, VaultError};
pub use secret::Secret;
