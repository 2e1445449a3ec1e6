//! Envelope encryption of a state object: a KMS data key (made once per run, under an
//! encryption context naming the stack and the object) encrypts the state with AES-256-GCM
//! on this machine; the object holds only the data key's KMS ciphertext, a nonce and the
//! sealed bytes.

use std::collections::HashMap;

use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The marker of an encrypted state object's format.
const FORMAT: &str = "vaultform-envelope-1";

/// What is stored in the bucket.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    format: String,
    /// The data key, encrypted by KMS.
    data_key: String,
    nonce: String,
    ciphertext: String,
}

/// A data key for this run: its plaintext stays in memory (zeroed on drop).
pub struct DataKey {
    plaintext: Zeroizing<Vec<u8>>,
    encrypted: Vec<u8>,
    /// The KMS key (ARN) that made it.
    pub kms_key: String,
}

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{0}")]
    Kms(String),
    /// KMS says the key does not exist (`NotFoundException`).
    #[error("{0}")]
    KeyNotFound(String),
    #[error("the object is not an encrypted vaultform state")]
    NotSealed,
    #[error(
        "the object does not decrypt with its data key (altered, or bound to another stack or key)"
    )]
    Tampered,
}

/// The encryption context of a state object: binds the ciphertext to the stack and the object
/// (a copy moved to another key or read for another stack does not decrypt).
pub fn context(stack: &str, location: &str) -> HashMap<String, String> {
    HashMap::from([
        ("vaultform:stack".to_string(), stack.to_string()),
        ("vaultform:state".to_string(), location.to_string()),
    ])
}

/// The same context as additional authenticated data for AES-GCM.
fn aad(context: &HashMap<String, String>) -> Vec<u8> {
    let mut pairs: Vec<_> = context.iter().collect();
    pairs.sort();
    serde_json::to_vec(&pairs).unwrap_or_default()
}

fn kms_message<E>(what: &str, e: &E) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    format!("KMS {what}: {}", crate::aws::describe_error(e).1)
}

impl DataKey {
    /// A new data key under `kms_key` and `context`.
    pub async fn generate(
        kms: &aws_sdk_kms::Client,
        kms_key: &str,
        context: &HashMap<String, String>,
    ) -> Result<DataKey, EnvelopeError> {
        let out = kms
            .generate_data_key()
            .key_id(kms_key)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(context.clone()))
            .send()
            .await
            .map_err(|e| {
                let message = kms_message("GenerateDataKey", &e);
                if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
                    == Some("NotFoundException")
                {
                    EnvelopeError::KeyNotFound(message)
                } else {
                    EnvelopeError::Kms(message)
                }
            })?;
        let plaintext = out
            .plaintext
            .ok_or_else(|| EnvelopeError::Kms("KMS returned no data key".into()))?
            .into_inner();
        let encrypted = out
            .ciphertext_blob
            .ok_or_else(|| EnvelopeError::Kms("KMS returned no encrypted data key".into()))?
            .into_inner();
        Ok(DataKey {
            plaintext: Zeroizing::new(plaintext),
            encrypted,
            kms_key: out.key_id.unwrap_or_else(|| kms_key.to_string()),
        })
    }

    fn cipher(&self) -> Result<LessSafeKey, EnvelopeError> {
        UnboundKey::new(&AES_256_GCM, &self.plaintext)
            .map(LessSafeKey::new)
            .map_err(|_| EnvelopeError::Kms("KMS returned a data key of the wrong size".into()))
    }

    /// `plaintext` sealed with this data key (a fresh random nonce each time).
    pub fn seal(
        &self,
        plaintext: &[u8],
        context: &HashMap<String, String>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
        let mut buf = plaintext.to_vec();
        self.cipher()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut buf,
            )
            .map_err(|_| EnvelopeError::Tampered)?;
        let sealed = Sealed {
            format: FORMAT.into(),
            data_key: B64.encode(&self.encrypted),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(&buf),
        };
        Ok(serde_json::to_vec(&sealed).unwrap_or_default())
    }
}

/// Opens a sealed object: KMS decrypts its data key (with `kms_key` and `context`, so a wrong
/// key or another stack's object is refused by KMS), then AES-GCM checks and decrypts it.
/// Returns the plaintext and the data key, which later saves of this run reuse.
pub async fn open(
    kms: &aws_sdk_kms::Client,
    kms_key: &str,
    context: &HashMap<String, String>,
    body: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, DataKey), EnvelopeError> {
    let sealed: Sealed = serde_json::from_slice(body).map_err(|_| EnvelopeError::NotSealed)?;
    if sealed.format != FORMAT {
        return Err(EnvelopeError::NotSealed);
    }
    let decode = |s: &str| B64.decode(s).map_err(|_| EnvelopeError::NotSealed);
    let encrypted = decode(&sealed.data_key)?;
    let nonce: [u8; NONCE_LEN] = decode(&sealed.nonce)?
        .try_into()
        .map_err(|_| EnvelopeError::NotSealed)?;
    let mut buf = decode(&sealed.ciphertext)?;
    let out = kms
        .decrypt()
        .key_id(kms_key)
        .ciphertext_blob(Blob::new(encrypted.clone()))
        .set_encryption_context(Some(context.clone()))
        .send()
        .await
        .map_err(|e| EnvelopeError::Kms(kms_message("Decrypt", &e)))?;
    let key = DataKey {
        plaintext: Zeroizing::new(
            out.plaintext
                .ok_or_else(|| EnvelopeError::Kms("KMS returned no plaintext".into()))?
                .into_inner(),
        ),
        encrypted,
        kms_key: out.key_id.unwrap_or_else(|| kms_key.to_string()),
    };
    let n = key
        .cipher()?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(context)),
            &mut buf,
        )
        .map_err(|_| EnvelopeError::Tampered)?
        .len();
    buf.truncate(n);
    Ok((Zeroizing::new(buf), key))
}
