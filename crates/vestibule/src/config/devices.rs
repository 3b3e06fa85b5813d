//! `[devices]`: per-device credentials and pairing (with accounts).

use std::time::Duration;

use serde::Deserialize;

use super::HumanDuration;
use super::diagnostic::Collector;

/// Default `devices.pairing_ttl`.
pub const DEFAULT_PAIRING_TTL: &str = "5m";
/// Default `devices.failures_per_minute`.
pub const DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE: u32 = 10;

/// `[devices]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// A device credential stops working when its owner has not been seen
    /// through the SSO front for this long; one browser sign-in revives it.
    /// Routes can override it. Default none (off).
    pub max_sso_age: Option<HumanDuration>,
    /// How long a pairing code may be redeemed and confirmed. Default `"5m"`.
    #[serde(default = "default_pairing_ttl")]
    pub pairing_ttl: HumanDuration,
    /// Failed credential attempts allowed per client address, and per
    /// Basic user name, each minute; more get 429 with `Retry-After`.
    /// Default 10.
    #[serde(default = "default_failures_per_minute")]
    pub failures_per_minute: u32,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            max_sso_age: None,
            pairing_ttl: default_pairing_ttl(),
            failures_per_minute: DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE,
        }
    }
}

fn default_pairing_ttl() -> HumanDuration {
    HumanDuration::parse(DEFAULT_PAIRING_TTL).unwrap_or_default()
}
fn default_failures_per_minute() -> u32 {
    DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE
}

/// Device credentials and pairing, checked.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    /// How long a pairing code lives.
    pub pairing_ttl: Duration,
    /// Failures per minute per client address and per Basic user name.
    pub failures_per_minute: u32,
}

impl DevicesConfig {
    /// Checks `[devices]`.
    pub(super) fn validate(&self, c: &mut Collector) -> DeviceSettings {
        let devices = DeviceSettings {
            pairing_ttl: self.pairing_ttl.0,
            failures_per_minute: self.failures_per_minute,
        };
        if devices.pairing_ttl.is_zero() || devices.pairing_ttl > Duration::from_secs(3600) {
            c.error(
                "devices.pairing_ttl",
                "a pairing code must live more than zero and at most an hour",
                "keep the default, \"5m\"",
            );
        }
        if devices.failures_per_minute == 0 {
            c.error(
                "devices.failures_per_minute",
                "0 would refuse every device credential",
                "keep the default, 10",
            );
        }
        if self.max_sso_age.is_some_and(|a| a.0.is_zero()) {
            c.error(
                "devices.max_sso_age",
                "a zero age would refuse every device credential",
                "use e.g. \"30d\", or remove it to turn the check off",
            );
        }
        devices
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    #[test]
    fn defaults_apply() {
        let f = parse("", &[]).unwrap();
        let mut c = Collector::default();
        let d = f.devices.validate(&mut c);
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(d.pairing_ttl, Duration::from_secs(300));
        assert_eq!(
            d.failures_per_minute,
            DEFAULT_CREDENTIAL_FAILURES_PER_MINUTE
        );
        assert!(f.devices.max_sso_age.is_none());
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            "[devices]\nfailures_per_minute = 3",
            &[
                ("VESTIBULE_DEVICES__FAILURES_PER_MINUTE", "20"),
                ("VESTIBULE_DEVICES__MAX_SSO_AGE", "30d"),
            ],
        )
        .unwrap();
        let d = f.devices.validate(&mut Collector::default());
        assert_eq!(d.failures_per_minute, 20);
        assert_eq!(
            f.devices.max_sso_age.map(|a| a.0),
            Some(Duration::from_secs(30 * 86400))
        );
    }
}
