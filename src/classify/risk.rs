//! The risk rating of a service: an open, additive score over the catalog's attributes.
//!
//! Cloud-access brokers rate services with closed formulas; an auditor cannot repeat them. Here
//! the rating is a sum anyone can redo by hand from the service table and the weights
//! (`rules/risk.toml`), which every report prints under Methodology: the category's points plus
//! the points of each attribute that applies (disappearing messages, no end-to-end encryption,
//! a vendor outside the adequate countries or of no named country, a corporate tenant), capped
//! to 0–100, then cut into low, medium and high at two thresholds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::catalog::{Service, CATEGORIES};

/// The weights as built: `rules/risk.toml`, used when the configuration names no `risk` file.
pub const BUILTIN: &str = include_str!("../../rules/risk.toml");

/// Highest score (and the cap of every sum).
pub const MAX_SCORE: i32 = 100;

/// The weights of the rating (`rules/risk.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Points per category; every category is listed.
    pub category: BTreeMap<String, i32>,
    /// Points per attribute.
    pub attributes: Attributes,
    /// Countries whose vendors add no `vendor_outside_adequate` points.
    pub adequate: Adequate,
    /// Where medium and high begin.
    pub levels: Levels,
}

/// Points of the attributes that apply to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Messages can disappear.
    pub disappearing_messages: i32,
    /// Not end-to-end encrypted by default.
    pub not_e2ee: i32,
    /// The vendor's country is not among the adequate ones.
    pub vendor_outside_adequate: i32,
    /// The catalog names no vendor country.
    pub vendor_country_unknown: i32,
    /// Deployed by organisations as their own tenant.
    pub corporate: i32,
}

/// Countries (ISO 3166-1 alpha-2) whose vendors add no `vendor_outside_adequate` points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adequate {
    /// The countries.
    pub countries: BTreeSet<String>,
}

/// Score thresholds: medium from `medium`, high from `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// First medium score.
    pub medium: i32,
    /// First high score.
    pub high: i32,
}

/// A rating's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Below `levels.medium`.
    Low,
    /// From `levels.medium`, below `levels.high`.
    Medium,
    /// From `levels.high`.
    High,
}

impl Level {
    /// The level in words.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// What a service's attributes are worth: the input of [`Weights::rate`], so that a report
/// can rate services from its own service table.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Category id.
    pub category: &'a str,
    /// Vendor country (empty when none is named).
    pub vendor_country: &'a str,
    /// End-to-end encrypted by default.
    pub e2ee: bool,
    /// Messages can disappear.
    pub disappearing_messages: bool,
    /// Deployed by organisations as their own tenant.
    pub corporate: bool,
}

impl Attributes {
    /// Every attribute's key and points, in the order reports list them.
    pub fn pairs(&self) -> [(&'static str, i32); 5] {
        [
            ("disappearing_messages", self.disappearing_messages),
            ("not_e2ee", self.not_e2ee),
            ("vendor_outside_adequate", self.vendor_outside_adequate),
            ("vendor_country_unknown", self.vendor_country_unknown),
            ("corporate", self.corporate),
        ]
    }
}

impl<'a> From<&'a Service> for Facts<'a> {
    fn from(s: &'a Service) -> Self {
        Facts { category: &s.category, vendor_country: &s.vendor_country, e2ee: s.e2ee, disappearing_messages: s.disappearing_messages, corporate: s.corporate }
    }
}

/// One term of a rating's sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// `category:<id>` or an attribute's key.
    pub factor: String,
    /// Its points.
    pub points: i32,
}

/// A service's rating: the score, its level, and the terms that make it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// 0 to [`MAX_SCORE`].
    pub score: i32,
    /// The score's level.
    pub level: Level,
    /// The terms, category first; their sum is the score before the cap.
    pub terms: Vec<Term>,
}

/// Why weights cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Parse(String),
    /// A category the catalog does not know.
    #[error("category {0:?} is not a catalog category")]
    UnknownCategory(String),
    /// A catalog category without points.
    #[error("category {0:?} has no points: every catalog category is listed")]
    MissingCategory(String),
    /// A weight outside -MAX_SCORE..=MAX_SCORE.
    #[error("{0} = {1} is outside -100..=100")]
    OutOfRange(String, i32),
    /// Thresholds out of order.
    #[error("levels: need 0 < medium < high <= 100, got medium = {0}, high = {1}")]
    Levels(i32, i32),
    /// A country code that is not two capital letters.
    #[error("adequate country {0:?} is not an ISO 3166-1 alpha-2 code")]
    Country(String),
}

impl Weights {
    /// Parses and checks weights.
    ///
    /// # Errors
    /// The first problem found.
    pub fn parse(text: &str) -> Result<Weights, WeightsError> {
        let w: Weights = toml::from_str(text).map_err(|e| WeightsError::Parse(e.to_string()))?;
        w.check()?;
        Ok(w)
    }

    fn check(&self) -> Result<(), WeightsError> {
        if let Some(c) = self.category.keys().find(|c| !CATEGORIES.contains(&c.as_str())) {
            return Err(WeightsError::UnknownCategory(c.clone()));
        }
        if let Some(c) = CATEGORIES.iter().find(|c| !self.category.contains_key(**c)) {
            return Err(WeightsError::MissingCategory((*c).to_string()));
        }
        let all = self.category.iter().map(|(c, p)| (format!("category.{c}"), *p)).chain(self.attributes.pairs().map(|(k, p)| (k.to_string(), p)));
        for (k, p) in all {
            if !(-MAX_SCORE..=MAX_SCORE).contains(&p) {
                return Err(WeightsError::OutOfRange(k, p));
            }
        }
        let l = self.levels;
        if !(0 < l.medium && l.medium < l.high && l.high <= MAX_SCORE) {
            return Err(WeightsError::Levels(l.medium, l.high));
        }
        if let Some(c) = self.adequate.countries.iter().find(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(WeightsError::Country(c.clone()));
        }
        Ok(())
    }

    /// Rates a service.
    pub fn rate(&self, s: Facts<'_>) -> Rating {
        let a = &self.attributes;
        let mut terms = vec![Term { factor: format!("category:{}", s.category), points: self.category.get(s.category).copied().unwrap_or(0) }];
        let mut add = |on: bool, factor: &str, points: i32| {
            if on && points != 0 {
                terms.push(Term { factor: factor.to_string(), points });
            }
        };
        add(s.disappearing_messages, "disappearing_messages", a.disappearing_messages);
        add(!s.e2ee, "not_e2ee", a.not_e2ee);
        add(s.vendor_country.is_empty(), "vendor_country_unknown", a.vendor_country_unknown);
        add(!s.vendor_country.is_empty() && !self.adequate.countries.contains(s.vendor_country), "vendor_outside_adequate", a.vendor_outside_adequate);
        add(s.corporate, "corporate", a.corporate);
        let score = terms.iter().map(|t| t.points).sum::<i32>().clamp(0, MAX_SCORE);
        Rating { score, level: self.level(score), terms }
    }

    /// The level of a score.
    pub fn level(&self, score: i32) -> Level {
        if score >= self.levels.high {
            Level::High
        } else if score >= self.levels.medium {
            Level::Medium
        } else {
            Level::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(category: &str, country: &str, e2ee: bool, disappearing: bool, corporate: bool) -> Facts<'static> {
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        Facts { category: leak(category), vendor_country: leak(country), e2ee, disappearing_messages: disappearing, corporate }
    }

    fn builtin() -> Weights {
        Weights::parse(BUILTIN).expect("rules/risk.toml")
    }

    #[test]
    fn the_bundled_weights_are_valid_and_cover_every_category() {
        let w = Weights::parse(BUILTIN).expect("rules/risk.toml");
        assert_eq!(w.category.len(), CATEGORIES.len());
    }

    #[test]
    fn a_rating_is_the_capped_sum_of_its_terms() {
        let w = builtin();
        // A US messenger with disappearing messages, end-to-end encrypted: 30 + 25 + 20.
        let r = w.rate(facts("messaging", "US", true, true, false));
        assert_eq!(r.score, 75);
        assert_eq!(r.level, Level::High);
        assert_eq!(r.terms.iter().map(|t| t.factor.as_str()).collect::<Vec<_>>(), ["category:messaging", "disappearing_messages", "vendor_outside_adequate"]);
        assert_eq!(r.terms.iter().map(|t| t.points).sum::<i32>(), r.score);
        // A Swiss messenger without disappearing messages: only the category.
        let r = w.rate(facts("messaging", "CH", true, false, false));
        assert_eq!((r.score, r.level), (30, Level::Low));
        // A corporate suite of a US vendor: 5 + 10 + 20 - 20.
        let r = w.rate(facts("corporate-suite", "US", false, false, true));
        assert_eq!((r.score, r.level), (15, Level::Low));
        // No vendor country: the unknown points, not the outside ones.
        let r = w.rate(facts("dns-bypass", "", false, false, false));
        assert_eq!(r.score, 25 + 10 + 10);
        assert!(r.terms.iter().all(|t| t.factor != "vendor_outside_adequate"));
    }

    #[test]
    fn scores_are_capped_to_the_range() {
        let mut w = builtin();
        w.attributes.disappearing_messages = 100;
        assert_eq!(w.rate(facts("paste", "RU", false, true, false)).score, MAX_SCORE);
        w.attributes.corporate = -100;
        assert_eq!(w.rate(facts("other", "DE", true, false, true)).score, 0);
    }

    #[test]
    fn bad_weights_are_refused_with_the_reason() {
        let swap = |from: &str, to: &str| Weights::parse(&BUILTIN.replacen(from, to, 1));
        assert_eq!(swap("paste = 40", "pastes = 40"), Err(WeightsError::UnknownCategory("pastes".into())));
        assert_eq!(swap("paste = 40\n", ""), Err(WeightsError::MissingCategory("paste".into())));
        assert_eq!(swap("not_e2ee = 10", "not_e2ee = 101"), Err(WeightsError::OutOfRange("not_e2ee".into(), 101)));
        assert_eq!(swap("high = 70", "high = 30"), Err(WeightsError::Levels(40, 30)));
        assert_eq!(swap("\"GB\"", "\"gb\""), Err(WeightsError::Country("gb".into())));
        assert!(matches!(swap("[levels]", "[level]"), Err(WeightsError::Parse(_))));
    }
}
