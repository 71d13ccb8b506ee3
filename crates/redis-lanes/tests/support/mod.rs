//! Test support that needs no real server: a scriptable fake Redis for hostile input.
#![allow(dead_code)] // Each test file uses a different subset.

mod fake_server;
mod wire;

pub(crate) use fake_server::{FakeServer, Fault, Script};
#[allow(unused_imports)] // As above: each test file uses a different subset.
pub(crate) use wire::{aggregate, bulk, int, message};
