//! Where Vault nodes run. The local runtime: detached processes on this machine (one Vault
//! server per member, one HAProxy per load balancer), each recorded by PID and start time;
//! the Kubernetes runtime: a StatefulSet per member on the EKS clusters.

pub mod cert;
pub mod haproxy;
pub mod kubernetes;
pub mod local;
pub mod process;
pub mod transit;
