//! The S3 state backend: the state object encrypted client-side (see `envelope`), every save a
//! conditional write on the ETag this run read, so a lost race is an error naming the other
//! writer; and a lock object with a lease, renewed by a heartbeat, taken over once the lease
//! has ended, with a fencing token that every save checks; and the check of bucket, key,
//! conditional writes and lock that runs before anything else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::OnceCell;

use super::envelope::{self, DataKey, EnvelopeError};
use super::lease::{Lease, LockObject};
use super::lock::{LockGuard, LockInfo};
use super::model::{FORMAT_VERSION, State};
use super::{Backend, BackendCheck, StateError, StateVersion};
use crate::aws::{Aws, AwsSettings};
use crate::aws_error::AwsError;

/// Where the state lives and what encrypts it.
#[derive(Debug, Clone)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    pub region: String,
    pub kms_key: String,
    pub stack: String,
}

impl S3Location {
    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }
}

/// The lock this run holds.
struct Held {
    object: LockObject,
    /// The lock object's ETag as this run last wrote it.
    etag: String,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

type SharedHeld = Arc<tokio::sync::Mutex<Option<Held>>>;

/// The state in an S3 bucket.
pub struct S3Backend {
    loc: Arc<S3Location>,
    settings: AwsSettings,
    aws: OnceCell<Aws>,
    lease: Lease,
    /// The state object's ETag when this run last read or wrote it: `Some(None)` when there
    /// was none; `None` before the first read.
    etag: Mutex<Option<Option<String>>>,
    /// The data key of this run, made once, reused by every save.
    data_key: Mutex<Option<Arc<DataKey>>>,
    held: SharedHeld,
}

/// Stores (endpoint and bucket) that refused a conflicting conditional write in this process.
static VERIFIED: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

/// How a write is conditioned.
enum Cond {
    /// Only if no object exists (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Unchanged(String),
}

/// A conditional write that the store refused: someone else wrote first.
struct Refused;

fn refused<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    // 412: the ETag differs or the object exists; 404 / NoSuchKey: If-Match on an object
    // that is gone (not a bucket that is); 409: a concurrent conditional write in flight (S3
    // asks to retry).
    !no_bucket(e)
        && (e.code() == Some("PreconditionFailed")
            || e.code() == Some("NoSuchKey")
            || e.code() == Some("ConditionalRequestConflict")
            || matches!(status, Some(412 | 404 | 409)))
}

/// S3 says the bucket itself does not exist.
fn no_bucket<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    e.code() == Some("NoSuchBucket")
}

fn not_found<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    !no_bucket(e)
        && (e.code() == Some("NoSuchKey")
            || e.raw_response().is_some_and(|r| r.status().as_u16() == 404))
}

/// S3 metadata is sent as HTTP headers: ASCII only.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl S3Backend {
    pub fn new(loc: S3Location, settings: AwsSettings) -> Self {
        S3Backend {
            loc: Arc::new(loc),
            settings,
            aws: OnceCell::new(),
            lease: Lease::from_env(),
            etag: Mutex::new(None),
            data_key: Mutex::new(None),
            held: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The same backend with another lease (tests).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    pub fn location(&self) -> &S3Location {
        &self.loc
    }

    pub async fn aws(&self) -> &Aws {
        self.aws.get_or_init(|| Aws::connect(&self.settings)).await
    }

    async fn s3(&self) -> aws_sdk_s3::Client {
        self.aws().await.s3(&self.loc.region)
    }

    async fn kms(&self) -> aws_sdk_kms::Client {
        self.aws().await.kms(&self.loc.region)
    }

    fn remote<E>(
        &self,
        what: &str,
        e: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        remote(&self.loc, what, e)
    }

    fn context(&self) -> std::collections::HashMap<String, String> {
        envelope::context(&self.loc.stack, &self.loc.url())
    }

    /// Decrypts and parses a state object's body.
    async fn decode(&self, body: &[u8]) -> Result<State, StateError> {
        let kms = self.kms().await;
        let decrypt = |message: String| StateError::Decrypt {
            location: self.loc.url(),
            key: self.loc.kms_key.clone(),
            message,
        };
        let (plain, key) = envelope::open(&kms, &self.loc.kms_key, &self.context(), body)
            .await
            .map_err(|e| match e {
                EnvelopeError::Kms(m) => decrypt(m),
                other => decrypt(other.to_string()),
            })?;
        *self.data_key.lock().expect("data key") = Some(Arc::new(key));
        let state: State =
            serde_json::from_slice(&plain).map_err(|source| StateError::Corrupt {
                path: self.loc.url(),
                source,
            })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Version {
                path: self.loc.url(),
                found: state.version,
                expected: FORMAT_VERSION,
            });
        }
        Ok(state)
    }

    async fn seal(&self, state: &State) -> Result<Vec<u8>, StateError> {
        let key = self.data_key().await?;
        let text = serde_json::to_vec(state).unwrap_or_default();
        key.seal(&text, &self.context())
            .map_err(|e| self.encrypt(e))
    }

    fn encrypt(&self, e: EnvelopeError) -> StateError {
        StateError::Encrypt {
            location: self.loc.url(),
            key: self.loc.kms_key.clone(),
            message: e.to_string(),
        }
    }

    /// This run's data key: the one read with the state or made earlier, else a new one.
    async fn data_key(&self) -> Result<Arc<DataKey>, StateError> {
        if let Some(k) = self.data_key.lock().expect("data key").clone() {
            return Ok(k);
        }
        let k = DataKey::generate(&self.kms().await, &self.loc.kms_key, &self.context())
            .await
            .map_err(|e| match e {
                EnvelopeError::KeyNotFound(_) => StateError::NoKey {
                    key: self.loc.kms_key.clone(),
                    region: self.loc.region.clone(),
                },
                other => self.encrypt(other),
            })?;
        let k = Arc::new(k);
        *self.data_key.lock().expect("data key") = Some(k.clone());
        Ok(k)
    }

    /// That the store honours conditional writes, without the lock: on a probe object
    /// beside the state, written, refused twice, then its version deleted.
    async fn verify_conditional_writes(&self) -> Result<(), StateError> {
        let s3 = self.s3().await;
        let key = format!("{}.probe", self.loc.key);
        let body = Body {
            bytes: b"{\"probe\": \"vaultform doctor\"}".to_vec(),
            metadata: Vec::new(),
        };
        let Ok((_, version)) = put_conditional(&s3, &self.loc, &key, &body, None).await? else {
            return Err(StateError::Remote {
                location: self.loc.url(),
                message: format!("write {key}: refused without a condition"),
            });
        };
        let endpoint = self.aws().await.endpoint().map(str::to_owned);
        let verified = verify_store(&s3, &self.loc, endpoint.as_deref(), &key, &body).await;
        // Its own version deleted (no delete marker left in a versioned bucket).
        let delete = s3
            .delete_object()
            .bucket(&self.loc.bucket)
            .key(&key)
            .set_version_id(version);
        if let Err(e) = delete.send().await {
            tracing::warn!(error = %AwsError::from_sdk("delete the probe", e), "the probe object {key} stays");
        }
        verified
    }

    /// Who holds the lock: free, or a stale holder the next run takes over; a live holder
    /// is an error (a run now would be refused).
    async fn lock_holder(&self) -> Result<String, StateError> {
        match read_lock(&self.s3().await, &self.loc).await? {
            None => Ok("free".into()),
            Some((o, _)) if o.released => Ok("free".into()),
            Some((o, _)) if o.expired() => Ok(format!(
                "stale: {} (its lease ended; the next run takes it over)",
                o.info().describe()
            )),
            Some((o, _)) => Err(StateError::Locked {
                holder: o.info().describe(),
                id: o.holder.id,
            }),
        }
    }

    /// Who last wrote the state object, from its metadata.
    async fn writer(&self, s3: &aws_sdk_s3::Client) -> String {
        match s3
            .head_object()
            .bucket(&self.loc.bucket)
            .key(&self.loc.key)
            .send()
            .await
        {
            Ok(h) => h
                .metadata()
                .and_then(|m| m.get("vaultform-writer"))
                .cloned()
                .unwrap_or_else(|| "an unknown writer (the object has no writer metadata)".into()),
            Err(e) if not_found(&e) => "a run that deleted it".into(),
            Err(_) => "an unknown writer".into(),
        }
    }

    /// Checks that this run still holds the lock, by the lock object's ID and fencing token.
    async fn check_fence(&self, s3: &aws_sdk_s3::Client) -> Result<(LockObject, u64), StateError> {
        let ours = {
            let held = self.held.lock().await;
            match held.as_ref() {
                Some(h) => h.object.clone(),
                None => {
                    return Err(StateError::NotHolding {
                        location: self.loc.url(),
                    });
                }
            }
        };
        match read_lock(s3, &self.loc).await? {
            Some((now, _)) if !now.released && now.holder.id == ours.holder.id => {
                let fence = now.fence;
                if fence != ours.fence {
                    return Err(StateError::Fenced {
                        location: self.loc.url(),
                        holder: now.info().describe(),
                    });
                }
                Ok((ours, fence))
            }
            Some((now, _)) if !now.released => Err(StateError::Fenced {
                location: self.loc.url(),
                holder: now.info().describe(),
            }),
            _ => Err(StateError::Fenced {
                location: self.loc.url(),
                holder: "nobody (the lock was released or removed)".into(),
            }),
        }
    }
}

fn remote<E>(
    loc: &S3Location,
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> StateError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if no_bucket(&e) {
        return StateError::NoBucket {
            bucket: loc.bucket.clone(),
            region: loc.region.clone(),
        };
    }
    StateError::Remote {
        location: loc.url(),
        message: AwsError::from_sdk(what, e).to_string(),
    }
}

/// The lock object and its ETag; `None` when there is none.
async fn read_lock(
    s3: &aws_sdk_s3::Client,
    loc: &S3Location,
) -> Result<Option<(LockObject, String)>, StateError> {
    let out = match s3
        .get_object()
        .bucket(&loc.bucket)
        .key(loc.lock_key())
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(remote(loc, "read the lock", e)),
    };
    let etag = out.e_tag().unwrap_or_default().to_string();
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| StateError::Remote {
            location: loc.url(),
            message: format!("read the lock: {e}"),
        })?
        .into_bytes();
    match serde_json::from_slice::<LockObject>(&body) {
        Ok(o) => Ok(Some((o, etag))),
        Err(_) => Err(StateError::Locked {
            holder: format!(
                "an unreadable lock object s3://{}/{}",
                loc.bucket,
                loc.lock_key()
            ),
            id: "?".into(),
        }),
    }
}

/// Writes the lock object under `cond`: its new ETag, or `Refused` when someone wrote first.
async fn put_lock(
    s3: &aws_sdk_s3::Client,
    loc: &S3Location,
    object: &LockObject,
    cond: Cond,
) -> Result<Result<String, Refused>, StateError> {
    let written = put_conditional(s3, loc, &loc.lock_key(), &lock_body(object), Some(cond)).await?;
    Ok(written.map(|(etag, _)| etag))
}

/// The lock object as it is stored, with its metadata.
struct Body {
    bytes: Vec<u8>,
    metadata: Vec<(&'static str, String)>,
}

fn lock_body(object: &LockObject) -> Body {
    Body {
        bytes: serde_json::to_vec_pretty(object).unwrap_or_default(),
        metadata: vec![
            ("vaultform-lock-id", header_safe(&object.holder.id)),
            ("vaultform-fence", object.fence.to_string()),
        ],
    }
}

/// Writes `body` at `key` under `cond` (unconditionally with `None`): its new ETag and
/// version, or `Refused` when the store refused the condition.
async fn put_conditional(
    s3: &aws_sdk_s3::Client,
    loc: &S3Location,
    key: &str,
    body: &Body,
    cond: Option<Cond>,
) -> Result<Result<(String, Option<String>), Refused>, StateError> {
    let mut req = s3
        .put_object()
        .bucket(&loc.bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body.bytes.clone()));
    for (name, value) in &body.metadata {
        req = req.metadata(*name, value);
    }
    let req = match cond {
        Some(Cond::Absent) => req.if_none_match("*"),
        Some(Cond::Unchanged(etag)) => req.if_match(etag),
        None => req,
    };
    match req.send().await {
        Ok(out) => Ok(Ok((
            out.e_tag().unwrap_or_default().to_string(),
            out.version_id().map(str::to_owned),
        ))),
        Err(e) if refused(&e) => Ok(Err(Refused)),
        Err(e) => Err(remote(loc, &format!("write {key}"), e)),
    }
}

/// Once per store and process: two conditional writes on the existing object `key` that
/// must be refused are refused (with its own bytes: a store that wrongly accepts leaves the
/// object as it was).
async fn verify_store(
    s3: &aws_sdk_s3::Client,
    loc: &S3Location,
    endpoint: Option<&str>,
    key: &str,
    body: &Body,
) -> Result<(), StateError> {
    let store = format!("{} {}", endpoint.unwrap_or("aws"), loc.bucket);
    if VERIFIED.lock().expect("verified").contains(&store) {
        return Ok(());
    }
    let unconditional = |what: &str| StateError::Unconditional {
        location: format!("{} (endpoint {})", loc.url(), endpoint.unwrap_or("AWS S3")),
        what: what.to_string(),
    };
    if put_conditional(s3, loc, key, body, Some(Cond::Absent))
        .await?
        .is_ok()
    {
        return Err(unconditional(
            "If-None-Match: * was accepted for an object that exists",
        ));
    }
    let wrong = Cond::Unchanged("\"00000000000000000000000000000000\"".into());
    if put_conditional(s3, loc, key, body, Some(wrong))
        .await?
        .is_ok()
    {
        return Err(unconditional("If-Match with a wrong ETag was accepted"));
    }
    VERIFIED.lock().expect("verified").insert(store);
    Ok(())
}

/// Renews the lease every heartbeat while the lock is held; stops when it is lost.
async fn heartbeat(s3: aws_sdk_s3::Client, loc: Arc<S3Location>, held: SharedHeld, lease: Lease) {
    let mut tick = tokio::time::interval(lease.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut guard = held.lock().await;
        let Some(h) = guard.as_mut() else { return };
        let mut renewed = h.object.clone();
        renewed.renew(lease);
        match put_lock(&s3, &loc, &renewed, Cond::Unchanged(h.etag.clone())).await {
            Ok(Ok(etag)) => {
                h.etag = etag;
                h.object = renewed;
                tracing::debug!(lock = %h.object.holder.id, until = %h.object.lease_expires, "lease renewed");
            }
            Ok(Err(Refused)) => {
                tracing::warn!(
                    lock = %h.object.holder.id,
                    "the state lock was taken over; this run's saves will be refused"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the state lock's lease; trying again")
            }
        }
    }
}

/// Marks the lock released, if it is still ours.
async fn release(s3: aws_sdk_s3::Client, loc: Arc<S3Location>, held: SharedHeld) {
    let mut guard = held.lock().await;
    let Some(h) = guard.take() else { return };
    if let Some(task) = &h.heartbeat {
        task.abort();
    }
    let mut released = h.object.clone();
    released.released = true;
    match put_lock(&s3, &loc, &released, Cond::Unchanged(h.etag)).await {
        Ok(Ok(_)) => {}
        Ok(Err(Refused)) => tracing::warn!("the state lock was no longer this run's to release"),
        Err(e) => tracing::warn!(error = %e, "could not release the state lock; its lease ends it"),
    }
}

/// Runs `fut` to completion from a synchronous drop.
fn finish_now(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        Ok(h) => drop(h.spawn(fut)),
        Err(_) => {}
    }
}

// The check before a run: the bucket answers, the KMS key makes a data key (kept: the run's
// saves encrypt with it); with writes, a probe's conditional writes and who holds the lock.

/// Each thing a run needs from the S3 backend, in the order a run needs them; the bucket's
/// later checks are left out when there is no bucket.
async fn check(backend: &S3Backend, writes: bool) -> Vec<BackendCheck> {
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

#[async_trait::async_trait]
impl Backend for S3Backend {
    fn describe(&self) -> String {
        self.loc.url()
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let s3 = self.s3().await;
        let out = match s3
            .get_object()
            .bucket(&self.loc.bucket)
            .key(&self.loc.key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if not_found(&e) => {
                *self.etag.lock().expect("etag") = Some(None);
                return Ok(None);
            }
            Err(e) => return Err(self.remote("read the state", e)),
        };
        let etag = out.e_tag().map(str::to_owned);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StateError::Remote {
                location: self.loc.url(),
                message: format!("read the state: {e}"),
            })?
            .into_bytes();
        let state = self.decode(&body).await?;
        *self.etag.lock().expect("etag") = Some(etag);
        Ok(Some(state))
    }

    async fn save(&self, state: &State) -> Result<(), StateError> {
        let s3 = self.s3().await;
        let (ours, fence) = self.check_fence(&s3).await?;
        let body = self.seal(state).await?;
        let read = self.etag.lock().expect("etag").clone();
        let writer = format!(
            "{} (serial {}, fencing token {fence})",
            ours.holder.describe(),
            state.serial
        );
        let req = s3
            .put_object()
            .bucket(&self.loc.bucket)
            .key(&self.loc.key)
            .content_type("application/json")
            .metadata("vaultform-writer", header_safe(&writer))
            .metadata("vaultform-serial", state.serial.to_string())
            .metadata("vaultform-fence", fence.to_string())
            .body(ByteStream::from(body));
        let req = match read.flatten() {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => {
                *self.etag.lock().expect("etag") = Some(out.e_tag().map(str::to_owned));
                Ok(())
            }
            Err(e) if refused(&e) => Err(StateError::Conflict {
                location: self.loc.url(),
                writer: self.writer(&s3).await,
            }),
            Err(e) => Err(self.remote("write the state", e)),
        }
    }

    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        let s3 = self.s3().await;
        for _ in 0..5 {
            let current = read_lock(&s3, &self.loc).await?;
            let (fence, cond, previous) = match current {
                None => (1, Cond::Absent, None),
                Some((o, etag)) if o.released => (o.fence + 1, Cond::Unchanged(etag), None),
                Some((o, etag)) if o.expired() => {
                    (o.fence + 1, Cond::Unchanged(etag), Some(o.info()))
                }
                Some((o, _)) => {
                    return Err(StateError::Locked {
                        holder: o.info().describe(),
                        id: o.holder.id,
                    });
                }
            };
            let object = LockObject::new(operation, fence, self.lease);
            let Ok(etag) = put_lock(&s3, &self.loc, &object, cond).await? else {
                // Another run wrote the lock between the read and the write: look again.
                continue;
            };
            *self.held.lock().await = Some(Held {
                object: object.clone(),
                etag,
                heartbeat: None,
            });
            let (loc, held) = (self.loc.clone(), self.held.clone());
            let release_s3 = s3.clone();
            let guard = LockGuard::new(
                object.info(),
                previous,
                Box::new(move || finish_now(release(release_s3, loc, held))),
            );
            let endpoint = self.aws().await.endpoint().map(str::to_owned);
            let key = self.loc.lock_key();
            verify_store(
                &s3,
                &self.loc,
                endpoint.as_deref(),
                &key,
                &lock_body(&object),
            )
            .await?;
            let task = tokio::spawn(heartbeat(
                s3.clone(),
                self.loc.clone(),
                self.held.clone(),
                self.lease,
            ));
            if let Some(h) = self.held.lock().await.as_mut() {
                h.heartbeat = Some(task);
            }
            return Ok(guard);
        }
        let holder = read_lock(&s3, &self.loc).await?;
        Err(StateError::Locked {
            holder: holder
                .as_ref()
                .map(|(o, _)| o.info().describe())
                .unwrap_or_else(|| "another run".into()),
            id: holder.map(|(o, _)| o.holder.id).unwrap_or_default(),
        })
    }

    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        let s3 = self.s3().await;
        // A live holder's heartbeat may renew the lock between the read and the write: the
        // same lock, read again and released on its new ETag (a few times at most).
        for _ in 0..4 {
            match read_lock(&s3, &self.loc).await? {
                Some((o, etag)) if !o.released && o.holder.id == id => {
                    let mut released = o.clone();
                    released.released = true;
                    if put_lock(&s3, &self.loc, &released, Cond::Unchanged(etag))
                        .await?
                        .is_ok()
                    {
                        return Ok(o.info());
                    }
                }
                _ => break,
            }
        }
        match read_lock(&s3, &self.loc).await? {
            Some((o, _)) if !o.released && o.holder.id == id => Err(StateError::NotLocked {
                id: id.to_string(),
                current: "a lock that changed while it was being removed".into(),
            }),
            other => Err(StateError::NotLocked {
                id: id.to_string(),
                current: match other {
                    Some((o, _)) if !o.released => o.info().describe(),
                    _ => "none".into(),
                },
            }),
        }
    }

    async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        let s3 = self.s3().await;
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = s3
                .list_object_versions()
                .bucket(&self.loc.bucket)
                .prefix(&self.loc.key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.remote("list the state's versions", e))?;
            for v in page.versions() {
                if v.key() != Some(self.loc.key.as_str()) {
                    continue;
                }
                let id = v.version_id().unwrap_or_default().to_string();
                let meta = s3
                    .head_object()
                    .bucket(&self.loc.bucket)
                    .key(&self.loc.key)
                    .version_id(&id)
                    .send()
                    .await
                    .ok()
                    .and_then(|h| h.metadata().cloned())
                    .unwrap_or_default();
                out.push(StateVersion {
                    id,
                    modified: v
                        .last_modified()
                        .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
                        .unwrap_or_default(),
                    size: v.size().unwrap_or_default(),
                    latest: v.is_latest().unwrap_or(false),
                    writer: meta.get("vaultform-writer").cloned(),
                    serial: meta.get("vaultform-serial").and_then(|s| s.parse().ok()),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.latest.cmp(&a.latest)));
        Ok(out)
    }

    async fn load_version(&self, version: &str) -> Result<State, StateError> {
        let s3 = self.s3().await;
        let out = s3
            .get_object()
            .bucket(&self.loc.bucket)
            .key(&self.loc.key)
            .version_id(version)
            .send()
            .await
            .map_err(|e| self.remote(&format!("read version {version}"), e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StateError::Remote {
                location: self.loc.url(),
                message: format!("read version {version}: {e}"),
            })?
            .into_bytes();
        self.decode(&body).await
    }

    async fn check(&self, writes: bool) -> Vec<BackendCheck> {
        check(self, writes).await
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.aws
            .get()
            .map(|a| a.calls.snapshot())
            .unwrap_or_default()
    }
}
