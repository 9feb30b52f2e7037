//! The query template language: `{{name}}` placeholders in PromQL, filled
//! from the deployment being decided. Each placeholder knows whether it
//! stands in a string literal, a regex matcher or bare text, and its value
//! is written so that it can only ever be a literal there: a request fills
//! values in, it never rewrites the query around them.

use crate::domain::DecisionRequest;

/// A `{{name}}` template, parsed once at config load.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var { name: String, context: Context },
}

/// Where in the PromQL a placeholder stands, which decides how its value
/// is written so that it can only ever be a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside any string literal (e.g. a range `[{{lookback}}]`).
    Bare,
    /// In a string compared exactly (`label="{{service}}"`).
    Exact,
    /// In the string of a regex matcher (`=~` or `!~`): PromQL anchors the
    /// regex, and its metacharacters are escaped, so `.+` matches only `.+`.
    /// `raw`: a backtick string, which takes no escapes of its own.
    Regex { raw: bool },
}

/// Follows string literals through a template's text, so each placeholder
/// knows its [`Context`]. PromQL strings are `"…"` and `'…'` (with
/// backslash escapes) and `` `…` `` (raw).
#[derive(Debug, Default)]
struct Lexer {
    /// The open string's quote, and whether it belongs to a regex matcher.
    string: Option<(char, bool)>,
    /// After a backslash inside an escaping string.
    escaped: bool,
    /// The last two non-blank characters outside strings (for `=~`, `!~`).
    tail: [char; 2],
}

impl Lexer {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match self.string {
                Some((quote, _)) => {
                    if self.escaped {
                        self.escaped = false;
                    } else if c == '\\' && quote != '`' {
                        self.escaped = true;
                    } else if c == quote {
                        self.string = None;
                        self.push(c);
                    }
                }
                None if matches!(c, '"' | '\'' | '`') => {
                    let regex = matches!(self.tail, ['=' | '!', '~']);
                    self.string = Some((c, regex));
                }
                None if !c.is_whitespace() => self.push(c),
                None => {}
            }
        }
    }

    fn push(&mut self, c: char) {
        self.tail = [self.tail[1], c];
    }

    /// The context of a placeholder here; the value stands for an opaque
    /// word in what follows.
    fn placeholder(&mut self) -> Context {
        self.escaped = false;
        match self.string {
            Some((quote, true)) => Context::Regex { raw: quote == '`' },
            Some((_, false)) => Context::Exact,
            None => {
                self.push('x');
                Context::Bare
            }
        }
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lexer = Lexer::default();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                lexer.feed(&rest[..open]);
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
            let name = after[..close].trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!(
                    "`{{{{{}}}}}` in `{text}` is not a placeholder name (letters, digits, `.`, `_`, `-`)",
                    &after[..close]
                ));
            }
            parts.push(Part::Var {
                name: name.to_string(),
                context: lexer.placeholder(),
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Fill in every placeholder from `req`. A placeholder the request does
    /// not provide, or a value that could change the query's meaning, is an
    /// error naming it. In a regex matcher's string the value's regex
    /// metacharacters are escaped.
    pub fn expand(&self, req: &DecisionRequest) -> Result<String, String> {
        let mut out = String::new();
        // Every missing placeholder is named at once: fixing them one error
        // at a time is tedious.
        let mut missing: Vec<&str> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { name, context } => {
                    let Some(value) = lookup(req, name) else {
                        if !missing.contains(&name.as_str()) {
                            missing.push(name);
                        }
                        continue;
                    };
                    let (fits, allowed) = match context {
                        Context::Bare => (bare_value(&value), "letters, digits and `._:`"),
                        Context::Exact | Context::Regex { .. } => {
                            (safe_value(&value), "letters, digits and `._:/@+=-`")
                        }
                    };
                    if !fits {
                        return Err(format!(
                            "{{{{{name}}}}} = `{}` contains characters that could alter the \
                             query (allowed here: {allowed}, at most 256)",
                            crate::domain::shown(&value)
                        ));
                    }
                    match context {
                        Context::Regex { raw } => escape_regex(&value, *raw, &mut out),
                        Context::Bare | Context::Exact => out.push_str(&value),
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let names: Vec<String> = missing.iter().map(|n| format!("{{{{{n}}}}}")).collect();
        Err(format!(
            "the query uses {}, which this request does not carry",
            names.join(" and ")
        ))
    }
}

/// Write `value` so a regex (RE2, as Prometheus uses) matches it literally:
/// each metacharacter behind a backslash, itself doubled in a quoted PromQL
/// string (whose escapes are Go's) and single in a raw one.
fn escape_regex(value: &str, raw: bool, out: &mut String) {
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push_str(if raw { "\\" } else { "\\\\" });
        }
        out.push(c);
    }
}

/// A placeholder's value: deployment fields by name, `namespace` from the
/// args (`namespace`, or Flagger's `flagger.namespace`), anything else from
/// the request's free-form `args`.
fn lookup(req: &DecisionRequest, name: &str) -> Option<String> {
    let d = &req.deployment;
    let value = match name {
        "service" => Some(d.service.clone()),
        "environment" => Some(d.environment.clone()),
        "version" => Some(d.version.clone()),
        "previous_version" => d.previous_version.clone(),
        "region" => d.region.clone(),
        "stage" => d.stage.clone(),
        "namespace" => req
            .args
            .get("namespace")
            .or_else(|| req.args.get("flagger.namespace"))
            .cloned(),
        other => req.args.get(other).cloned(),
    };
    value.filter(|v| !v.is_empty())
}

/// Values go into PromQL label matchers; refusing quotes, backslashes,
/// braces and whitespace means a request can only fill a value in, never
/// rewrite the query around it.
fn safe_value(v: &str) -> bool {
    v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@+=-".contains(&b))
}

/// Outside a string literal a value is a bare word (a duration, a number,
/// a name): no operators, no quotes.
fn bare_value(v: &str) -> bool {
    v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:".contains(&b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request with every field a template may name (also used by the pull's tests).
    pub(crate) fn request() -> DecisionRequest {
        serde_json::from_value(serde_json::json!({
            "deployment": {"service": "shop", "environment": "prod", "version": "v2",
                           "previous_version": "v1"},
            "time": "2026-01-01T00:10:00Z",
            "args": {"flagger.namespace": "store", "pod-hash": "abc123"}
        }))
        .unwrap()
    }

    #[test]
    fn templates_fill_deployment_fields_namespace_and_args() {
        let t = Template::parse(
            r#"rate(x{svc="{{service}}",v="{{ version }}",ns="{{namespace}}",h="{{pod-hash}}"}[1m])"#,
        )
        .unwrap();
        assert_eq!(
            t.expand(&request()).unwrap(),
            r#"rate(x{svc="shop",v="v2",ns="store",h="abc123"}[1m])"#
        );
    }

    #[test]
    fn templates_refuse_missing_values_and_injection() {
        let mut req = request();
        let e = Template::parse("x{r=\"{{region}}\"}")
            .unwrap()
            .expand(&req)
            .unwrap_err();
        assert!(
            e.contains("{{region}}") && e.contains("does not carry"),
            "{e}"
        );
        req.deployment.service = r#"shop"} or vector(1) #"#.into();
        let e = Template::parse("x{s=\"{{service}}\"}")
            .unwrap()
            .expand(&req)
            .unwrap_err();
        assert!(e.contains("could alter the query"), "{e}");
        let e = Template::parse("{{a}}{{service}}{{b}}{{a}}")
            .unwrap()
            .expand(&request())
            .unwrap_err();
        assert_eq!(
            e,
            "the query uses {{a}} and {{b}}, which this request does not carry"
        );
        assert!(Template::parse("x{{service")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("{{a b}}").is_err());
        assert!(Template::parse("{{}}").is_err());
    }

    #[test]
    fn values_in_regex_matchers_are_literal() {
        let mut req = request();
        req.args.insert("any".into(), ".+".into());
        req.deployment.version = "v1.2+b3".into();
        let expand = |t: &str| Template::parse(t).unwrap().expand(&req);
        // `=~` and `!~`, each kind of string; `\\.` in a quoted PromQL
        // string is the regex `\.`, in a raw string it is written once.
        assert_eq!(
            expand(r#"x{h=~"{{any}}",v!~'{{version}}',w=~`{{version}}`}"#).unwrap(),
            r#"x{h=~"\\.\\+",v!~'v1\\.2\\+b3',w=~`v1\.2\+b3`}"#
        );
        // Spaces around the operator, and a prefix in the same regex.
        assert_eq!(
            expand(r#"x{h =~ "pre-{{any}}-.*"}"#).unwrap(),
            r#"x{h =~ "pre-\\.\\+-.*"}"#
        );
        // An escaped quote does not end a regex string; a string after it
        // is not a regex; exact matchers take the value as it is.
        assert_eq!(
            expand(r#"x{a=~"\"{{any}}",b="{{version}}",c="{{any}}"}"#).unwrap(),
            r#"x{a=~"\"\\.\\+",b="v1.2+b3",c=".+"}"#
        );
        // Outside a string a value is a bare word: no operators.
        assert_eq!(
            expand("rate(x[{{lookback}}])").unwrap_err(),
            "the query uses {{lookback}}, which this request does not carry"
        );
        req.args.insert("window".into(), "5m".into());
        let expand = |t: &str| Template::parse(t).unwrap().expand(&req);
        assert_eq!(expand("rate(x[{{window}}])").unwrap(), "rate(x[5m])");
        let e = expand("x > {{any}}").unwrap_err();
        assert!(
            e.contains("could alter the query") && e.contains("`._:`"),
            "{e}"
        );
    }
}
