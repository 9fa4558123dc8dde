//! Reports for CISOs and auditors: survey tables, weekly trends, exemptions and methodology,
//! computed from a [`input::ReportInput`] and rendered as HTML, Markdown, CSV or JSON.

pub mod display;
pub mod input;
pub mod model;
pub mod render;
mod suppress;

pub use model::{Report, ReportOptions};
pub use render::{render, Format};
