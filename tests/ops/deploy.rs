//! deploy/ stays in step with the code: every manifest parses, and the probe paths, ports,
//! environment variables, subcommands, queue name, grace periods and metric names the
//! manifests use are the ones the code defines. No Docker or Kubernetes runs here, so this
//! is the line-by-line review, automated.

use revenue_os::broker::Topology;
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;
use revenue_os::telemetry::metrics as m;
use revenue_os::worker::ops;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn ext(p: &Path) -> &str {
    p.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// Every document of a YAML file, with `<<` merge keys applied (yaml-rust2 resolves aliases
/// but leaves merge keys to the reader, as YAML 1.2 does).
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    docs.into_iter().map(merge_keys).collect()
}

fn merge_keys(y: Yaml) -> Yaml {
    match y {
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(merge_keys).collect()),
        Yaml::Hash(h) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            let mut merged = Vec::new();
            for (k, v) in h {
                let v = merge_keys(v);
                if k.as_str() == Some("<<") {
                    match v {
                        Yaml::Array(srcs) => merged.extend(srcs),
                        other => merged.push(other),
                    }
                } else {
                    out.insert(k, v);
                }
            }
            for src in merged {
                let Yaml::Hash(src) = src else {
                    panic!("a merge key must name a mapping")
                };
                for (k, v) in src {
                    if !out.contains_key(&k) {
                        out.insert(k, v);
                    }
                }
            }
            Yaml::Hash(out)
        }
        other => other,
    }
}

/// A scalar as the process would see it in its environment.
fn scalar(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn hash_pairs(y: &Yaml) -> Vec<(String, String)> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (scalar(k), scalar(v)))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
}

fn str_list(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| v.iter().map(scalar).collect())
        .unwrap_or_default()
}

fn k8s_docs() -> Vec<Yaml> {
    files_under(&root().join("deploy/k8s"))
        .iter()
        .filter(|p| matches!(ext(p), "yaml" | "yml"))
        .flat_map(|p| yaml_docs(p.strip_prefix(root()).unwrap().to_str().unwrap()))
        .collect()
}

fn k8s(kind: &str) -> Vec<Yaml> {
    k8s_docs()
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn one_k8s(kind: &str) -> Yaml {
    let mut docs = k8s(kind);
    assert_eq!(docs.len(), 1, "exactly one {kind} in deploy/k8s");
    docs.remove(0)
}

fn container<'a>(workload: &'a Yaml, name: &str) -> &'a Yaml {
    workload["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn compose() -> Yaml {
    yaml_docs("deploy/compose.yaml").remove(0)
}

/// The services built from this repository's Dockerfile.
fn compose_app_services(c: &Yaml) -> Vec<(String, Yaml)> {
    c["services"]
        .as_hash()
        .unwrap()
        .iter()
        .filter(|(_, s)| !s["build"].is_badvalue())
        .map(|(k, s)| (scalar(k), s.clone()))
        .collect()
}

/// Dockerfile instructions (continuation lines joined) with the stage each belongs to.
fn dockerfile() -> Vec<(usize, String, String)> {
    let text = read("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut stage = 0;
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let full = std::mem::take(&mut pending);
        let (op, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stage += 1;
        }
        out.push((stage, op, rest.trim().to_owned()));
    }
    out
}

fn final_stage() -> Vec<(String, String)> {
    let all = dockerfile();
    let last = all.iter().map(|(s, _, _)| *s).max().unwrap();
    all.into_iter()
        .filter(|(s, _, _)| *s == last)
        .map(|(_, op, rest)| (op, rest))
        .collect()
}

fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("not exec (JSON array) form: {rest}: {e}"))
}

/// `ENV A=1 B=2` pairs of the runtime stage.
fn dockerfile_env() -> Vec<(String, String)> {
    final_stage()
        .iter()
        .filter(|(op, _)| op == "ENV")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("ENV key=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn defaults() -> Settings {
    Settings::load_from(&[]).unwrap()
}

fn default_port() -> u16 {
    let listen = defaults().http.listen;
    let (_, port) = listen.rsplit_once(':').unwrap();
    port.parse().unwrap()
}

fn settings_with(env: &[(String, String)]) -> Settings {
    Settings::load_from(env).unwrap_or_else(|e| panic!("{env:?}: {e}"))
}

fn configmap_env() -> Vec<(String, String)> {
    hash_pairs(&one_k8s("ConfigMap")["data"])
}

/// The environment the k8s worker sees from the image and the ConfigMap (the latter wins).
fn k8s_worker_settings() -> Settings {
    let mut env = dockerfile_env();
    env.extend(configmap_env());
    settings_with(&env)
}

fn compose_worker_settings() -> Settings {
    let mut env = dockerfile_env();
    env.extend(hash_pairs(&compose()["services"]["worker"]["environment"]));
    settings_with(&env)
}

#[test]
fn every_yaml_and_json_file_in_deploy_parses() {
    let mut yaml_docs_seen = 0;
    let mut json_files = 0;
    let mut multi_doc_files = 0;
    for path in files_under(&root().join("deploy")) {
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        match ext(&path) {
            "yaml" | "yml" => {
                let docs = yaml_docs(&rel);
                assert!(!docs.is_empty(), "{rel}: no document");
                for (i, d) in docs.iter().enumerate() {
                    assert!(
                        d.as_hash().is_some(),
                        "{rel}: document {i} is not a mapping"
                    );
                }
                if docs.len() > 1 {
                    multi_doc_files += 1;
                }
                yaml_docs_seen += docs.len();
            }
            "json" => {
                let _: Value =
                    serde_json::from_str(&read(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
                json_files += 1;
            }
            _ => {}
        }
    }
    // compose + 5 k8s files, two of them with two documents.
    assert!(yaml_docs_seen >= 8, "{yaml_docs_seen} YAML documents");
    assert!(
        multi_doc_files >= 2,
        "{multi_doc_files} multi-document files"
    );
    assert!(json_files >= 1, "the Grafana dashboard");
}

#[test]
fn deployment_probes_and_port_are_the_codes() {
    let port = default_port();
    let dep = one_k8s("Deployment");
    let c = container(&dep, "worker");
    let ports = c["ports"].as_vec().unwrap();
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("a port named http");
    assert_eq!(http["containerPort"].as_i64(), Some(i64::from(port)));
    for (probe, path) in [
        ("startupProbe", ops::HEALTHZ),
        ("livenessProbe", ops::HEALTHZ),
        ("readinessProbe", ops::READYZ),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        let p = &get["port"];
        assert!(
            p.as_str() == Some("http") || p.as_i64() == Some(i64::from(port)),
            "{probe} port {p:?}"
        );
    }
    let ann = &dep["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(ann["prometheus.io/path"].as_str(), Some(ops::METRICS));

    // In a container the ops server must listen on every interface, on that port.
    for (what, s) in [
        ("k8s", k8s_worker_settings()),
        ("compose", compose_worker_settings()),
    ] {
        let addr: SocketAddr = s.http.listen.parse().unwrap();
        assert!(addr.ip().is_unspecified(), "{what}: {addr}");
        assert_eq!(addr.port(), port, "{what}");
    }
    let exposed: Vec<String> = final_stage()
        .into_iter()
        .filter(|(op, _)| op == "EXPOSE")
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(exposed, [port.to_string()], "Dockerfile EXPOSE");
}

#[test]
fn termination_grace_outlasts_the_shutdown() {
    // The worker drains in-flight cycles for up to shutdown_grace, then flushes the outbox for
    // up to shutdown_grace again (worker::run::drain); SIGKILL must come after both.
    let grace = k8s_worker_settings().worker.shutdown_grace_secs;
    let dep = one_k8s("Deployment");
    let tgps = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(tgps > 2 * grace as i64, "{tgps}s vs grace {grace}s");

    let grace = compose_worker_settings().worker.shutdown_grace_secs;
    let stop = scalar(&compose()["services"]["worker"]["stop_grace_period"]);
    let secs: i64 = stop.strip_suffix('s').unwrap().parse().unwrap();
    assert!(secs > 2 * grace as i64, "compose {stop} vs grace {grace}s");
}

/// `REVENUE_OS__A__B` -> ("a", "b").
fn settings_key(name: &str) -> (String, String) {
    let rest = name.strip_prefix("REVENUE_OS__").unwrap();
    let parts: Vec<&str> = rest.split("__").collect();
    assert_eq!(parts.len(), 2, "{name}: REVENUE_OS__SECTION__KEY");
    (parts[0].to_lowercase(), parts[1].to_lowercase())
}

fn as_env_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn every_revenue_os_variable_is_a_settings_key_and_takes_its_value() {
    let serialized = serde_json::to_value(defaults()).unwrap();
    let mut names = BTreeSet::new();
    for path in files_under(&root().join("deploy")) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(i) = rest.find("REVENUE_OS__") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        let (section, key) = settings_key(name);
        assert!(
            !serialized[&section][&key].is_null(),
            "{name}: no settings key {section}.{key}"
        );
    }

    // Every value a manifest gives such a variable loads and lands on that key.
    let mut pairs = configmap_env();
    pairs.extend(dockerfile_env());
    let c = compose();
    for (_, svc) in c["services"].as_hash().unwrap() {
        pairs.extend(hash_pairs(&svc["environment"]));
    }
    for kind in ["Deployment", "Job"] {
        for w in k8s(kind) {
            for c in w["spec"]["template"]["spec"]["containers"]
                .as_vec()
                .unwrap()
            {
                for e in c["env"].as_vec().into_iter().flatten() {
                    if !e["value"].is_badvalue() {
                        pairs.push((scalar(&e["name"]), scalar(&e["value"])));
                    }
                }
            }
        }
    }
    let pairs: Vec<_> = pairs
        .into_iter()
        .filter(|(k, _)| k.starts_with("REVENUE_OS__"))
        .collect();
    assert!(pairs.len() >= 10, "{pairs:?}");
    for (name, value) in pairs {
        let (section, key) = settings_key(&name);
        let s = settings_with(&[(name.clone(), value.clone())]);
        let got = serde_json::to_value(s).unwrap();
        assert_eq!(as_env_string(&got[&section][&key]), value, "{name}");
    }
}

fn secret_has(name: &str, key: &str) -> bool {
    k8s("Secret").iter().any(|s| {
        s["metadata"]["name"].as_str() == Some(name)
            && (!s["stringData"][key].is_badvalue() || !s["data"][key].is_badvalue())
    })
}

fn assert_env_from_secret(c: &Yaml, var: &str, what: &str) {
    let e = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
        .unwrap_or_else(|| panic!("{what}: no {var}"));
    let r = &e["valueFrom"]["secretKeyRef"];
    let (name, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
    assert!(secret_has(name, key), "{what}: {var} from {name}/{key}");
}

fn url_host(url: &str) -> &str {
    let after = url.split_once("://").unwrap().1;
    let after = after.rsplit_once('@').map_or(after, |(_, h)| h);
    after.split([':', '/']).next().unwrap()
}

#[test]
fn the_urls_reach_every_process_that_needs_them() {
    let dep = one_k8s("Deployment");
    let worker = container(&dep, "worker");
    assert_env_from_secret(worker, "DATABASE_URL", "worker");
    assert_env_from_secret(worker, "AMQP_URL", "worker");
    // Migrations touch only PostgreSQL.
    let job = one_k8s("Job");
    assert_eq!(str_list(&container(&job, "migrate")["args"]), ["migrate"]);
    assert_env_from_secret(container(&job, "migrate"), "DATABASE_URL", "migrate job");

    let cm = one_k8s("ConfigMap");
    for w in [&dep, &job] {
        for c in w["spec"]["template"]["spec"]["containers"]
            .as_vec()
            .unwrap()
        {
            for src in c["envFrom"].as_vec().into_iter().flatten() {
                assert_eq!(
                    src["configMapRef"]["name"].as_str(),
                    cm["metadata"]["name"].as_str()
                );
            }
        }
    }

    let c = compose();
    let apps = compose_app_services(&c);
    assert!(apps.len() >= 4, "migrate, import, worker, scheduler");
    let pg_db = scalar(&c["services"]["postgres"]["environment"]["POSTGRES_DB"]);
    for (name, svc) in &apps {
        let env: BTreeMap<String, String> = hash_pairs(&svc["environment"]).into_iter().collect();
        let db = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| panic!("{name}: DATABASE_URL"));
        let mq = env
            .get("AMQP_URL")
            .unwrap_or_else(|| panic!("{name}: AMQP_URL"));
        assert_eq!(url_host(db), "postgres", "{name}: a compose service");
        assert_eq!(url_host(mq), "rabbitmq", "{name}: a compose service");
        assert!(db.ends_with(&format!("/{pg_db}")), "{name}: {db}");
        let s = settings_with(&[
            ("DATABASE_URL".into(), db.clone()),
            ("AMQP_URL".into(), mq.clone()),
        ]);
        assert_eq!((&s.database.url, &s.amqp.url), (db, mq));
    }
}

/// Every `revenue-os` invocation in deploy/, as argv after the program name.
fn invocations() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let stage = final_stage();
    let entry = stage.iter().find(|(op, _)| op == "ENTRYPOINT").unwrap();
    assert!(exec_form(&entry.1)[0].ends_with("/revenue-os"));
    for (op, rest) in &stage {
        if op == "CMD" {
            out.push(("Dockerfile CMD".to_owned(), exec_form(rest)));
        }
    }
    let c = compose();
    for (name, svc) in compose_app_services(&c) {
        if svc["entrypoint"].is_badvalue() {
            out.push((format!("compose {name}"), str_list(&svc["command"])));
        } else {
            // A shell script: each `revenue-os ...` up to the end of its statement.
            for script in str_list(&svc["command"]) {
                for (i, _) in script.match_indices("revenue-os ") {
                    let stmt = script[i + "revenue-os ".len()..]
                        .split([';', '&', '|', '\n'])
                        .next()
                        .unwrap();
                    let argv = stmt.split_whitespace().map(str::to_owned).collect();
                    out.push((format!("compose {name} script"), argv));
                }
            }
        }
    }
    for kind in ["Deployment", "Job"] {
        for w in k8s(kind) {
            for ct in w["spec"]["template"]["spec"]["containers"]
                .as_vec()
                .unwrap()
            {
                let args = str_list(&ct["args"]);
                out.push((format!("k8s {kind}"), args));
            }
        }
    }
    out
}

#[test]
fn every_subcommand_and_flag_used_is_real() {
    let mut subs = BTreeSet::new();
    for (what, argv) in invocations() {
        assert!(!argv.is_empty(), "{what}: no subcommand");
        subs.insert(argv[0].clone());
        // clap rejects unknown subcommands and flags before it reaches --help.
        let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
            .args(&argv)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: revenue-os {argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for sub in ["worker", "migrate", "import", "trigger"] {
        assert!(subs.contains(sub), "{sub} used somewhere: {subs:?}");
    }
}

#[test]
fn the_example_import_is_in_the_image_and_the_scheduler_triggers_it() {
    // Container path -> repository path, from the runtime stage's COPY lines.
    let copies: Vec<(String, String)> = final_stage()
        .into_iter()
        .filter(|(op, rest)| op == "COPY" && !rest.starts_with("--"))
        .map(|(_, rest)| {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            (parts[1].to_owned(), parts[0].to_owned())
        })
        .collect();
    let all = invocations();
    let (_, import) = all.iter().find(|(_, a)| a[0] == "import").unwrap();
    let path = &import[1];
    let (dest, src) = copies
        .iter()
        .find(|(dest, _)| path.starts_with(dest.as_str()))
        .unwrap_or_else(|| panic!("{path} is not copied into the image"));
    let repo_path = format!("{src}{}", &path[dest.len()..]);
    let doc: Value = serde_json::from_str(&read(&repo_path)).unwrap();
    let tenant = doc["tenant_id"].as_str().unwrap();

    let (_, trigger) = all.iter().find(|(_, a)| a[0] == "trigger").unwrap();
    let at = trigger.iter().position(|a| a == "--tenant").unwrap();
    assert_eq!(
        trigger[at + 1],
        tenant,
        "the scheduler triggers the imported tenant"
    );
}

#[test]
fn dockerfile_is_cached_non_root_exec_form_and_ships_config() {
    let stage = final_stage();
    let user = &stage.iter().rfind(|(op, _)| op == "USER").expect("USER").1;
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "root" && uid.parse::<u32>().unwrap() != 0,
        "USER {user}"
    );
    for kind in ["Deployment", "Job"] {
        let sc = &one_k8s(kind)["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{kind}");
        assert_eq!(
            sc["runAsUser"].as_i64().map(|u| u.to_string()),
            Some(uid.to_owned())
        );
    }

    let entry = &stage.iter().find(|(op, _)| op == "ENTRYPOINT").unwrap().1;
    let entry = exec_form(entry);
    let binary_copied = stage
        .iter()
        .any(|(op, rest)| op == "COPY" && rest.starts_with("--from=") && rest.ends_with(&entry[0]));
    assert!(binary_copied, "ENTRYPOINT {entry:?} is the built binary");
    for (op, rest) in &stage {
        if op == "CMD" {
            exec_form(rest);
        }
    }
    assert!(
        stage
            .iter()
            .any(|(op, rest)| op == "COPY" && rest.starts_with("config/ ")),
        "config/ copied into the runtime image"
    );

    // cargo-chef: the dependency layer is cooked before the sources are copied in.
    let all = dockerfile();
    let pos = |f: &dyn Fn(&str, &str) -> bool| all.iter().position(|(_, o, r)| f(o, r));
    let cook = pos(&|o, r| o == "RUN" && r.contains("cargo chef cook")).expect("cook");
    let prepare = pos(&|o, r| o == "RUN" && r.contains("cargo chef prepare")).expect("prepare");
    let build = pos(&|o, r| o == "RUN" && r.contains("cargo build")).expect("build");
    let cook_stage = all[cook].0;
    let copy_src = all
        .iter()
        .position(|(s, o, r)| *s == cook_stage && o == "COPY" && r == ". .")
        .expect("COPY . . in the builder");
    assert!(prepare < cook && cook < copy_src && copy_src < build);
}

/// Paths the crate reads at compile time: include_str!/include_bytes! and embedded migrations.
fn compile_time_inputs() -> Vec<String> {
    let mut out = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "migrations".to_owned(),
        "benches".to_owned(),
    ];
    for file in files_under(&root().join("src")) {
        if ext(&file) != "rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(mac) {
                let rel = text[i + mac.len()..].split('"').next().unwrap();
                let abs = file.parent().unwrap().join(rel).canonicalize().unwrap();
                out.push(
                    abs.strip_prefix(root().canonicalize().unwrap())
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    out
}

#[test]
fn the_build_context_keeps_what_the_build_reads() {
    let inputs = compile_time_inputs();
    for must in [
        "config/default.toml",
        "tests/fixtures/valid/demand_bound.json",
        "deploy/bench/cycle.sql",
    ] {
        assert!(inputs.iter().any(|i| i == must), "{must} among {inputs:?}");
    }
    let ignore = read("deploy/Dockerfile.dockerignore");
    for pattern in ignore.lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') || pattern.starts_with('!') {
            continue;
        }
        let p = pattern.trim_start_matches("./").trim_end_matches('/');
        for input in &inputs {
            assert!(
                !(input == p || input.starts_with(&format!("{p}/"))),
                "the dockerignore pattern {pattern} drops {input}"
            );
        }
    }
}

#[test]
fn compose_orders_startup_on_health() {
    let c = compose();
    let s = &c["services"];
    for svc in ["postgres", "rabbitmq", "worker"] {
        assert!(
            !s[svc]["healthcheck"]["test"].is_badvalue(),
            "{svc} healthcheck"
        );
    }
    let deps = &s["worker"]["depends_on"];
    assert_eq!(
        deps["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        deps["rabbitmq"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        deps["migrate"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(str_list(&s["migrate"]["command"]), ["migrate"]);

    // The worker's own healthcheck asks /readyz on its listen port, which is published.
    let port = compose_worker_settings()
        .http
        .listen
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    let check = str_list(&s["worker"]["healthcheck"]["test"]).join(" ");
    assert!(check.contains(ops::READYZ), "{check}");
    assert!(check.contains(&format!("/{port} ")), "{check}");
    let published = str_list(&s["worker"]["ports"]);
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "{published:?}"
    );
    // The migrate service runs them; the worker must not race it.
    assert!(!compose_worker_settings().database.migrate_on_start);
    assert!(!k8s_worker_settings().database.migrate_on_start);
}

#[test]
fn keda_scales_on_the_triggers_queue() {
    let settings = k8s_worker_settings();
    let catalog = Catalog::embedded().unwrap();
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let so = one_k8s("ScaledObject");
    let dep = one_k8s("Deployment");
    assert_eq!(
        so["spec"]["scaleTargetRef"]["name"].as_str(),
        dep["metadata"]["name"].as_str()
    );
    let triggers = so["spec"]["triggers"].as_vec().unwrap();
    assert_eq!(triggers.len(), 1);
    let t = &triggers[0];
    assert_eq!(t["type"].as_str(), Some("rabbitmq"));
    assert_eq!(t["metadata"]["mode"].as_str(), Some("QueueLength"));
    assert_eq!(
        t["metadata"]["queueName"].as_str(),
        Some(topology.triggers_queue.as_str())
    );
    let auth = one_k8s("TriggerAuthentication");
    assert_eq!(
        t["authenticationRef"]["name"].as_str(),
        auth["metadata"]["name"].as_str()
    );
    for r in auth["spec"]["secretTargetRef"].as_vec().unwrap() {
        let (name, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
        assert!(secret_has(name, key), "TriggerAuthentication {name}/{key}");
    }
    let text = read("deploy/k8s/keda-scaledobject.yaml");
    assert!(text.contains("prefetch"), "the prefetch/unacked note");
}

/// Metric name -> (kind, label names), from the exporter's own list.
fn metric_kinds() -> BTreeMap<String, (String, BTreeSet<String>)> {
    m::ALL
        .iter()
        .map(|metric| {
            let kind = match metric.kind {
                m::Kind::Counter => "counter",
                m::Kind::Gauge => "gauge",
                m::Kind::Histogram => "histogram",
            };
            let labels = metric.labels.iter().map(|l| (*l).to_owned()).collect();
            (metric.name.to_owned(), (kind.to_owned(), labels))
        })
        .collect()
}

fn exprs(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(e)) = o.get("expr") {
                let legend = o.get("legendFormat").and_then(Value::as_str).unwrap_or("");
                out.push((e.clone(), legend.to_owned()));
            }
            o.values().for_each(|v| exprs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Label names in `by (...)`/`without (...)` groupings and `{k="v"}` matchers.
fn expr_labels(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut grouping = BTreeSet::new();
    for kw in ["by (", "without ("] {
        for (i, _) in expr.match_indices(kw) {
            let inner = expr[i + kw.len()..].split(')').next().unwrap();
            grouping.extend(inner.split(',').map(|l| l.trim().to_owned()));
        }
    }
    let mut matchers = BTreeSet::new();
    for (i, _) in expr.match_indices('{') {
        let inner = expr[i + 1..].split('}').next().unwrap();
        for m in inner.split(',') {
            let name = m.split(['=', '!', '~']).next().unwrap().trim();
            if !name.is_empty() {
                matchers.insert(name.to_owned());
            }
        }
    }
    (grouping, matchers)
}

#[test]
fn grafana_uses_only_series_the_worker_exports() {
    let kinds = metric_kinds();
    let consts: Vec<&str> = m::ALL.iter().map(|metric| metric.name).collect();
    let unique: BTreeSet<&str> = consts.iter().copied().collect();
    assert_eq!(unique.len(), consts.len(), "a metric listed twice");

    let dash: Value = serde_json::from_str(&read("deploy/grafana/revenue-os.json")).unwrap();
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(!all.is_empty());
    let mut used = BTreeSet::new();
    for (expr, legend) in &all {
        let mut labels_here = BTreeSet::new();
        let mut bucket = false;
        let idents = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|t| t.starts_with("revenue_os_"));
        for series in idents {
            let hist_base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suf| series.strip_suffix(suf))
                .filter(|base| kinds.get(*base).is_some_and(|(k, _)| k == "histogram"));
            let name = hist_base.unwrap_or(series);
            let (kind, labels) = kinds
                .get(name)
                .unwrap_or_else(|| panic!("{series} in `{expr}` is not exported"));
            assert!(
                kind != "histogram" || hist_base.is_some(),
                "{series}: a histogram has only _bucket/_count/_sum series"
            );
            bucket |= series.ends_with("_bucket");
            labels_here.extend(labels.iter().cloned());
            used.insert(name.to_owned());
        }
        if bucket {
            labels_here.insert("le".to_owned());
        }
        let (grouping, matchers) = expr_labels(expr);
        for l in grouping.iter().chain(&matchers) {
            assert!(labels_here.contains(l), "label {l} in `{expr}`");
        }
        for (i, _) in legend.match_indices("{{") {
            let l = legend[i + 2..].split("}}").next().unwrap().trim();
            assert!(
                grouping.contains(l),
                "legend {{{{{l}}}}} not grouped in `{expr}`"
            );
        }
    }
    let unused: Vec<_> = consts.iter().filter(|c| !used.contains(**c)).collect();
    assert!(unused.is_empty(), "series without a panel: {unused:?}");
}
