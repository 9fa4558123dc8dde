//! The interner's bound, in a process of its own (filling the table would starve every other
//! test of the library's): names past `intern::MAX_SYMS` get `_overflow` and are counted, old
//! ids keep their names, and a configuration whose loading overflowed is refused.

use shadowtap::config::Settings;
use shadowtap::intern::{self, Sym, MAX_SYMS};

mod common;

#[test]
fn names_past_the_bound_get_the_overflow_id_and_a_configuration_that_needs_them_is_refused() {
    let dir = std::env::temp_dir().join(format!("shadowtap-intern-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, common::bundled_config()).unwrap();
    // The bundled configuration loads, and its names keep their ids once the table is full.
    let before = Settings::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    let t = shadowtap::classify::catalog::Target { service: 0, channel: 0 };
    let service = before.classifier.catalog.service_sym(t);
    let first = Sym::intern("bound-first");
    let mut i = 0;
    while intern::len() < MAX_SYMS {
        assert_ne!(Sym::intern(&format!("bound-{i}")), Sym::OVERFLOW);
        i += 1;
    }
    assert_eq!(intern::overflows(), 0);
    assert_eq!(Sym::intern("bound-one-too-many"), Sym::OVERFLOW);
    assert_eq!(intern::overflows(), 1);
    assert_eq!(intern::len(), MAX_SYMS, "the table did not grow");
    assert_eq!((first.as_str(), Sym::intern("bound-first")), ("bound-first", first), "known names keep their ids");
    // The same configuration again needs no new name: it loads, with the same ids.
    let again = Settings::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(again.classifier.catalog.service_sym(t), service);
    // A new department does not fit: the configuration is refused, not merged under a label.
    let text = common::bundled_config() + "\n[[department]]\nid = \"bound-new-department\"\nname = \"New\"\ncidrs = [\"203.0.113.128/25\"]\n";
    std::fs::write(&path, text).unwrap();
    let err = Settings::load(&path).err().expect("refused");
    assert!(err.iter().any(|d| d.message.contains("distinct department, service, channel and category names")), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
