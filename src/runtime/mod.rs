//! Where Vault nodes run. The local runtime (`local/`): detached processes on this machine
//! (one Vault server per member, one HAProxy per load balancer), each recorded by PID and
//! start time; the Kubernetes runtime (`kubernetes/`): a StatefulSet per member on the EKS
//! clusters. `cert` is the members' certificates, which both write to the cluster's files.

pub mod cert;
pub mod kubernetes;
pub mod local;
