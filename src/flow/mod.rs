//! Flows: IP reassembly, canonical keys, the bounded flow table and bounded TCP reassembly.
//!
//! This stage knows nothing of protocols above TCP/UDP. The engine makes fragmented datagrams
//! whole with the [`defrag::Defragmenter`] before their flow is looked up, keeps its per-flow
//! state in the [`table::Table`] and feeds client and server bytes to [`reassembly::Stream`]s
//! until the flow is identified.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod defrag;
pub mod key;
pub mod reassembly;
pub mod table;

pub use key::{Direction, Key, Side};
