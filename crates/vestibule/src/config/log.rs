//! `[log]`: the format and filter of vestibule's own log.

use serde::Deserialize;

use super::diagnostic::Collector;

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default) or `"json"`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter. Default `"info"`. `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// `[log]`, checked.
#[derive(Debug, Clone)]
pub(super) struct LogSettings {
    pub(super) json: bool,
    pub(super) level: String,
}

impl LogConfig {
    /// Checks `[log]`.
    pub(super) fn validate(&self, c: &mut Collector) -> LogSettings {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            c.error(
                "log.level",
                format!("`{}` is not a log filter", self.level),
                "use a level such as \"info\" or a filter such as \"warn,vestibule=info\"",
            );
        }
        LogSettings {
            json: self.format == LogFormat::Json,
            level: self.level.clone(),
        }
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    #[test]
    fn unknown_format_lists_the_valid_ones() {
        let e = parse("[log]\nformat = \"xml\"", &[]).unwrap_err();
        assert!(
            e.contains("`xml`") && e.contains("`text`") && e.contains("`json`"),
            "{e}"
        );
        assert!(e.starts_with("log.format: "), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let f = parse("", &[]).unwrap();
        let mut c = Collector::default();
        let s = f.log.validate(&mut c);
        assert!(c.diags.is_empty());
        assert!(!s.json);
        assert_eq!(s.level, "info");
    }

    #[test]
    fn env_overlay_applies() {
        let f = parse(
            "[log]\nformat = \"text\"",
            &[
                ("VESTIBULE_LOG__FORMAT", "json"),
                ("VESTIBULE_LOG__LEVEL", "warn"),
            ],
        )
        .unwrap();
        let s = f.log.validate(&mut Collector::default());
        assert!(s.json);
        assert_eq!(s.level, "warn");
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        let e = parse("", &[("VESTIBULE_LOG__FORMAT", "xml")]).unwrap_err();
        assert!(
            e.starts_with("log.format: unknown variant `xml`")
                && e.ends_with("(set by VESTIBULE_LOG__FORMAT)"),
            "{e}"
        );
    }
}
