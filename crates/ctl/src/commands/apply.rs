//! `kumactl apply -f FILE|DIR|URL|- [--var k=v] [--dry-run]`.
//!
//! Every document is read and validated before anything is sent: one bad document means
//! nothing is applied. Universal and Kubernetes-format documents are both accepted; what is
//! sent is always the Universal form.

use std::collections::BTreeMap;
use std::path::Path;

use aerie_core::Resource;
use aerie_core::format::{parse_yaml_documents, resource_from_value, resource_to_value};
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::item_path;
use crate::cli::ApplyArgs;
use crate::client::Client;
use crate::config::ApiServer;
use crate::output::yaml;
use crate::{Globals, Io};

pub async fn run(args: ApplyArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let vars = parse_vars(&args.vars)?;
    let mut sources: Vec<String> = Vec::new();
    let mut stdin_read = false;
    for f in &args.files {
        if f == "-" {
            if stdin_read {
                continue;
            }
            stdin_read = true;
            let mut buf = Vec::new();
            io.stdin
                .read_to_end(&mut buf)
                .context("error while reading the standard input")?;
            sources.push(
                String::from_utf8(buf)
                    .map_err(|_| anyhow!("the standard input is not UTF-8 text"))?,
            );
        } else if f.starts_with("http://") || f.starts_with("https://") {
            sources.push(fetch(f, g).await?);
        } else {
            sources.extend(read_local(Path::new(f))?);
        }
    }

    let mut resources = Vec::new();
    let mut failures = Vec::new();
    let mut index = 0usize;
    for text in &sources {
        let text = render_template(text, &vars)?;
        for (first_line, chunk) in split_documents(&text) {
            // Pad with empty lines so YAML error positions are those of the whole file.
            let padded = format!("{}{}", "\n".repeat(first_line), chunk);
            match parse_yaml_documents(&padded) {
                Err(e) => {
                    failures.push(format!(
                        "resource[{index}]: failed to parse resource: {}",
                        syntax_message(&e.to_string())
                    ));
                    index += 1;
                }
                Ok(docs) => {
                    for doc in docs {
                        match check_document(&doc) {
                            Ok(r) => resources.push(r),
                            Err(msg) => failures.push(format!("resource[{index}]: {msg}")),
                        }
                        index += 1;
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            writeln!(io.err, "Error: {f}")?;
        }
        bail!("failed to validate some resources");
    }
    if resources.is_empty() {
        bail!("no resource(s) passed to apply");
    }

    if args.dry_run {
        // Nothing reaches the server, so its warnings are computed here.
        for r in &resources {
            for w in aerie_core::validate::warnings(r) {
                writeln!(io.err, "Warning: {w}")?;
            }
        }
        let values: Vec<Value> = resources.iter().map(resource_to_value).collect();
        write!(io.out, "{}", yaml::documents(&values))?;
        return Ok(());
    }

    let client = g.client()?;
    for r in &resources {
        let rtype = r.resource_type();
        let path = item_path(rtype, r.mesh(), r.name());
        let what = format!(
            "resource type=\"{}\" mesh=\"{}\" name=\"{}\"",
            rtype.name(),
            r.mesh(),
            r.name()
        );
        let resp = client
            .put_json(&path, &resource_to_value(r))
            .await
            .with_context(|| what.clone())?;
        if !resp.is_success() {
            bail!("{what}: failed server side: {}", resp.api_error());
        }
        let verb = if resp.status == 201 {
            "Created"
        } else {
            "Updated"
        };
        writeln!(io.out, "{what} {verb}")?;
        if let Ok(body) = resp.json() {
            for w in body
                .get("warnings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let w = w
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| w.to_string());
                writeln!(io.err, "Warning: {w}")?;
            }
        }
    }
    Ok(())
}

/// The YAML parser's message without its source excerpt: `line 5 column 7: unclosed bracket '['`.
fn syntax_message(msg: &str) -> String {
    let msg = msg.split(" --> ").next().unwrap_or(msg).trim();
    msg.strip_prefix("error: ").unwrap_or(msg).to_string()
}

/// Reads, then validates one document like the control plane would.
fn check_document(doc: &Value) -> std::result::Result<Resource, String> {
    let r = resource_from_value(doc).map_err(|e| e.to_string())?;
    aerie_core::validate::validate(&r).map_err(|e| format!("failed to parse resource: {e}"))?;
    Ok(r)
}

/// `--var a=1 --var b=2` (or `--var a=1,b=2`).
pub fn parse_vars(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for arg in raw {
        let parts: Vec<&str> = if arg.split(',').all(|p| p.contains('=')) {
            arg.split(',').collect()
        } else {
            vec![arg.as_str()]
        };
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!("invalid argument \"{arg}\" for \"--var\": expected key=value")
                })?;
            vars.insert(k.trim().to_string(), v.to_string());
        }
    }
    Ok(vars)
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Replaces `{{ key }}` / `{{key}}` with the variable's value. A placeholder with no value
/// is an error naming it.
pub fn render_template(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let key = after[..end].trim();
        out.push_str(&rest[..start]);
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None if is_var_name(key) => bail!(
                "no value for the template variable \"{key}\": pass it with --var {key}=VALUE"
            ),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits YAML text on `---` lines; each part comes with the number of lines before it.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end();
        if l == "---" || l.starts_with("--- ") || l.starts_with("---\t") {
            docs.push((start, std::mem::take(&mut cur)));
            start = i + 1;
            // Content after the marker on the same line (`--- {a: 1}`) stays on this line.
            let inline = l[3..].trim_start();
            if !inline.is_empty() && !inline.starts_with('#') {
                start = i;
                cur.push_str(inline);
                cur.push('\n');
            }
        } else {
            cur.push_str(line);
        }
    }
    docs.push((start, cur));
    docs.retain(|(_, d)| !d.trim().is_empty());
    docs
}

/// A file, or every `*.yaml`, `*.yml` and `*.json` file of a directory in name order.
fn read_local(path: &Path) -> Result<Vec<String>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("error while opening provided file {}", path.display()))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(path)
            .with_context(|| format!("error reading file names in directory {}", path.display()))?;
        for e in entries {
            let p = e
                .with_context(|| format!("error reading directory {}", path.display()))?
                .path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if p.is_file() && ["yaml", "yml", "json"].contains(&ext) {
                files.push(p);
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("error while reading the provided file {}", f.display()))
        })
        .collect()
}

/// `-f https://...`: fetches the file (https needs no CA here: the check is skipped, as the
/// content is validated anyway before anything is applied).
async fn fetch(url: &str, g: &Globals) -> Result<String> {
    let base = crate::client::BaseUrl::parse(url)?;
    let root = format!(
        "{}://{}",
        if base.https { "https" } else { "http" },
        base.authority
    );
    let mut api = ApiServer::new(root);
    api.skip_verify = base.https;
    let client = Client::new(&api, g.api_timeout)?;
    let path_and_query = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".into());
    let resp = client
        .get(&path_and_query)
        .await
        .with_context(|| format!("error while retrieving {url}"))?;
    if resp.status != 200 {
        bail!("error while retrieving {url}: status {}", resp.status);
    }
    String::from_utf8(resp.body.to_vec()).map_err(|_| anyhow!("{url} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templating_replaces_both_spellings_and_names_missing_variables() {
        let v = vars(&[("mesh", "prod"), ("port", "8080")]);
        assert_eq!(
            render_template(
                "mesh: {{ mesh }}\nport: {{port}}\nname: {{  mesh  }}-x\n",
                &v
            )
            .unwrap(),
            "mesh: prod\nport: 8080\nname: prod-x\n"
        );
        let err = render_template("name: {{ name }}\n", &v)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"name\""), "{err}");
        // Not a placeholder: left alone.
        assert_eq!(
            render_template("a: '{{ x y }}' {{", &v).unwrap(),
            "a: '{{ x y }}' {{"
        );
    }

    #[test]
    fn syntax_messages_lose_the_excerpt() {
        assert_eq!(
            syntax_message("error: line 5 column 7: unclosed bracket '['  --> <input>:5:7   | 3 |"),
            "line 5 column 7: unclosed bracket '['"
        );
        assert_eq!(syntax_message("something"), "something");
    }

    #[test]
    fn vars_parse() {
        let v = parse_vars(&["a=1".into(), "b=x=y".into(), "c=1,d=2".into()]).unwrap();
        assert_eq!(v, vars(&[("a", "1"), ("b", "x=y"), ("c", "1"), ("d", "2")]));
        assert!(parse_vars(&["nokey".into()]).is_err());
        assert!(parse_vars(&["=v".into()]).is_err());
    }

    #[test]
    fn splits_documents_keeping_line_numbers() {
        let docs = split_documents("---\na: 1\n---\n\n---   # c\nb: 2\nc: 3\n");
        assert_eq!(
            docs,
            vec![(1, "a: 1\n".to_string()), (5, "b: 2\nc: 3\n".to_string())]
        );
        assert_eq!(split_documents("a: 1"), vec![(0, "a: 1".to_string())]);
        assert!(split_documents("\n---\n# only a comment\n").len() == 1);
    }
}
