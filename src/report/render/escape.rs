//! HTML escaping and the "checked number" attributes, shared by the HTML page ([`super::html`])
//! and its inline SVG charts (`super::svg`).
//!
//! They sit apart from both so that `svg` need not import `html`, which imports `svg` for its
//! charts. Markdown escapes by different rules and keeps its own `esc`.

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The attributes that let a test check a printed number against the JSON.
pub(crate) fn checked(key: &str, ptr: &str, fmt: &str) -> String {
    format!(" data-key=\"{}\" data-ptr=\"{}\" data-fmt=\"{fmt}\"", esc(key), esc(ptr))
}
