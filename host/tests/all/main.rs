//! The host's integration tests, one binary (`mod` per area), on the real filter module.

mod abi;
mod cardinality;
mod cli;
mod exposure;
mod filter;
mod openapi;
mod plugins;
mod properties;
mod replay;
mod shipped;
mod sse;
