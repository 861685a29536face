//! The built-in applications: the registrar and its location service, the
//! proxy to registered users, the B2BUA service, the answering test
//! service, and call screening (for compositions).

pub mod answer;
pub mod b2bua;
pub mod location;
pub mod proxy;
pub mod registrar;
pub mod screening;
