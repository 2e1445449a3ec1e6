//! The one integration test binary (the AWS SDK is linked once).

mod support;

mod apply;
mod aws_error;
mod aws_part;
mod cli;
mod cluster;
mod diagnostics;
mod eks_token;
mod engine;
mod fuzz;
mod graph;
mod help;
mod interrupted_init;
mod kube_apply;
mod kube_cli;
mod kube_manifests;
mod log;
mod modules;
mod network;
mod runtime;
mod state;
mod testbed;
mod unseal_store;
mod vault_client;
