//! The Prompter metrics filter's companion: everything that runs the filter outside the
//! filter itself. For now, the Envoy bootstrap that loads it.

pub mod envoy_config;
