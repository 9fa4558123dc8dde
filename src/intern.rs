//! Small `Copy` ids for the names that key everything past the classifier: departments,
//! service ids, channel ids and categories ([`Sym`]).
//!
//! Every stage after `classify` (aggregation, rollup, events) keys its maps by these ids, so a
//! finished flow is counted without building or cloning a string; text is made only where it is
//! written (metrics exposition, events JSON, SQLite rows, the saved state), by [`Sym::as_str`].
//!
//! The table is **process-wide and append-only**: a name keeps its id for the life of the
//! process, so the groups the aggregator and the rollup keep across a configuration reload stay
//! valid, and a reload that adds a department or a service only adds ids. Names come from the
//! configuration and the catalog (not from traffic), so the table is small; it is bounded all
//! the same by [`MAX_SYMS`]: a name past the bound gets [`Sym::OVERFLOW`] (counted in
//! [`overflows`]) instead of growing the table, and `config::Settings::load` refuses a
//! configuration whose loading overflowed (a reload keeps the running one). Only a process
//! reloaded with tens of thousands of distinct new names over its life gets there. A name's text is kept for the life of the
//! process (at most [`MAX_SYMS`] names of configuration), which is what lets [`Sym::as_str`]
//! hand out a `&'static str`.
//!
//! Threads: interning takes the write lock, and happens where configuration is compiled (the
//! catalog, `Classifier::build`, a restored state): on the reload thread or at start, never per
//! flow. The packet thread gets its ids from the compiled catalog and classifier without
//! touching the table; resolving an id to its name (the metrics HTTP side, the writer thread, a
//! snapshot) takes the read lock for one index, uncontended except while a reload interns.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};

/// Names held at most (departments, service ids, channel ids and categories of every
/// configuration and catalog loaded since start). A name costs its text plus about 40 bytes,
/// so the table stays under 8 MiB at the bound even for long names.
pub const MAX_SYMS: usize = 65_536;

/// An interned name: a department, service id, channel id or category (or one of the fixed
/// labels below). Ordered by id, not by name: sort by [`Sym::as_str`] where order shows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

/// The fixed labels, interned first in this order (see the `Sym` constants).
const FIXED: [&str; 5] = ["unmapped", "_uncatalogued", "_suppressed", "_unnamed", "_overflow"];

impl Sym {
    /// `unmapped`: the department of hosts in no configured prefix (`classify::UNMAPPED`).
    pub const UNMAPPED: Sym = Sym(0);
    /// `_uncatalogued`: a named destination outside the catalog (`aggregate::UNCATALOGUED`).
    pub const UNCATALOGUED: Sym = Sym(1);
    /// `_suppressed`: groups folded for privacy (`aggregate::SUPPRESSED`).
    pub const SUPPRESSED: Sym = Sym(2);
    /// `_unnamed`: an unanswered flow whose destination stayed unnamed (`aggregate::UNNAMED`).
    pub const UNNAMED: Sym = Sym(3);
    /// `_overflow`: every name interned past [`MAX_SYMS`].
    pub const OVERFLOW: Sym = Sym(4);

    /// The id of `name`, interning it if it is new (write lock; configuration time only).
    pub fn intern(name: &str) -> Sym {
        if let Some(s) = Sym::find(name) {
            return s;
        }
        let mut t = table().write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&s) = t.by_name.get(name) {
            return s;
        }
        if t.names.len() >= MAX_SYMS {
            OVERFLOWS.fetch_add(1, Ordering::Relaxed);
            return Sym::OVERFLOW;
        }
        t.push(name)
    }

    /// The id of `name` if it was interned.
    pub fn find(name: &str) -> Option<Sym> {
        table().read().unwrap_or_else(PoisonError::into_inner).by_name.get(name).copied()
    }

    /// The name (read lock for one index).
    pub fn as_str(self) -> &'static str {
        let t = table().read().unwrap_or_else(PoisonError::into_inner);
        // Ids are only made by this module, as indices of names already pushed.
        t.names.get(self.0 as usize).copied().unwrap_or(FIXED[4])
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Sym {
    fn from(name: &str) -> Sym {
        Sym::intern(name)
    }
}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Names that found the table full (each was given [`Sym::OVERFLOW`]).
pub fn overflows() -> u64 {
    OVERFLOWS.load(Ordering::Relaxed)
}

/// Names interned so far, the fixed labels included.
pub fn len() -> usize {
    table().read().unwrap_or_else(PoisonError::into_inner).names.len()
}

static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Table {
    by_name: HashMap<&'static str, Sym>,
    names: Vec<&'static str>,
}

impl Table {
    fn push(&mut self, name: &str) -> Sym {
        let s = Sym(self.names.len() as u32);
        // Kept for the life of the process: the table is append-only and bounded.
        let text: &'static str = Box::leak(name.to_owned().into_boxed_str());
        self.names.push(text);
        self.by_name.insert(text, s);
        s
    }
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table::default();
        for name in FIXED {
            t.push(name);
        }
        RwLock::new(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_fixed_labels_come_first() {
        assert_eq!(Sym::UNMAPPED.as_str(), "unmapped");
        assert_eq!(Sym::UNCATALOGUED.as_str(), "_uncatalogued");
        assert_eq!(Sym::SUPPRESSED.as_str(), "_suppressed");
        assert_eq!(Sym::UNNAMED.as_str(), "_unnamed");
        assert_eq!(Sym::OVERFLOW.as_str(), "_overflow");
        assert_eq!(Sym::intern("unmapped"), Sym::UNMAPPED);
        let a = Sym::intern("intern-test-finance");
        assert_eq!(Sym::intern("intern-test-finance"), a, "the same name, the same id");
        assert_eq!(Sym::find("intern-test-finance"), Some(a));
        assert_eq!(a.as_str(), "intern-test-finance");
        assert!(a == "intern-test-finance");
        assert_eq!(format!("{a} {a:?}"), "intern-test-finance \"intern-test-finance\"");
        assert!(len() <= MAX_SYMS);
    }
}
