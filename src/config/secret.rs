//! [`Secret`]: a string that never prints. API keys and tokens live in it from the moment they are
//! read until the one place that puts them in a request header.

use std::fmt;

/// A secret value: `Debug`, `Display` and `Serialize` all show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What a secret prints as.
pub const REDACTED: &str = "[redacted]";

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}
