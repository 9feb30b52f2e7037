//! Field formatting for text logs that keeps one event on one line.
//!
//! Logged values carry client input (service and environment names, error
//! messages quoting a request). `tracing-subscriber`'s default text format
//! writes `%` values and messages as they are, so a name holding a newline
//! would start a line of its own that reads like a real log event, and a
//! NUL or an escape sequence would confuse log tools and terminals.
//! [`EscapedFields`] formats fields like the default (`message` first,
//! then `name=value`), with every control character escaped (`\n`,
//! `\u{0}`, `\u{1b}` …). The JSON format needs none of this: JSON strings
//! escape control characters.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Text-log field formatter that escapes control characters.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // Metadata of events from the `log` crate, shown by the formatter.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let text = match name {
            "message" => format!("{value:?}"),
            name => format!("{}={value:?}", name.strip_prefix("r#").unwrap_or(name)),
        };
        let pad = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = write!(self.writer, "{pad}{}", Escaped(&text));
    }
}

/// Control characters (and the Unicode line and paragraph separators)
/// written as Rust escapes.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_in_values_stay_on_one_line() {
        let buf = Buf::default();
        let sink = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let forged = "checkout\nERROR verdict: audit chain broken";
            tracing::info!(
                service = %forged,
                environment = "prod\0\u{1b}[31m",
                new = true,
                "decided {}",
                "x\r\ny"
            );
            tracing::warn!("{}", "plain\u{2028}next");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].ends_with(
                r#"decided x\r\ny service=checkout\nERROR verdict: audit chain broken environment="prod\0\u{1b}[31m" new=true"#
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(r"plain\u{2028}next"), "{}", lines[1]);
    }
}
