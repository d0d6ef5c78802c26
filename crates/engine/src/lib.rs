//! The delivery engine.
#![forbid(unsafe_code)]
