//! The KMS-encrypted, multi-region unseal-key store against a real moto server: ciphertext
//! only at rest, idempotent writes that never overwrite other keys, fallback to the next
//! bucket, the encryption context enforced.

use std::collections::BTreeMap;

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use vaultform::aws::{Aws, AwsSettings};
use vaultform::vault::Secret;
use vaultform::vault::store::{Keys, StoreBucket, StoreError, UnsealStore};

fn keys(tag: &str) -> Keys {
    Keys {
        shares: (0..5)
            .map(|i| Secret::new(format!("share-{tag}-{i}-c2VjcmV0")))
            .collect(),
        root_token: Secret::new(format!("s.root-{tag}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_only_ciphertext_falls_back_and_never_overwrites() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let api = Api::new(&ep).await;
    let mut buckets = Vec::new();
    for (region, name) in [
        ("eu-central-1", "st-unseal-central"),
        ("eu-west-1", "st-unseal-west"),
    ] {
        let key = api.kms(region).create_key().send().await.unwrap();
        let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
        api.s3(region)
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        buckets.push(StoreBucket {
            region: region.into(),
            bucket: name.into(),
            key: arn,
        });
    }
    let aws = aws_for(&ep).await;
    let store = UnsealStore::new(
        "st",
        "bv",
        &BTreeMap::new(),
        buckets.clone(),
        "vault/bv/",
        3,
    );
    let k = keys("a");
    store.store(&aws, &k).await.unwrap();

    // At rest: ciphertext only, one object per secret in every bucket.
    for b in &buckets {
        let list = api
            .s3(&b.region)
            .list_objects_v2()
            .bucket(&b.bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(list.contents().len(), 6, "5 shares and the root token");
        for o in list.contents() {
            let body = api
                .s3(&b.region)
                .get_object()
                .bucket(&b.bucket)
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("share-a") && !text.contains("s.root-a"),
                "plaintext at rest in {:?}",
                o.key()
            );
        }
    }

    let (loaded, from) = store.load(&aws).await.unwrap();
    assert_eq!(from.bucket, "st-unseal-central");
    assert_eq!(loaded.shares, k.shares);
    assert_eq!(loaded.root_token, k.root_token);

    // Storing the same keys again is a no-op; other keys are refused, never overwritten.
    store.store(&aws, &k).await.unwrap();
    match store.store(&aws, &keys("b")).await {
        Err(StoreError::Conflict { bucket }) => assert_eq!(bucket, "st-unseal-central"),
        other => panic!("expected a conflict, got {:?}", other.err()),
    }

    // The first bucket loses its keys: reading falls back to the next region's bucket.
    let central = api.s3("eu-central-1");
    let list = central
        .list_objects_v2()
        .bucket("st-unseal-central")
        .send()
        .await
        .unwrap();
    for o in list.contents() {
        central
            .delete_object()
            .bucket("st-unseal-central")
            .key(o.key().unwrap())
            .send()
            .await
            .unwrap();
    }
    assert!(!store.has_keys(&aws, &buckets[0]).await);
    let (loaded, from) = store.load(&aws).await.unwrap();
    assert_eq!(from.bucket, "st-unseal-west");
    assert_eq!(loaded.root_token, k.root_token);
    // ... and the lost bucket is repaired from what was read.
    store.store_in(&aws, &buckets[0], &loaded).await.unwrap();
    assert!(store.has_keys(&aws, &buckets[0]).await);

    // KMS enforces the encryption context: another cluster's store cannot read these keys.
    let other = UnsealStore::new(
        "st",
        "another-vault",
        &BTreeMap::new(),
        buckets.clone(),
        "vault/bv/",
        3,
    );
    match other.load(&aws).await {
        Err(StoreError::NoKeys(why)) => assert_eq!(why.len(), 2, "{why:?}"),
        Ok(_) => panic!("decrypted under the wrong encryption context"),
        Err(e) => panic!("{e}"),
    }
}

/// A ciphertext moved to another object's key, or one made under a key that is not the
/// bucket's (with the store's full encryption context), is refused: the store names the object
/// in the context and decrypts with the bucket's key only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_or_foreign_ciphertext_is_refused() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let api = Api::new(&ep).await;
    let region = "eu-west-1";
    let (kms, s3) = (api.kms(region), api.s3(region));
    let arn = |k: aws_sdk_kms::operation::create_key::CreateKeyOutput| {
        k.key_metadata().unwrap().arn().unwrap().to_string()
    };
    let key = arn(kms.create_key().send().await.unwrap());
    let foreign = arn(kms.create_key().send().await.unwrap());
    let bucket = "st-swap";
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let aws = aws_for(&ep).await;
    let b = StoreBucket {
        region: region.into(),
        bucket: bucket.into(),
        key: key.clone(),
    };
    let store = UnsealStore::new("st", "bv", &BTreeMap::new(), vec![b], "vault/bv/", 3);
    let k = keys("a");
    store.store(&aws, &k).await.unwrap();
    let read = |object: &str| {
        let (s3, object) = (s3.clone(), object.to_string());
        async move {
            let o = s3
                .get_object()
                .bucket(bucket)
                .key(&object)
                .send()
                .await
                .unwrap();
            o.body.collect().await.unwrap().into_bytes().to_vec()
        }
    };
    let write = |object: &str, bytes: Vec<u8>| {
        let (s3, object) = (s3.clone(), object.to_string());
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(&object)
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        }
    };

    // The root token's ciphertext copied over the first share: that share no longer decrypts.
    let root = read("vault/bv/vault-root").await;
    write("vault/bv/vault-unseal-0", root).await;
    match store.load(&aws).await {
        Err(StoreError::NoKeys(why)) => {
            assert!(
                why[0].contains("KMS decrypt vault/bv/vault-unseal-0"),
                "{why:?}"
            )
        }
        Ok(_) => panic!("a share read the root token's ciphertext"),
        Err(e) => panic!("{e}"),
    }

    // A root token planted under a foreign key, with exactly the context the store uses.
    let planted = kms
        .encrypt()
        .key_id(&foreign)
        .plaintext(aws_smithy_types::Blob::new("s.planted-root"))
        .set_encryption_context(Some(store.context_of("vault/bv/vault-root")))
        .send()
        .await
        .unwrap();
    write(
        "vault/bv/vault-root",
        planted.ciphertext_blob().unwrap().as_ref().to_vec(),
    )
    .await;
    match store.load_root(&aws).await {
        Err(StoreError::NoKeys(why)) => {
            assert!(
                why[0].contains("KMS decrypt vault/bv/vault-root"),
                "{why:?}"
            )
        }
        Ok(_) => panic!("the store accepted a root token under a foreign key"),
        Err(e) => panic!("{e}"),
    }
}

pub(crate) async fn aws_for(endpoint: &str) -> Aws {
    // Fixed credentials in the settings: no process-wide variable is set while other threads
    // of this test binary start processes.
    let mut settings = AwsSettings::resolve(Some(endpoint));
    settings.endpoint = Some(endpoint.to_string());
    settings.static_credentials = Some(("test".into(), "test".into()));
    Aws::connect(&settings).await
}
