//! The sandbox provider.
