//! The AWS resource kinds, one module each, every operation idempotent: read / create
//! (adopting what it already owns) / update / delete (NotFound is success). Each kind also
//! says which graph nodes a topology yields for it and their desired attributes.

pub mod access_entry;
pub mod eks;
pub mod eks_addon;
pub mod eks_runtime;
pub mod elb;
pub mod iam_role;
pub mod kms_key;
pub mod kube_volumes;
pub mod network;
pub mod oidc_provider;
pub mod s3_bucket;
pub mod target_attachment;
pub mod wait;
