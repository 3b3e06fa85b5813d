//! Durations written the way people write them: `"500ms"`, `"10s"`, `"5m"`, `"2h"`, `"30d"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration parsed from a short human string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration like \"10s\", \"5m\" or \"500ms\""))?;
        let secs = |mult: u64| {
            n.checked_mul(mult)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("`{s}` is too long"))
        };
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => secs(1)?,
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "d" => secs(86_400)?,
            _ => {
                return Err(format!(
                    "`{s}` needs a unit: ms, s, m, h or d (for example \"10s\")"
                ));
            }
        };
        Ok(Self(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            HumanDuration::parse("500ms").unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            HumanDuration::parse("10s").unwrap().0,
            Duration::from_secs(10)
        );
        assert_eq!(
            HumanDuration::parse("5m").unwrap().0,
            Duration::from_secs(300)
        );
        assert_eq!(
            HumanDuration::parse("30d").unwrap().0,
            Duration::from_secs(30 * 86_400)
        );
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 years",
            "99999999999999999999d",
        ] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
