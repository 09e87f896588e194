//! The built-in fake Kustomer API.

pub mod cli;
