//! The built-in applications: the registrar and its location service, the
//! proxy to registered users, and the answering test service.

pub mod answer;
pub mod location;
pub mod proxy;
pub mod registrar;
