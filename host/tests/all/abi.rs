//! The ABI against hostile or broken modules: errors and traps, never a host crash.
