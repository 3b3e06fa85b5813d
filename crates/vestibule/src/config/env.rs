//! The environment overlay: every key can be set as `VESTIBULE_<PATH>`.
//!
//! The path is the key's TOML path in upper case with `__` between levels,
//! and array elements by index:
//!
//! | TOML | environment |
//! |---|---|
//! | `server.listen` | `VESTIBULE_SERVER__LISTEN='["0.0.0.0:8080"]'` |
//! | `source.headers.trusted_proxies` | `VESTIBULE_SOURCE__HEADERS__TRUSTED_PROXIES='["10.0.0.5"]'` |
//! | `route[0].upstream` | `VESTIBULE_ROUTE__0__UPSTREAM=http://127.0.0.1:3000` |
//!
//! A value is read as TOML (`true`, `5`, `["a"]`) unless the key already
//! holds a string in the file, or the text is not valid TOML: then it is a
//! plain string. Unknown keys are caught later, like unknown keys in the file.

/// Prefix of every overlay variable.
pub const ENV_PREFIX: &str = "VESTIBULE_";

/// Variables with the prefix that are not config keys.
const NOT_KEYS: &[&str] = &["VESTIBULE_CONFIG", super::keys::TEST_SHORT_KEY_SCHEDULE_ENV];

/// Applies every `VESTIBULE_…` variable in `env` to `table`. `sections`
/// are the top-level keys of the file (see [`struct_fields`]): a variable
/// naming anything else is an error that names the variable (a stray
/// `VESTIBULE_FOO` in a service's environment should say so, not "unknown
/// field `foo`").
///
/// Returns each key that was set, as `route[0].auth`, with the variable
/// that set it, so an error at that key can name the variable.
pub fn apply_env_overlay<I>(
    table: &mut toml::Table,
    env: I,
    sections: &[&str],
) -> Result<Vec<(String, String)>, String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_KEYS.contains(&k.as_str()))
        .collect();
    // Deterministic order, so the lowest array index is created first.
    vars.sort();
    let mut applied = Vec::with_capacity(vars.len());
    for (key, raw) in vars {
        let path: Vec<String> = key[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "{key}: empty path segment (use `__` between levels)"
            ));
        }
        if !sections.contains(&path[0].as_str()) {
            return Err(format!(
                "environment variable {key} is not a configuration key: `{}` is not a section ({}); unset it or rename it",
                path[0],
                sections.join(", ")
            ));
        }
        set_path(table, &path, &raw).map_err(|e| format!("{key}: {e}"))?;
        applied.push((key_path(&path), key));
    }
    Ok(applied)
}

/// `["route", "0", "auth"]` → `route[0].auth`, the way errors name keys.
fn key_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The field names of the struct `T` deserializes as, read from its
/// `Deserialize` impl, so the list of sections cannot drift from the type.
/// Empty when `T` is not a plain struct.
pub(super) fn struct_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = FieldProbe(&[]);
    // The probe always fails after recording the fields; the error is the
    // expected way out.
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// A deserializer that records the field list `deserialize_struct` is
/// given, and deserializes nothing.
struct FieldProbe(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut FieldProbe {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn parse_value(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = match path.split_first() {
        Some(x) => x,
        None => return Err("empty key".into()),
    };
    if rest.is_empty() {
        let v = parse_value(raw, table.get(first.as_str()));
        table.insert(first.clone(), v);
        return Ok(());
    }
    let entry = table
        .entry(first.clone())
        .or_insert_with(|| match rest[0].parse::<usize>() {
            Ok(_) => toml::Value::Array(Vec::new()),
            Err(_) => toml::Value::Table(toml::Table::new()),
        });
    set_in_value(entry, rest, raw)
}

fn set_in_value(v: &mut toml::Value, path: &[String], raw: &str) -> Result<(), String> {
    match v {
        toml::Value::Table(t) => set_path(t, path, raw),
        toml::Value::Array(a) => {
            let (idx, rest) = path.split_first().ok_or("empty key")?;
            let i: usize = idx
                .parse()
                .map_err(|_| format!("`{idx}` is not an array index"))?;
            if i > a.len() {
                return Err(format!("array index {i} skips {}", a.len()));
            }
            if i == a.len() {
                a.push(if rest.is_empty() {
                    toml::Value::String(String::new())
                } else {
                    toml::Value::Table(toml::Table::new())
                });
            }
            if rest.is_empty() {
                a[i] = parse_value(raw, Some(&a[i]));
                Ok(())
            } else {
                set_in_value(&mut a[i], rest, raw)
            }
        }
        _ => Err("cannot set a key below a plain value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTIONS: &[&str] = &["server", "log", "source", "route"];

    fn overlay(toml_text: &str, vars: &[(&str, &str)]) -> Result<toml::Table, String> {
        let mut t: toml::Table = toml::from_str(toml_text).unwrap();
        apply_env_overlay(
            &mut t,
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            SECTIONS,
        )?;
        Ok(t)
    }

    #[test]
    fn nested_keys_and_types() {
        let t = overlay(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n",
            &[
                ("VESTIBULE_SERVER__LISTEN", "[\"0.0.0.0:8080\"]"),
                (
                    "VESTIBULE_SOURCE__HEADERS__DANGEROUSLY_TRUST_ANY_PEER",
                    "true",
                ),
                ("VESTIBULE_SOURCE__HEADERS__DIALECT", "authelia"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(t["server"]["listen"][0].as_str(), Some("0.0.0.0:8080"));
        assert_eq!(
            t["source"]["headers"]["dangerously_trust_any_peer"].as_bool(),
            Some(true)
        );
        assert_eq!(t["source"]["headers"]["dialect"].as_str(), Some("authelia"));
        assert!(!t.contains_key("unrelated"));
    }

    #[test]
    fn route_elements_by_index() {
        let t = overlay(
            "[[route]]\nupstream = \"http://a\"\nname = \"x\"\n",
            &[
                ("VESTIBULE_ROUTE__0__UPSTREAM", "http://b"),
                ("VESTIBULE_ROUTE__0__NAME", "123"),
                ("VESTIBULE_ROUTE__1__UPSTREAM", "http://c"),
            ],
        )
        .unwrap();
        assert_eq!(t["route"][0]["upstream"].as_str(), Some("http://b"));
        // The file has a string there, so "123" stays a string.
        assert_eq!(t["route"][0]["name"].as_str(), Some("123"));
        assert_eq!(t["route"][1]["upstream"].as_str(), Some("http://c"));
    }

    #[test]
    fn bad_paths_are_errors() {
        assert!(overlay("", &[("VESTIBULE_ROUTE__5__UPSTREAM", "x")]).is_err());
        assert!(overlay("", &[("VESTIBULE_A____B", "x")]).is_err());
        assert!(overlay("[log]\nlevel = \"x\"", &[("VESTIBULE_LOG__LEVEL__B", "x")]).is_err());
        let e = overlay("", &[("VESTIBULE_BIN", "/x")]).unwrap_err();
        assert!(
            e.contains("VESTIBULE_BIN is not a configuration key"),
            "{e}"
        );
    }

    #[test]
    fn applied_keys_name_their_variables() {
        let mut t = toml::Table::new();
        let applied = apply_env_overlay(
            &mut t,
            [
                ("VESTIBULE_ROUTE__0__AUTH".to_owned(), "public".to_owned()),
                ("VESTIBULE_LOG__FORMAT".to_owned(), "json".to_owned()),
            ],
            SECTIONS,
        )
        .unwrap();
        assert_eq!(
            applied,
            [
                ("log.format".to_owned(), "VESTIBULE_LOG__FORMAT".to_owned()),
                (
                    "route[0].auth".to_owned(),
                    "VESTIBULE_ROUTE__0__AUTH".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn struct_fields_reads_the_serde_names() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Sample {
            a: u8,
            #[serde(rename = "item")]
            items: Vec<u8>,
        }
        assert_eq!(struct_fields::<Sample>(), ["a", "item"]);
        assert!(struct_fields::<u8>().is_empty());
    }
}
