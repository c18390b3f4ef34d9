//! JSON log lines, one object per event: `timestamp`, `level`, the event's fields
//! (`message` first), `target`, and `span` with the fields of the span the event is in.
//! The same shape as `tracing-subscriber`'s flattened JSON format, written straight
//! into the line: its formatter keeps span fields as JSON text and parses and
//! re-serialises that text for every event and every field recorded later (the client
//! of a call is), which made logging the largest cost of a GetLicense after the socket
//! (docs/benchmarks.md). Here span fields are kept as `"name":value` pairs that later
//! fields are appended to, and copied into each line as they are. When traces are
//! exported, a line in a span ends with the span's `trace_id`.

use std::fmt::{self, Write};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats span fields as comma-separated `"name":value` pairs (no braces).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Pairs::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = Pairs::new(&mut current.fields, first);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Formats an event as one JSON object (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = OffsetDateTime::now_utc();
        let (date, clock) = (now.date(), now.time());
        write!(
            writer,
            "{{\"timestamp\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\"",
            date.year(),
            u8::from(date.month()),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second(),
            clock.microsecond(),
            event.metadata().level(),
        )?;
        let mut visitor = Pairs::new(&mut writer, false);
        event.record(&mut visitor);
        visitor.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, event.metadata().target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.fields.is_empty()
            {
                writer.write_str(&fields.fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
            drop(extensions);
            // Last, so that no other field moves: the trace of the request, when
            // traces are exported.
            if let Some(trace_id) = super::otlp::trace_id_of(&span.id()) {
                writer.write_str(",\"trace_id\":")?;
                string(&mut writer, &trace_id)?;
            }
        }
        writer.write_str("}\n")
    }
}

/// Writes fields as `"name":value` pairs, each after a comma but the first one when
/// `first` is set.
struct Pairs<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Pairs<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Pairs<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| string(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.pair(field, |out| write!(out, "{value}"));
        } else {
            self.pair(field, |out| string(out, &value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in text.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if (c as u32) < 0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", c as u32)?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(SpanFields)
            .event_format(JsonLines)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn events_are_json_objects_with_their_fields_and_their_span() {
        let logged = lines(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                client = tracing::field::Empty
            );
            span.record("client", "acme \"quoted\"\n");
            span.in_scope(|| {
                tracing::info!(status = 200u64, ok = true, ratio = 0.5, who = %"display", "request finished");
            });
            tracing::warn!(error.message = ?"a\\b\u{1}", "outside");
        });
        assert_eq!(logged.len(), 2, "{logged:?}");
        let first = &logged[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "request finished");
        assert_eq!(first["status"], 200);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["who"], "display");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["span"]["request_id"], "r-1");
        assert_eq!(first["span"]["client"], "acme \"quoted\"\n");
        assert_eq!(first["span"]["name"], "request");
        let stamp = first["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        let second = &logged[1];
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["error.message"], "\"a\\\\b\\u{1}\"");
        assert!(second.get("span").is_none());
    }
}
