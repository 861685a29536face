//! The built-in applications: the registrar and its location service, the
//! proxy to registered users, the B2BUA service, and the answering test
//! service.

pub mod answer;
pub mod b2bua;
pub mod location;
pub mod proxy;
pub mod registrar;
