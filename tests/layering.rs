//! No import cycles among the modules of `src/`: a cycle means none of its modules can be read,
//! tested or replaced without the others, and layering rots one convenient import at a time.
//!
//! A module is a file (`src/a/b.rs` is `a/b`, `src/a/mod.rs` is `a`). An edge is a path in
//! non-test code, `crate::a::b::Item` (use groups expanded) or `super::`/`self::` resolved from
//! the file, to the deepest module that exists as a file. Not edges: comments, string and char
//! literals, `#[cfg(test)]` items and the files they declare (`#[cfg(test)] mod fixtures;`), the
//! crate root, and bare paths to a module's own children (`tcp::probe`: a parent and the children
//! it declares are one unit). Plain string scanning, no dependency; the failure reads like the
//! shared `importcycles.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The length of the comment or literal that starts `rest` (0: none); `prev` is the byte before.
fn skip_len(rest: &[u8], prev: u8) -> usize {
    let find = |from: usize, pat: &[u8]| rest.get(from..).and_then(|r| r.windows(pat.len()).position(|w| w == pat));
    let hashes = rest.iter().skip(1).take_while(|&&c| c == b'#').count();
    match rest {
        [b'/', b'/', ..] => find(0, b"\n").unwrap_or(rest.len()),
        [b'/', b'*', ..] => {
            let (mut depth, mut j) = (0, 0);
            while j < rest.len() && (j == 0 || depth > 0) {
                let open = rest[j..].starts_with(b"/*");
                let step = open || rest[j..].starts_with(b"*/");
                (depth, j) = if step { (depth + if open { 1 } else { -1 }, j + 2) } else { (depth, j + 1) };
            }
            j
        }
        [b'r', ..] if !is_ident(prev) && rest.get(1 + hashes) == Some(&b'"') => {
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            find(hashes + 2, &close).map_or(rest.len(), |p| hashes + 2 + p + close.len())
        }
        [b'"', ..] => {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        }
        [b'\'', b'\\', ..] => find(3, b"'").map_or(rest.len(), |p| p + 4),
        [b'\'', c, ..] => {
            // A char literal ('x', 'é') closes after one character; a lifetime ('a) does not.
            let width = c.leading_ones().max(1) as usize;
            if rest.get(1 + width) == Some(&b'\'') { width + 2 } else { 0 }
        }
        _ => 0,
    }
}

/// The code without comments, literals and `#[cfg(test)]` items (up to the first `;`, or a `{`
/// and its match); the modules declared test-only (`#[cfg(test)] mod x;`) go to `test_mods`.
fn code_of(text: &str, test_mods: &mut Vec<String>) -> Vec<u8> {
    let (b, mut code, mut i) = (text.as_bytes(), Vec::new(), 0);
    while i < b.len() {
        let n = skip_len(&b[i..], if i > 0 { b[i - 1] } else { b' ' });
        if n == 0 {
            code.push(b[i]);
        }
        i += n.max(1);
    }
    let (mut out, mut i, attr) = (Vec::new(), 0, b"#[cfg(test)]");
    while i < code.len() {
        let Some(item) = code[i..].strip_prefix(attr) else {
            out.push(code[i]);
            i += 1;
            continue;
        };
        let end = item.iter().position(|&c| c == b';' || c == b'{').unwrap_or(item.len());
        let mut depth = 0;
        let len = if item.get(end) == Some(&b';') {
            let head = String::from_utf8_lossy(&item[..end]);
            let words: Vec<&str> = head.split_whitespace().collect();
            test_mods.extend(words.windows(2).filter(|w| w[0] == "mod").map(|w| w[1].to_string()));
            end + 1
        } else {
            let close = item[end..].iter().position(|&c| {
                depth += i32::from(c == b'{') - i32::from(c == b'}');
                depth == 0
            });
            close.map_or(item.len(), |p| end + p + 1)
        };
        i += attr.len() + len;
    }
    out
}

fn word(b: &[u8], i: &mut usize) -> String {
    let start = *i;
    while b.get(*i).is_some_and(|&c| is_ident(c)) {
        *i += 1;
    }
    String::from_utf8_lossy(&b[start..*i]).into_owned()
}

/// Reads the path (or use tree, `a::{b as c, d::{e, self}}`) at `i`; pushes every leaf to `out`.
fn use_tree(b: &[u8], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        if b.get(*i) == Some(&b'{') {
            *i += 1;
            while let Some(&c) = b.get(*i).filter(|&&c| c != b'}') {
                if is_ident(c) {
                    use_tree(b, i, path.clone(), out);
                    // Past `as Alias`, to the `,` or `}` after the item.
                    *i += b.get(*i..).and_then(|r| r.iter().position(|&c| c == b',' || c == b'}')).unwrap_or(0);
                } else {
                    *i += 1;
                }
            }
            *i += 1;
            return;
        }
        match word(b, i) {
            w if w.is_empty() || (w == "self" && !path.is_empty()) => return out.push(path),
            w => path.push(w),
        }
        if !b[*i..].starts_with(b"::") {
            return out.push(path);
        }
        *i += 2;
    }
}

/// The absolute paths that the code of module `here` names, `super` in inline modules included.
fn paths(code: &[u8], here: &[String]) -> Vec<Vec<String>> {
    let (mut out, mut i, mut depth, mut inline) = (Vec::new(), 0, 0usize, Vec::new());
    while i < code.len() {
        let c = code[i];
        if !is_ident(c) || (i > 0 && (is_ident(code[i - 1]) || code[i - 1] == b'$')) {
            depth = match c { b'{' => depth + 1, b'}' => depth.saturating_sub(1), _ => depth };
            if c == b'}' && inline.last() == Some(&depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        let (start, w) = (i, word(code, &mut i));
        let next = |j: usize| code[j..].iter().position(|c| !c.is_ascii_whitespace()).map_or(code.len(), |p| j + p);
        let mut j = next(i);
        if w == "mod" && !word(code, &mut j).is_empty() && code.get(next(j)) == Some(&b'{') {
            inline.push(depth);
        }
        if !matches!(w.as_str(), "crate" | "super" | "self") || !code[i..].starts_with(b"::") {
            continue;
        }
        let mut raw = Vec::new();
        i = start;
        use_tree(code, &mut i, Vec::new(), &mut raw);
        for p in raw {
            let (mut abs, mut inner) = (if p[0] == "crate" { Vec::new() } else { here.to_vec() }, inline.len());
            for seg in p.iter().skip(usize::from(p[0] != "super")) {
                match seg.as_str() {
                    "super" if inner > 0 => inner -= 1,
                    "super" => drop(abs.pop()),
                    _ => abs.push(seg.clone()),
                }
            }
            out.push(abs);
        }
    }
    out
}

/// The import graph of the crate whose root is `src/lib.rs` (`src/main.rs` is another crate).
fn graph(src: &Path) -> Graph {
    let (mut files, mut dirs) = (Vec::new(), vec![src.to_path_buf()]);
    while let Some(d) = dirs.pop() {
        for p in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && p != src.join("main.rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                    parts.pop();
                }
                files.push((parts, p));
            }
        }
    }
    let names: BTreeSet<String> = files.iter().map(|(m, _)| m.join("/")).collect();
    let (mut g, mut test_only) = (Graph::new(), Vec::new());
    for (here, path) in &files {
        let mut mods = Vec::new();
        let code = code_of(&std::fs::read_to_string(path).unwrap(), &mut mods);
        test_only.extend(mods.iter().map(|m| here.iter().chain([m]).cloned().collect::<Vec<_>>().join("/")));
        let deps = g.entry(here.join("/")).or_default();
        for p in paths(&code, here) {
            let deepest = (1..=p.len()).rev().map(|n| p[..n].join("/")).find(|m| names.contains(m));
            deps.extend(deepest.filter(|m| *m != here.join("/")));
        }
    }
    g.retain(|m, _| !m.is_empty() && !test_only.iter().any(|t| m == t || m.starts_with(&format!("{t}/"))));
    g
}

/// The strongly connected components of more than one module, each sorted: found by plain
/// reachability, which is quick enough for about 70 modules.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    let reach = |v| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![v]);
        while let Some(x) = todo.pop() {
            todo.extend(g.get(x).into_iter().flatten().filter(|w| g.contains_key(*w) && seen.insert(*w)));
        }
        seen
    };
    let r: BTreeMap<&String, BTreeSet<&String>> = g.keys().map(|v| (v, reach(v))).collect();
    let scc = |v| g.keys().filter(|w| r[v].contains(w) && r[w].contains(v)).cloned().collect::<Vec<_>>();
    let out: BTreeSet<Vec<String>> = g.keys().map(scc).filter(|c| c.len() > 1).collect();
    out.into_iter().collect()
}

/// Each cycle with the edges inside it, as the shared script prints them.
fn describe(g: &Graph, cycles: &[&Vec<String>]) -> String {
    let mut s = String::new();
    for c in cycles {
        s += &format!("SCC: {c:?}\n");
        for (a, b) in c.iter().flat_map(|a| g[a].iter().filter(|b| c.contains(b)).map(move |b| (a, b))) {
            s += &format!("    {a} -> {b}\n");
        }
    }
    s + &format!("{} import cycles\n", cycles.len())
}

#[test]
fn src_has_no_import_cycles() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g["engine"].contains("flow/table") && !g.contains_key("testutil"), "the scan lost its way: {g:?}");
    let found = cycles(&g);
    let all: Vec<&Vec<String>> = found.iter().collect();
    assert!(all.is_empty(), "import cycles among the modules of src/ (break them):\n{}", describe(&g, &all));
}

/// Writes `files` under a fresh directory and returns the graph of that tree.
fn synthetic(name: &str, files: &[(&str, &str)]) -> Graph {
    let root = std::env::temp_dir().join(format!("shadowtap-layering-{}-{name}", std::process::id()));
    for (path, text) in files {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join(path), text).unwrap();
    }
    let g = graph(&root);
    std::fs::remove_dir_all(&root).unwrap();
    g
}

/// Each of these would make `c` import `a` if counted: comments, strings, a quote as a char
/// literal, a test module, a test-only file, and `super` inside an inline module.
const DECOYS: (&str, &str) = ("c.rs", r##"// crate::a::X
/* crate::a /* nested */ crate::a */ const S: &str = "crate::a \" crate::a";
const C: char = '"'; fn k() -> &'static str { "crate::a" } const R: &str = r#"a " crate::a"#;
pub mod a { pub struct X; }
mod field { use super::a::X; }
#[cfg(test)]
mod tests { use crate::a::X; }
#[cfg(test)]
mod fixtures;
"##);

#[test]
fn a_cycle_is_found_with_its_edges_and_a_dag_passes() {
    let tree = |name, inner| synthetic(name, &[("c/fixtures.rs", "use crate::a::X;"), DECOYS, inner,
        ("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;"),
        ("a.rs", "use crate::{b::{inner::Y as Z, self}, d};\nfn f() { crate::d::g() }\npub struct X;"),
        ("b/mod.rs", "pub mod inner;\npub use self::inner::Y;\npub fn f() -> super::c::Z { todo!() }"),
        ("d.rs", "fn g() { let _ = crate::c::h(); }")]);
    let g = tree("cycle", ("b/inner.rs", "pub struct Y;\npub fn g(_: &crate::a::X) {}"));
    let found = cycles(&g);
    let report = describe(&g, &found.iter().collect::<Vec<_>>());
    let want = "SCC: [\"a\", \"b\", \"b/inner\"]\n    a -> b\n    a -> b/inner\n    b -> b/inner\n    b/inner -> a\n1 import cycles\n";
    assert_eq!(report, want, "{g:?}");
    // A decoy counted would have joined c and d to the cycle.
    assert!(g["c"].is_empty() && !g.contains_key("c/fixtures"), "{g:?}");

    let g = tree("dag", ("b/inner.rs", "use super::super::d::g;\npub struct Y;"));
    assert!(cycles(&g).is_empty(), "{g:?}");
    let set = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!((&g["a"], &g["b"], &g["b/inner"]), (&set(&["b", "b/inner", "d"]), &set(&["b/inner", "c"]), &set(&["d"])));
}
