//! Tracing spans: one per command or pipeline at `DEBUG` under `redis_lanes::command`,
//! with the OpenTelemetry database fields, never an argument value or a secret, and
//! nothing at all when no subscriber enables them.
//!
//! Each test installs its own subscriber for its thread (`#[tokio::test]` runs on one
//! thread), which captures every span the library opens and every field it records.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::Client;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const TARGET: &str = "redis_lanes::command";
/// In every value and password below; must never appear in a span.
const MARK: &str = "s3cr3t";

/// One span: its target, and every field recorded on it.
#[derive(Debug, Clone, Default)]
struct Captured {
    target: String,
    fields: BTreeMap<String, String>,
    closed: bool,
}

impl Captured {
    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Captured>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The index of a span in `Capture::spans`, kept in the span's extensions.
struct Slot(usize);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut captured = Captured {
            target: attrs.metadata().target().to_owned(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(captured);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let slot = span.extensions().get::<Slot>().map(|slot| slot.0);
        let Some(index) = slot else { return };
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[index].fields));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let slot = span.extensions().get::<Slot>().map(|slot| slot.0);
        if let Some(index) = slot {
            self.spans.lock().unwrap()[index].closed = true;
        }
    }
}

impl Capture {
    /// Captures the command spans at `level` for this thread, until the guard drops.
    fn install(level: LevelFilter) -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let filter = Targets::new().with_target(TARGET, level);
        let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(filter));
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.spans.lock().unwrap())
    }
}

fn assert_no_value(spans: &[Captured]) {
    for span in spans {
        for (field, value) in &span.fields {
            assert!(!value.contains(MARK), "{field} = {value} shows a value");
            assert!(!value.contains("user:"), "{field} = {value} shows a key");
        }
    }
}

#[tokio::test]
async fn each_command_and_pipeline_has_one_span_with_the_conventional_fields() {
    let server = common::server();
    let client = common::client(&server).await;
    let (capture, _guard) = Capture::install(LevelFilter::DEBUG);
    let mut conn = client.clone();

    conn.set::<_, _, ()>("user:1", "value-s3cr3t")
        .await
        .unwrap();
    let _: String = conn.get("user:1").await.unwrap();
    let spans = capture.take();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let port = server.port().to_string();
    for (span, name) in spans.iter().zip(["SET", "GET"]) {
        assert_eq!(span.target, TARGET);
        assert!(span.closed, "{span:?}");
        assert_eq!(span.get("db.system.name"), Some("redis"));
        assert_eq!(span.get("db.operation.name"), Some(name));
        assert_eq!(span.get("otel.name"), Some(name));
        assert_eq!(span.get("otel.kind"), Some("client"));
        assert_eq!(span.get("db.namespace"), Some("0"));
        assert_eq!(span.get("server.address"), Some("127.0.0.1"));
        assert_eq!(span.get("server.port"), Some(port.as_str()));
        assert_eq!(span.get("redis_lanes.lane"), Some("shared"));
        assert_eq!(span.get("error.type"), None, "{span:?}");
        assert_eq!(span.get("db.operation.batch.size"), None);
    }

    // A pipeline is one span, counted as a batch; a transaction is named MULTI.
    let _: (i64, i64) = redis::pipe()
        .incr("user:2", 1)
        .incr("user:3", 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: (i64,) = redis::pipe()
        .atomic()
        .incr("user:2", 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let spans = capture.take();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0].get("db.operation.name"), Some("PIPELINE"));
    assert_eq!(spans[0].get("db.operation.batch.size"), Some("2"));
    assert_eq!(spans[1].get("db.operation.name"), Some("MULTI"));
    // A batch of one is not a batch.
    assert_eq!(spans[1].get("db.operation.batch.size"), None);

    // A blocking command runs on a blocking lane; an exclusive lease says so too.
    let _: Option<(String, String)> = conn.blpop("user:empty", 0.05).await.unwrap();
    let mut lease = client.exclusive().await.unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut lease)
        .await
        .unwrap();
    drop(lease);
    let spans = capture.take();
    let lanes: Vec<_> = spans
        .iter()
        .map(|s| (s.get("db.operation.name"), s.get("redis_lanes.lane")))
        .collect();
    assert_eq!(
        lanes,
        [
            (Some("BLPOP"), Some("blocking")),
            (Some("SELECT"), Some("exclusive"))
        ],
        "{spans:#?}"
    );
    assert_no_value(&spans);
    client.close().await;
}

#[tokio::test]
async fn failures_are_recorded_by_type_and_code_and_cancels_as_cancelled() {
    let server = common::server();
    let client = common::client(&server).await;
    let (capture, _guard) = Capture::install(LevelFilter::DEBUG);
    let mut conn = client.clone();

    conn.set::<_, _, ()>("user:list", "not-a-list-s3cr3t")
        .await
        .unwrap();
    let err = conn.lpush::<_, _, ()>("user:list", "x").await.unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
    // A caller who gives up: the span ends as cancelled.
    let blpop = conn.blpop::<_, Option<(String, String)>>("user:never", 5.0);
    assert!(tokio::time::timeout(Duration::from_millis(50), blpop)
        .await
        .is_err());
    let spans = capture.take();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let wrongtype = &spans[1];
    assert_eq!(wrongtype.get("db.operation.name"), Some("LPUSH"));
    assert_eq!(wrongtype.get("otel.status_code"), Some("ERROR"));
    assert_eq!(wrongtype.get("error.type"), Some("WRONGTYPE"));
    assert_eq!(wrongtype.get("db.response.status_code"), Some("WRONGTYPE"));
    let cancelled = &spans[2];
    assert_eq!(cancelled.get("db.operation.name"), Some("BLPOP"));
    assert_eq!(cancelled.get("error.type"), Some("cancelled"));
    assert!(cancelled.closed);
    assert_no_value(&spans);
    client.close().await;
}

#[tokio::test]
async fn secrets_never_reach_a_span() {
    let password = "pw-s3cr3t";
    let server = common::server_with(&["--requirepass", password]);
    let url = format!("redis://:{password}@127.0.0.1:{}", server.port());
    let (capture, _guard) = Capture::install(LevelFilter::TRACE);
    let client = Client::connect(&url).await.unwrap();
    let mut conn = client.clone();
    let _: () = conn.set("user:token", "token-s3cr3t").await.unwrap();
    // Passwords in arguments: only the command's name is recorded.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("bob")
        .arg("on")
        .arg(format!(">{password}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Refused before it is sent, on an exclusive lane as on the shared one.
    let mut lease = client.exclusive().await.unwrap();
    let refused = redis::cmd("AUTH")
        .arg(password)
        .query_async::<()>(&mut lease)
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains(MARK), "{refused}");
    let refused = redis::cmd("AUTH")
        .arg(password)
        .query_async::<()>(&mut conn)
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains(MARK), "{refused}");
    drop(lease);
    client.close().await;
    let spans = capture.take();
    let names: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.get("db.operation.name"),
                s.get("redis_lanes.lane"),
                s.get("error.type"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (Some("SET"), Some("shared"), None),
            (Some("ACL SETUSER"), Some("shared"), None),
            (Some("CONFIG SET"), Some("shared"), None),
            (Some("AUTH"), Some("exclusive"), Some("refused")),
            (Some("AUTH"), Some("shared"), Some("refused")),
        ],
        "{spans:#?}"
    );
    assert_no_value(&spans);
}

#[tokio::test]
async fn no_span_is_opened_unless_its_level_is_enabled() {
    let server = common::server();
    let client = common::client(&server).await;
    // A subscriber at INFO for the library's target, as a production service might run.
    let (capture, _guard) = Capture::install(LevelFilter::INFO);
    let mut conn = client.clone();
    for i in 0..10 {
        let _: () = conn.set(format!("k{i}"), i).await.unwrap();
    }
    let _: Option<(String, String)> = conn.blpop("empty", 0.05).await.unwrap();
    assert!(capture.take().is_empty());
    client.close().await;
}
