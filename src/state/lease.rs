//! The lease of a remote lock: how long a holder keeps the lock without renewing it, how often
//! it renews, and what the lock object records (the holder, the lease's end, the fencing
//! token, whether it was released).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock::LockInfo;

/// How long a lease lasts and how often its holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub length: Duration,
    pub heartbeat: Duration,
}

/// The environment variable that sets the lease length (tests use seconds).
pub const LEASE_ENV: &str = "VAULTFORM_LOCK_LEASE";

impl Lease {
    /// 60 s, renewed every 20 s: a holder that misses two renewals in a row still holds it.
    pub const DEFAULT: Lease = Lease {
        length: Duration::from_secs(60),
        heartbeat: Duration::from_secs(20),
    };

    /// The lease of this run: `VAULTFORM_LOCK_LEASE` (e.g. `3s`) or the default; the
    /// heartbeat is a third of it.
    pub fn from_env() -> Lease {
        std::env::var(LEASE_ENV)
            .ok()
            .and_then(|v| parse_duration(&v).ok())
            .filter(|d| *d >= Duration::from_millis(300))
            .map(|length| Lease {
                length,
                heartbeat: length / 3,
            })
            .unwrap_or(Lease::DEFAULT)
    }
}

/// `90s`, `5m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration such as 30s, 5m or 1h"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("\"{s}\" is not a duration such as 30s, 5m or 1h")),
    };
    Ok(d)
}

/// The lock object: the holder, its lease, and the fencing token. It stays in the bucket once
/// written: a release marks it released, so the token keeps growing from one lock to the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockObject {
    #[serde(flatten)]
    pub holder: LockInfo,
    /// RFC 3339; the holder renews it every heartbeat.
    pub lease_expires: String,
    /// Grows by one with every lock taken; state saves carry it and check it.
    pub fence: u64,
    #[serde(default)]
    pub released: bool,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl LockObject {
    /// A lock for this process, with a lease from now.
    pub fn new(operation: &str, fence: u64, lease: Lease) -> Self {
        let mut o = LockObject {
            holder: LockInfo::for_this_process(operation),
            lease_expires: String::new(),
            fence,
            released: false,
        };
        o.renew(lease);
        o
    }

    /// Moves the lease's end to a full lease from now.
    pub fn renew(&mut self, lease: Lease) {
        self.lease_expires = rfc3339(time::OffsetDateTime::now_utc() + lease.length);
    }

    /// Whether the lease has ended (an unreadable time counts as ended).
    pub fn expired(&self) -> bool {
        time::OffsetDateTime::parse(
            &self.lease_expires,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|end| end <= time::OffsetDateTime::now_utc())
        .unwrap_or(true)
    }

    /// The holder, with its lease, as people read it.
    pub fn info(&self) -> LockInfo {
        LockInfo {
            lease_expires: Some(self.lease_expires.clone()),
            ..self.holder.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn a_lease_expires() {
        let short = Lease {
            length: Duration::ZERO,
            heartbeat: Duration::ZERO,
        };
        assert!(LockObject::new("apply", 1, short).expired());
        assert!(!LockObject::new("apply", 1, Lease::DEFAULT).expired());
    }
}
