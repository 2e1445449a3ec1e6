//! Vault (and OpenBao): the typed HTTP client; the unseal-key store and the ordered bootstrap
//! build on it.

pub mod bootstrap;
pub mod ca;
pub mod client;
pub mod cluster;
pub mod config;
pub mod hcl;
pub mod revoke_root;
pub mod root;
pub mod seal;
pub mod secret;
pub mod spec;
pub mod store;
pub mod tls;

pub use client::{
    Client, CreatedToken, GenerateRoot, Health, RaftServer, SealStatus, TlsSettings, TokenRequest,
    VaultError,
};
pub use secret::Secret;
