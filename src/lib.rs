//! convene: a local-first, peer-to-peer tool with which a community of
//! practice co-authors a joint response.
//!
//! The library is layered as `../docs/ARCHITECTURE.md` describes: a sans-IO
//! core (`model`, `trust`) where correctness lives, and thin adapters
//! (`store`, `cli`) that read and write files and talk to people.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bundle;
pub mod cli;
pub mod clock;
#[cfg(test)]
mod forgery;
pub mod ids;
pub mod model;
pub mod net;
pub mod parallel;
#[cfg(test)]
mod sim;
pub mod store;
pub mod sync;
pub mod trust;
