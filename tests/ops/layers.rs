//! The shape of `src/` stays as designed: the kernel and the contract are pure, the store and
//! the broker hold no rules, and no two top-level modules import each other in a cycle.
//! Read from the source text, so a violation fails here rather than in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import from the crate. Anything not listed is refused.
const ALLOWED: &[(&str, &[&str])] = &[
    ("contract", &[]),
    ("config", &[]),
    ("clock", &[]),
    // The allocator: its arenas, set before any thread; its heap, trimmed by the worker.
    ("memory", &[]),
    // The kernel re-measures a deviation that raised its cycle with the same pure detector.
    ("kernel", &["contract", "deviation"]),
    // Deviation detection is pure like the kernel: series in, assessments out.
    ("deviation", &["contract"]),
    ("ingest", &["contract"]),
    // Webhook bodies, signatures, verification, the retry schedule: pure.
    ("notify", &["contract"]),
    ("telemetry", &["contract", "config"]),
    ("store", &["contract", "config", "ingest", "telemetry"]),
    ("broker", &["contract", "config", "telemetry"]),
    // `broker` for `Disposition`, the one way a delivery is settled.
    (
        "results",
        &["broker", "clock", "contract", "store", "telemetry"],
    ),
    ("approvals", &["contract", "store", "telemetry"]),
    (
        "watchdog",
        &["clock", "contract", "store", "broker", "telemetry"],
    ),
    (
        "worker",
        &[
            "approvals",
            "deviation",
            "clock",
            "contract",
            "config",
            "kernel",
            "memory",
            "notify",
            "store",
            "broker",
            "results",
            "telemetry",
            "watchdog",
        ],
    ),
    // The console reads the store and peeks at the broker; approvals arrive as an
    // `Approver` from `app`, so it never imports `app` (which starts it).
    (
        "console",
        &["approvals", "contract", "config", "store", "broker"],
    ),
    (
        "error",
        &["contract", "config", "store", "broker", "worker", "console"],
    ),
    (
        "app",
        &[
            "approvals",
            "clock",
            "contract",
            "config",
            "kernel",
            "store",
            "broker",
            "worker",
            "results",
            "telemetry",
            "error",
            "watchdog",
            "console",
            "ingest",
        ],
    ),
    (
        "demo",
        &[
            "approvals",
            "clock",
            "contract",
            "config",
            "store",
            "broker",
            "worker",
            "results",
            "telemetry",
            "error",
            "app",
            "watchdog",
        ],
    ),
    (
        "bench",
        &[
            "app", "broker", "clock", "config", "contract", "demo", "error", "ingest", "kernel",
            "store",
        ],
    ),
    (
        "cli",
        &[
            "app",
            "bench",
            "broker",
            "config",
            "console",
            "contract",
            "demo",
            "error",
            "ingest",
            "kernel",
            "store",
            "telemetry",
            "worker",
            "watchdog",
        ],
    ),
];

/// I/O crates the pure modules must not name.
const IO_CRATES: &[&str] = &["tokio", "lapin", "tokio_postgres", "deadpool", "postgres"];
const PURE: &[&str] = &["kernel", "contract", "deviation", "ingest", "notify"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Source files of the library by top-level module (the binary's own files are left out).
fn modules() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if ["lib.rs", "main.rs"].contains(&rel.as_str()) {
            continue;
        }
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let text = std::fs::read_to_string(&f).unwrap();
        out.entry(top.to_owned()).or_default().push((f, text));
    }
    out
}

/// The crate's top-level modules a text refers to: `crate::x`, and `crate::{x, y::z}`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `revenue_os_crate::` and the like
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                let name = part.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    modules()
        .into_iter()
        .map(|(m, files)| {
            let refs = files
                .iter()
                .flat_map(|(_, t)| crate_refs(t))
                .filter(|r| *r != m)
                .collect();
            (m, refs)
        })
        .collect()
}

#[test]
fn each_module_imports_only_what_its_layer_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for (module, refs) in graph() {
        let ok = allowed
            .get(module.as_str())
            .unwrap_or_else(|| panic!("src/{module} is not in the layer table of this test"));
        let bad: Vec<&String> = refs.iter().filter(|r| !ok.contains(&r.as_str())).collect();
        assert!(bad.is_empty(), "src/{module} imports {bad:?}");
    }
}

#[test]
fn the_store_and_the_broker_never_reach_the_kernel() {
    for (module, files) in modules() {
        if module != "store" && module != "broker" {
            continue;
        }
        for (path, text) in files {
            for needle in ["kernel::", "KernelSettings", "KernelParams"] {
                assert!(!text.contains(needle), "{} names {needle}", path.display());
            }
        }
    }
}

#[test]
fn the_kernel_and_the_contract_do_no_io() {
    for (module, files) in modules() {
        if !PURE.contains(&module.as_str()) {
            continue;
        }
        for (path, text) in files {
            for krate in IO_CRATES {
                let hit = text.lines().any(|l| {
                    let l = l.trim_start();
                    !l.starts_with("//")
                        && (l.contains(&format!("{krate}::"))
                            || l.contains(&format!("use {krate}")))
                });
                assert!(!hit, "{} uses {krate}", path.display());
            }
        }
    }
}

/// The first import cycle in `g`, as the path it closes.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if done.contains(n) {
            return None;
        }
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        path.push(n.to_owned());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other() {
    if let Some(c) = find_cycle(&graph()) {
        panic!("import cycle: {}", c.join(" -> "));
    }
}

/// A file's module path: `worker/periodic/mod.rs` is `worker::periodic`,
/// `worker/relay.rs` is `worker::relay`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The module paths a file's code (its tests left out) names through `super::` and
/// `crate::`, resolved from the file's own module path.
fn path_refs(rel: &str, text: &str) -> Vec<Vec<String>> {
    let here = module_path(rel);
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for (i, _) in code
        .match_indices("super::")
        .chain(code.match_indices("crate::"))
    {
        if code[..i].ends_with(|c: char| ident(c) || c == ':') {
            continue; // the second `super::` of `super::super::`, or `x_crate::`
        }
        let mut base = if code[i..].starts_with("crate::") {
            Vec::new()
        } else {
            here[..here.len().saturating_sub(1)].to_vec()
        };
        let mut rest = &code[i + "super::".len()..];
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        // Leading segments, then either a `{…}` group of paths or one more path.
        loop {
            let seg: String = rest.chars().take_while(|c| ident(*c)).collect();
            match rest[seg.len()..].strip_prefix("::") {
                Some(r) if !seg.is_empty() => {
                    base.push(seg);
                    rest = r;
                }
                _ => break,
            }
        }
        let groups: Vec<&str> = match rest.strip_prefix('{') {
            Some(g) => g.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for g in groups {
            let mut p = base.clone();
            p.extend(
                g.trim()
                    .split("::")
                    .map(|s| s.chars().take_while(|c| ident(*c)).collect::<String>())
                    .take_while(|s| !s.is_empty()),
            );
            out.push(p);
        }
    }
    out
}

/// Within each top-level module, which of its files (or sub-directories) import which. Items
/// re-exported by the module root are not followed: the root is not a node.
fn file_graph(files: &[(String, String)]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let nodes: BTreeSet<Vec<String>> = files
        .iter()
        .map(|(rel, _)| module_path(rel))
        .filter(|p| p.len() >= 2)
        .map(|p| p[..2].to_vec())
        .collect();
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (rel, text) in files {
        let here = module_path(rel);
        if here.len() < 2 {
            continue;
        }
        let g = out.entry(here[0].clone()).or_default();
        let from = g.entry(here[1].clone()).or_default();
        for r in path_refs(rel, text) {
            if r.len() >= 2 && r[0] == here[0] && r[1] != here[1] && nodes.contains(&r[..2]) {
                from.insert(r[1].clone());
            }
        }
    }
    out
}

fn source_files() -> Vec<(String, String)> {
    modules()
        .into_values()
        .flatten()
        .map(|(path, text)| {
            let rel = path
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, text)
        })
        .collect()
}

#[test]
fn no_two_files_of_a_module_import_each_other() {
    for (module, g) in file_graph(&source_files()) {
        if let Some(c) = find_cycle(&g) {
            panic!("import cycle inside src/{module}: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_file_check_finds_a_cycle_in_a_made_up_module() {
    let files = |b_uses: &str| {
        vec![
            (
                "m/mod.rs".to_owned(),
                "mod a;\nmod b;\npub use a::A;".to_owned(),
            ),
            (
                "m/a.rs".to_owned(),
                "use super::b::B;\npub struct A;".to_owned(),
            ),
            ("m/b.rs".to_owned(), format!("{b_uses}\npub struct B;")),
            (
                "m/c/mod.rs".to_owned(),
                "use super::super::m::a::A; use crate::m::{b::B, a};".to_owned(),
            ),
        ]
    };
    // b -> a closes a -> b.
    let g = file_graph(&files("use crate::m::a::A;"));
    let c = find_cycle(&g["m"]).expect("the a <-> b cycle");
    assert!(
        c.contains(&"a".to_owned()) && c.contains(&"b".to_owned()),
        "{c:?}"
    );
    let g = file_graph(&files("use super::{c::C, a::A};"));
    assert!(find_cycle(&g["m"]).is_some(), "through a group import");
    // Through the root's re-export, or in tests only: no edge, no cycle.
    let g = file_graph(&files(
        "use super::A;\n#[cfg(test)]\nmod t { use super::super::a::A; }",
    ));
    assert_eq!(find_cycle(&g["m"]), None, "{g:?}");
    assert_eq!(
        g["m"]["c"],
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
}

#[test]
fn the_checker_sees_imports() {
    let refs = crate_refs(
        "use crate::{contract::X, store};\nfn f() { crate::kernel::decide() }\n// crate::app",
    );
    let want: BTreeSet<String> = ["contract", "store", "kernel"].map(String::from).into();
    assert_eq!(refs, want);
}
