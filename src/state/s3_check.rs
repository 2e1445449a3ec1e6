//! The S3 state backend checked before a run starts: the bucket answers, the KMS key makes
//! a data key (kept: the run's saves encrypt with it); with writes, a conditional write the
//! store must refuse is refused, and who holds the lock.

use super::s3::{S3Backend, remote};
use super::{BackendCheck, StateError};

/// Each thing a run needs from the S3 backend, in the order a run needs them; the bucket's
/// later checks are left out when there is no bucket.
pub(super) async fn check(backend: &S3Backend, writes: bool) -> Vec<BackendCheck> {
    let loc = backend.location();
    let mut out = vec![BackendCheck {
        subject: format!("state bucket {} in {}", loc.bucket, loc.region),
        result: bucket(backend).await,
    }];
    let has_bucket = out[0].result.is_ok();
    out.push(BackendCheck {
        subject: format!("state KMS key {} in {}", loc.kms_key, loc.region),
        result: backend
            .data_key()
            .await
            .map(|k| format!("makes data keys ({})", k.kms_key)),
    });
    if writes && has_bucket {
        out.push(BackendCheck {
            subject: format!("conditional writes in {}", loc.bucket),
            result: backend
                .verify_conditional_writes()
                .await
                .map(|()| "If-None-Match and If-Match honoured".to_string()),
        });
        out.push(BackendCheck {
            subject: format!("state lock s3://{}/{}.lock", loc.bucket, loc.key),
            result: backend.lock_holder().await,
        });
    }
    out
}

/// The bucket exists and these credentials may use it.
async fn bucket(backend: &S3Backend) -> Result<String, StateError> {
    let loc = backend.location();
    match backend
        .s3()
        .await
        .head_bucket()
        .bucket(&loc.bucket)
        .send()
        .await
    {
        Ok(_) => Ok("exists".into()),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            Err(StateError::NoBucket {
                bucket: loc.bucket.clone(),
                region: loc.region.clone(),
            })
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            Err(StateError::Remote {
                location: format!("s3://{}", loc.bucket),
                message: "access denied: the bucket is another account's (S3 bucket names are global) or these credentials may not use it".into(),
            })
        }
        Err(e) => Err(remote(loc, "look up the state bucket", e)),
    }
}
