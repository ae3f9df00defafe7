//! pacer-cli: what the `pacer` command runs on top of `pacer-host`: the paced download
//! pipeline (`pacer run`), limits shared by a group of hosts on Redis, the embedded origin, the
//! simulator's site, and the files they share.

pub mod catalogue;
pub mod durable;
pub mod group;
pub mod http;
mod loopback;
pub mod origin;
pub mod phase;
pub mod pipeline;
pub mod ratelimit;
pub mod retry_after;
pub mod site;
pub mod state_file;
pub mod tls;
