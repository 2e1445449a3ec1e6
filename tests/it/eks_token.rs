//! The EKS bearer token: its format checked against the documented one (the presigned URL
//! decoded, its query and signed headers read, the SigV4 signature computed again here from
//! the specification), and the URL answered by moto's STS.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use vaultform::aws::{Aws, AwsSettings};
use vaultform::runtime::kubernetes::token::{self, EksTokens};

use crate::support::testbed::bin_dir;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2026-12-01T12:00:00Z.
fn signed_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400)
}

/// SigV4's URI encoding: unreserved characters kept, every other byte `%XX` upper case.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The query of a URL, decoded.
fn query(url: &reqwest::Url) -> BTreeMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The signature AWS computes for a presigned GET with the headers `host` and
/// `x-k8s-aws-id` (Signature Version 4, "authenticating requests: using query parameters").
fn expected_signature(url: &reqwest::Url, cluster: &str, secret: &str) -> String {
    let q = query(url);
    let mut pairs: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_string(),
    };
    let empty_payload = hex(&Sha256::digest(b""));
    let canonical = format!(
        "GET\n{}\n{canonical_query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{empty_payload}",
        url.path()
    );
    let amz_date = &q["X-Amz-Date"];
    let scope = q["X-Amz-Credential"].split_once('/').unwrap().1.to_string();
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let parts: Vec<&str> = scope.split('/').collect();
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), parts[0]);
    for p in &parts[1..] {
        key = hmac(&key, p);
    }
    hex(&hmac(&key, &to_sign))
}

#[test]
fn the_token_has_the_documented_format_and_a_valid_signature() {
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test");
    let sts = token::sts_url("eu-west-1");
    let url = token::presign(&creds, "eu-west-1", "bv-eu-west-1", &sts, signed_at()).unwrap();
    let t = token::encode(&url);

    // k8s-aws-v1. + base64url without padding of the URL.
    let body = t.strip_prefix("k8s-aws-v1.").expect("prefix");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url alphabet, no padding: {body}"
    );
    let decoded = token::decode(&t).unwrap();
    assert_eq!(decoded, url);

    let u = reqwest::Url::parse(&decoded).unwrap();
    assert_eq!(u.scheme(), "https");
    assert_eq!(u.host_str(), Some("sts.eu-west-1.amazonaws.com"));
    assert_eq!(u.path(), "/");
    let q = query(&u);
    let keys: Vec<&str> = q.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Action",
            "Version",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
        ]
    );
    assert_eq!(q["Action"], "GetCallerIdentity");
    assert_eq!(q["Version"], "2011-06-15");
    assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(
        q["X-Amz-Credential"],
        "AKIDEXAMPLE/20261201/eu-west-1/sts/aws4_request"
    );
    assert_eq!(q["X-Amz-Date"], "20261201T120000Z");
    assert_eq!(q["X-Amz-Expires"], "60");
    assert_eq!(q["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");
    assert_eq!(
        q["X-Amz-Signature"],
        expected_signature(&u, "bv-eu-west-1", SECRET),
        "the signature of the documented canonical request"
    );
    // Another cluster's name gives another signature: a token names its cluster.
    assert_ne!(
        q["X-Amz-Signature"],
        expected_signature(&u, "bv-eu-central-1", SECRET)
    );
}

#[test]
fn temporary_credentials_sign_their_session_token() {
    let creds = Credentials::new("ASIAEXAMPLE", SECRET, Some("FwoG/z+=".into()), None, "t");
    let sts = token::sts_url("eu-north-1");
    let url = token::presign(&creds, "eu-north-1", "c", &sts, signed_at()).unwrap();
    let u = reqwest::Url::parse(&url).unwrap();
    let q = query(&u);
    assert_eq!(q["X-Amz-Security-Token"], "FwoG/z+=");
    assert_eq!(q["X-Amz-Signature"], expected_signature(&u, "c", SECRET));
}

#[tokio::test]
async fn tokens_are_cached_and_moto_sts_answers_their_url() {
    let mut settings = AwsSettings::resolve(None);
    settings.static_credentials = Some(("test".into(), "test".into()));
    let aws = Aws::connect(&settings).await;
    let tokens = EksTokens::new(&aws, "eu-west-1", "bv-eu-west-1").unwrap();
    let before = SystemTime::now();
    let first = tokens.get().await.unwrap();
    let expiry = first.expires_at.duration_since(before).unwrap();
    assert!(
        expiry >= token::REPORTED && expiry < token::REPORTED + Duration::from_secs(5),
        "{expiry:?}"
    );
    // Cached while fresh: the same token.
    assert_eq!(tokens.get().await.unwrap().expose(), first.expose());

    // What EKS does with a token: GET the URL with the cluster header, from STS (moto's,
    // serving the real hostname in-process).
    let url = token::decode(first.expose()).unwrap();
    assert!(
        url.starts_with("https://sts.eu-west-1.amazonaws.com/?"),
        "{url}"
    );
    let out = std::process::Command::new(bin_dir().join("python"))
        .arg(crate::support::root().join("tests/moto_sts_get.py"))
        .args([&url, "bv-eu-west-1"])
        .output()
        .expect("run tests/moto_sts_get.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = text.split_once('\n').unwrap();
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("<GetCallerIdentityResult>"), "{body}");
    assert!(body.contains("<Arn>arn:aws:"), "{body}");
    // A URL that is not GetCallerIdentity gets no identity: the answer is to the URL's action.
    let other = url.replace("Action=GetCallerIdentity", "Action=GetSessionToken");
    let out = std::process::Command::new(bin_dir().join("python"))
        .arg(crate::support::root().join("tests/moto_sts_get.py"))
        .args([&other, "bv-eu-west-1"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("<GetCallerIdentityResult>"));
}
