//! The unseal-key store: each key share and the root token encrypted with KMS under an
//! encryption context naming the stack, the Vault cluster and the object, and decrypted with
//! the bucket's key only, one object per secret in every
//! bucket of the store (each bucket with its own region and key). Reading falls back to the
//! next bucket when one is missing, unreachable or lacks the keys, and checks that enough
//! shares decrypt. The cluster's TLS CA (certificate and key) is kept the same way. Plaintext
//! exists only in memory, as [`Secret`]s.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::secret::Secret;
use crate::aws::Aws;

/// The encryption context key naming the object a ciphertext belongs to (its S3 key).
pub const OBJECT_CONTEXT: &str = "vaultform:object";

/// One bucket of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreBucket {
    pub region: String,
    pub bucket: String,
    /// The KMS key (ARN or ID) of the bucket's region that encrypts the secrets.
    pub key: String,
}

/// Where the unseal keys of one Vault cluster live.
#[derive(Debug, Clone)]
pub struct UnsealStore {
    pub buckets: Vec<StoreBucket>,
    pub prefix: String,
    /// The KMS encryption context: `vaultform:stack`, `vaultform:vault`, plus the topology's.
    pub context: HashMap<String, String>,
    pub threshold: usize,
}

/// The secrets of an initialised cluster.
pub struct Keys {
    pub shares: Vec<Secret>,
    pub root_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{bucket} ({region}): {message}")]
    Bucket {
        region: String,
        bucket: String,
        message: String,
    },
    #[error("no bucket of the unseal store holds enough keys: {}", .0.join("; "))]
    NoKeys(Vec<String>),
    #[error(
        "{bucket} already holds unseal keys of another initialisation; vaultform will not overwrite them"
    )]
    Conflict { bucket: String },
}

impl UnsealStore {
    pub fn new(
        stack: &str,
        vault: &str,
        extra: &BTreeMap<String, String>,
        buckets: Vec<StoreBucket>,
        prefix: &str,
        threshold: usize,
    ) -> Self {
        let mut context: HashMap<String, String> =
            extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        context.insert("vaultform:stack".into(), stack.into());
        context.insert("vaultform:vault".into(), vault.into());
        UnsealStore {
            buckets,
            prefix: prefix.to_string(),
            context,
            threshold,
        }
    }

    /// What a resource records of the store (its buckets and prefix, no key): enough for
    /// [`UnsealStore::from_ids`] to delete its objects later.
    pub fn ids(&self) -> BTreeMap<String, String> {
        let buckets: Vec<serde_json::Value> = self
            .buckets
            .iter()
            .map(|b| serde_json::json!({"region": b.region, "bucket": b.bucket}))
            .collect();
        BTreeMap::from([
            (
                "buckets".to_string(),
                serde_json::Value::Array(buckets).to_string(),
            ),
            ("prefix".to_string(), self.prefix.clone()),
        ])
    }

    /// The store as [`UnsealStore::ids`] recorded it: for deletes, which need no key.
    pub fn from_ids(stack: &str, ids: &BTreeMap<String, String>) -> Self {
        #[derive(serde::Deserialize)]
        struct B {
            region: String,
            bucket: String,
        }
        let buckets: Vec<B> = ids
            .get("buckets")
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default();
        let prefix = ids.get("prefix").cloned().unwrap_or_default();
        let buckets = buckets
            .into_iter()
            .map(|b| StoreBucket {
                region: b.region,
                bucket: b.bucket,
                key: String::new(),
            })
            .collect();
        UnsealStore::new(stack, "", &BTreeMap::new(), buckets, &prefix, 0)
    }

    fn share_key(&self, i: usize) -> String {
        format!("{}vault-unseal-{i}", self.prefix)
    }

    /// The encryption context of `object`: the store's, and the object's own key, so that a
    /// ciphertext copied to another object's key does not decrypt there.
    pub fn context_of(&self, object: &str) -> HashMap<String, String> {
        let mut context = self.context.clone();
        context.insert(OBJECT_CONTEXT.into(), object.into());
        context
    }

    /// `plaintext` encrypted with bucket `b`'s key and the encryption context of `object`.
    async fn encrypt(
        &self,
        kms: &aws_sdk_kms::Client,
        b: &StoreBucket,
        object: &str,
        plaintext: &[u8],
    ) -> Result<Blob, String> {
        kms.encrypt()
            .key_id(&b.key)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(self.context_of(object)))
            .send()
            .await
            .map_err(|e| format!("KMS encrypt: {}", crate::aws::describe_error(&e).1))?
            .ciphertext_blob
            .ok_or_else(|| "KMS returned no ciphertext".to_string())
    }

    /// Whether `key` is one of the store's secret objects (a share or the root token).
    fn is_secret_object(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest == "vault-root" || rest.starts_with("vault-unseal-"))
    }

    fn root_key(&self) -> String {
        format!("{}vault-root", self.prefix)
    }

    /// The objects to write, the root token first: a write cut short leaves the root token
    /// with too few shares to unseal (nothing anyone can have used), or enough to unseal.
    fn objects<'a>(&self, keys: &'a Keys) -> Vec<(String, &'a Secret)> {
        std::iter::once((self.root_key(), &keys.root_token))
            .chain(
                keys.shares
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (self.share_key(i), s)),
            )
            .collect()
    }

    /// Writes every secret to every bucket. An object that exists already must hold the same
    /// secret (a re-run); anything else is refused, never overwritten.
    pub async fn store(&self, aws: &Aws, keys: &Keys) -> Result<(), StoreError> {
        for b in &self.buckets {
            self.store_in(aws, b, keys).await?;
        }
        Ok(())
    }

    /// Writes the secrets to one bucket (also used to repair a bucket that lost them).
    pub async fn store_in(
        &self,
        aws: &Aws,
        b: &StoreBucket,
        keys: &Keys,
    ) -> Result<(), StoreError> {
        for (object, secret) in self.objects(keys) {
            self.put_secret(aws, b, &object, secret)
                .await
                .map_err(|e| e.into_store_error(b))?;
        }
        Ok(())
    }

    /// Writes one secret to one bucket, encrypted. An object that exists already must hold
    /// the same secret (a re-run); anything else is a conflict, never overwritten.
    async fn put_secret(
        &self,
        aws: &Aws,
        b: &StoreBucket,
        object: &str,
        secret: &Secret,
    ) -> Result<(), PutError> {
        let blob = self
            .encrypt(&aws.kms(&b.region), b, object, secret.expose().as_bytes())
            .await
            .map_err(PutError::Failed)?;
        let put = aws
            .s3(&b.region)
            .put_object()
            .bucket(&b.bucket)
            .key(object)
            .if_none_match("*")
            .body(ByteStream::from(blob.into_inner()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.code() == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                let existing = self
                    .read_secret(aws, b, object)
                    .await
                    .map_err(PutError::Failed)?;
                if existing.as_ref() == Some(secret) {
                    Ok(())
                } else {
                    Err(PutError::Conflict)
                }
            }
            Err(e) => Err(PutError::Failed(format!(
                "S3 put {object}: {}",
                crate::aws::describe_error(&e).1
            ))),
        }
    }

    fn tls_ca_key(&self) -> String {
        format!("{}vault-tls-ca", self.prefix)
    }

    /// Keeps the cluster's TLS CA (certificate and private key, one secret) in every bucket.
    /// A bucket holding another CA is a conflict, never overwritten.
    pub async fn store_ca(&self, aws: &Aws, ca: &Secret) -> Result<(), StoreError> {
        let object = self.tls_ca_key();
        for b in &self.buckets {
            self.put_secret(aws, b, &object, ca)
                .await
                .map_err(|e| e.into_store_error(b))?;
        }
        Ok(())
    }

    /// The cluster's TLS CA from the first bucket that holds it: `None` when no bucket does
    /// (every bucket answered), an error when none could be read and some failed.
    pub async fn load_ca(&self, aws: &Aws) -> Result<Option<Secret>, StoreError> {
        let object = self.tls_ca_key();
        let mut why = Vec::new();
        for b in &self.buckets {
            match self.read_secret(aws, b, &object).await {
                Ok(Some(ca)) => return Ok(Some(ca)),
                Ok(None) => {}
                Err(e) => why.push(format!("{} ({}): {e}", b.bucket, b.region)),
            }
        }
        if why.is_empty() {
            Ok(None)
        } else {
            Err(StoreError::NoKeys(why))
        }
    }

    /// Deletes every version of the TLS CA from every bucket (a bucket already gone is fine).
    pub async fn delete_ca(&self, aws: &Aws) -> Result<(), StoreError> {
        let object = self.tls_ca_key();
        self.delete_versions(aws, |key| key == object).await
    }

    /// Keeps a named secret object (`<prefix><name>`, such as the transit seal's token) in
    /// every bucket. A bucket holding another secret under that name is a conflict.
    pub async fn store_object(
        &self,
        aws: &Aws,
        name: &str,
        secret: &Secret,
    ) -> Result<(), StoreError> {
        let object = format!("{}{name}", self.prefix);
        for b in &self.buckets {
            self.put_secret(aws, b, &object, secret)
                .await
                .map_err(|e| e.into_store_error(b))?;
        }
        Ok(())
    }

    /// Replaces a named secret object in every bucket: every version of the old one goes.
    pub async fn replace_object(
        &self,
        aws: &Aws,
        name: &str,
        secret: &Secret,
    ) -> Result<(), StoreError> {
        self.delete_objects(aws, &[name]).await?;
        self.store_object(aws, name, secret).await
    }

    /// A named secret object from the first bucket that holds it: `None` when no bucket does
    /// (every bucket answered), an error when none could be read and some failed.
    pub async fn load_object(&self, aws: &Aws, name: &str) -> Result<Option<Secret>, StoreError> {
        let object = format!("{}{name}", self.prefix);
        let mut why = Vec::new();
        for b in &self.buckets {
            match self.read_secret(aws, b, &object).await {
                Ok(Some(s)) => return Ok(Some(s)),
                Ok(None) => {}
                Err(e) => why.push(format!("{} ({}): {e}", b.bucket, b.region)),
            }
        }
        if why.is_empty() {
            Ok(None)
        } else {
            Err(StoreError::NoKeys(why))
        }
    }

    /// Deletes every version of the named secret objects from every bucket.
    pub async fn delete_objects(&self, aws: &Aws, names: &[&str]) -> Result<(), StoreError> {
        let objects: Vec<String> = names
            .iter()
            .map(|n| format!("{}{n}", self.prefix))
            .collect();
        self.delete_versions(aws, |key| objects.iter().any(|o| o == key))
            .await
    }

    /// One secret from one bucket: `None` when the object does not exist.
    async fn read_secret(
        &self,
        aws: &Aws,
        b: &StoreBucket,
        object: &str,
    ) -> Result<Option<Secret>, String> {
        let got = match aws
            .s3(&b.region)
            .get_object()
            .bucket(&b.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e)
                if e.code() == Some("NoSuchKey")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(format!(
                    "S3 get {object}: {}",
                    crate::aws::describe_error(&e).1
                ));
            }
        };
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|e| format!("S3 read {object}: {e}"))?
            .into_bytes();
        // The bucket's key only: a ciphertext made under any other key is refused.
        let plain = aws
            .kms(&b.region)
            .decrypt()
            .key_id(&b.key)
            .ciphertext_blob(Blob::new(bytes.to_vec()))
            .set_encryption_context(Some(self.context_of(object)))
            .send()
            .await
            .map_err(|e| format!("KMS decrypt {object}: {}", crate::aws::describe_error(&e).1))?
            .plaintext
            .ok_or_else(|| format!("KMS returned no plaintext for {object}"))?;
        let text =
            String::from_utf8(plain.into_inner()).map_err(|_| format!("{object} is not text"))?;
        Ok(Some(Secret::new(text)))
    }

    /// Reads the keys from the first bucket that has the root token and at least `threshold`
    /// shares that decrypt, trying every bucket in turn.
    pub async fn load(&self, aws: &Aws) -> Result<(Keys, &StoreBucket), StoreError> {
        let mut why = Vec::new();
        for b in &self.buckets {
            match self.load_from(aws, b).await {
                Ok(keys) => return Ok((keys, b)),
                Err(e) => why.push(format!("{} ({}): {e}", b.bucket, b.region)),
            }
        }
        Err(StoreError::NoKeys(why))
    }

    async fn load_from(&self, aws: &Aws, b: &StoreBucket) -> Result<Keys, String> {
        let root = self
            .read_secret(aws, b, &self.root_key())
            .await?
            .ok_or("no root token")?;
        let mut shares = Vec::new();
        // Shamir allows at most 255 shares.
        for i in 0..255 {
            match self.read_secret(aws, b, &self.share_key(i)).await? {
                Some(s) => shares.push(s),
                None => break,
            }
        }
        if shares.len() < self.threshold {
            return Err(format!(
                "{} of the {} shares needed",
                shares.len(),
                self.threshold
            ));
        }
        Ok(Keys {
            shares,
            root_token: root,
        })
    }

    /// The root token alone, from the first bucket that holds it.
    pub async fn load_root(&self, aws: &Aws) -> Result<Secret, StoreError> {
        let mut why = Vec::new();
        for b in &self.buckets {
            match self.read_secret(aws, b, &self.root_key()).await {
                Ok(Some(root)) => return Ok(root),
                Ok(None) => why.push(format!("{} ({}): no root token", b.bucket, b.region)),
                Err(e) => why.push(format!("{} ({}): {e}", b.bucket, b.region)),
            }
        }
        Err(StoreError::NoKeys(why))
    }

    /// Deletes every version of every secret object from every bucket of the store (destroy).
    /// A bucket that is already gone is fine.
    pub async fn delete_all(&self, aws: &Aws) -> Result<(), StoreError> {
        self.delete_versions(aws, |key| self.is_secret_object(key))
            .await
    }

    /// Deletes every version (and delete marker) of the objects under the prefix that `ours`
    /// selects, in every bucket.
    async fn delete_versions(
        &self,
        aws: &Aws,
        ours: impl Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        for b in &self.buckets {
            let s3 = aws.s3(&b.region);
            let fail = |message: String| StoreError::Bucket {
                region: b.region.clone(),
                bucket: b.bucket.clone(),
                message,
            };
            let listed = match s3
                .list_object_versions()
                .bucket(&b.bucket)
                .prefix(&self.prefix)
                .send()
                .await
            {
                Ok(l) => l,
                Err(e)
                    if e.code() == Some("NoSuchBucket")
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(fail(format!(
                        "S3 list versions: {}",
                        crate::aws::describe_error(&e).1
                    )));
                }
            };
            let versions = listed
                .versions()
                .iter()
                .filter_map(|v| Some((v.key()?, v.version_id())))
                .chain(
                    listed
                        .delete_markers()
                        .iter()
                        .filter_map(|m| Some((m.key()?, m.version_id()))),
                );
            for (key, version) in versions.filter(|(k, _)| ours(k)) {
                delete_version(&s3, &b.bucket, key, version)
                    .await
                    .map_err(fail)?;
            }
        }
        Ok(())
    }

    /// Checks, before `sys/init` makes secrets that exist nowhere else, that every bucket takes
    /// an object through its KMS key with the store's encryption context: a probe is
    /// encrypted, written, and its version deleted again (nothing stays behind).
    pub async fn probe(&self, aws: &Aws) -> Result<(), StoreError> {
        for b in &self.buckets {
            let fail = |message: String| StoreError::Bucket {
                region: b.region.clone(),
                bucket: b.bucket.clone(),
                message,
            };
            let probe = uuid::Uuid::new_v4().to_string();
            let object = format!("{}vaultform-probe", self.prefix);
            let blob = self
                .encrypt(&aws.kms(&b.region), b, &object, probe.as_bytes())
                .await
                .map_err(fail)?;
            let s3 = aws.s3(&b.region);
            let put = s3
                .put_object()
                .bucket(&b.bucket)
                .key(&object)
                .body(ByteStream::from(blob.into_inner()))
                .send()
                .await
                .map_err(|e| {
                    fail(format!(
                        "S3 put {object}: {}",
                        crate::aws::describe_error(&e).1
                    ))
                })?;
            delete_version(&s3, &b.bucket, &object, put.version_id())
                .await
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Whether every bucket answered and none holds enough shares to unseal: nobody can have
    /// unsealed the cluster with what the store holds (a write cut short leaves a root token
    /// and fewer shares than the threshold, or nothing). An error means it cannot be told.
    pub async fn cannot_unseal(&self, aws: &Aws) -> Result<bool, StoreError> {
        for b in &self.buckets {
            let listed = aws
                .s3(&b.region)
                .list_objects_v2()
                .bucket(&b.bucket)
                .prefix(&self.prefix)
                .send()
                .await
                .map_err(|e| StoreError::Bucket {
                    region: b.region.clone(),
                    bucket: b.bucket.clone(),
                    message: format!("S3 list: {}", crate::aws::describe_error(&e).1),
                })?;
            let share = |key: &str| {
                key.strip_prefix(&self.prefix)
                    .is_some_and(|rest| rest.starts_with("vault-unseal-"))
            };
            let shares = listed
                .contents()
                .iter()
                .filter(|o| o.key().is_some_and(share))
                .count();
            if shares >= self.threshold {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether a bucket holds the root token object (cheap check for repair and status).
    pub async fn has_keys(&self, aws: &Aws, b: &StoreBucket) -> bool {
        aws.s3(&b.region)
            .head_object()
            .bucket(&b.bucket)
            .key(self.root_key())
            .send()
            .await
            .is_ok()
    }
}

/// Why one secret could not be written to one bucket.
enum PutError {
    Failed(String),
    Conflict,
}

impl PutError {
    fn into_store_error(self, b: &StoreBucket) -> StoreError {
        match self {
            PutError::Failed(message) => StoreError::Bucket {
                region: b.region.clone(),
                bucket: b.bucket.clone(),
                message,
            },
            PutError::Conflict => StoreError::Conflict {
                bucket: b.bucket.clone(),
            },
        }
    }
}

/// Deletes one version of an object (the object itself when `version` is `None`).
async fn delete_version(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(), String> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("S3 delete {key}: {}", crate::aws::describe_error(&e).1))
}
