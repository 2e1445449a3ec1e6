//! The one integration test binary (the AWS SDK is linked once).

mod support;

mod apply;
mod aws_error;
mod aws_part;
mod awskms;
mod cli;
mod cluster;
mod cost;
mod diagnostics;
mod eks_token;
mod engine;
mod expired;
mod fuzz;
mod graph;
mod help;
mod interrupted_init;
mod kill_every_event;
mod kube_apply;
mod kube_cli;
mod kube_manifests;
mod log;
mod login;
mod manual;
mod modules;
mod network;
mod remote_state;
mod revoke_root;
mod runtime;
mod seal;
mod state;
mod sweep;
mod testbed;
mod unseal_store;
mod vault_client;
