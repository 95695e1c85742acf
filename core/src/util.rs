//! Small helpers shared by the engines: Go-style durations and parameter parsing.

pub(crate) mod duration;
pub(crate) mod params;
pub(crate) mod ttl;
