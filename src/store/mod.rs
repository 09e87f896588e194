//! The SQLite mirror.
