//! The Vault pods' IAM role against moto enforcing IAM (`tests/fixtures/clusters/pod-role.kdl`):
//! the role vaultform makes, assumed through `AssumeRoleWithWebIdentity`, may use the awskms
//! seal's key without an encryption context, and is refused every object of the unseal store
//! and the Decrypt of its ciphertexts.
//!
//! What moto evaluates here (`tests/moto_iam.py`): actions and resources, S3 by object ARN
//! and KMS by key ARN. What it does not: conditions (the role's `Null` on
//! `kms:EncryptionContextKeys` is not evaluated, so for "sh", whose seal shares the store's key,
//! only the policy document is checked), the web identity token and the trust policy.

use std::collections::BTreeMap;

use aws_sdk_kms::primitives::Blob;

use crate::support::stack::LocalStack;
use crate::support::testbed::Moto;
use vaultform::vault::Secret;
use vaultform::vault::store::{Keys, StoreBucket, UnsealStore};

const FILE: &str = "pod-role.kdl";
const STATE: &str = ".vaultform/pod-role.state.json";
const REGION: &str = "eu-west-1";
const BUCKET: &str = "pod-role-unseal-eu-west-1";
const ACCOUNT: &str = "123456789012";

/// Credentials as STS hands them out.
#[derive(Clone)]
struct Creds {
    id: String,
    secret: String,
    token: Option<String>,
}

impl Creds {
    fn sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.id,
            &self.secret,
            self.token.clone(),
            None,
            "pod-role-test",
        )
    }

    fn config(&self, endpoint: &str) -> aws_types::SdkConfig {
        aws_types::SdkConfig::builder()
            .endpoint_url(endpoint)
            .region(aws_types::region::Region::new(REGION))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(self.sdk()),
            )
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    fn s3(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config(endpoint))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    fn kms(&self, endpoint: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.config(endpoint))
    }
}

/// The operator: an IAM user allowed everything, made before moto enforces IAM.
async fn operator(endpoint: &str) -> Creds {
    let anyone = Creds {
        id: "test".into(),
        secret: "test".into(),
        token: None,
    };
    let iam = aws_sdk_iam::Client::new(&anyone.config(endpoint));
    iam.create_user()
        .user_name("operator")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("operator")
        .policy_name("all")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("operator")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    Creds {
        id: key.access_key_id().to_string(),
        secret: key.secret_access_key().to_string(),
        token: None,
    }
}

/// `AssumeRoleWithWebIdentity` for `role`, as a member's pod does with its service account's
/// token. Real STS takes it unsigned; moto enforcing IAM answers an unsigned request with 500,
/// so it is signed with `signer`'s key (moto then checks neither the token nor the trust).
async fn assume(endpoint: &str, signer: &Creds, role: &str) -> Creds {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=vault-0\
         &RoleArn=arn%3Aaws%3Aiam%3A%3A{ACCOUNT}%3Arole%2F{role}&WebIdentityToken=service-account-token"
    );
    let url = format!("{endpoint}/");
    let content_type = "application/x-www-form-urlencoded";
    let identity = signer.sdk().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sts")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::post(url.as_str())
        .header("content-type", content_type)
        .body(())
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut post = reqwest::Client::new().post(&url).body(body);
    for (k, v) in request.headers() {
        post = post.header(k.as_str(), v.to_str().unwrap());
    }
    let response = post.send().await.unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let xml = response.text().await.unwrap();
    let field = |name: &str| {
        let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
        let end = xml[start..].find(&format!("</{name}>")).unwrap();
        xml[start..start + end].to_string()
    };
    Creds {
        id: field("AccessKeyId"),
        secret: field("SecretAccessKey"),
        token: Some(field("SessionToken")),
    }
}

/// Whether a request was refused for want of permission (403: S3 `AccessDenied`, KMS
/// `AccessDeniedException`).
fn refused<T, E>(r: &Result<T, aws_sdk_s3::error::SdkError<E>>) -> bool {
    r.as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .is_some_and(|r| r.status().as_u16() == 403)
}

#[test]
fn the_pod_role_unseals_with_its_seal_key_and_reads_nothing_of_the_store() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The stack is applied before moto enforces IAM: under enforcement moto refuses some
    // of apply's own requests on signature grounds (EC2 CreateSecurityGroup: AuthFailure; IAM
    // CreateRole: 403), whoever signs them.
    let moto = Moto::start_enforcing_iam(None);
    let endpoint = moto.endpoint();
    let operator = rt.block_on(operator(&endpoint));
    let stack = LocalStack::on(moto, ("test", "test"), FILE, ".vaultform/pr");
    stack.ok(&[
        "apply",
        FILE,
        "--auto-approve",
        "--target",
        "iam.role.vault.pr",
        "--target",
        "iam.role.vault.sh",
    ]);
    let state = stack.state(STATE);
    let arn = |address: &str| {
        state["resources"][address]["outputs"]["arn"]
            .as_str()
            .unwrap_or_else(|| panic!("{address} has no arn"))
            .to_string()
    };
    let seal_key = arn("region.eu-west-1.key.seal");
    let store_key = arn("region.eu-west-1.key.unseal");

    rt.block_on(async {
        // The stores as vaultform writes them: shares, root token, CA, the transit token
        // object; each vault under its default prefix `vault/<v>/`.
        let aws = crate::unseal_store::aws_for(&endpoint).await;
        let mut stores = BTreeMap::new();
        for v in ["pr", "sh"] {
            let bucket = StoreBucket {
                region: REGION.into(),
                bucket: BUCKET.into(),
                key: store_key.clone(),
            };
            let store = UnsealStore::new(
                "pod-role",
                v,
                &BTreeMap::new(),
                vec![bucket],
                &format!("vault/{v}/"),
                3,
            );
            let keys = Keys {
                shares: (0..5)
                    .map(|i| Secret::new(format!("share-{v}-{i}")))
                    .collect(),
                root_token: Secret::new(format!("root-token-{v}")),
            };
            store.store(&aws, &keys).await.unwrap();
            store
                .store_ca(&aws, &Secret::new(format!("ca-{v}")))
                .await
                .unwrap();
            store
                .store_object(
                    &aws,
                    vaultform::vault::seal::TRANSIT_TOKEN,
                    &Secret::new(format!("transit-{v}")),
                )
                .await
                .unwrap();
            stores.insert(v, store);
        }
        // From here on every request is authorised against its caller's policies.
        stack.moto.enforce_iam();
        let anyone = Creds {
            id: "test".into(),
            secret: "test".into(),
            token: None,
        };
        let listed = anyone
            .s3(&endpoint)
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await;
        assert!(refused(&listed), "moto enforces IAM: {listed:?}");
        let objects: Vec<String> = operator
            .s3(&endpoint)
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert_eq!(objects.len(), 2 * 8, "{objects:?}");
        // The operator reads them: the refusals below are the role's, not moto's.
        let first = operator
            .s3(&endpoint)
            .get_object()
            .bucket(BUCKET)
            .key(&objects[0])
            .send()
            .await
            .unwrap();
        let ciphertext = first.body.collect().await.unwrap().into_bytes().to_vec();
        let owner = if objects[0].starts_with("vault/pr/") {
            "pr"
        } else {
            "sh"
        };
        let context = stores[owner].context_of(&objects[0]);
        operator
            .kms(&endpoint)
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .set_encryption_context(Some(context.clone()))
            .send()
            .await
            .expect("the operator decrypts a store object");

        let iam = aws_sdk_iam::Client::new(&operator.config(&endpoint));
        for (v, key) in [("pr", &seal_key), ("sh", &store_key)] {
            let role = format!("pod-role-vault-{v}");
            // Exactly one inline policy: the seal's statement, on its key, without context.
            let names = iam
                .list_role_policies()
                .role_name(&role)
                .send()
                .await
                .unwrap();
            assert_eq!(names.policy_names(), ["vaultform-seal"], "{v}");
            let doc = iam
                .get_role_policy()
                .role_name(&role)
                .policy_name("vaultform-seal")
                .send()
                .await
                .unwrap();
            let doc = crate::eks_aws::percent_decode(doc.policy_document());
            let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(
                doc,
                vaultform::resources::iam_role::seal_policy_document(std::slice::from_ref(key)),
                "{v}"
            );
            let attached = iam
                .list_attached_role_policies()
                .role_name(&role)
                .send()
                .await
                .unwrap();
            assert!(attached.attached_policies().is_empty(), "{v}");

            let pod = assume(&endpoint, &operator, &role).await;
            let (s3, kms) = (pod.s3(&endpoint), pod.kms(&endpoint));
            for object in &objects {
                let got = s3.get_object().bucket(BUCKET).key(object).send().await;
                assert!(refused(&got), "{v} read {object}: {got:?}");
            }
            let put = s3
                .put_object()
                .bucket(BUCKET)
                .key(format!("vault/{v}/vault-tls-ca"))
                .body(b"planted".to_vec().into())
                .send()
                .await;
            assert!(refused(&put), "{v} wrote into the store: {put:?}");

            // The seal's own use: Encrypt, Decrypt and DescribeKey on its key, no context.
            let sealed = kms
                .encrypt()
                .key_id(key.as_str())
                .plaintext(Blob::new(b"barrier key".to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{v}: the seal's Encrypt: {e:?}"));
            let opened = kms
                .decrypt()
                .key_id(key.as_str())
                .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{v}: the seal's Decrypt: {e:?}"));
            assert_eq!(opened.plaintext().unwrap().as_ref(), b"barrier key");
            kms.describe_key()
                .key_id(key.as_str())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{v}: DescribeKey: {e:?}"));

            if v == "pr" {
                // A key of its own: the store's ciphertexts are under a key the role lacks.
                let decrypt = kms
                    .decrypt()
                    .ciphertext_blob(Blob::new(ciphertext.clone()))
                    .set_encryption_context(Some(context.clone()))
                    .send()
                    .await;
                assert!(
                    refused(&decrypt),
                    "{v} decrypted a store object: {decrypt:?}"
                );
                let encrypt = kms
                    .encrypt()
                    .key_id(store_key.as_str())
                    .plaintext(Blob::new(b"planted".to_vec()))
                    .set_encryption_context(Some(context.clone()))
                    .send()
                    .await;
                assert!(
                    refused(&encrypt),
                    "{v} encrypted with the store's key: {encrypt:?}"
                );
            }
        }
    });
}
