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
    // The kernel re-measures a deviation that raised its cycle with the same pure detector.
    ("kernel", &["contract", "deviation"]),
    // Deviation detection is pure like the kernel: series in, assessments out.
    ("deviation", &["contract"]),
    ("telemetry", &["contract", "config"]),
    ("store", &["contract", "config", "telemetry"]),
    ("broker", &["contract", "config", "telemetry"]),
    ("results", &["clock", "contract", "store", "telemetry"]),
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
            "store",
            "broker",
            "results",
            "telemetry",
            "watchdog",
        ],
    ),
    // The console reads the store and peeks at the broker; approvals arrive as an
    // `Approver` from `app`, so it never imports `app` (which starts it).
    ("console", &["contract", "config", "store", "broker"]),
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
];

/// I/O crates the pure modules must not name.
const IO_CRATES: &[&str] = &["tokio", "lapin", "tokio_postgres", "deadpool", "postgres"];
const PURE: &[&str] = &["kernel", "contract", "deviation"];

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
        if ["lib.rs", "main.rs", "bench.rs"].contains(&rel.as_str()) {
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

#[test]
fn no_two_modules_import_each_other() {
    let g = graph();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == n) {
            panic!("import cycle: {} -> {n}", path[at..].join(" -> "));
        }
        path.push(n.to_owned());
        for next in g.get(n).into_iter().flatten() {
            visit(next, g, path, done);
        }
        path.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        visit(n, &g, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_checker_sees_imports() {
    let refs = crate_refs(
        "use crate::{contract::X, store};\nfn f() { crate::kernel::decide() }\n// crate::app",
    );
    let want: BTreeSet<String> = ["contract", "store", "kernel"].map(String::from).into();
    assert_eq!(refs, want);
}
