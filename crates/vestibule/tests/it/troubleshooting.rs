//! docs/troubleshooting.md cannot drift from the code: every key `vestibule
//! check` can report (read from the `c.error(key, …)` / `c.warn(key, …)`
//! calls and the key lists in `src/config/`) and every refusal outcome (the
//! metric labels in `src/http/`) must appear on the page. The check keys
//! are the diagnostics' stable codes; the outcome labels are the refusals'.

const PAGE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/troubleshooting.md");
const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");
const HTTP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");

/// Every `.rs` file in `dir` as (file name, text), without its
/// `#[cfg(test)]` tail.
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap().to_owned();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    out.sort();
    out
}

/// The first string literal at the start of `s` (after `format!(`, `&`
/// and white space), if the argument is one: `format!("{key}.host")` →
/// `{key}.host`. A variable (`key`, `&ckey`) gives `None`.
fn leading_literal(s: &str) -> Option<&str> {
    let s = s.trim_start().trim_start_matches('&');
    let s = s.strip_prefix("format!(").unwrap_or(s).trim_start();
    let s = s.strip_prefix('"')?;
    s.find('"').map(|end| &s[..end])
}

/// The key templates `check` can report, with where they come from: the
/// first argument of every `.error(`/`.warn(` call, of every helper call
/// that takes `(c, key, …)`, and every `("section.key", …)` tuple in a key
/// list.
fn diagnostic_keys(files: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (file, text) in files {
        for (line_no, _) in text.lines().enumerate() {
            let rest: String = text
                .lines()
                .skip(line_no)
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            let line = text.lines().nth(line_no).unwrap().trim();
            let arg = if let Some(i) = line.find(".error(").or_else(|| line.find(".warn(")) {
                let after = &rest[rest.find(&line[i..]).unwrap()..];
                after.split_once('(').map(|(_, a)| a)
            } else if let Some(i) = line.find("(c, ") {
                Some(&line[i + 4..])
            } else if line.starts_with("(\"") && line.contains('.') {
                Some(&line[1..])
            } else {
                None
            };
            if let Some(key) = arg.and_then(leading_literal)
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || "._[]{}<>".contains(c))
            {
                out.push((format!("src/config/{file}:{}", line_no + 1), key.to_owned()));
            }
        }
    }
    out
}

/// The refusal outcome labels: the `=> "label"` arms of `Refusal::outcome`
/// and the literal outcomes of `metrics.request(…)` / `log_verify_refusal(…)`.
fn refusal_outcomes(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, text) in files {
        let mut in_outcome = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("pub fn ") {
                in_outcome = line.starts_with("pub fn outcome(");
            }
            let literal = if in_outcome {
                line.split("=> \"").nth(1)
            } else if line.contains("metrics.request(") || line.contains("log_verify_refusal(") {
                line.rsplit(", \"").next().filter(|_| line.contains(", \""))
            } else {
                None
            };
            if let Some(label) = literal.and_then(|l| l.split('"').next())
                && !label.is_empty()
                && !out.iter().any(|o| o == label)
            {
                out.push(label.to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Every backticked span of `page`.
fn code_spans(page: &str) -> Vec<&str> {
    page.split('`').skip(1).step_by(2).collect()
}

/// Whether the page names a key template: `{key}.host` (a section's key
/// under whatever prefix) must end some span; `route[{i}].name` must be a
/// span with `<i>` for the index.
fn names_key(spans: &[&str], template: &str) -> bool {
    let (suffix_only, rest) = match template.strip_prefix("{key}") {
        Some(rest) => (true, rest),
        None => (false, template),
    };
    let wanted = rest.replace("{i}", "<i>").replace("{j}", "<i>");
    spans.iter().any(|s| {
        if suffix_only {
            s.ends_with(&wanted)
        } else {
            *s == wanted
        }
    })
}

#[test]
fn troubleshooting_names_every_check_key_and_refusal() {
    let page = std::fs::read_to_string(PAGE_PATH)
        .unwrap_or_else(|e| panic!("cannot read {PAGE_PATH}: {e}"));
    let spans = code_spans(&page);

    let keys = diagnostic_keys(&sources(CONFIG_DIR));
    let templates: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
    for expected in [
        "server.listen",
        "{key}.upstream",
        "route[{i}].name",
        "keys.kek_env",
        "server.tls.cert",
    ] {
        assert!(
            templates.contains(&expected),
            "the key reader did not find `{expected}` in {CONFIG_DIR}: {templates:?}"
        );
    }
    let mut missing: Vec<String> = keys
        .iter()
        // `{key}.{k}` and the like: the key is a variable; nothing to match.
        .filter(|(_, k)| {
            let bare = k.replace("{key}", "").replace("{i}", "").replace("{j}", "");
            !bare.contains('{') && !bare.trim_matches(|c| "[].".contains(c)).is_empty()
        })
        .filter(|(_, k)| !names_key(&spans, k))
        .map(|(at, k)| format!("{at}: `check` reports key `{k}`, which docs/troubleshooting.md does not name (add a row to its table)"))
        .collect();

    let outcomes = refusal_outcomes(&sources(HTTP_DIR));
    for expected in [
        "bad_request",
        "no_route",
        "forbidden",
        "upstream_timeout",
        "too_large",
    ] {
        assert!(
            outcomes.iter().any(|o| o == expected),
            "the outcome reader did not find `{expected}` in {HTTP_DIR}: {outcomes:?}"
        );
    }
    for outcome in &outcomes {
        if !page.contains(&format!("\n### `{outcome}`\n")) {
            missing.push(format!(
                "refusal outcome `{outcome}` (src/http/) has no \"### `{outcome}`\" section in docs/troubleshooting.md"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn readers_work() {
    assert_eq!(
        leading_literal(" format!(\"{key}.host\"),"),
        Some("{key}.host")
    );
    assert_eq!(leading_literal("&ckey,"), None);
    let src = vec![(
        "x.rs".to_owned(),
        "c.error(\n    \"a.b\",\n    \"m\",\n);\nc.warn(key, \"m\", \"f\");\nzero_timeout(c, \"s.t\");\n(\"u.v\", self.x),\n".to_owned(),
    )];
    let keys: Vec<String> = diagnostic_keys(&src).into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["a.b", "s.t", "u.v"]);
    let http = vec![(
        "r.rs".to_owned(),
        "pub fn outcome(&self) {\n Self::A => \"a_b\",\n}\npub fn other() {\n x => \"no\",\n state.metrics.request(&r, \"c_d\");\n}\n".to_owned(),
    )];
    assert_eq!(refusal_outcomes(&http), ["a_b", "c_d"]);
    assert!(names_key(&["source.jwt.host"], "{key}.host"));
    assert!(names_key(&["route[<i>].name"], "route[{i}].name"));
    assert!(!names_key(&["route[<i>].name2"], "route[{i}].name"));
}
