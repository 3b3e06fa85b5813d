//! The docs stay honest:
//!
//! - docs/configuration.md names every field of the configuration structs
//!   (those deriving `Deserialize`) in `src/config/`, in that struct's own
//!   `### ` section when the page has one, and shows the defaults the code
//!   uses; a missing field is reported by struct, file and field;
//! - every ```toml block of it passes `check` without errors (blocks marked
//!   with `<!-- fragment -->` on the line before the fence must still parse:
//!   no unknown keys, right types);
//! - the commands the README and the docs show exist (`.ci/run`, and every
//!   `vestibule <subcommand>`);
//! - every relative link in the README and the docs reaches a file.

use std::collections::BTreeMap;

use vestibule::config::{self, Severity};

const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const CONFIGURATION_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
const CONFIGURATION_NAME: &str = "docs/configuration.md";
const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");

const REFERENCE_HEADING: &str = "## Configuration reference";
const FRAGMENT_MARKER: &str = "<!-- fragment -->";

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every `.rs` file of the configuration module (one per section), in name
/// order, as (file name, text), each without its `#[cfg(test)]` tail (test
/// values are not defaults).
fn read_config_files() -> Vec<(String, String)> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(CONFIG_DIR)
        .unwrap_or_else(|e| panic!("cannot list {CONFIG_DIR}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = read(&p.to_string_lossy());
            let text = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, text)
        })
        .collect()
}

/// The configuration sources concatenated (for the defaults).
fn read_config_sources() -> String {
    read_config_files()
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every configuration struct, with the file it is declared in.
fn config_structs_by_file() -> Vec<(String, ConfigStruct)> {
    read_config_files()
        .into_iter()
        .flat_map(|(file, text)| {
            config_structs(&text)
                .into_iter()
                .map(move |s| (file.clone(), s))
        })
        .collect()
}

/// One fenced ```toml block.
struct TomlBlock {
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
    fragment: bool,
}

/// Every ```toml block, in order. Fences of other languages are skipped
/// whole, so a ```toml line inside them is not mistaken for a block.
fn toml_blocks(markdown: &str) -> Vec<TomlBlock> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].trim().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let is_toml = lang.trim() == "toml";
        let fragment = i > 0 && lines[i - 1].trim() == FRAGMENT_MARKER;
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            body.push(lines[i]);
            i += 1;
        }
        assert!(i < lines.len(), "line {}: unclosed code fence", start + 1);
        i += 1;
        if is_toml {
            blocks.push(TomlBlock {
                line: start + 1,
                text: body.join("\n") + "\n",
                fragment,
            });
        }
    }
    blocks
}

/// A configuration struct: the section its doc comment names (such as
/// `[server]`), and its fields as written in TOML (serde renames applied,
/// `#[serde(flatten)]` fields left out: the flattened struct is listed itself).
#[derive(Debug)]
struct ConfigStruct {
    name: String,
    section: Option<String>,
    fields: Vec<String>,
}

/// Reads the `pub <name>:` fields of every `pub struct … {` in `src` that
/// derives `Deserialize` (the checked settings structs do not).
fn config_structs(src: &str) -> Vec<ConfigStruct> {
    let mut out = Vec::new();
    let mut doc_section: Option<String> = None;
    let mut deserialize = false;
    let mut current: Option<ConfigStruct> = None;
    let mut rename: Option<String> = None;
    let mut flatten = false;
    for raw in src.lines() {
        let line = raw.trim();
        if let Some(s) = current.as_mut() {
            if line == "}" {
                out.extend(current.take());
                continue;
            }
            if line.starts_with("#[serde(") {
                if let Some(r) = line.split("rename = \"").nth(1) {
                    rename = r.split('"').next().map(str::to_owned);
                }
                flatten |= line.contains("flatten");
                continue;
            }
            if let Some(rest) = line.strip_prefix("pub ") {
                let ident: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() && rest[ident.len()..].starts_with(':') {
                    let name = rename.take().unwrap_or(ident);
                    if !std::mem::take(&mut flatten) {
                        s.fields.push(name);
                    }
                }
            }
            continue;
        }
        if let Some(doc) = line.strip_prefix("///") {
            // The struct's section, e.g. "/// `[server]`." or "/// `[[route]]`: …".
            if doc_section.is_none()
                && let Some(rest) = doc.trim().strip_prefix("`[")
                && let Some(end) = rest.find("]`")
            {
                doc_section = Some(format!("[{}]", &rest[..end]));
            }
            continue;
        }
        if line.starts_with("#[") {
            deserialize |= line.starts_with("#[derive(") && line.contains("Deserialize");
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub struct ")
            && line.ends_with('{')
            && std::mem::take(&mut deserialize)
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            current = Some(ConfigStruct {
                name,
                section: doc_section.take(),
                fields: Vec::new(),
            });
            rename = None;
            flatten = false;
            continue;
        }
        doc_section = None;
        deserialize = false;
    }
    out
}

/// The TOML spelling of the `#[default]` variant of every enum in `src`,
/// quoted (`"text"`): its `rename`, else its name under the enum's
/// `rename_all` (kebab-case or snake_case).
fn enum_defaults(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rename_all: Option<String> = None;
    let mut default_next = false;
    let mut rename: Option<String> = None;
    for line in src.lines().map(str::trim) {
        if line.starts_with("pub enum ") {
            default_next = false;
            continue;
        }
        if let Some(r) = line.split("rename_all = \"").nth(1) {
            rename_all = r.split('"').next().map(str::to_owned);
            continue;
        }
        if line == "#[default]" {
            default_next = true;
            continue;
        }
        if !default_next || line.starts_with("///") {
            continue;
        }
        if line.starts_with("#[") {
            if let Some(r) = line.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_owned);
            }
            continue;
        }
        let variant: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = rename.take().unwrap_or_else(|| {
            let sep = match rename_all.as_deref() {
                Some("snake_case") => "_",
                _ => "-",
            };
            let mut name = String::new();
            for (i, ch) in variant.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    name.push_str(sep);
                }
                name.push(ch.to_ascii_lowercase());
            }
            name
        });
        out.push(format!("\"{name}\""));
        default_next = false;
    }
    out
}

/// The text from `## Configuration reference` to the next `## ` heading.
fn reference(page: &str) -> &str {
    let start = page
        .find(&format!("\n{REFERENCE_HEADING}\n"))
        .unwrap_or_else(|| panic!("{CONFIGURATION_NAME} has no `{REFERENCE_HEADING}` section"));
    let body = &page[start + 1..];
    let end = body[REFERENCE_HEADING.len()..]
        .find("\n## ")
        .map_or(body.len(), |e| e + REFERENCE_HEADING.len());
    &body[..end]
}

/// The reference's `### ` subsections whose heading is a backticked table
/// name, keyed by that name: "### `[server]`" → "[server]".
fn subsections(reference: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut key: Option<String> = None;
    let mut body = String::new();
    for line in reference.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            if let Some(k) = key.take() {
                map.insert(k, std::mem::take(&mut body));
            }
            body.clear();
            key = h
                .trim()
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .map(str::to_owned);
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    if let Some(k) = key {
        map.insert(k, body);
    }
    map
}

/// Whether `text` names `field` in backticks: `` `field` ``, or a table
/// header whose last component is `field` (`` `[client_ip]` ``,
/// `` `[[route]]` ``, `` `[server.tls]` ``).
fn names_field(text: &str, field: &str) -> bool {
    if text.contains(&format!("`{field}`")) {
        return true;
    }
    text.split('`').skip(1).step_by(2).any(|span| {
        let inner = span.trim_start_matches('[').trim_end_matches(']');
        span.starts_with('[') && inner.rsplit('.').next() == Some(field)
    })
}

#[test]
fn configuration_toml_blocks_pass_check() {
    let page = read(CONFIGURATION_PATH);
    let blocks = toml_blocks(&page);
    assert!(
        blocks.iter().any(|b| !b.fragment),
        "{CONFIGURATION_NAME} has no complete ```toml configuration"
    );
    for b in &blocks {
        let file = config::parse_with_env(&b.text, std::iter::empty()).unwrap_or_else(|e| {
            panic!(
                "{CONFIGURATION_NAME}:{}: the ```toml block does not load: {e}",
                b.line
            )
        });
        if b.fragment {
            continue;
        }
        let (_, diags) = config::validate(&file);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(
            errors.is_empty(),
            "{CONFIGURATION_NAME}:{}: the ```toml block fails `vestibule check` \
             (mark partial examples with {FRAGMENT_MARKER} on the line before the fence):\n{}",
            b.line,
            errors.join("\n")
        );
    }
}

#[test]
fn configuration_reference_names_every_config_field() {
    let page = read(CONFIGURATION_PATH);
    let reference = reference(&page);
    let sections = subsections(reference);
    let structs = config_structs_by_file();

    // Guard against the parser silently finding nothing.
    let all: Vec<&str> = structs
        .iter()
        .flat_map(|(_, s)| s.fields.iter().map(String::as_str))
        .collect();
    for expected in [
        "listen",
        "trusted_proxies",
        "route",
        "preserve_host",
        "encoding",
    ] {
        assert!(
            all.contains(&expected),
            "the field parser did not find `{expected}` in {CONFIG_DIR}: {structs:?}"
        );
    }
    assert!(
        !all.contains(&"routes"),
        "serde rename `routes` → `route` was not applied"
    );

    let mut missing = Vec::new();
    for (file, s) in &structs {
        // A struct whose section has its own `### ` heading must be documented
        // there; the others anywhere in the reference.
        let (where_, text) = match s
            .section
            .as_ref()
            .and_then(|k| sections.get(k).map(|t| (k, t)))
        {
            Some((k, t)) => (format!("the table under ### `{k}`"), t.as_str()),
            None => match &s.section {
                Some(k) => (
                    format!("a new ### `{k}` section (there is none yet)"),
                    reference,
                ),
                None => (format!("`{REFERENCE_HEADING}`"), reference),
            },
        };
        for f in &s.fields {
            if !names_field(text, f) {
                missing.push(format!(
                    "field `{f}` of struct `{}` (src/config/{file}): add a row for `{f}`, with its default, to {where_}",
                    s.name
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{CONFIGURATION_NAME} does not document {} configuration field(s):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn configuration_reference_shows_code_defaults() {
    let page = read(CONFIGURATION_PATH);
    let reference = reference(&page);
    let src = read_config_sources();
    let mut defaults = enum_defaults(&src);
    for line in src.lines().map(str::trim) {
        // `pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";` and
        // `pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024;`
        if line.starts_with("pub const DEFAULT_")
            && let Some((_, value)) = line.split_once(" = ")
        {
            defaults.push(value.trim_end_matches(';').to_owned());
        }
        // `"text".to_owned()` inside a `fn default_…`.
        if let Some(lit) = line.strip_suffix(".to_owned()")
            && lit.starts_with('"')
            && lit.ends_with('"')
        {
            defaults.push(lit.to_owned());
        }
    }
    assert!(
        defaults.len() >= 10,
        "too few defaults found in {CONFIG_DIR}: {defaults:?}"
    );
    let missing: Vec<&String> = defaults
        .iter()
        .filter(|d| {
            !reference.contains(&format!("`{d}`")) && !reference.contains(&format!("`[{d}]`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{CONFIGURATION_NAME}'s reference does not show these defaults of src/config/ (in backticks): {missing:?}"
    );
}

#[test]
fn block_and_field_parsers_work() {
    let md =
        "a\n```sh\n```toml\n```\n<!-- fragment -->\n```toml\nx = 1\n```\n```toml\ny = 2\n```\n";
    let b = toml_blocks(md);
    assert_eq!(b.len(), 2);
    assert!(b[0].fragment && !b[1].fragment);
    assert_eq!((b[0].line, b[0].text.as_str()), (6, "x = 1\n"));

    let src = "/// `[a]`.\n#[derive(Debug, Deserialize)]\npub struct A {\n    /// x\n    #[serde(default, rename = \"item\")]\n    pub items: Vec<u8>,\n    #[serde(flatten)]\n    pub common: C,\n    pub b: u8,\n}\npub const DEFAULT_X: &str = \"y\";\n/// No section.\n#[derive(Deserialize)]\npub struct B {\n    pub c: u8,\n}\n/// Checked, not read from the file.\n#[derive(Debug)]\npub struct Settings {\n    pub d: u8,\n}\n";
    let s = config_structs(src);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].section.as_deref(), Some("[a]"));
    assert_eq!(s[0].fields, ["item", "b"]);
    assert_eq!(
        (s[1].section.as_deref(), s[1].fields.as_slice()),
        (None, &["c".to_owned()][..])
    );

    let enums = "#[serde(rename_all = \"kebab-case\")]\npub enum F {\n    /// Doc.\n    #[default]\n    XForwardedFor,\n    Json,\n}\n#[serde(rename_all = \"snake_case\")]\npub enum G {\n    GivenName,\n    #[default]\n    #[serde(rename = \"base64\")]\n    Base64Prefix,\n}\npub enum H {\n    A,\n}\n";
    assert_eq!(enum_defaults(enums), ["\"x-forwarded-for\"", "\"base64\""]);

    assert!(names_field("see `[[route]]`", "route"));
    assert!(names_field("`[server.tls]`", "tls"));
    assert!(!names_field("`server.tls`", "tls"));
    assert!(!names_field("`path_prefix`", "path"));
}

/// The README and every Markdown page under docs/ (and SECURITY.md), as
/// (path relative to the repository, text).
fn markdown_pages() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "md") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(REPO_ROOT);
    let mut paths = vec![root.join("README.md"), root.join("SECURITY.md")];
    walk(&root.join("docs"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, read(&p.to_string_lossy()))
        })
        .collect()
}

/// The lines of every ```sh block.
fn shell_lines(markdown: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_sh = None;
    for line in markdown.lines() {
        match (in_sh, line.trim().strip_prefix("```")) {
            (None, Some(lang)) => in_sh = Some(lang.trim() == "sh"),
            (Some(_), Some("")) => in_sh = None,
            (Some(true), _) => out.push(line),
            _ => {}
        }
    }
    out
}

/// The `vestibule` subcommand path a shell line runs, if it runs vestibule:
/// `sudo -u vestibule vestibule users list` → `["users", "list"]`,
/// `cargo run --release -- demo` → `["demo"]`. Words after the subcommands
/// (flags, placeholders such as `ACCOUNT`) are left out; `a|b` alternatives
/// are kept whole for the caller to split.
fn vestibule_invocation(line: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = if let Some(dd) = words.iter().position(|w| *w == "--")
        && words.starts_with(&["cargo", "run"])
    {
        dd + 1
    } else {
        // The binary itself: `vestibule`, `/usr/bin/vestibule`,
        // `target/release/vestibule`, after `sudo [-u user]`.
        let at = words.iter().enumerate().position(|(i, w)| {
            (*w == "vestibule" || w.ends_with("/vestibule")) && !(i > 0 && words[i - 1] == "-u")
        })?;
        if !words[..at]
            .iter()
            .all(|w| matches!(*w, "sudo" | "-u" | "vestibule"))
        {
            return None;
        }
        at + 1
    };
    Some(
        words[start..]
            .iter()
            .take_while(|w| {
                w.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '|')
                    && !w.starts_with('-')
            })
            .map(|w| (*w).to_owned())
            .collect(),
    )
}

#[test]
fn commands_the_docs_show_exist() {
    use clap::CommandFactory;
    let cli = vestibule::cli::Cli::command();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (page, text) in markdown_pages() {
        for line in shell_lines(&text) {
            if line.trim_start().starts_with("bash ") {
                let script = line.split_whitespace().nth(1).unwrap();
                if !std::path::Path::new(REPO_ROOT).join(script).is_file() {
                    wrong.push(format!("{page}: `{line}`: no file {script}"));
                }
                checked += 1;
                continue;
            }
            let Some(words) = vestibule_invocation(line) else {
                continue;
            };
            checked += 1;
            let mut command = &cli;
            for word in &words {
                if !command.has_subcommands() {
                    break;
                }
                let mut next = None;
                for alternative in word.split('|') {
                    match command.find_subcommand(alternative) {
                        Some(sub) => next = Some(sub),
                        None => wrong.push(format!(
                            "{page}: `{}`: `{alternative}` is not a subcommand of `{}`",
                            line.trim(),
                            command.get_name()
                        )),
                    }
                }
                match next {
                    Some(sub) => command = sub,
                    None => break,
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "too few commands found in the docs: {checked}"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The README's two commands, in its own words.
    let readme = read(&format!("{REPO_ROOT}/README.md"));
    for command in ["cargo run --release -- demo", "bash .ci/run"] {
        assert!(
            shell_lines(&readme).iter().any(|l| l.trim() == command),
            "README.md no longer shows `{command}`"
        );
    }
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, everything but
/// letters, digits, `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code fences).
fn anchors(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn relative_links_reach_a_file_and_heading() {
    let pages = markdown_pages();
    let root = std::path::Path::new(REPO_ROOT);
    let mut checked = 0;
    let mut broken = Vec::new();
    for (page, text) in &pages {
        let dir = std::path::Path::new(page).parent().unwrap();
        for target in text.split("](").skip(1).filter_map(|t| t.split(')').next()) {
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if file.is_empty() {
                std::path::PathBuf::from(page)
            } else {
                normalise(&dir.join(file))
            };
            let resolved_name = resolved.to_string_lossy().into_owned();
            if !root.join(&resolved).exists() {
                broken.push(format!("{page}: ({target}): no file {resolved_name}"));
                continue;
            }
            if !fragment.is_empty() {
                let target_text = read(&root.join(&resolved).to_string_lossy());
                if !anchors(&target_text).iter().any(|a| a == fragment) {
                    broken.push(format!(
                        "{page}: ({target}): no heading #{fragment} in {resolved_name}"
                    ));
                }
            }
        }
    }
    assert!(checked >= 20, "too few links found: {checked}");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `docs/../SECURITY.md` → `SECURITY.md` (without touching the disk).
fn normalise(path: &std::path::Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn invocation_and_anchor_parsers_work() {
    let words = |l| vestibule_invocation(l).map(|w| w.join(" "));
    assert_eq!(
        words("sudo -u vestibule vestibule users list --json").as_deref(),
        Some("users list")
    );
    assert_eq!(
        words("cargo run --release -- demo").as_deref(),
        Some("demo")
    );
    assert_eq!(
        words("target/release/vestibule generate-assets target/x").as_deref(),
        Some("generate-assets")
    );
    assert_eq!(
        words("vestibule users approve|disable ACCOUNT").as_deref(),
        Some("users approve|disable")
    );
    assert_eq!(words("sudo systemctl reload vestibule"), None);
    assert_eq!(words("journalctl -u vestibule -f"), None);
    assert_eq!(anchor(" `[[server.unix]]`"), "serverunix");
    assert_eq!(
        anchor(" Security model in brief"),
        "security-model-in-brief"
    );
    assert_eq!(
        normalise(std::path::Path::new("docs/deploy/../../SECURITY.md")),
        std::path::PathBuf::from("SECURITY.md")
    );
}
