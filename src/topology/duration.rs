//! Durations as people write them in a topology or on the command line: `8h`, `90m`, `1h30m`,
//! `2d`, `2s`.

use std::time::Duration;

/// Parses one or more `<number><unit>` parts (units `s`, `m`, `h`, `d`), at least one second
/// in all.
pub fn parse(text: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let bad = || format!("{text:?} is not a duration");
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_write() {
        assert_eq!(parse("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        for bad in ["", "8", "h", "8x", "0s", "-1h", "8 h", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
