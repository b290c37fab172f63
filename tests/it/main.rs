//! Integration tests: one binary, one module per concern.

mod common;

mod bundles;
mod cli_errors;
mod cli_walkthrough;
mod concurrency;
mod durability;
mod exports;
mod fairness;
mod inbox;
mod lan;
mod members;
mod network;
mod store_recovery;
mod views;
