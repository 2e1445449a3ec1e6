//! The Kubernetes runtime's building blocks: reaching an EKS cluster's API (token, client,
//! kubeconfig), the objects of a Vault member, applying one object, the objects as planned
//! resources and a member's readiness.

pub mod actions;
pub mod apply;
pub mod client;
pub mod clusters;
pub mod kubeconfig;
pub mod manifests;
pub mod member;
pub mod objects;
pub mod reviewer;
pub mod runtime;
pub mod token;
