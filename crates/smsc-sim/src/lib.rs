//! SMSC simulator.
#![forbid(unsafe_code)]
