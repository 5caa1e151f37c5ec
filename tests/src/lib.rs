//! f3dx-router-testkit

pub mod spec;
