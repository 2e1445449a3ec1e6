//! The AWS resource kinds, one module each, every operation idempotent: read / create
//! (adopting what it already owns) / update / delete (NotFound is success). Each kind also
//! says which graph nodes a topology yields for it and their desired attributes.

pub mod eks;
pub mod elb;
pub mod iam_role;
pub mod kms_key;
pub mod network;
pub mod s3_bucket;
pub mod wait;
