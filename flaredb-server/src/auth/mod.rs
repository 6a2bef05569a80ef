//! Authentication and authorization at the edge: signed tokens, password
//! hashes, and the per-request check. The users and roles themselves are
//! replicated state (`flaredb_raft::auth`); the gRPC service is
//! `service::auth`.

pub mod gate;
pub mod password;
pub mod throttle;
pub mod token;
