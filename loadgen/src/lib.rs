//! Load for a relay: light peers that connect like tabs, publish valid rollout groups at a set
//! rate and time every delivery (`tabswarm-loadgen --help`; results in docs/benchmarks.md,
//! "Relay under load").
//!
//! [`peer::Fleet`] runs many peers in one process; the binary runs several such processes
//! ([`worker`]) against one relay it starts, and reads the relay's CPU and memory from `/proc`.

pub mod histogram;
pub mod peer;
pub mod proc;
pub mod stall;
pub mod worker;
