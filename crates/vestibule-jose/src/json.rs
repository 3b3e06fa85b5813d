//! JSON objects with unique member names.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object whose member names are unique (RFC 7515 §4 and RFC 7519
/// §4 let a parser refuse duplicates; lexically-last-wins would let two
/// parsers read one token differently).
struct UniqueObject(Map<String, Value>);

const DUPLICATE: &str = "duplicate member name";

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// Why bytes are not a JSON object with unique names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not JSON, or JSON but not one object.
    NotObject,
    /// A member name appears twice.
    Duplicate,
}

/// Parses `bytes` as one JSON object with unique member names.
pub(crate) fn unique_object(bytes: &[u8]) -> Result<Map<String, Value>, ObjectError> {
    match serde_json::from_slice::<UniqueObject>(bytes) {
        Ok(UniqueObject(map)) => Ok(map),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(ObjectError::Duplicate),
        Err(_) => Err(ObjectError::NotObject),
    }
}
