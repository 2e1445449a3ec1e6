//! The Kubernetes runtime's building blocks: reaching an EKS cluster's API (token, client,
//! kubeconfig), the objects of a Vault member, and applying one object.

pub mod apply;
pub mod client;
pub mod kubeconfig;
pub mod manifests;
pub mod token;
