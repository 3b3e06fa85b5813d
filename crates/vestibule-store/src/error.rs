//! [`StoreError`]: what a store call can fail with, and how sqlx's errors
//! map onto it.

use std::fmt;

/// Why a store call failed.
///
/// `Display` gives a sentence fit to show an operator; the string inside a
/// variant is the detail (the database's own message for
/// [`Unavailable`](Self::Unavailable), which may name hosts or tables, so
/// do not show it to end users).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached, no pooled connection became free in
    /// time, or the database refused the statement for a reason of its own.
    /// Callers answer 503: the same request may succeed later.
    Unavailable(String),
    /// A unique key already exists: the identity is already linked, or a
    /// session with that id exists. The string is the whole sentence.
    Conflict(String),
    /// The row the call is about does not exist.
    NotFound,
    /// A stored row does not decode (bad status, bad groups JSON, a digest
    /// that is not 32 bytes…). The row is left alone.
    Corrupt(String),
    /// The schema could not be brought up to date.
    Migration(String),
    /// The store configuration cannot work (bad URL, in-memory SQLite).
    InvalidConfig(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(detail) => {
                write!(f, "the database is unavailable, try again later ({detail})")
            }
            Self::Conflict(sentence) => f.write_str(sentence),
            Self::NotFound => f.write_str("no such record in the database"),
            Self::Corrupt(what) => write!(f, "a stored record cannot be read: {what}"),
            Self::Migration(detail) => {
                write!(
                    f,
                    "the database schema cannot be brought up to date: {detail}"
                )
            }
            Self::InvalidConfig(detail) => {
                write!(f, "the database configuration is invalid: {detail}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Maps a sqlx error. `conflict` is the sentence a unique violation
    /// becomes for this call.
    pub(crate) fn from_sqlx(err: sqlx::Error, conflict: &str) -> Self {
        use sqlx::error::ErrorKind;
        match err {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => Self::Conflict(conflict.to_owned()),
                ErrorKind::ForeignKeyViolation => Self::NotFound,
                _ => Self::Unavailable(db.to_string()),
            },
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => Self::Corrupt(err.to_string()),
            sqlx::Error::Migrate(e) => Self::Migration(e.to_string()),
            sqlx::Error::Configuration(e) => Self::InvalidConfig(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// `?` on a sqlx call outside a conflict-prone statement.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err, "a record with this key already exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_of_every_variant() {
        let cases = [
            (
                StoreError::Unavailable("pool timed out".into()),
                "the database is unavailable, try again later (pool timed out)",
            ),
            (
                StoreError::Conflict("the identity headers/alice is already linked".into()),
                "the identity headers/alice is already linked",
            ),
            (StoreError::NotFound, "no such record in the database"),
            (
                StoreError::Corrupt("account 3: unknown status \"x\"".into()),
                "a stored record cannot be read: account 3: unknown status \"x\"",
            ),
            (
                StoreError::Migration("version 2 was applied by a newer vestibule".into()),
                "the database schema cannot be brought up to date: version 2 was applied by a newer vestibule",
            ),
            (
                StoreError::InvalidConfig("in-memory SQLite is not durable".into()),
                "the database configuration is invalid: in-memory SQLite is not durable",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn sqlx_errors_map_by_kind() {
        assert_eq!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(sqlx::Error::PoolTimedOut.to_string())
        );
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert_eq!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound
        );
        assert!(matches!(
            StoreError::from(sqlx::Error::ColumnNotFound("groups_json".into())),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(
                std::io::ErrorKind::ConnectionRefused.into()
            )),
            StoreError::Unavailable(_)
        ));
    }
}
