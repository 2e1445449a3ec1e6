//! Where Vault nodes run. The local runtime: detached processes on this machine (one Vault
//! server per member, one HAProxy per load balancer), each recorded by PID and start time.

pub mod cert;
pub mod haproxy;
pub mod local;
pub mod process;
pub mod transit;
