//! Reports for CISOs and auditors: survey tables, weekly trends, exemptions and methodology,
//! computed from a [`input::ReportInput`] and rendered as HTML, Markdown, CSV or JSON.
//!
//! ```text
//! source                          input::ReportInput        model::Report::build       render::render
//! --input FILE.json  ─┐           (aggregated facts:        (k-suppression, shares,    (HTML, Markdown,
//! --prometheus URL   ─┼─ load ──► no host, no address) ───► headlines, trend, ...) ──► CSV, JSON)
//! --store FILE       ─┘
//! ```
//!
//! `model` and `render` are pure; only `prometheus` (HTTP) does I/O; the command that reads files and
//! stores is the driver's (`runtime::report`).

pub mod compare;
pub mod display;
pub mod input;
pub mod model;
pub mod prometheus;
pub mod render;
mod suppress;

pub use model::{Report, ReportOptions};
pub use render::{render, Format};
