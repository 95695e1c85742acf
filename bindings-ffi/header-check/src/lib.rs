//! Nothing here: the check is `tests/header.rs`.
