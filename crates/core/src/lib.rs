//! sauti's domain core: types and rules with no I/O.
//!
//! Everything here is pure so that every face (native API, ICTCore, Noregrets, …) and both
//! store backends share one definition of each rule.
#![forbid(unsafe_code)]

pub mod calls;
pub mod clock;
pub mod email;
pub mod filter;
pub mod metadata;
pub mod msisdn;
pub mod otp;
pub mod permissions;
pub mod schedule;
pub mod secret;
pub mod sms;
pub mod template;
pub mod validation;

pub use permissions::Permission;
pub use validation::ValidationErrors;
