//! AWS naming rules and known values, checked before any cloud call.

/// Every AWS region vaultform knows (commercial, GovCloud, China).
pub const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Why an S3 bucket name breaks the S3 naming rules, if it does.
pub fn bucket_name_problem(name: &str) -> Option<String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Some(format!(
            "bucket names are 3 to 63 characters long; this one has {len}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Some(format!(
            "bucket names use lowercase letters, digits, '.' and '-' only; found '{c}'"
        ));
    }
    let first = name.chars().next()?;
    let last = name.chars().last()?;
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some("bucket names begin and end with a letter or digit".into());
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some(
            "bucket names cannot have two adjacent periods, or a period next to a hyphen".into(),
        );
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("bucket names cannot look like an IP address".into());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Some(format!("bucket names cannot begin with \"{prefix}\""));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Some(format!("bucket names cannot end with \"{suffix}\""));
        }
    }
    None
}

/// Why a load balancer (or target group) name breaks the ELBv2 rules, if it does.
pub fn elb_name_problem(name: &str) -> Option<String> {
    if name.len() > 32 {
        return Some(format!(
            "load balancer names are at most 32 characters; this one has {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Some(format!(
            "load balancer names use letters, digits and '-' only; found '{c}'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("load balancer names cannot begin or end with '-'".into());
    }
    if name.starts_with("internal-") {
        return Some("load balancer names cannot begin with \"internal-\"".into());
    }
    None
}

/// Why an EKS cluster or node group name is invalid, if it is.
pub fn eks_name_problem(name: &str, max: usize) -> Option<String> {
    if name.len() > max {
        return Some(format!(
            "at most {max} characters; this one has {}",
            name.len()
        ));
    }
    let first = name.chars().next()?;
    if !first.is_ascii_alphanumeric() {
        return Some("must begin with a letter or digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Some(format!("letters, digits, '-' and '_' only; found '{c}'"));
    }
    None
}

/// Why a text is not the ARN of an IAM role or user (what an EKS access entry takes), if it
/// is not: `arn:<partition>:iam::<12-digit account>:role/<path/name>` (or `user/...`).
pub fn iam_principal_problem(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Some("not an ARN: expected arn:aws:iam::ACCOUNT:role/NAME".into());
    }
    if !matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov") {
        return Some(format!("unknown partition \"{}\"", parts[1]));
    }
    if parts[2] != "iam" {
        if parts[2] == "sts" {
            return Some(
                "an assumed-role session, not a principal: name the IAM role itself".into(),
            );
        }
        return Some(format!("an ARN of service \"{}\", not IAM", parts[2]));
    }
    if !parts[3].is_empty() {
        return Some("IAM ARNs have no region".into());
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "the account must be 12 digits, not \"{}\"",
            parts[4]
        ));
    }
    let Some((kind, name)) = parts[5].split_once('/') else {
        return Some("expected role/NAME or user/NAME after the account".into());
    };
    if kind != "role" && kind != "user" {
        return Some(format!(
            "an access entry takes an IAM role or user, not a {kind}"
        ));
    }
    let leaf = name.rsplit('/').next().unwrap_or_default();
    if leaf.is_empty() || leaf.len() > 64 {
        return Some("the name must be 1-64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-/".contains(*c)))
    {
        return Some(format!(
            "IAM names take letters, digits and +=,.@_- only; found '{c}'"
        ));
    }
    None
}

/// Why a KMS alias is invalid, if it is.
pub fn kms_alias_problem(alias: &str) -> Option<String> {
    let Some(rest) = alias.strip_prefix("alias/") else {
        return Some("KMS aliases begin with \"alias/\"".into());
    };
    if rest.is_empty() || alias.len() > 256 {
        return Some("KMS aliases have 1 to 250 characters after \"alias/\"".into());
    }
    if rest.starts_with("aws/") {
        return Some("the \"alias/aws/\" prefix is reserved for AWS managed keys".into());
    }
    if let Some(c) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')))
    {
        return Some(format!(
            "KMS aliases use letters, digits, '/', '_' and '-' only; found '{c}'"
        ));
    }
    None
}

/// A Kubernetes minor version such as "1.31".
pub fn is_kubernetes_version(v: &str) -> bool {
    let mut parts = v.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(major), Some(minor), None)
            if major == "1" && !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::iam_principal_problem;

    #[test]
    fn access_entries_take_iam_roles_and_users_only() {
        for ok in [
            "arn:aws:iam::111122223333:role/ci",
            "arn:aws:iam::111122223333:role/team/deploy.ci",
            "arn:aws:iam::111122223333:user/alice@example",
            "arn:aws-cn:iam::111122223333:role/ci",
        ] {
            assert_eq!(iam_principal_problem(ok), None, "{ok}");
        }
        for bad in [
            "role/ci",
            "arn:aws:sts::111122223333:assumed-role/ci/session",
            "arn:aws:iam:eu-west-1:111122223333:role/ci",
            "arn:aws:iam::1111:role/ci",
            "arn:aws:iam::111122223333:group/ops",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role/a b",
            "arn:azure:iam::111122223333:role/ci",
        ] {
            assert!(iam_principal_problem(bad).is_some(), "{bad}");
        }
    }
}
